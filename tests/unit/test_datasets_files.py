"""read_labeled_file: a user's own CSV / TSV / JSONL files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiweb.datasets import read_labeled_file
from aiweb.errors import DataFormatError


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_csv_with_quotes_commas_and_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "data.csv",
        'id,text,label\r\n1,"Great, really ""great""",pos\r\n2,"two\nlines  ",neg\r\n'
        "3,  plain ,pos\r\n",
    )
    rows = read_labeled_file(path)
    assert rows.texts == ['Great, really "great"', "two\nlines", "plain"]
    assert rows.labels == ["pos", "neg", "pos"]


def test_tsv_and_tab_with_custom_columns(tmp_path: Path) -> None:
    body = 'review\tstars\n"it\'s ""fine"""\t5\nmeh, ok\t2\n'
    for suffix in (".tsv", ".TAB"):
        rows = read_labeled_file(
            write(tmp_path / f"d{suffix}", body), text_column="review", label_column="stars"
        )
        assert rows.texts == ['it\'s "fine"', "meh, ok"]
        assert rows.labels == ["5", "2"]


def test_jsonl_labels_become_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl",
        '{"text": " good ", "label": 1, "extra": [1]}\r\n\r\n{"text": "bad", "label": 0}\n',
    )
    rows = read_labeled_file(path)
    assert rows.texts == ["good", "bad"]
    assert rows.labels == ["1", "0"]
    assert read_labeled_file(write(tmp_path / "d.ndjson", path.read_text())).labels == ["1", "0"]


def test_max_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    assert read_labeled_file(path, max_rows=2).texts == ["a", "b"]
    jl = write(
        tmp_path / "d.jsonl", "".join(json.dumps({"text": t, "label": t}) + "\n" for t in "abcd")
    )
    assert read_labeled_file(jl, max_rows=3).texts == ["a", "b", "c"]
    with pytest.raises(ValueError, match="max_rows"):
        read_labeled_file(path, max_rows=0)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("d.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
        ("d.jsonl", '{"text": "a", "label": 1}\n\n{oops\n', "line 3: invalid JSON"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', "line 2: missing key 'label'"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n', "line 2: 'text' must"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": null}\n', "line 2: 'label'"),
        (
            "d.jsonl",
            '{"text": "a", "label": 1}\n{"text": "  ", "label": 0}\n',
            "line 2: empty text",
        ),
        ("d.csv", "a,b\n1,2\n", "line 1: missing column 'text'; columns are: a, b"),
        ("d.csv", "text,b\n1,2\n", "missing column 'label'; columns are: text, b"),
        ("d.csv", "text,label\nx,1\ny,0\n\nz,1,extra\n", "line 5: expected 2 fields, found 3"),
        ("d.csv", "text,label\nx,1\n ,0\n", "line 3: empty text"),
        ("d.csv", "text,label\nx,1\ny,\n", "line 3: empty label"),
        ("d.tsv", "text\tlabel\nx\t1\ny\n", "line 3: expected 2 fields, found 1"),
        ("d.csv", "text,label\nx,1\ny,1\n", "at least 2 distinct labels"),
        ("d.csv", "", "file is empty"),
        ("d.csv", "text,label\n", "no data rows"),
        ("d.jsonl", "\n\n", "no data rows"),
        ("d.txt", "text,label\n", "unknown file type '.txt'"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, name: str, body: str, message: str) -> None:
    path = write(tmp_path / name, body)
    with pytest.raises(DataFormatError) as excinfo:
        read_labeled_file(path)
    assert message in str(excinfo.value)
    # the file by its name, never the server's directory (job errors are shown to users)
    assert str(excinfo.value).startswith(f"{name}: ")
    assert str(tmp_path) not in str(excinfo.value)


def test_non_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b"text,label\nok,1\ncaf\xe9,0\n")
    with pytest.raises(DataFormatError, match="line 3: not valid UTF-8"):
        read_labeled_file(path)


def test_csv_line_number_counts_physical_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\n"multi\nline",1\nok,0\n,1\n')
    with pytest.raises(DataFormatError, match="line 5: empty text"):
        read_labeled_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read"):
        read_labeled_file(tmp_path / "nope.csv")


_texts = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() != "")
_rows = st.lists(
    st.tuples(_texts, st.sampled_from(["pos", "neg", "0", "1"])), min_size=1, max_size=12
)


def _with_two_labels(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*rows, ("always a", "label-a"), ("always b", "label-b")]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows, kind=st.sampled_from(["csv", "tsv"]))
def test_round_trip_csv_writer(tmp_path: Path, rows: list[tuple[str, str]], kind: str) -> None:
    rows = _with_two_labels(rows)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, dialect=csv.excel if kind == "csv" else csv.excel_tab)
    writer.writerow(["label", "text"])
    writer.writerows([(label, text) for text, label in rows])
    path = write(tmp_path / f"round.{kind}", buffer.getvalue())
    loaded = read_labeled_file(path)
    assert loaded.texts == [text.strip() for text, _ in rows]
    assert loaded.labels == [label for _, label in rows]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows, ensure_ascii=st.booleans())
def test_round_trip_json_dumps(
    tmp_path: Path, rows: list[tuple[str, str]], ensure_ascii: bool
) -> None:
    rows = _with_two_labels(rows)
    body = "".join(
        json.dumps({"label": label, "text": text}, ensure_ascii=ensure_ascii) + "\n"
        for text, label in rows
    )
    path = write(tmp_path / "round.jsonl", body)
    loaded = read_labeled_file(path)
    assert loaded.texts == [text.strip() for text, _ in rows]
    assert loaded.labels == [label for _, label in rows]
