"""Column types of tabular data: what a cell means, how to read one, and inference from rows.

A table is a list of rows, each a mapping ``column name -> value``. Values come from a CSV
(every value a ``str``) or from JSON (``str``, ``int``, ``float``, ``bool`` or ``None``).
Each column has one :data:`ColumnKind`:

``numeric``
    a real number (``float64``); ints, floats, and strings such as ``"3"``, ``"-1.5e3"``.
``categorical``
    a label out of a finite set, compared as text (``"A11"``; the number ``5`` and the
    string ``"5"`` are the same category, see :func:`category_key`).
``boolean``
    true or false: JSON booleans, or the strings ``true/false``, ``yes/no``, ``t/f``,
    ``y/n`` (any case).
``datetime``
    an ISO 8601 date or date-time (``2024-05-01``, ``2024-05-01T13:45:00Z``); naive times
    are taken as UTC.
``text``
    free text (reviews, descriptions). Tabular models do not use text columns as features
    (they are dropped, with a note in the training report).

Missing values: ``None``, a float NaN, and any string whose stripped, lower-cased form is
in :data:`MISSING_TOKENS` (the empty string, UCI's ``?``, ``NA``, ``N/A``, ``NaN``,
``null``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast, get_args

from aiweb.errors import DataFormatError

__all__ = [
    "COLUMN_KINDS",
    "MISSING_TOKENS",
    "ColumnKind",
    "ColumnSpec",
    "category_key",
    "infer_schema",
    "is_missing",
    "parse_bool",
    "parse_datetime",
    "parse_number",
    "read_csv",
]

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text"]
COLUMN_KINDS: tuple[ColumnKind, ...] = get_args(ColumnKind)

MISSING_TOKENS: frozenset[str] = frozenset({"", "?", "na", "n/a", "nan", "null"})
"""Strings read as a missing value (compared stripped and lower-cased)."""

TRUE_TOKENS: frozenset[str] = frozenset({"true", "yes", "t", "y"})
FALSE_TOKENS: frozenset[str] = frozenset({"false", "no", "f", "n"})

#: A string column is ``text`` when its values average at least this many words …
TEXT_MIN_MEAN_WORDS = 3.0
#: … and more than this share of its non-missing values are distinct.
TEXT_MIN_DISTINCT_SHARE = 0.5

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a tabular model.

    Attributes:
        name: the column name, as in the CSV header or the JSON keys.
        kind: its type, one of :data:`COLUMN_KINDS`.
    """

    name: str
    kind: ColumnKind

    def to_dict(self) -> dict[str, str]:
        """``{"name": ..., "kind": ...}`` (JSON-safe)."""
        return {"name": self.name, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColumnSpec:
        """The inverse of :meth:`to_dict`.

        Raises:
            DataFormatError: ``name`` is not a non-empty string, or ``kind`` is not one of
                :data:`COLUMN_KINDS`.
        """
        name, kind = data.get("name"), data.get("kind")
        if not isinstance(name, str) or not name:
            raise DataFormatError(f"column spec {dict(data)!r}: name must be a non-empty string")
        return cls(name=name, kind=check_kind(name, kind))


def check_kind(column: str, kind: object) -> ColumnKind:
    """``kind`` as a :data:`ColumnKind`.

    Raises:
        DataFormatError: not one of :data:`COLUMN_KINDS` (names the column).
    """
    if kind not in COLUMN_KINDS:
        raise DataFormatError(
            f"column {column!r}: unknown column type {kind!r}; use one of {', '.join(COLUMN_KINDS)}"
        )
    return kind


# --------------------------------------------------------------------------- cells


def is_missing(value: object) -> bool:
    """Whether a cell is a missing value (``None``, NaN, or a :data:`MISSING_TOKENS` string)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    return False


def parse_number(value: object) -> float | None:
    """A finite float from an int, a float or a decimal string, else ``None``.

    Booleans, NaN, infinities, numbers beyond the float range and strings such as
    ``"inf"`` or ``"1,5"`` give ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMBER.match(text):
            return None
        number = float(text)
    else:
        return None
    return number if math.isfinite(number) else None


def parse_bool(value: object) -> bool | None:
    """``True``/``False`` from a bool, the ints 0 and 1, or a true/false token, else ``None``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_TOKENS or word == "1":
            return True
        if word in FALSE_TOKENS or word == "0":
            return False
    return None


def parse_datetime(value: object) -> datetime | None:
    """An aware datetime (UTC when the text has no offset) from an ISO 8601 string
    (``YYYY-MM-DD``, optionally ``[T ]HH:MM[:SS[.fff]]`` and ``Z`` or ``±HH[:MM]``),
    else ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _ISO_DATETIME.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def category_key(value: object) -> str:
    """The text a categorical value is compared as: strings stripped; ``True``/``False``
    as ``"true"``/``"false"``; integral numbers without a fraction (``5``, ``5.0`` ->
    ``"5"``); other floats by ``repr`` (``"1.5"``)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- inference


def _kind_of(values: list[object]) -> ColumnKind:
    present = [v for v in values if not is_missing(v)]
    if not present:
        return "categorical"
    if all(isinstance(v, bool) for v in present) or (
        all(isinstance(v, str) for v in present)
        and all(cast(str, v).strip().lower() in TRUE_TOKENS | FALSE_TOKENS for v in present)
        and len({cast(str, v).strip().lower() for v in present}) <= 2
    ):
        return "boolean"
    if all(parse_number(v) is not None for v in present):
        return "numeric"
    if all(parse_datetime(v) is not None for v in present):
        return "datetime"
    texts = [category_key(v) for v in present]
    mean_words = sum(len(t.split()) for t in texts) / len(texts)
    distinct_share = len(set(texts)) / len(texts)
    if mean_words >= TEXT_MIN_MEAN_WORDS and distinct_share > TEXT_MIN_DISTINCT_SHARE:
        return "text"
    return "categorical"


def infer_schema(
    rows: Sequence[Mapping[str, object]],
    overrides: Mapping[str, str] | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> list[ColumnSpec]:
    """Infer the type of every column from the rows.

    Rules, over the column's non-missing values (see :func:`is_missing`), first match wins:

    1. none at all: ``categorical``;
    2. all JSON booleans, or all true/false tokens (``true/false``, ``yes/no``, ``t/f``,
       ``y/n``, any case) with at most two distinct ones: ``boolean``;
    3. all numbers or decimal strings (:func:`parse_number`): ``numeric`` (so ``0``/``1``
       columns are numeric);
    4. all ISO 8601 dates or date-times (:func:`parse_datetime`): ``datetime``;
    5. strings averaging at least :data:`TEXT_MIN_MEAN_WORDS` words with more than
       :data:`TEXT_MIN_DISTINCT_SHARE` of them distinct: ``text``;
    6. otherwise ``categorical``.

    Args:
        rows: the table, one mapping per row; a key absent from a row is a missing value.
        overrides: ``column -> kind`` that replaces the inferred kind.
        columns: the columns, in order; by default every key of the rows, first seen first.

    Returns:
        One :class:`ColumnSpec` per column, in column order.

    Raises:
        DataFormatError: an override names a column the rows do not have, or a kind that
            is not one of :data:`COLUMN_KINDS`.
    """
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(columns))
    if unknown:
        raise DataFormatError(
            f"column_types names columns the data does not have: {', '.join(map(repr, unknown))}"
        )
    specs = []
    for name in columns:
        if name in overrides:
            kind = check_kind(name, overrides[name])
        else:
            kind = _kind_of([row.get(name) for row in rows])
        specs.append(ColumnSpec(name=name, kind=kind))
    return specs


# --------------------------------------------------------------------------- CSV


def read_csv(
    source: str | Path | bytes,
    *,
    delimiter: str | None = None,
    has_header: bool = True,
    names: Sequence[str] | None = None,
    name: str | None = None,
) -> tuple[list[str], list[dict[str, str]]]:
    """Read a delimited text file into its header and rows of strings.

    UTF-8 (a leading BOM is dropped); the delimiter is sniffed among ``,``, ``;`` and tab
    from the first line when not given; quoted fields follow Excel's rules; every field
    is stripped of surrounding whitespace (Adult's ``", State-gov"``); blank lines are
    skipped.

    Args:
        source: a file path, or the file's bytes.
        delimiter: the field separator; sniffed when ``None``.
        has_header: the first non-blank line holds the column names.
        names: the column names (required when ``has_header`` is false; when both are
            given, ``names`` replace the header).
        name: the file's name in error messages (default: the path, or ``"data"``).

    Returns:
        ``(columns, rows)``: the names, and one ``{column: value}`` per row, values as
        stripped strings.

    Raises:
        DataFormatError: unreadable file, not UTF-8, empty, duplicate or empty column
            names, or a row whose field count differs from the header (names the line).
    """
    label = name or (str(source) if not isinstance(source, bytes) else "data")
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise DataFormatError(f"{label}: cannot read file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{label}: line {line}: not valid UTF-8; save it as UTF-8") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise DataFormatError(f"{label}: the file is empty")
    if delimiter is None:
        delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = list(names) if names is not None else None
    rows: list[dict[str, str]] = []
    header_pending = has_header
    try:
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            cells = [f.strip() for f in fields]
            if header_pending:
                header_pending = False
                if header is None:
                    header = cells
                    _check_header(label, header)
                continue
            if header is None:
                raise DataFormatError(f"{label}: no header; give the column names")
            if len(cells) != len(header):
                raise DataFormatError(
                    f"{label}: line {reader.line_num}: expected {len(header)} fields, "
                    f"found {len(cells)}"
                )
            rows.append(dict(zip(header, cells, strict=True)))
    except csv.Error as exc:
        raise DataFormatError(f"{label}: line {reader.line_num}: {exc}") from None
    if header is None:
        raise DataFormatError(f"{label}: the file is empty")
    _check_header(label, header)
    return header, rows


def _check_header(label: str, header: Sequence[str]) -> None:
    if any(not h for h in header):
        raise DataFormatError(f"{label}: line 1: a column has an empty name")
    dupes = sorted({h for h in header if list(header).count(h) > 1})
    if dupes:
        raise DataFormatError(f"{label}: line 1: duplicate column names: {', '.join(dupes)}")
