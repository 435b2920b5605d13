"""Read a user's own labeled text file: CSV, TSV or JSONL.

The format is picked by the file suffix:

* ``.csv``: comma-separated, first row is the header, read with :mod:`csv` (Excel
  dialect: fields holding commas, quotes or line breaks are double-quoted, ``""`` is a
  literal quote);
* ``.tsv``, ``.tab``: TAB-separated, first row is the header, read with
  :data:`csv.excel_tab`. Quoting works as in CSV: a field *starting* with ``"`` is a
  quoted field, as spreadsheet exports write it. Files such as GLUE's with bare quotes
  at the start of a text are not meant for this reader;
* ``.jsonl``, ``.ndjson``: one JSON object per line; blank lines are skipped.

Texts are stripped of surrounding whitespace and must not be empty; labels are
``str()`` of the value (JSON ``0``/``1`` become ``"0"``/``"1"``), stripped. Every
error is a :class:`~aiweb.errors.DataFormatError` naming the file and, when it applies,
the line.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from aiweb.datasets._base import LabeledTexts, iter_lines, read_text
from aiweb.datasets.tables import semicolon_hint
from aiweb.errors import DataFormatError

__all__ = ["SUFFIXES", "read_labeled_file"]

SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def read_labeled_file(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    max_rows: int | None = None,
) -> LabeledTexts:
    """Read labeled texts from a CSV, TSV or JSONL file.

    Args:
        path: the file; its suffix (``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``,
            case-insensitive) picks the format.
        text_column: column (CSV/TSV header name) or key (JSONL) holding the text.
        label_column: column or key holding the label.
        max_rows: read at most this many data rows (``None``: all).

    Returns:
        The rows in file order: ``texts[i]`` stripped, ``labels[i]`` as ``str``.

    Raises:
        DataFormatError: unknown suffix, unreadable or non-UTF-8 file, missing
            column/key, a row with the wrong number of fields, a line that is not a
            JSON object, an empty text or label, no rows, or fewer than 2 distinct
            labels. The message names the file (its name, not its directory) and the line number.
        ValueError: ``max_rows`` is below 1 or ``text_column == label_column``.
    """
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    if text_column == label_column:
        raise ValueError(f"text and label column are both {text_column!r}")
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(SUFFIXES)
        raise DataFormatError(
            f"{path.name}: unknown file type {path.suffix or '(no suffix)'!r}; "
            f"expected one of: {known}"
        )
    text = read_text(path)
    if kind == "jsonl":
        rows = _read_jsonl(path, text, text_column, label_column, max_rows)
    else:
        dialect = csv.excel if kind == "csv" else csv.excel_tab
        rows = _read_delimited(path, text, dialect, text_column, label_column, max_rows)
    if not rows.texts:
        raise DataFormatError(f"{path.name}: no data rows")
    distinct = sorted(set(rows.labels))
    if len(distinct) < 2:
        raise DataFormatError(
            f"{path.name}: need at least 2 distinct labels in column {label_column!r}, "
            f"found {len(distinct)}: {', '.join(repr(label) for label in distinct)}"
        )
    return rows


def _clean(
    path: Path, line: int, text: str, label: str, text_column: str, label_column: str
) -> tuple[str, str]:
    text = text.strip()
    label = label.strip()
    if not text:
        raise DataFormatError(f"{path.name}: line {line}: empty text in column {text_column!r}")
    if not label:
        raise DataFormatError(f"{path.name}: line {line}: empty label in column {label_column!r}")
    return text, label


def _read_delimited(
    path: Path,
    content: str,
    dialect: type[csv.Dialect],
    text_column: str,
    label_column: str,
    max_rows: int | None,
) -> LabeledTexts:
    reader = csv.reader(io.StringIO(content, newline=""), dialect=dialect)
    texts: list[str] = []
    labels: list[str] = []
    try:
        header: list[str] | None = None
        text_index = label_index = 0
        for row in reader:
            if not row:  # blank line
                continue
            if header is None:
                header = [name.strip() for name in row]
                missing = [c for c in (text_column, label_column) if c not in header]
                if missing:
                    raise DataFormatError(
                        f"{path.name}: line {reader.line_num}: missing column {missing[0]!r}; "
                        f"columns are: {', '.join(header)}"
                        + (semicolon_hint(header) if dialect is csv.excel else "")
                    )
                text_index = header.index(text_column)
                label_index = header.index(label_column)
                continue
            if len(row) != len(header):
                sep = "','" if dialect is csv.excel else "TAB"
                raise DataFormatError(
                    f"{path.name}: line {reader.line_num}: expected {len(header)} fields, "
                    f"found {len(row)} (quote fields that contain {sep})"
                )
            text, label = _clean(
                path,
                reader.line_num,
                row[text_index],
                row[label_index],
                text_column,
                label_column,
            )
            texts.append(text)
            labels.append(label)
            if max_rows is not None and len(texts) >= max_rows:
                break
    except csv.Error as exc:
        raise DataFormatError(f"{path.name}: line {reader.line_num}: {exc}") from None
    if header is None:
        raise DataFormatError(f"{path.name}: file is empty (expected a header row)")
    return LabeledTexts(texts=texts, labels=labels)


def _read_jsonl(
    path: Path,
    content: str,
    text_column: str,
    label_column: str,
    max_rows: int | None,
) -> LabeledTexts:
    texts: list[str] = []
    labels: list[str] = []
    for number, line in iter_lines(content):
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path.name}: line {number}: invalid JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{path.name}: line {number}: expected a JSON object")
        for key in (text_column, label_column):
            if key not in record:
                keys = ", ".join(str(k) for k in record) or "(none)"
                raise DataFormatError(
                    f"{path.name}: line {number}: missing key {key!r}; keys are: {keys}"
                )
        raw_text = record[text_column]
        raw_label = record[label_column]
        if not isinstance(raw_text, str):
            raise DataFormatError(
                f"{path.name}: line {number}: {text_column!r} must be a string, "
                f"found {type(raw_text).__name__}"
            )
        if raw_label is None or isinstance(raw_label, dict | list):
            raise DataFormatError(
                f"{path.name}: line {number}: {label_column!r} must be a string or number, "
                f"found {'null' if raw_label is None else type(raw_label).__name__}"
            )
        text, label = _clean(path, number, raw_text, str(raw_label), text_column, label_column)
        texts.append(text)
        labels.append(label)
        if max_rows is not None and len(texts) >= max_rows:
            break
    return LabeledTexts(texts=texts, labels=labels)
