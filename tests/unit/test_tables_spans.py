"""aiweb.datasets.tables: JSONL span files (format ``spans``), told apart from JSONL
records by their first line, checked line by line and streamed as ``text`` and ``spans``."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from typing import Any

import pytest

from aiweb.datasets import tables
from aiweb.datasets.service import STORED_SUFFIX
from aiweb.datasets.tables import (
    FORMAT_NAMES,
    MAX_FIELD_CHARS,
    SPANS_COLUMNS,
    TableInfo,
    inspect_table,
    iter_table,
    table_format,
)
from aiweb.errors import DataFormatError


class _Stream(io.BytesIO):
    """A binary stream that refuses to be read whole."""

    def read(self, size: int | None = -1, /) -> bytes:
        assert size is not None, "the reader must read in bounded blocks"
        assert size > 0, "the reader must read in bounded blocks"
        return super().read(size)


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def inspect(data: str | bytes, fmt: str = "jsonl", **kwargs: Any) -> TableInfo:
    kwargs.setdefault("max_rows", 1_000_000)
    return inspect_table(_Stream(_bytes(data)), fmt, name="up.jsonl", **kwargs)


def rows(data: str | bytes, columns: list[str], **kwargs: Any) -> dict[str, list[str | None]]:
    """The chunks of a spans file joined, checking that they tile the rows."""
    joined: dict[str, list[str | None]] = {column: [] for column in columns}
    start = 0
    for chunk in iter_table(
        _Stream(_bytes(data)), "spans", name="up.jsonl", columns=columns, **kwargs
    ):
        assert chunk.start == start
        for column, values in chunk.columns.items():
            joined[column].extend(values)
        start += len(next(iter(chunk.columns.values())))
    return joined


def line(text: str, *spans: tuple[int, int, str], **extra: Any) -> str:
    return json.dumps(
        {"text": text, "spans": [{"start": s, "end": e, "label": lab} for s, e, lab in spans]}
        | extra,
        ensure_ascii=False,
    )


GOOD = (
    "\ufeff\n"  # a BOM, then a blank line
    + line("I know Python and SQL", (7, 13, "Skill"), (18, 21, "Skill"), meta={"id": [1, 2]})
    + "\r\n  \n"
    + line("Zürich 🎉 Anna", (0, 6, "LOC"), (9, 13, "PER"))
    + "\n"
    + '{"text": "nothing here", "spans": [], "_input_hash": 123}\n'
    + line("a b", (0, 3, "X"))  # no line end at the end of the file
)


def test_a_jsonl_file_whose_first_line_has_a_spans_array_is_a_spans_file() -> None:
    assert table_format("train.jsonl") == "jsonl"  # the name says JSONL; the content says more
    info = inspect(GOOD)
    assert (info.format, info.rows, info.columns) == ("spans", 4, ["text", "spans"])
    assert info.columns == SPANS_COLUMNS
    assert info.sha256 == hashlib.sha256(GOOD.encode()).hexdigest()
    assert info.size_bytes == len(GOOD.encode())
    assert inspect(GOOD, "spans") == info  # named explicitly: the same
    assert FORMAT_NAMES["spans"] == "JSONL spans"
    assert STORED_SUFFIX["spans"] == ".jsonl"


def test_iter_table_yields_the_text_and_the_spans_as_compact_json() -> None:
    assert rows(GOOD, ["text", "spans", "absent"], chunk_rows=3) == {
        "text": ["I know Python and SQL", "Zürich 🎉 Anna", "nothing here", "a b"],
        "spans": [
            '[{"start":7,"end":13,"label":"Skill"},{"start":18,"end":21,"label":"Skill"}]',
            '[{"start":0,"end":6,"label":"LOC"},{"start":9,"end":13,"label":"PER"}]',
            "[]",
            '[{"start":0,"end":3,"label":"X"}]',
        ],
        "absent": [None] * 4,
    }
    # a span's other keys stay in its JSON text (the reader may use them)
    body = '{"text": "ab", "spans": [{"label": "X", "start": 0, "end": 2, "text": "ab"}]}\n'
    assert rows(body, ["spans"]) == {"spans": ['[{"label":"X","start":0,"end":2,"text":"ab"}]']}
    with pytest.raises(DataFormatError, match=r"up.jsonl: missing column 'label'; a JSONL spans"):
        rows(GOOD, ["text"], required=["label"])
    assert rows(GOOD, ["text"], required=["text", "spans"])["text"][0] == "I know Python and SQL"


def test_offsets_count_code_points() -> None:
    text = "naïve 😀 Zoë"  # é-like letters, an emoji: one code point each
    start = text.index("Zoë")
    info = inspect(line(text, (start, start + 3, "PER")) + "\n")
    assert info.format == "spans"
    message = error_of(line(text, (start, len(text.encode("utf-8")), "PER")) + "\n")
    assert f"end {len(text.encode('utf-8'))} is beyond the text ({len(text)} characters)" in (
        message
    )


def test_the_first_non_blank_line_decides_even_blocks_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # tiny read blocks: the blank lines before the first object span many blocks, and the
    # line numbers after them still count every physical line
    monkeypatch.setattr(tables, "_BLOCK_BYTES", 3)
    body = "\n \n\t\r\n" * 5 + line("Anna", (0, 4, "PER")) + "\n\n" + '{"text": "x"}\n'
    assert error_of(body) == 'up.jsonl: line 18: missing "spans" (use [] for a text without spans)'
    ok = "\n" * 40 + line("Anna in Zürich", (0, 4, "PER"), (8, 14, "LOC")) + "\n"
    info = inspect(ok)
    assert (info.format, info.rows) == ("spans", 1)
    assert rows(ok, ["text"]) == {"text": ["Anna in Zürich"]}


def error_of(data: str | bytes, fmt: str = "jsonl", **kwargs: Any) -> str:
    with pytest.raises(DataFormatError) as info:
        inspect(data, fmt, **kwargs)
    return str(info.value)


FIRST = line("ok", (0, 2, "X")) + "\n"  # a good first line: the file is a spans file

_ERRORS = [
    pytest.param(FIRST + "[1, 2]\n", "line 2: expected a JSON object, found an array", id="array"),
    pytest.param(FIRST + '"text"\n', "line 2: expected a JSON object, found a string", id="str"),
    pytest.param(FIRST + '{"spans": []}\n', 'line 2: missing "text"', id="no-text"),
    pytest.param(
        FIRST + '{"text": 5, "spans": []}\n',
        'line 2: "text" must be a string, found a number',
        id="text-number",
    ),
    pytest.param(
        FIRST + '{"text": null, "spans": []}\n',
        'line 2: "text" must be a string, found null',
        id="text-null",
    ),
    pytest.param(FIRST + '{"text": " \\t", "spans": []}\n', 'line 2: "text" is blank', id="blank"),
    pytest.param(FIRST + '{"text": "", "spans": []}\n', 'line 2: "text" is blank', id="empty"),
    pytest.param(
        FIRST + '{"text": "a"}\n',
        r'line 2: missing "spans" \(use \[\] for a text without spans\)',
        id="no-spans",
    ),
    pytest.param(
        FIRST + '{"text": "a", "spans": {"start": 0}}\n',
        'line 2: "spans" must be an array, found an object',
        id="spans-object",
    ),
    pytest.param(
        FIRST + '{"text": "a", "spans": "0-1"}\n',
        'line 2: "spans" must be an array, found a string',
        id="spans-string",
    ),
    pytest.param(
        FIRST + '{"text": "ab", "spans": [[0, 1, "X"]]}\n',
        'line 2: span 1: expected an object {"start", "end", "label"}, found an array',
        id="span-array",
    ),
    pytest.param(
        '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "X"}, '
        '{"start": 1, "label": "X"}]}\n',
        "line 1: span 2: missing end",
        id="missing-end",
    ),
    pytest.param(
        '{"text": "abc", "spans": [{"end": 1}]}\n',
        "line 1: span 1: missing start, label",
        id="missing-two",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": true, "end": 2, "label": "X"}]}\n',
        "line 2: span 1: start must be an integer, found True",
        id="bool-start",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": false, "label": "X"}]}\n',
        "line 2: span 1: end must be an integer, found False",
        id="bool-end",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1.0, "label": "X"}]}\n',
        "line 2: span 1: end must be an integer, found 1.0",
        id="float",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": "0", "end": 1, "label": "X"}]}\n',
        "line 2: span 1: start must be an integer, found '0'",
        id="string-offset",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 2, "end": 2, "label": "X"}]}\n',
        "line 2: span 1: start 2 is not before end 2",
        id="empty-span",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 2, "end": 1, "label": "X"}]}\n',
        "line 2: span 1: start 2 is not before end 1",
        id="reversed",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": -1, "end": 1, "label": "X"}]}\n',
        "line 2: span 1: start -1 is negative",
        id="negative",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 1, "end": 4, "label": "X"}]}\n',
        r"line 2: span 1: end 4 is beyond the text \(3 characters\)",
        id="beyond",
    ),
    pytest.param(
        FIRST + '{"text": "a  b", "spans": [{"start": 1, "end": 3, "label": "X"}]}\n',
        "line 2: span 1: the span covers only whitespace",
        id="whitespace-span",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "B PER"}]}\n',
        "line 2: span 1: label 'B PER' contains whitespace",
        id="label-space",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "PER\\n"}]}\n',
        r"line 2: span 1: label 'PER\\n' contains whitespace",
        id="label-newline",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": ""}]}\n',
        "line 2: span 1: label must be a non-empty string, found ''",
        id="label-empty",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": 7}]}\n',
        "line 2: span 1: label must be a non-empty string, found 7",
        id="label-number",
    ),
    pytest.param(
        FIRST + '{"text": "a\\u0000c", "spans": []}\n',
        "line 2: NUL character in a string",
        id="nul-escape",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "X\\u0000"}]}\n',
        "line 2: span 1: NUL character in a string",
        id="nul-label",
    ),
    pytest.param(
        FIRST + '{"text": "a\x00c", "spans": []}\n',
        r"line 2: NUL character \(a binary file\?\)",
        id="nul-byte",
    ),
    pytest.param(
        FIRST + '{"text": "a\\ud800c", "spans": []}\n',
        r"line 2: lone surrogate U\+D800 in a string \(not valid Unicode text\)",
        id="surrogate-text",
    ),
    pytest.param(
        '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "\\udfff"}]}\n',
        r"line 1: lone surrogate U\+DFFF in a string",
        id="surrogate-label-first-line",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [], "note": {"\\ud83d": 1}}\n',
        r"line 2: lone surrogate U\+D83D in a string",
        id="surrogate-other-key",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": NaN, "end": 1, "label": "X"}]}\n',
        "line 2: invalid JSON: NaN is not valid JSON",
        id="nan",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": Infinity, "label": "X"}]}\n',
        "line 2: invalid JSON: Infinity is not valid JSON",
        id="infinity",
    ),
    pytest.param(
        FIRST + '{"text": "abc", "spans": [{"start": 0, "end": -Infinity, "label": "X"}]}\n',
        "line 2: invalid JSON: -Infinity is not valid JSON",
        id="minus-infinity",
    ),
    pytest.param(
        FIRST
        + '{"text": "abc", "spans": [{"start": 0, "end": 1'
        + "0" * 30
        + ', "label": "X"}]}\n',
        r"line 2: span 1: end 1" + "0" * 30 + r" is beyond the text \(3 characters\)",
        id="huge-end",
    ),
    pytest.param(
        FIRST
        + '{"text": "abc", "spans": [{"start": 1'
        + "0" * 30
        + ', "end": 2, "label": "X"}]}\n',
        "line 2: span 1: start 1" + "0" * 30 + " is not before end 2",
        id="huge-start",
    ),
    pytest.param(
        FIRST
        + '{"text": "abc", "spans": [{"start": -1'
        + "0" * 30
        + ', "end": 2, "label": "X"}]}\n',
        "line 2: span 1: start -1" + "0" * 30 + " is negative",
        id="huge-negative",
    ),
    pytest.param(
        FIRST.encode() + b'{"text": "caf\xe9", "spans": []}\n',
        r"line 2: not valid UTF-8 \(byte 0xe9\)",
        id="utf8",
    ),
    pytest.param(FIRST + '{"text": "a", "spans": [}\n', "line 2: invalid JSON: ", id="syntax"),
]


@pytest.mark.parametrize(("body", "message"), _ERRORS)
def test_errors_name_the_file_and_the_line(body: str | bytes, message: str) -> None:
    text = error_of(body)
    assert text.startswith("up.jsonl: "), text
    assert re.search(message, text), text
    # the same error when the format is named, and while streaming
    assert error_of(body, "spans") == text
    with pytest.raises(DataFormatError) as info:
        rows(body, ["text", "spans"])
    assert str(info.value) == text


def test_limits_count_examples_and_bound_the_text() -> None:
    body = "".join(line(f"text {i}", (0, 4, "X")) + "\n\n" for i in range(5))  # line 1 + 2 i
    assert inspect(body, max_rows=5).rows == 5
    assert error_of(body, max_rows=4) == (
        "up.jsonl: line 9: more than 4 data rows; the limit is 4 rows "
        "(setting AIWEB_LIMITS__MAX_UPLOAD_ROWS)"
    )
    big = "x" * (MAX_FIELD_CHARS + 1)
    assert error_of(FIRST + line(big) + "\n") == (
        f"up.jsonl: line 2: value of 'text' is longer than {MAX_FIELD_CHARS} characters"
    )
    assert inspect(FIRST + line("x" * MAX_FIELD_CHARS, (0, 1, "X")) + "\n").rows == 2
    assert error_of("", "spans") == "up.jsonl: no examples (expected one JSON object per line)"
    with pytest.raises(DataFormatError, match="no examples"):
        rows("\n \n", ["text"])


def test_jsonl_records_are_read_as_before() -> None:
    # scalar values only: a table of records, as always
    info = inspect('{"text": "a", "spans": "0-1", "n": 1}\n{"text": "b"}\n')
    assert (info.format, info.columns, info.rows) == ("jsonl", ["text", "spans", "n"], 2)
    # the first line decides: an array in a later line is refused as in any JSONL table
    text = error_of('{"text": "a"}\n' + line("b", (0, 1, "X")) + "\n")
    assert text == (
        "up.jsonl: line 2: value of 'spans' is an array; only strings, numbers, booleans "
        "and null are allowed"
    )
    # a first line that is no object with a spans array leaves the file a JSONL table
    for first in ('{"spans": null}', '{"spans": {"a": 1}}', "[1]", "{bad json", '{"a": NaN}'):
        message = error_of(first + "\n" + line("b", (0, 1, "X")) + "\n")
        assert message.startswith("up.jsonl: line "), (first, message)
        assert "span 1:" not in message
    # a CSV or CoNLL file is never a spans file
    assert inspect("text,spans\na,[]\n", "csv").format == "csv"
    with pytest.raises(ValueError, match="unknown table format"):
        inspect("{}", "span")


def test_a_spans_file_is_read_in_bounded_blocks() -> None:
    # _Stream refuses a whole read; a large file goes through block by block
    body = "".join(
        line(f"I know skill{i}", (7, 7 + len(f"skill{i}"), "Skill")) + "\n" for i in range(20_000)
    )
    seen: list[int] = []
    info = inspect_table(
        _Stream(body.encode()), "jsonl", name="big.jsonl", max_rows=10**6, progress=seen.append
    )
    assert (info.format, info.rows) == ("spans", 20_000)
    assert len(seen) > 1
    assert seen[-1] == len(body.encode())
    assert rows(body, ["text"], chunk_rows=4096)["text"][-1] == "I know skill19999"


def test_whitespace_only_spans_are_found_among_many_in_linear_time() -> None:
    # spans starting in one run of whitespace: only those ending inside it are refused
    text = "a   b  c"
    ok = [(0, 1, "X"), (2, 5, "X"), (1, 8, "X"), (5, 8, "X")]
    assert inspect(line(text, *ok) + "\n").rows == 1
    bad = line(text, (0, 1, "X"), (1, 5, "X"), (6, 7, "X"), (3, 4, "X"))
    assert error_of(bad + "\n").endswith("line 1: span 3: the span covers only whitespace")
    # 100,000 spans starting in the same megabyte of spaces, each reaching the word after
    # it: one scan of the run, not one per span
    size = MAX_FIELD_CHARS - 2
    spans = [(start, size + 2, "X") for start in range(1, 100_001)]
    started = time.perf_counter()
    assert inspect(line("a" + " " * size + "b", *spans) + "\n").rows == 1
    assert time.perf_counter() - started < 20
