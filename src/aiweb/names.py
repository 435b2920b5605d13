"""The naming rule of everything a user names: models, aliases, keys, users, schedules,
collections (one rule, so a name valid in one place is valid in every other)."""

from __future__ import annotations

import re

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
