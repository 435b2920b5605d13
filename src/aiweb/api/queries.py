"""A query parameter that takes one value, given more than once, is refused (422).

Starlette keeps every value of a repeated query parameter and FastAPI hands a route the
last one of a parameter it declares as a single value (``?category=a&category=b`` read
as ``b``): the request is not what the OpenAPI document describes (a string, not an
array), and the client may not mean what it gets. :func:`install` adds a dependency to
every route of the app that answers such a request 422 (``loc: ["query", name]``).
Parameters declared as lists (``?exclude=a&exclude=b``) take repeats as before.
"""

from __future__ import annotations

import types
import typing
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Union

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection

_SEQUENCES = (list, tuple, set, frozenset, Sequence)


def install(app: FastAPI) -> None:
    """Check every route's query parameters (call before the routes are added)."""
    app.router.dependencies.append(Depends(one_value_each))


def _takes_several(annotation: Any) -> bool:
    """Whether a parameter of this type takes several values (``list[str] | None`` …)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _takes_several(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_takes_several(arg) for arg in typing.get_args(annotation))
    if annotation in _SEQUENCES:
        return True
    return origin is not None and isinstance(origin, type) and issubclass(origin, _SEQUENCES)


def _query_fields(dependant: Any) -> Iterator[Any]:
    yield from getattr(dependant, "query_params", ())
    for sub in getattr(dependant, "dependencies", ()):
        yield from _query_fields(sub)


async def one_value_each(request: HTTPConnection) -> None:
    """Refuse a repeated query parameter the matched route declares as one value.

    Raises:
        RequestValidationError: which one (422).
    """
    counts = Counter(key for key, _ in request.query_params.multi_items())
    repeated = {key for key, n in counts.items() if n > 1}
    if not repeated:
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)
    for field in _query_fields(dependant):
        if field.alias in repeated and not _takes_several(field.field_info.annotation):
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", field.alias),
                        "msg": f"{field.alias!r} takes one value; it was given "
                        f"{counts[field.alias]} times",
                        "type": "value_error",
                    }
                ]
            )
