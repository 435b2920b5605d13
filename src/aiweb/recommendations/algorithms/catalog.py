"""The algorithms by name: :data:`ALGORITHMS`, :func:`make` (a new, unfitted one with
checked parameters) and :func:`from_state` (a fitted one from its state).
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from aiweb.errors import InvalidInputError
from aiweb.recommendations.algorithms.base import Algorithm, Range, State
from aiweb.recommendations.algorithms.content import Content, EmbeddingContent
from aiweb.recommendations.algorithms.ease import EASE
from aiweb.recommendations.algorithms.factors import ALS, BPR
from aiweb.recommendations.algorithms.popularity import Popularity, Trending

ALGORITHMS = ("als", "bpr", "ease", "content", "content-minilm", "popularity", "trending")

CLASSES: dict[str, Any] = {
    c.name: c for c in (ALS, BPR, EASE, Content, EmbeddingContent, Popularity, Trending)
}


def make(name: str, params: dict[str, Any] | None = None) -> Algorithm:
    """A new, unfitted algorithm by name, its parameters checked: known names, the
    right types, values in the algorithm's ``RANGES`` (finite: NaN and infinity, also as
    strings, are refused).

    Raises:
        InvalidInputError: unknown name or parameter, or a value out of its range (the
            message gives the range).
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
        problems = "; ".join(_problem(cls, name, e) for e in exc.errors())
        raise InvalidInputError(f"bad parameters for {name}: {problems}") from None
    algo: Algorithm = cls(**checked.model_dump(exclude_unset=True))
    return algo


def _problem(cls: type, name: str, error: Any) -> str:
    """One pydantic error in words: ``als.factors=1.5: Input should be a valid integer
    …; valid: an integer in [1, 1024]``."""
    loc = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        known = ", ".join(_params_model(cls).model_fields) or "none"
        return f"unknown parameter {name}.{loc} (parameters: {known})"
    text = f"{name}.{loc}={error.get('input')!r:.60}: {error['msg']}"
    valid = getattr(cls, "RANGES", {}).get(loc)
    if valid is not None and error["type"] != "out_of_range":
        text += f" (valid: {valid.describe()})"
    return text


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


def _in_range(valid: Range) -> Any:
    def check(value: Any) -> Any:
        if not valid.contains(float(value)):
            raise PydanticCustomError(
                "out_of_range", "must be {valid}", {"valid": valid.describe()}
            )
        return value

    return AfterValidator(check)


def _bounds(valid: Range) -> dict[str, Any]:
    """The JSON Schema bounds of ``valid`` (what :func:`_in_range` checks)."""
    low = "exclusiveMinimum" if valid.low_open else "minimum"
    return {low: valid.low, "maximum": valid.high}


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "must be a number, not true or false")
    return value


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters (types from its annotations,
    defaults from its signature, ranges from its ``RANGES``, described in each field's
    ``description``; unknown names refused)."""
    hints = typing.get_type_hints(vars(cls)["__init__"])
    ranges: dict[str, Range] = getattr(cls, "RANGES", {})
    fields: dict[str, Any] = {}
    for p in inspect.signature(cls).parameters.values():
        hint = hints.get(p.name, Any)
        valid = ranges.get(p.name)
        if valid is not None:
            hint = Annotated[
                hint,
                BeforeValidator(_no_bool),
                _in_range(valid),
                Field(description=valid.describe(), json_schema_extra=_bounds(valid)),
            ]
        fields[p.name] = (hint, p.default)
    return create_model(
        f"{cls.__name__}Params",
        __config__=ConfigDict(extra="forbid", strict=False),
        **fields,
    )


def from_state(name: str, params: dict[str, Any], state: State) -> Algorithm:
    """Rebuild a fitted algorithm from :meth:`Algorithm.state`."""
    algo: Algorithm = CLASSES[name].from_state(params, state)
    return algo
