"""The algorithms by name: :data:`ALGORITHMS`, :func:`make` (a new, unfitted one with
checked parameters) and :func:`from_state` (a fitted one from its state).
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from aiweb.errors import InvalidInputError
from aiweb.recommendations.algorithms.base import Algorithm, State
from aiweb.recommendations.algorithms.content import Content, EmbeddingContent
from aiweb.recommendations.algorithms.ease import EASE
from aiweb.recommendations.algorithms.factors import ALS, BPR
from aiweb.recommendations.algorithms.popularity import Popularity, Trending

ALGORITHMS = ("als", "bpr", "ease", "content", "content-minilm", "popularity", "trending")

CLASSES: dict[str, Any] = {
    c.name: c for c in (ALS, BPR, EASE, Content, EmbeddingContent, Popularity, Trending)
}


def make(name: str, params: dict[str, Any] | None = None) -> Algorithm:
    """A new, unfitted algorithm by name.

    Raises:
        InvalidInputError: unknown name or parameter.
    """
    cls = CLASSES.get(name)
    if cls is None:
        raise InvalidInputError(
            f"unknown recommendation algorithm {name!r}; known: {', '.join(ALGORITHMS)}"
        )
    if not isinstance(params or {}, dict):
        raise InvalidInputError(f"parameters for {name} must be an object of name: value")
    try:
        checked = _params_model(cls).model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"bad parameters for {name}: {problems}") from None
    algo: Algorithm = cls(**checked.model_dump(exclude_unset=True))
    return algo


def parameters(name: str) -> type[BaseModel]:
    """The parameters algorithm ``name`` takes, as a pydantic model (names, types and
    defaults; unknown names refused), e.g. to list them in an error message.

    Raises:
        InvalidInputError: unknown algorithm.
    """
    cls = CLASSES.get(name)
    if cls is None:
        raise InvalidInputError(
            f"unknown recommendation algorithm {name!r}; known: {', '.join(ALGORITHMS)}"
        )
    return _params_model(cls)


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters (types from its annotations,
    defaults from its signature; unknown names refused)."""
    hints = typing.get_type_hints(vars(cls)["__init__"])
    fields: dict[str, Any] = {
        p.name: (hints.get(p.name, Any), p.default)
        for p in inspect.signature(cls).parameters.values()
    }
    return create_model(
        f"{cls.__name__}Params",
        __config__=ConfigDict(extra="forbid", strict=False),
        **fields,
    )


def from_state(name: str, params: dict[str, Any], state: State) -> Algorithm:
    """Rebuild a fitted algorithm from :meth:`Algorithm.state`."""
    algo: Algorithm = CLASSES[name].from_state(params, state)
    return algo
