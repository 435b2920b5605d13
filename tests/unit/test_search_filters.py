"""Search filters, reciprocal rank fusion and the keyword query syntax: pure functions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiweb.errors import InvalidInputError
from aiweb.search.filters import Filter
from aiweb.search.index import top_k
from aiweb.search.keyword import Clause, fts5_query, parse_query
from aiweb.search.service import reciprocal_rank_fusion


def test_parse_equality_and_in() -> None:
    where = Filter.parse({"genre": "crime", "year": {"in": [1890, 1891.0]}}, None)
    assert where is not None
    assert [c.field for c in where.conditions] == ["genre", "year"]
    assert where.matches({"genre": "crime", "year": 1891})
    assert where.matches({"genre": "crime", "year": 1890.0})
    assert not where.matches({"genre": "Crime", "year": 1891})  # case-sensitive
    assert not where.matches({"genre": "crime"})  # missing field
    assert not where.matches({"genre": "crime", "year": "1891"})  # a string is not a number


def test_booleans_never_equal_numbers() -> None:
    where = Filter.parse({"flag": True}, None)
    assert where is not None
    assert where.matches({"flag": True})
    assert not where.matches({"flag": 1})
    ones = Filter.parse({"n": 1}, None)
    assert ones is not None
    assert not ones.matches({"n": True})
    assert ones.matches({"n": 1.0})


def test_arrays_objects_and_null_match_nothing() -> None:
    where = Filter.parse({"tag": "a"}, None)
    assert where is not None
    for value in (["a"], {"a": 1}, None):
        assert not where.matches({"tag": value})


def test_empty_filter_is_none() -> None:
    assert Filter.parse(None, None) is None
    assert Filter.parse({}, ["x"]) is None


@pytest.mark.parametrize(
    ("raw", "fields", "message"),
    [
        ({"genre": "x"}, ["year"], "not a filterable metadata field"),
        ({"bad field": "x"}, None, "invalid metadata field name"),
        ({"-x": "x"}, None, "invalid metadata field name"),
        ({"year": {"in": []}}, None, '"in" takes 1 to'),
        ({"year": {"gt": 3}}, None, 'must be {"in": [values]}'),
        ({"year": {"in": 3}}, None, 'must be {"in": [values]}'),
        ({"year": [1, 2]}, None, "must be a string, number or boolean"),
        ({"year": None}, None, "must be a string, number or boolean"),
        ({"year": float("nan")}, None, "finite"),
        ({"year": 2**60}, None, "2^53"),
        ({"year": {"in": [{"a": 1}]}}, None, "must be a string, number or boolean"),
        ({f"f{i}": 1 for i in range(17)}, None, "at most 16 fields"),
        ({"s": "x" * 1001}, None, "at most 1000 characters"),
    ],
)
def test_bad_filters_are_invalid_input(
    raw: dict[str, Any], fields: list[str] | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"filter|metadata field") as info:
        Filter.parse(raw, fields)
    assert message in info.value.detail


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    st.none() | scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5
)


@settings(database=None)  # no .hypothesis/ directory in the project
@given(
    raw=st.dictionaries(
        st.text(max_size=70),
        json_values | st.dictionaries(st.text(max_size=4), json_values, max_size=2),
        max_size=20,
    )
)
def test_parse_accepts_or_rejects_cleanly(raw: dict[str, Any]) -> None:
    """Any JSON object either parses or raises InvalidInputError, never anything else."""
    try:
        where = Filter.parse(raw, None)
    except InvalidInputError:
        return
    if where is not None:
        where.matches({})


def test_rrf_fuses_ranks() -> None:
    vector = np.asarray([1, 2, 3], np.int64)
    keyword = np.asarray([3, 4], np.int64)
    keys, scores = reciprocal_rank_fusion([vector, keyword], k=60)
    # 3 is in both lists: 1/63 + 1/61; 1: 1/61; 4: 1/62; 2: 1/62 (tie: best rank 2 both,
    # then key)
    assert keys.tolist() == [3, 1, 2, 4]
    assert scores[0] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[1] == pytest.approx(1 / 61)
    limited, _ = reciprocal_rank_fusion([vector, keyword], k=60, limit=2)
    assert limited.tolist() == [3, 1]
    empty, _ = reciprocal_rank_fusion([np.zeros(0, np.int64)])
    assert empty.shape == (0,)


def test_top_k_orders_and_skips_excluded() -> None:
    scores = np.asarray([0.1, 0.9, -np.inf, 0.9, 0.5], np.float32)
    assert top_k(scores, 3).tolist() == [1, 3, 4]
    assert top_k(scores, 10).tolist() == [1, 3, 4, 0]
    assert top_k(scores, 0).tolist() == []


@pytest.mark.parametrize(
    ("query", "clauses", "fts5"),
    [
        (
            "Detective stories in Victorian London",
            [Clause((("detective",), ("stories",), ("victorian",), ("london",)))],
            '("detective" AND "stories" AND "victorian" AND "london")',
        ),
        ('"sad cat" or "fat rat"', [Clause((("sad", "cat"),)), Clause((("fat", "rat"),))], None),
        ('signal -"seg fault"', [Clause((("signal",),), (("seg", "fault"),))], None),
        ("e-mail", [Clause((("e", "mail"),))], '("e mail")'),
        ("the who", [Clause((("the",), ("who",)))], None),  # only stop words: kept
        ("a b or c", [Clause((("b",),)), Clause((("c",),))], '("b") OR ("c")'),
        ('"unclosed quote', [Clause((("unclosed", "quote"),))], None),
        ("-crab", [], ""),  # nothing to include: FTS5 cannot say "all but"
        ("or OR or", [], ""),
        ('¿?! "" - * ( ) :', [], ""),
        ('AND "x" NEAR(a b) col:y ^z', None, None),  # FTS5 syntax is just words
    ],
)  # fmt: skip
def test_web_search_syntax(query: str, clauses: list[Clause] | None, fts5: str | None) -> None:
    parsed = parse_query(query)
    if clauses is not None:
        assert parsed == clauses
    if fts5 is not None:
        assert fts5_query(parsed) == fts5
    for clause in parsed:
        for words in clause.include + clause.exclude:
            assert all(w.isalnum() for w in words)
