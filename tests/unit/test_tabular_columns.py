"""Column types of tabular data: inference on generated tables, CSV reading, the loaders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiweb.errors import DataFormatError, DatasetNotFound, DatasetUnavailableError
from aiweb.tabular.columns import (
    COLUMN_KINDS,
    ColumnSpec,
    category_key,
    infer_schema,
    is_missing,
    parse_bool,
    parse_datetime,
    parse_number,
    read_csv,
)
from aiweb.tabular.data import load_dataset

MISSING = st.sampled_from([None, "", "?", " ? ", "NA", "n/a", "NaN", "null", float("nan")])

numbers = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.4f}"),
)
booleans = st.sampled_from([("true", "false"), ("Yes", "No"), ("y", "n"), ("T", "F")]).flatmap(
    lambda pair: st.sampled_from(pair)
)
json_booleans = st.booleans()
datetimes = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.isoformat(timespec="seconds")
)
dates = st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10)
categories = st.sampled_from(["A11", "A12", "blue-collar", "Married-civ-spouse", "<=50K", "x y"])


def texts(n: int) -> st.SearchStrategy[list[str]]:
    words = st.text("abcdefghij", min_size=1, max_size=8)
    sentence = st.lists(words, min_size=4, max_size=12).map(" ".join)
    return st.lists(sentence, min_size=n, max_size=n, unique=True)


KIND_VALUES: dict[str, st.SearchStrategy[object]] = {
    "numeric": numbers,
    "boolean": st.one_of(booleans, json_booleans),
    "datetime": st.one_of(datetimes, dates),
    "categorical": categories,
}


@st.composite
def column(draw: st.DrawFn, kind: str, n: int) -> list[object]:
    if kind == "text":
        values: list[object] = list(draw(texts(n)))
    elif kind == "boolean":
        if draw(st.booleans()):
            values = draw(st.lists(json_booleans, min_size=n, max_size=n))
        else:
            pair = draw(st.sampled_from([("true", "false"), ("Yes", "No"), ("y", "n")]))
            values = draw(st.lists(st.sampled_from(pair), min_size=n, max_size=n))
    else:
        values = draw(st.lists(KIND_VALUES[kind], min_size=n, max_size=n))
    # up to a third missing, never all
    for i in draw(st.lists(st.integers(1, n - 1), max_size=n // 3)):
        values[i] = draw(MISSING)
    return values


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[dict[str, object]], dict[str, str]]:
    n = draw(st.integers(3, 30))
    kinds = draw(st.lists(st.sampled_from(COLUMN_KINDS), min_size=1, max_size=6))
    cols = {f"c{k}": draw(column(kind, n)) for k, kind in enumerate(kinds)}
    rows = [{name: values[i] for name, values in cols.items()} for i in range(n)]
    # some rows leave a column out: a missing value too
    for i in draw(st.lists(st.integers(1, n - 1), max_size=2)):
        rows[i].pop(draw(st.sampled_from(sorted(cols))), None)
    return rows, {f"c{k}": kind for k, kind in enumerate(kinds)}


@settings(max_examples=150, deadline=None)
@given(tables())
def test_infer_schema_finds_the_generated_kinds(
    table: tuple[list[dict[str, object]], dict[str, str]],
) -> None:
    rows, expected = table
    schema = infer_schema(rows)
    assert [s.name for s in schema] == list(expected)
    assert {s.name: s.kind for s in schema} == expected


@settings(max_examples=50, deadline=None)
@given(tables(), st.data())
def test_overrides_replace_inferred_kinds(
    table: tuple[list[dict[str, object]], dict[str, str]], data: st.DataObject
) -> None:
    rows, expected = table
    name = data.draw(st.sampled_from(sorted(expected)))
    schema = infer_schema(rows, {name: "text"})
    assert {s.name: s.kind for s in schema} == {**expected, name: "text"}


def test_unknown_override_column_and_kind_are_refused() -> None:
    rows = [{"a": "1"}, {"a": "2"}]
    with pytest.raises(DataFormatError, match="'b'"):
        infer_schema(rows, {"b": "numeric"})
    with pytest.raises(DataFormatError, match=r"'a'.*'money'"):
        infer_schema(rows, {"a": "money"})


def test_all_missing_column_is_categorical_and_zero_one_is_numeric() -> None:
    rows: list[dict[str, object]] = [{"a": "?", "b": "0"}, {"a": "", "b": "1"}, {"a": None, "b": 1}]
    assert infer_schema(rows) == [ColumnSpec("a", "categorical"), ColumnSpec("b", "numeric")]


def test_cells() -> None:
    assert is_missing(" ? ")
    assert is_missing(float("nan"))
    assert not is_missing("0")
    assert parse_number(" -1.5e3 ") == -1500.0
    assert parse_number("inf") is None
    assert parse_number(True) is None
    assert parse_number(10**400) is None
    assert parse_bool("YES") is True
    assert parse_bool(0) is False
    assert parse_bool("maybe") is None
    when = parse_datetime("2024-05-01T13:45:00+02:00")
    assert when == datetime(2024, 5, 1, 11, 45, tzinfo=UTC)
    assert parse_datetime("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_datetime("20240501") is None
    assert parse_datetime("2024-05-01") - parse_datetime("2024-04-30") == timedelta(days=1)  # type: ignore[operator]
    assert category_key(5) == category_key(5.0) == category_key(" 5 ") == "5"
    assert category_key(True) == "true"


def test_column_spec_round_trip() -> None:
    spec = ColumnSpec("age", "numeric")
    assert ColumnSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(DataFormatError, match="unknown column type"):
        ColumnSpec.from_dict({"name": "age", "kind": "float"})


def test_read_csv_strips_sniffs_and_names_bad_lines() -> None:
    header, rows = read_csv(b'a; b\n1; x\n\n2;"y;z"\n')
    assert header == ["a", "b"]
    assert rows == [{"a": "1", "b": "x"}, {"a": "2", "b": "y;z"}]
    _, rows = read_csv(b"39, State-gov, ?\n", has_header=False, names=["age", "w", "o"])
    assert rows == [{"age": "39", "w": "State-gov", "o": "?"}]
    with pytest.raises(DataFormatError, match="line 3: expected 2 fields, found 3"):
        read_csv(b"a,b\n1,2\n1,2,3\n")
    with pytest.raises(DataFormatError, match="duplicate"):
        read_csv(b"a,a\n1,2\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_csv(b"a,b\n\xff,1\n")


# --------------------------------------------------------------------------- loaders


def test_loaders_read_the_shared_files(shared_data: Path) -> None:
    german = load_dataset("german_credit", shared_data)
    assert len(german) == 1000
    assert german.positive_class == "bad"
    assert sum(r["credit_risk"] == "bad" for r in german.rows) == 300
    assert german.costs == {"fp": 1.0, "fn": 5.0}

    bank = load_dataset("bank_marketing", shared_data)
    assert len(bank) == 45211
    assert "duration" not in bank.columns
    assert bank.dropped == ("duration",)
    assert "duration" in load_dataset("bank_marketing", shared_data, drop_leaky=False).columns
    assert sum(r["y"] == "yes" for r in bank.rows) == 5289

    adult = load_dataset("adult", shared_data)
    assert len(adult) == 32561
    assert adult.rows[0]["workclass"] == "State-gov"  # leading space stripped
    assert sum(r["occupation"] is None for r in adult.rows) == 1843  # '?' is missing
    assert sum(r["income"] == ">50K" for r in adult.rows) == 7841

    wine = load_dataset("wine_quality", shared_data)
    assert wine.problem == "regression"
    assert "fixed_acidity" in wine.columns
    assert len(wine) == 1599 + 4898 - 240 - 937
    assert len(load_dataset("wine_quality", shared_data, deduplicate=False)) == 1599 + 4898
    schema = {s.name: s.kind for s in infer_schema(wine.rows)}
    assert schema["color"] == "categorical"
    assert schema["alcohol"] == "numeric"


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="german_credit"):
        load_dataset("iris", tmp_path)
    with pytest.raises(DatasetUnavailableError, match=r"german\.data.*AIWEB_DATA_HOME"):
        load_dataset("german_credit", tmp_path)
    with pytest.raises(DatasetUnavailableError, match="not set"):
        load_dataset("adult", None)
