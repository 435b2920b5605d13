"""Read uploaded data files (CSV, JSONL, CoNLL, JSONL spans): check one once, then stream
its columns.

Used by ``POST /v1/datasets`` (:func:`inspect_table` validates and describes the upload)
and by batch-prediction jobs (:func:`iter_table` streams the needed columns of up to
millions of rows). Both read the binary stream once, block by block, in bounded memory.

Formats (:func:`table_format` picks one from the file name or the content type; a JSONL
file holding span annotations is told apart by :func:`inspect_table`):

* ``csv``: UTF-8 (a leading BOM is dropped), comma-separated, Excel quoting (fields holding
  commas, quotes or line breaks are enclosed in ``"``, inner quotes doubled), strict: a
  quote that is never closed, or text after a closing quote, is an error. The first
  non-blank row is the header; its names are stripped of surrounding whitespace and must
  be non-empty and distinct. Blank lines are skipped; every other row must have as many
  fields as the header. LF, CRLF and CR line ends are accepted.
* ``jsonl``: UTF-8, one JSON object per line (blank lines skipped) whose values are
  scalars: string, number, boolean or null (integers of any size are read exactly). A
  file's columns are the union of the keys, in first-seen order; a key missing from a row
  reads as ``None``.
* ``conll``: UTF-8, one token per line: the token and, as the last field, its tag,
  separated by tabs or spaces (fields between them, such as a part of speech, are
  skipped); a blank line ends a sentence, and ``-DOCSTART-`` lines are skipped (the
  layout of the CoNLL-2003 shared task, Tjong Kim Sang and De Meulder 2003). Its table
  has a row per token and the columns ``sentence`` (the sentence's 0-based number),
  ``token`` and ``tag``; the tags are not checked against a tagging scheme (IOB and
  others are the reader's concern).
* ``spans``: a JSONL file (by its name or content type) whose first non-blank line is an
  object with an array as its ``"spans"`` value: text with span annotations as character
  offsets, one example per line, ``{"text": "…", "spans": [{"start": 0, "end": 5,
  "label": "PER"}, …]}`` (the span files of spaCy and Prodigy). Checked per line: an
  object; ``text`` a string, not blank; ``spans`` an array (``[]``: no span) of objects,
  each with integer ``start`` and ``end`` (not booleans) and a ``label``, a non-empty
  string without whitespace, such that ``0 <= start < end <= len(text)`` (offsets count
  code points, Python ``str`` indices) and the span covers more than whitespace; no NUL
  character in ``text`` or a label, no lone surrogate anywhere. Other keys, in the line or
  in a span, are ignored. Whether spans overlap or repeat, and whether a span's own
  ``text`` matches its slice, is the reader's concern. Its table has a row per line and
  the columns :data:`SPANS_COLUMNS`: ``text``, and ``spans`` as the array's compact JSON
  text.

Bounds: a field (CSV) or string value (JSONL; spans: ``text`` and each label) holds at
most :data:`MAX_FIELD_CHARS` characters, and a physical line at most
:data:`MAX_LINE_BYTES` bytes (CSV files with CR-only line ends are split at CRs instead).

Every problem with the file is a :class:`~aiweb.errors.DataFormatError` whose message
starts with the file name and, when it applies, the line number (1-based, counting every
physical line including the header and blank lines; for a CSV row spanning several lines,
the line where the row ends).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter, methodcaller
from typing import Any, BinaryIO

import orjson

from aiweb.errors import DataFormatError

__all__ = [
    "CONLL_COLUMNS",
    "FORMAT_NAMES",
    "MAX_FIELD_CHARS",
    "MAX_LINE_BYTES",
    "SPANS_COLUMNS",
    "TABLE_FORMATS",
    "TableChunk",
    "TableInfo",
    "inspect_table",
    "iter_table",
    "table_format",
]

TABLE_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
}
"""File name suffix (lower case) -> format (a ``jsonl`` file may turn out to be ``spans``:
:func:`inspect_table`)."""

MAX_FIELD_CHARS = 1 << 20
"""Longest CSV field or JSONL string value, in characters (1 MiB)."""

MAX_LINE_BYTES = 16 << 20
"""Longest physical line, in bytes (16 MiB), checked as the file is read."""

_CONTENT_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/x-csv": "csv",
    "application/x-csv": "csv",
    "text/comma-separated-values": "csv",
    "application/jsonl": "jsonl",
    "application/x-jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
    "application/ndjson": "jsonl",
    "application/x-ndjson": "jsonl",
    "text/jsonl": "jsonl",
    "text/x-conll": "conll",
}

CONLL_COLUMNS = ["sentence", "token", "tag"]
"""The table of a CoNLL file (module docs)."""

SPANS_COLUMNS = ["text", "spans"]
"""The table of a JSONL spans file (module docs)."""

FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSONL", "conll": "CoNLL", "spans": "JSONL spans"}
"""How messages name each format."""


_FORMATS = frozenset(TABLE_FORMATS.values()) | {"spans"}
_BLOCK_BYTES = 1 << 16
_BOM = b"\xef\xbb\xbf"
_CSV_INSPECT_CHUNK_ROWS = 4096
# Floats this large may be integers orjson could not hold: their line is re-read exactly.
_EXACT_FLOAT_BOUND = float(2**63)


# --------------------------------------------------------------------------- public API


def table_format(filename: str, content_type: str | None = None) -> str:
    """The format of an uploaded file.

    Args:
        filename: the uploaded file's name (a path is allowed); its suffix (``.csv``,
            ``.jsonl``, ``.ndjson``, case-insensitive) decides when it is one of
            :data:`TABLE_FORMATS`.
        content_type: the upload's media type (parameters such as ``; charset=utf-8`` are
            ignored), used when the suffix is not known: ``text/csv``,
            ``application/csv``, ``application/jsonl``, ``application/x-ndjson``,
            ``application/json-lines`` and similar.

    Returns:
        ``"csv"``, ``"jsonl"`` or ``"conll"`` (suffixes ``.conll``, ``.iob``, ``.bio``);
        never ``"spans"``: :func:`inspect_table` tells a JSONL spans file by its content.

    Raises:
        DataFormatError: neither the suffix nor the content type is known; the message
            names the accepted suffixes.
    """
    base = re.split(r"[\\/]", filename)[-1]
    _, dot, ext = base.rpartition(".")
    suffix = f".{ext.lower()}" if dot else ""
    fmt = TABLE_FORMATS.get(suffix)
    if fmt is not None:
        return fmt
    if content_type:
        fmt = _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
        if fmt is not None:
            return fmt
    shown = f"unknown file type {suffix!r}" if suffix else "no file name suffix"
    if content_type:
        shown += f" (content type {content_type!r})"
    raise DataFormatError(
        f"{filename or '(no file name)'}: {shown}; "
        f"expected a file ending in {', '.join(TABLE_FORMATS)}"
    )


@dataclass(frozen=True)
class TableInfo:
    """What :func:`inspect_table` found in a file.

    Attributes:
        format: ``"csv"``, ``"jsonl"``, ``"conll"`` or ``"spans"``.
        rows: number of data rows (the CSV header and blank lines are not counted; CoNLL:
            tokens; spans: examples, one a line).
        columns: CSV: the header names in file order (stripped); JSONL: the union of the
            keys in first-seen order; CoNLL: :data:`CONLL_COLUMNS`; spans:
            :data:`SPANS_COLUMNS`.
        sha256: hex digest of the raw bytes of the file (BOM included).
        size_bytes: size of the file in bytes.
    """

    format: str
    rows: int
    columns: list[str]
    sha256: str
    size_bytes: int


@dataclass
class TableChunk:
    """Consecutive data rows of a file, by column.

    Attributes:
        start: 0-based index, among the file's data rows, of this chunk's first row.
        columns: requested column name -> its ``n`` values, row-aligned (all lists have
            the chunk's length). CSV: the field strings as written. JSONL: strings as
            they are, numbers as ``str()`` (``1`` -> ``"1"``, ``1.5`` -> ``"1.5"``),
            booleans as ``"true"``/``"false"``; ``None`` for null or a missing key. Spans:
            ``text`` as it is, ``spans`` as the array's compact JSON text
            (``[{"start":0,"end":5,"label":"PER"}]``, each span's other keys kept). A
            requested column the file lacks holds only ``None``.
    """

    start: int
    columns: dict[str, list[str | None]]


def inspect_table(
    fileobj: BinaryIO,
    fmt: str,
    *,
    name: str,
    max_rows: int,
    max_columns: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> TableInfo:
    """Read a whole file once, in bounded memory, and check and describe it.

    Args:
        fileobj: binary stream, read from its current position to the end with
            ``read(n)`` in blocks of 64 KiB.
        fmt: ``"csv"``, ``"jsonl"`` or ``"conll"`` (see :func:`table_format`), or
            ``"spans"``. A ``"jsonl"`` file whose first non-blank line is an object with an
            array as its ``"spans"`` value is read (and described) as ``"spans"``; any
            other is read as scalar records.
        name: the file's name as the user knows it, used in error messages.
        max_rows: most data rows allowed (``AIWEB_LIMITS__MAX_UPLOAD_ROWS``).
        max_columns: most columns allowed (CSV header fields; JSONL distinct keys).
        progress: called with the number of bytes read so far after each block.

    Returns:
        The file's :class:`TableInfo`; its ``format`` is the one the file was read as.

    Raises:
        DataFormatError: the file is not UTF-8, is empty or has no header, has an empty or
            duplicate CSV header name, a CSV row with the wrong number of fields or broken
            quoting, a JSONL line that is not valid JSON or not an object, a JSONL value
            that is an object or an array, a field longer than :data:`MAX_FIELD_CHARS`, a
            line longer than :data:`MAX_LINE_BYTES`, no data rows, more than ``max_rows``
            data rows, or more than ``max_columns`` columns; for a spans file, a line that
            breaks the rules of the module docs. The message names the file and the line.
        ValueError: ``fmt`` is unknown, or ``max_rows`` or ``max_columns`` is below 1.
    """
    _check_format(fmt)
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    if max_columns < 1:
        raise ValueError(f"max_columns must be at least 1, got {max_columns}")
    source = _Source(fileobj, name, fmt=fmt, digest=True, progress=progress)
    rows = 0
    if fmt in ("jsonl", "spans"):
        # the first non-blank line tells JSONL records from span annotations
        first, blocks, before = _first_line(source)
        if fmt == "jsonl" and first is not None and _holds_spans(first):
            fmt = "spans"
    if fmt == "csv":
        table = _CsvTable(source, max_columns=max_columns)
        for n, _ in table.chunks((), _CSV_INSPECT_CHUNK_ROWS, max_rows=max_rows):
            rows += n
        columns = list(table.header)
    elif fmt == "conll":
        columns = list(CONLL_COLUMNS)
        for line, _row in _conll_rows(source):
            rows += 1
            if rows > max_rows:
                raise _too_many_rows(source, line, max_rows)
        if not rows:
            raise _no_tokens(source)
    elif fmt == "spans":
        columns = list(SPANS_COLUMNS)
        for line, _text, _spans in _spans_records(source, blocks, before):
            rows += 1
            if rows > max_rows:
                raise _too_many_rows(source, line, max_rows)
        if not rows:
            raise _no_examples(source)
    else:
        columns, rows = _inspect_jsonl(
            source, blocks, before, max_rows=max_rows, max_columns=max_columns
        )
    return TableInfo(
        format=fmt, rows=rows, columns=columns, sha256=source.hexdigest(), size_bytes=source.size
    )


def iter_table(
    fileobj: BinaryIO,
    fmt: str,
    *,
    name: str,
    columns: Sequence[str],
    chunk_rows: int = 4096,
    required: Sequence[str] = (),
) -> Iterator[TableChunk]:
    """Stream some columns of a file in chunks, in bounded memory.

    Memory holds one 64 KiB block of the file (more only while a single line is longer)
    and at most ``chunk_rows`` rows at a time.

    Args:
        fileobj: binary stream, read from its current position to the end.
        fmt: ``"csv"``, ``"jsonl"``, ``"conll"`` or ``"spans"``: the format the file was
            stored as (:attr:`TableInfo.format`).
        name: the file's name as the user knows it, used in error messages.
        columns: the columns to return (CSV header names, JSONL keys,
            :data:`CONLL_COLUMNS`, :data:`SPANS_COLUMNS`).
        chunk_rows: most rows per chunk.
        required: columns the file must have. CSV: checked against the header before the
            first chunk. JSONL: a required key must occur in at least one row of the first
            chunk (the file is not read twice to look further). CoNLL, spans: one of
            the format's columns.

    Returns:
        An iterator over :class:`TableChunk` objects, each of 1 to ``chunk_rows`` rows, in
        file order (``start`` of each chunk is the previous ``start`` plus its length);
        their concatenation holds every data row once.

    Raises:
        DataFormatError: while iterating: a required column is missing (the message lists
            the file's columns), or the file is malformed, as for :func:`inspect_table`
            (except that no row or column limit applies).
        ValueError: at the call: ``fmt`` is unknown or ``chunk_rows`` is below 1.
    """
    _check_format(fmt)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    wanted = list(dict.fromkeys(columns))
    needed = list(dict.fromkeys(required))
    source = _Source(fileobj, name, fmt=fmt, digest=False, progress=None)
    if fmt == "csv":
        return _iter_csv(source, wanted, needed, chunk_rows)
    if fmt == "conll":
        return _iter_conll(source, wanted, needed, chunk_rows)
    if fmt == "spans":
        return _iter_spans(source, wanted, needed, chunk_rows)
    return _iter_jsonl(source, wanted, needed, chunk_rows)


# --------------------------------------------------------------------------- reading blocks


def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; expected one of: {sorted(_FORMATS)}")


class _Source:
    """The file as decoded text blocks, each made of whole lines; counts, hashes, reports."""

    def __init__(
        self,
        fileobj: BinaryIO,
        name: str,
        *,
        fmt: str,
        digest: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.name = name
        self.size = 0
        self._fileobj = fileobj
        self._split_cr = fmt == "csv"
        self._hash = hashlib.sha256() if digest else None
        self._progress = progress
        self._lines_before = 0  # LF line ends in the blocks already yielded
        self._first = True

    def hexdigest(self) -> str:
        assert self._hash is not None
        return self._hash.hexdigest()

    def error(self, line: int, detail: str) -> DataFormatError:
        return DataFormatError(f"{self.name}: line {line}: {detail}")

    def texts(self) -> Iterator[str]:
        """Yield the file as text blocks ending at a line end (the last one may not)."""
        read = self._fileobj.read
        pending: list[bytes] = []
        pending_bytes = 0
        while True:
            block = read(_BLOCK_BYTES)
            if not block:
                break
            self._account(block)
            cut = block.rfind(b"\n") + 1
            if cut:
                data = b"".join((*pending, block[:cut])) if pending else block[:cut]
                rest = block[cut:]
                pending = [rest] if rest else []
                pending_bytes = len(rest)
                yield self._decode(data)
                continue
            pending.append(block)
            pending_bytes += len(block)
            if pending_bytes > MAX_LINE_BYTES:
                data = b"".join(pending)
                # CSV files with CR-only line ends: cut after a CR not followed by LF.
                cut = data.rfind(b"\r", 0, len(data) - 1) + 1 if self._split_cr else 0
                if not cut:
                    raise self.error(
                        self._lines_before + 1, f"line is longer than {MAX_LINE_BYTES} bytes"
                    )
                pending = [data[cut:]]
                pending_bytes = len(pending[0])
                yield self._decode(data[:cut])
        if pending:
            yield self._decode(b"".join(pending))

    def _account(self, block: bytes) -> None:
        self.size += len(block)
        if self._hash is not None:
            self._hash.update(block)
        if self._progress is not None:
            self._progress(self.size)

    def _decode(self, data: bytes) -> str:
        if self._first:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self._lines_before + data.count(b"\n", 0, exc.start) + 1
            raise self.error(
                line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
            ) from None
        self._lines_before += data.count(b"\n")
        return text


# --------------------------------------------------------------------------- CSV


def _ensure_field_limit() -> None:
    # csv.field_size_limit is process-wide: only ever raise it (default 128 KiB) to ours.
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)


_CSV_HINTS = {
    "unexpected end of data": "a quoted field is not closed before the end of the file",
}
_QUOTING_HINT = (
    "fields that contain commas, quotes or line breaks must be enclosed in double quotes, "
    'with quotes inside them doubled ("")'
)


class _CsvTable:
    """A CSV file whose header has been read; :meth:`chunks` reads the data rows."""

    def __init__(self, source: _Source, *, max_columns: int | None) -> None:
        _ensure_field_limit()
        self.source = source
        lines = chain.from_iterable(io.StringIO(text, newline="") for text in source.texts())
        self.reader = csv.reader(lines, strict=True)
        # A global limit above ours (raised elsewhere) means checking field lengths here.
        self._check_fields = csv.field_size_limit() > MAX_FIELD_CHARS
        row: list[str] = []
        try:
            for row in self.reader:
                if row:
                    break
        except csv.Error as exc:
            raise self._csv_error(exc) from None
        if not row:
            raise DataFormatError(f"{source.name}: file is empty (expected a header row)")
        self.header_line = line = self.reader.line_num
        if max_columns is not None and len(row) > max_columns:
            raise source.error(
                line, f"the header has {len(row)} columns; at most {max_columns} are allowed"
            )
        self._check_lengths(row)
        header = [field.strip() for field in row]
        seen: dict[str, int] = {}
        for position, column in enumerate(header, start=1):
            if not column:
                raise source.error(line, f"column {position} of the header has no name")
            if column in seen:
                raise source.error(
                    line,
                    f"duplicate column name {column!r} in the header "
                    f"(columns {seen[column]} and {position})",
                )
            seen[column] = position
        self.header = header

    def chunks(
        self, positions: Sequence[int], chunk_rows: int, *, max_rows: int | None = None
    ) -> Iterator[tuple[int, list[list[str | None]]]]:
        """Check the data rows and yield them in chunks of 1 to ``chunk_rows`` rows.

        Yields:
            ``(n, values)``: the chunk's row count, and for each of ``positions`` (header
            indexes) the ``n`` fields (strings) of that column.
        """
        # Hot path of batch jobs: no per-row objects kept but the field strings (keeping
        # row lists would also wake the garbage collector), one length test per row.
        reader = self.reader
        width = len(self.header)
        check_fields = self._check_fields
        limit = max_rows + 1 if max_rows is not None else None
        count = 0
        try:
            while True:
                stop = chunk_rows if limit is None else min(chunk_rows, limit - count)
                values: list[list[str | None]] = [[] for _ in positions]
                appends = [
                    (position, v.append) for position, v in zip(positions, values, strict=True)
                ]
                n = 0
                for row in reader:
                    if len(row) != width:
                        if not row:  # blank line
                            continue
                        raise self.source.error(
                            reader.line_num,
                            f"expected {width} fields, found {len(row)} ({_QUOTING_HINT})",
                        )
                    if check_fields:
                        self._check_lengths(row)
                    for position, append in appends:
                        append(row[position])
                    n += 1
                    if n == stop:
                        break
                count += n
                if count == limit:
                    raise _too_many_rows(self.source, reader.line_num, count - 1)
                if n:
                    yield n, values
                if n < stop:
                    break
        except csv.Error as exc:
            raise self._csv_error(exc) from None
        if not count:
            raise DataFormatError(
                f"{self.source.name}: no data rows after the header on line {self.header_line}"
            )

    def _check_lengths(self, row: list[str]) -> None:
        if max(map(len, row)) > MAX_FIELD_CHARS:
            raise self.source.error(
                self.reader.line_num, f"a field is longer than {MAX_FIELD_CHARS} characters"
            )

    def _csv_error(self, exc: csv.Error) -> DataFormatError:
        message = str(exc)
        if "field limit" in message:
            detail = f"a field is longer than {csv.field_size_limit()} characters"
        else:
            detail = f"{message}: {_CSV_HINTS.get(message, _QUOTING_HINT)}"
        return self.source.error(self.reader.line_num, detail)


def _too_many_rows(source: _Source, line: int, max_rows: int) -> DataFormatError:
    return source.error(
        line,
        f"more than {max_rows} data rows; the limit is {max_rows} rows "
        "(setting AIWEB_LIMITS__MAX_UPLOAD_ROWS)",
    )


def semicolon_hint(header: Sequence[str]) -> str:
    """What to say after "missing column" when a CSV header holds ``;`` (a file saved
    with semicolons as the delimiter, as spreadsheets do in many locales), else ``""``."""
    if not any(";" in name for name in header):
        return ""
    return (
        ". The header contains ';': the file looks separated by semicolons, and aiweb "
        "reads CSV separated by commas. Save it with ',' as the field delimiter (or as "
        "JSON lines)"
    )


def _missing(
    source: _Source, column: str, present: Sequence[str], where: str, *, csv_header: bool = False
) -> DataFormatError:
    shown = ", ".join(repr(c) for c in present) or "(none)"
    hint = semicolon_hint(present) if csv_header else ""
    return DataFormatError(f"{source.name}: missing column {column!r}; {where}: {shown}{hint}")


def _iter_csv(
    source: _Source, wanted: list[str], required: list[str], chunk_rows: int
) -> Iterator[TableChunk]:
    table = _CsvTable(source, max_columns=None)
    index = {column: position for position, column in enumerate(table.header)}
    for column in required:
        if column not in index:
            raise _missing(source, column, table.header, "the file has columns", csv_header=True)
    present = [column for column in wanted if column in index]
    start = 0
    for n, values in table.chunks([index[column] for column in present], chunk_rows):
        found = dict(zip(present, values, strict=True))
        columns = {column: found.get(column) or [None] * n for column in wanted}
        yield TableChunk(start=start, columns=columns)
        start += n


# --------------------------------------------------------------------------- JSONL


def _reject_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not valid JSON")


def _parse_exact(source: _Source, line: int, text: str) -> Any:
    """Parse a line with the standard library: exact big integers, clear messages (lone
    surrogate escapes are let through: the callers look for them)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise source.error(line, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise source.error(line, f"invalid JSON: {exc}") from None


def _loads_exact(source: _Source, line: int, text: str) -> Any:
    """Parse a line with the standard library: exact big integers, clear messages."""
    value = _parse_exact(source, line, text)
    if isinstance(value, dict):
        strings = [s for pair in value.items() for s in pair if isinstance(s, str)]
        try:
            "".join(strings).encode("utf-8")
        except UnicodeEncodeError:
            raise source.error(
                line, "invalid JSON: a string holds an unpaired surrogate escape (\\udXXX)"
            ) from None
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _jsonl_records(
    source: _Source, blocks: Iterable[str] | None = None, line: int = 0
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, object)`` for each non-blank line, checked.

    ``blocks``: the text blocks still to read (default: the whole file), the first one
    starting after ``line`` physical lines."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for text in source.texts() if blocks is None else blocks:
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()
        for raw in lines:
            line += 1
            try:
                record = loads(raw)
            except decode_error:
                if not raw or raw.isspace():  # blank line
                    continue
                record = _loads_exact(source, line, raw)
            if type(record) is not dict:
                raise source.error(line, f"expected a JSON object, found {_kind(record)}")
            exact = False
            for key, value in record.items():
                kind = type(value)
                if kind is str:
                    if len(value) > MAX_FIELD_CHARS:
                        raise source.error(
                            line, f"value of {key!r} is longer than {MAX_FIELD_CHARS} characters"
                        )
                elif kind is float:
                    # orjson reads integers outside [-2**63, 2**64) as floats.
                    exact = exact or abs(value) >= _EXACT_FLOAT_BOUND
                elif kind is dict or kind is list:
                    raise source.error(
                        line,
                        f"value of {key!r} is {_kind(value)}; only strings, numbers, "
                        "booleans and null are allowed",
                    )
            yield line, _loads_exact(source, line, raw) if exact else record


def _no_data_rows(source: _Source) -> DataFormatError:
    return DataFormatError(f"{source.name}: no data rows (expected one JSON object per line)")


def _inspect_jsonl(
    source: _Source, blocks: Iterable[str], before: int, *, max_rows: int, max_columns: int
) -> tuple[list[str], int]:
    keys: dict[str, None] = {}
    known = keys.keys()
    rows = 0
    for line, record in _jsonl_records(source, blocks, before):
        rows += 1
        if rows > max_rows:
            raise _too_many_rows(source, line, max_rows)
        if not record.keys() <= known:
            keys.update(dict.fromkeys(record))
            if len(keys) > max_columns:
                raise source.error(
                    line,
                    f"more than {max_columns} distinct keys; at most {max_columns} "
                    "columns are allowed",
                )
    if not rows:
        raise _no_data_rows(source)
    return list(keys), rows


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _iter_jsonl(
    source: _Source, wanted: list[str], required: list[str], chunk_rows: int
) -> Iterator[TableChunk]:
    rows = map(itemgetter(1), _jsonl_records(source))
    start = 0
    while True:
        records = list(islice(rows, chunk_rows))
        if not start:
            if not records:
                raise _no_data_rows(source)
            seen: dict[str, None] = {}
            for record in records:
                seen.update(dict.fromkeys(record))
            for column in required:
                if column not in seen:
                    where = f"no row among the first {len(records)} has it; keys found"
                    raise _missing(source, column, list(seen), where)
        if not records:
            return
        values: dict[str, list[str | None]] = {}
        for column in wanted:
            values[column] = [
                value if value is None or type(value) is str else _as_text(value)
                for value in map(methodcaller("get", column), records)
            ]
        yield TableChunk(start=start, columns=values)
        start += len(records)


# --------------------------------------------------------------------------- CoNLL


def _no_tokens(source: _Source) -> DataFormatError:
    return DataFormatError(f"{source.name}: no tokens (expected a token and its tag on each line)")


def _conll_rows(source: _Source) -> Iterator[tuple[int, tuple[str, str, str]]]:
    """Yield ``(line, (sentence, token, tag))`` for each token line, checked."""
    line = 0
    sentence = 0
    open_sentence = False
    for text in source.texts():
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()
        for raw in lines:
            line += 1
            fields = raw.split()
            if not fields or fields[0] == "-DOCSTART-":
                if open_sentence:
                    sentence += 1
                    open_sentence = False
                continue
            if len(fields) < 2:
                raise source.error(
                    line,
                    f"expected a token and its tag separated by a tab or spaces, found "
                    f"one field {fields[0][:80]!r}",
                )
            token, tag = fields[0], fields[-1]
            if len(token) > MAX_FIELD_CHARS or len(tag) > MAX_FIELD_CHARS:
                raise source.error(line, f"a field is longer than {MAX_FIELD_CHARS} characters")
            open_sentence = True
            yield line, (str(sentence), token, tag)


def _iter_conll(
    source: _Source, wanted: list[str], required: list[str], chunk_rows: int
) -> Iterator[TableChunk]:
    for column in required:
        if column not in CONLL_COLUMNS:
            raise _missing(source, column, CONLL_COLUMNS, "a CoNLL file's columns")
    positions = [CONLL_COLUMNS.index(c) if c in CONLL_COLUMNS else None for c in wanted]
    rows = map(itemgetter(1), _conll_rows(source))
    start = 0
    while True:
        records = list(islice(rows, chunk_rows))
        if not records:
            if not start:
                raise _no_tokens(source)
            return
        values: dict[str, list[str | None]] = {
            column: [r[i] for r in records] if i is not None else [None] * len(records)
            for column, i in zip(wanted, positions, strict=True)
        }
        yield TableChunk(start=start, columns=values)
        start += len(records)


# --------------------------------------------------------------------------- JSONL spans

_SPAN_KEYS = ("start", "end", "label")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")
_NON_SPACE = re.compile(r"\S")
_SHOWN = 40  # characters of a value quoted in a message


def _first_line(source: _Source) -> tuple[str | None, Iterator[str], int]:
    """Find the first non-blank line of a file as it is read.

    Returns:
        ``(line, blocks, before)``: the line (``None`` when every line is blank), the
        text blocks from the one holding it on (the blank blocks before it are dropped,
        so memory stays bounded) and the number of physical lines before those blocks.
    """
    blocks = source.texts()
    before = 0
    for text in blocks:
        start = len(text) - len(text.lstrip())
        if start == len(text):
            before += text.count("\n")
            continue
        begin = text.rfind("\n", 0, start) + 1
        end = text.find("\n", start)
        return text[begin : end if end >= 0 else len(text)], chain((text,), blocks), before
    return None, iter(()), before


def _holds_spans(line: str) -> bool:
    """Whether ``line`` is a JSON object whose ``"spans"`` value is an array."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            record = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return False
    return type(record) is dict and type(record.get("spans")) is list


def _no_examples(source: _Source) -> DataFormatError:
    return DataFormatError(f"{source.name}: no examples (expected one JSON object per line)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _find_surrogate(value: Any) -> str | None:
    """A lone surrogate in any string (key or value) of a parsed JSON value, or ``None``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _spans_exact(source: _Source, line: int, raw: str) -> Any:
    """Parse a spans line orjson refused (or whose offsets it read as floats) with the
    standard library: exact big integers, clear messages, NUL and lone surrogates named."""
    if "\x00" in raw:
        raise source.error(line, "NUL character (a binary file?)")
    value = _parse_exact(source, line, raw)
    surrogate = _find_surrogate(value)
    if surrogate is not None:
        raise source.error(
            line,
            f"lone surrogate U+{ord(surrogate):04X} in a string (not valid Unicode text)",
        )
    return value


def _check_example(
    source: _Source, line: int, raw: str, record: Any, *, exact: bool = False
) -> tuple[str, list[Any]]:
    """``(text, spans)`` of a parsed spans line, checked (module docs)."""
    if type(record) is not dict:
        raise source.error(line, f"expected a JSON object, found {_kind(record)}")
    if "text" not in record:
        raise source.error(line, 'missing "text"')
    text = record["text"]
    if type(text) is not str:
        raise source.error(line, f'"text" must be a string, found {_kind(text)}')
    if len(text) > MAX_FIELD_CHARS:
        raise source.error(line, f"value of 'text' is longer than {MAX_FIELD_CHARS} characters")
    if not text or text.isspace():
        raise source.error(line, '"text" is blank')
    if "\x00" in text:
        raise source.error(line, "NUL character in a string")
    if "spans" not in record:
        raise source.error(line, 'missing "spans" (use [] for a text without spans)')
    spans = record["spans"]
    if type(spans) is not list:
        raise source.error(line, f'"spans" must be an array, found {_kind(spans)}')
    size = len(text)
    for k, span in enumerate(spans, start=1):
        if type(span) is not dict:
            raise source.error(
                line,
                f'span {k}: expected an object {{"start", "end", "label"}}, found {_kind(span)}',
            )
        missing = [key for key in _SPAN_KEYS if key not in span]
        if missing:
            raise source.error(line, f"span {k}: missing {', '.join(missing)}")
        start, end, label = span["start"], span["end"], span["label"]
        for key, value in (("start", start), ("end", end)):
            if type(value) is not int:
                if not exact and type(value) is float and abs(value) >= _EXACT_FLOAT_BOUND:
                    # an integer too large for orjson: read the line exactly
                    exact_record = _spans_exact(source, line, raw)
                    return _check_example(source, line, raw, exact_record, exact=True)
                raise source.error(
                    line, f"span {k}: {key} must be an integer, found {_shown(value)}"
                )
        if type(label) is not str or not label:
            raise source.error(
                line, f"span {k}: label must be a non-empty string, found {_shown(label)}"
            )
        if len(label) > MAX_FIELD_CHARS:
            raise source.error(line, f"span {k}: label is longer than {MAX_FIELD_CHARS} characters")
        if _WHITESPACE.search(label):
            raise source.error(line, f"span {k}: label {_shown(label)} contains whitespace")
        if "\x00" in label:
            raise source.error(line, f"span {k}: NUL character in a string")
        if start < 0:
            raise source.error(line, f"span {k}: start {start} is negative")
        if end > size:
            raise source.error(line, f"span {k}: end {end} is beyond the text ({size} characters)")
        if start >= end:
            raise source.error(line, f"span {k}: start {start} is not before end {end}")
    k = _blank_span(text, spans)
    if k:
        raise source.error(line, f"span {k}: the span covers only whitespace")
    return text, spans


def _blank_span(text: str, spans: list[Any]) -> int:
    """The number (from 1) of the first span of ``spans`` (checked: in range, not empty)
    that covers only whitespace, else 0; in time linear in ``len(text)`` and the spans,
    however many spans start in the same run of whitespace."""
    starts = sorted({span["start"] for span in spans if text[span["start"]].isspace()})
    if not starts:
        return 0
    visible: dict[int, int] = {}  # a start in whitespace -> the next non-space offset
    reach = -1
    for start in starts:
        if start >= reach:  # not within the whitespace run scanned last
            found = _NON_SPACE.search(text, start)
            reach = found.start() if found is not None else len(text)
        visible[start] = reach
    for k, span in enumerate(spans, start=1):
        if visible.get(span["start"], 0) >= span["end"]:
            return k
    return 0


def _spans_records(
    source: _Source, blocks: Iterable[str], line: int
) -> Iterator[tuple[int, str, list[Any]]]:
    """Yield ``(line, text, spans)`` for each non-blank line, checked; ``blocks`` are
    the text blocks still to read, the first one starting after ``line`` physical lines."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for block in blocks:
        lines = block.split("\n")
        if not lines[-1]:
            lines.pop()
        for raw in lines:
            line += 1
            try:
                record = loads(raw)
            except decode_error:
                if not raw or raw.isspace():  # blank line
                    continue
                record = _spans_exact(source, line, raw)
            text, spans = _check_example(source, line, raw, record)
            yield line, text, spans


def _spans_text(spans: list[Any]) -> str:
    """The compact JSON text of a spans array."""
    try:
        return orjson.dumps(spans).decode()
    except orjson.JSONEncodeError:  # an exactly read integer beyond 64 bits in a span
        return json.dumps(spans, ensure_ascii=False, separators=(",", ":"))


def _iter_spans(
    source: _Source, wanted: list[str], required: list[str], chunk_rows: int
) -> Iterator[TableChunk]:
    for column in required:
        if column not in SPANS_COLUMNS:
            raise _missing(source, column, SPANS_COLUMNS, "a JSONL spans file's columns")
    rows = _spans_records(source, source.texts(), 0)
    start = 0
    while True:
        records = list(islice(rows, chunk_rows))
        if not records:
            if not start:
                raise _no_examples(source)
            return
        values: dict[str, list[str | None]] = {}
        for column in wanted:
            if column == "text":
                values[column] = [text for _line, text, _spans in records]
            elif column == "spans":
                values[column] = [_spans_text(spans) for _line, _text, spans in records]
            else:
                values[column] = [None] * len(records)
        yield TableChunk(start=start, columns=values)
        start += len(records)
