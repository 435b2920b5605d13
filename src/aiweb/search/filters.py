"""Metadata filters of a search: ``{field: value | {"in": [values]}}``.

All conditions must hold (AND); ``{"in": [...]}`` holds when the field equals any of the
values (OR). Values are JSON scalars: strings (equal when identical, case-sensitive),
numbers (equal by value: ``3`` matches ``3.0``) and booleans (never equal to a number).
A document whose field is missing, ``null``, an array or an object matches no condition
on that field.

A filter is applied inside the query that ranks documents (an exact pre-filter): the
``top_k`` hits are the best documents among those that match, never the matching part
of an unfiltered top-k. :meth:`Filter.clause` renders it for the database:

* SQLite: ``json_type`` / ``json_extract`` on the ``metadata`` column;
* PostgreSQL: JSONB containment, ``metadata @> '{"field": value}'``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, bindparam, false, func, or_, true
from sqlalchemy.dialects.postgresql import JSONB

from aiweb.errors import InvalidInputError

#: Filterable field names: letters, digits, ``_`` and ``-``, 1 to 64 characters.
FIELD_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
MAX_CONDITIONS = 16
MAX_IN_VALUES = 1000
MAX_STRING_CHARS = 1000

Scalar = str | int | float | bool


def check_field(name: str) -> str:
    """Return ``name`` if it may be a filterable metadata field.

    Raises:
        InvalidInputError: it does not match ``^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$``.
    """
    if not isinstance(name, str) or not FIELD_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"invalid metadata field name {str(name)[:80]!r}: use 1 to 64 letters, digits, "
            "'_' or '-', not starting with '-'"
        )
    return name


def _scalar(field: str, value: Any) -> Scalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise InvalidInputError(f"filter {field!r}: integers must be within ±2^53")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"filter {field!r}: numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidInputError(
                f"filter {field!r}: strings are at most {MAX_STRING_CHARS} characters"
            )
        return value
    raise InvalidInputError(
        f"filter {field!r}: a value must be a string, number or boolean, or "
        '{"in": [values]}; got ' + type(value).__name__
    )


@dataclass(frozen=True)
class Condition:
    """``field`` equals one of ``values`` (one value: plain equality)."""

    field: str
    values: tuple[Scalar, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a document's metadata satisfies the condition (the reference
        semantics the SQL renderings implement)."""
        got = metadata.get(self.field)
        if got is None or isinstance(got, list | dict):
            return False
        for want in self.values:
            if isinstance(want, bool) or isinstance(got, bool):
                if isinstance(want, bool) and isinstance(got, bool) and want == got:
                    return True
            elif isinstance(want, str) or isinstance(got, str):
                if isinstance(want, str) and isinstance(got, str) and want == got:
                    return True
            elif float(want) == float(got):
                return True
        return False


@dataclass(frozen=True)
class Filter:
    """A parsed metadata filter: every condition must hold."""

    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, fields: Sequence[str] | None) -> Filter | None:
        """Check and parse a request's ``filter``.

        Args:
            raw: ``{field: value | {"in": [values]}}`` as sent; ``None`` or ``{}`` is no
                filter.
            fields: the collection's filterable fields, or ``None`` when every field is.

        Returns:
            The filter, or ``None`` when there is nothing to filter on.

        Raises:
            InvalidInputError: an unknown or malformed field, a value that is not a JSON
                scalar, an empty or oversized ``in`` list, more than 16 conditions.
        """
        if not raw:
            return None
        if not isinstance(raw, Mapping):
            raise InvalidInputError('filter must be an object: {field: value | {"in": [...]}}')
        if len(raw) > MAX_CONDITIONS:
            raise InvalidInputError(f"filter: at most {MAX_CONDITIONS} fields")
        conditions = []
        for field, spec in raw.items():
            check_field(field)
            if fields is not None and field not in fields:
                known = ", ".join(fields) if fields else "none"
                raise InvalidInputError(
                    f"filter: {field!r} is not a filterable metadata field of this collection "
                    f"(filterable: {known}; set metadata_fields with PUT /v1/collections/NAME)"
                )
            if isinstance(spec, Mapping):
                if set(spec) != {"in"} or not isinstance(spec["in"], list):
                    raise InvalidInputError(
                        f'filter {field!r}: an object must be {{"in": [values]}}'
                    )
                values = spec["in"]
                if not 1 <= len(values) <= MAX_IN_VALUES:
                    raise InvalidInputError(
                        f'filter {field!r}: "in" takes 1 to {MAX_IN_VALUES} values'
                    )
                parsed = tuple(_scalar(field, v) for v in values)
            else:
                parsed = (_scalar(field, spec),)
            conditions.append(Condition(field, parsed))
        return cls(tuple(conditions))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a document's metadata satisfies every condition."""
        return all(c.matches(metadata) for c in self.conditions)

    def clause(self, column: Any, dialect: str) -> ColumnElement[bool]:
        """The filter as a SQL condition on the JSON ``metadata`` ``column``.

        Args:
            column: the ``metadata`` column (JSON on SQLite, JSONB on PostgreSQL).
            dialect: ``sqlite`` or ``postgresql``.
        """
        render = _postgresql if dialect == "postgresql" else _sqlite
        return and_(true(), *(render(column, c) for c in self.conditions))


def _split(values: tuple[Scalar, ...]) -> tuple[list[str], list[int | float], list[bool]]:
    strings = [v for v in values if isinstance(v, str)]
    bools = [v for v in values if isinstance(v, bool)]
    numbers = [v for v in values if not isinstance(v, str | bool)]
    return strings, numbers, bools


def _sqlite(column: Any, cond: Condition) -> ColumnElement[bool]:
    path = f'$."{cond.field}"'  # the field name cannot hold a quote (FIELD_PATTERN)
    kind = func.json_type(column, path)
    value = func.json_extract(column, path)
    strings, numbers, bools = _split(cond.values)
    parts: list[ColumnElement[bool]] = []
    if strings:
        parts.append(and_(kind == "text", value.in_(strings)))
    if numbers:
        parts.append(and_(kind.in_(("integer", "real")), value.in_(numbers)))
    if bools:
        parts.append(kind.in_(sorted({"true" if b else "false" for b in bools})))
    return or_(false(), *parts)


def _postgresql(column: Any, cond: Condition) -> ColumnElement[bool]:
    # jsonb containment compares numbers by value and never equates a boolean and a
    # number, as the SQLite rendering does
    contains = column.op("@>", return_type=Boolean())
    return or_(
        false(), *(contains(bindparam(None, {cond.field: v}, type_=JSONB())) for v in cond.values)
    )
