"""The naming rule of everything a user names: models, aliases, keys, users, schedules,
collections (one rule, so a name valid in one place is valid in every other)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from aiweb.errors import InvalidInputError

#: Names: lower-case letters, digits, ``_`` and ``-``; 1 to 63 characters.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_name(value: str, kind: str = "model name") -> str:
    """Return ``value`` if it is a valid name.

    Args:
        value: the name to check.
        kind: what it names, for the error message (``"alias"``, ``"key name"`` …).

    Raises:
        InvalidInputError: the name does not match ``^[a-z0-9][a-z0-9_-]{0,62}$``.
    """
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidInputError(
            f"invalid {kind} {value[:80]!r}: use 1 to 63 lower-case letters, digits, "
            "'_' or '-', starting with a letter or digit"
        )
    return value


# -- bounds of the values every API shape shares -----------------------------------------
# (here, in the lowest layer, so every schema can use them)

#: :data:`NAME_PATTERN` as a JSON-schema ``pattern`` (path parameters, body fields).
NAME_REGEX = NAME_PATTERN.pattern

#: A model reference as a JSON-schema ``pattern``: ``name``, ``name@alias`` or
#: ``name:version`` (version 1 to 999,999,999), as :class:`aiweb.registry.entities.ModelRef`
#: parses it.
REF_REGEX = r"^[a-z0-9][a-z0-9_-]{0,62}(@[a-z0-9][a-z0-9_-]{0,62}|:[1-9][0-9]{0,8})?$"

#: Largest value of a PostgreSQL ``INTEGER`` column (version numbers, counts).
INT32_MAX = 2**31 - 1

#: A version number: 1 to :data:`INT32_MAX` (what the registry's column holds).
VersionNumber = Annotated[int, Field(ge=1, le=INT32_MAX)]

#: Years a timestamp may have, once converted to UTC (every database and
#: :class:`datetime.datetime` can hold them, with a day to spare either side).
MIN_YEAR, MAX_YEAR = 2, 9998


def bounded_datetime(value: datetime) -> datetime:
    """``value`` in UTC (a naive one is taken as UTC), if its year is in range.

    Raises:
        ValueError: the UTC year is outside :data:`MIN_YEAR`..:data:`MAX_YEAR`
            (``9999-12-31T23:59:59-14:00`` is past year 9999 in UTC).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"timestamp must be within the years {MIN_YEAR} to {MAX_YEAR}")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp must be within the years {MIN_YEAR} to {MAX_YEAR}") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"timestamp must be within the years {MIN_YEAR} to {MAX_YEAR}")
    return utc


#: Unix seconds a timestamp may be given as (below 2e10 pydantic reads seconds, not ms).
MAX_UNIX_SECONDS = 2e10


def _unix_seconds_in_range(value: object) -> object:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not -MAX_UNIX_SECONDS <= value <= MAX_UNIX_SECONDS:  # type: ignore[operator]
        raise ValueError(f"Unix seconds must be within ±{MAX_UNIX_SECONDS:.0e}")
    return value


#: A timestamp: ISO 8601 or Unix seconds, converted to UTC, years 2 to 9998.
BoundedDatetime = Annotated[
    datetime,
    BeforeValidator(_unix_seconds_in_range),
    AfterValidator(bounded_datetime),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": -MAX_UNIX_SECONDS, "maximum": MAX_UNIX_SECONDS},
            ],
            "description": "ISO 8601 (UTC when no offset) or Unix seconds; years 2 to 9998 in UTC.",
        }
    ),
]
