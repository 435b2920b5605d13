"""Recommenders from little data: the minimum the offline evaluation needs, the report of a
version trained without it, and ``auto`` leaving out what the data cannot fit."""

from __future__ import annotations

import numpy as np
import pytest

from aiweb.errors import InvalidInputError
from aiweb.recommendations.data import Interactions
from aiweb.recommendations.store import Item, TrainingRows
from aiweb.recommendations.training import (
    TOP_LEVEL_METRICS,
    RecommendationData,
    build_model,
    compare,
    compared,
    min_items_to_evaluate,
    not_evaluated_reason,
    unevaluated,
)


def docs_example() -> RecommendationData:
    """docs/recommendations.md's own example: 3 items, 2 interactions of one user."""
    items = [
        Item("sku-1", "Trail running shoe", "", ("shoes",), ("running", "trail")),
        Item("sku-2", "Road running shoe", "", ("shoes",), ("running",)),
        Item("sku-3", "Rain jacket", "", ("jackets",), ()),
    ]
    rows = TrainingRows(["u42", "u42"], ["sku-1", "sku-2"], [1.0, 2.0], 2, items)
    return RecommendationData.from_rows(rows)


def one_user(n_items: int) -> RecommendationData:
    """One user with ``n_items`` distinct items, one a second."""
    ids = [f"i{i}" for i in range(n_items)]
    rows = TrainingRows(["u"] * n_items, ids, [float(t) for t in range(n_items)], n_items, [])
    return RecommendationData.from_rows(rows)


def test_the_minimum_is_one_user_with_eleven_distinct_items() -> None:
    assert min_items_to_evaluate() == 11
    assert min_items_to_evaluate(3) == 7
    ten = one_user(10).interactions
    reason = not_evaluated_reason(ten)
    assert reason is not None
    assert reason.startswith("not evaluated: too few interactions; 11 needed")
    assert "the most any user has is 10" in reason
    assert not_evaluated_reason(one_user(11).interactions) is None
    # the same item twice counts once
    twice = Interactions.build(["u"] * 11, ["a"] * 2 + [f"i{i}" for i in range(9)], range(11))
    assert not_evaluated_reason(twice) is not None


def test_compare_refuses_too_little_data_with_the_same_reason() -> None:
    with pytest.raises(InvalidInputError, match="not evaluated: too few interactions; 11 needed"):
        compare(docs_example(), ("ease",), hybrid=False)


def test_an_unevaluated_report_keeps_the_shape_of_an_evaluated_one() -> None:
    evaluated = compare(one_user(12), ("popularity", "content"), hybrid=True).report
    data = docs_example()
    reason = not_evaluated_reason(data.interactions)
    assert reason is not None
    report = unevaluated(data, "auto", reason).report
    assert evaluated["evaluated"] is True
    assert set(evaluated) - {"evaluated"} <= set(report)
    assert set(report["protocol"]) == set(evaluated["protocol"])
    assert report["evaluated"] is False
    assert report["reason"] == reason
    assert all(report[m] is None for m in (*TOP_LEVEL_METRICS, "coverage"))
    assert report["selected"] == "popularity"
    assert "popularity" in report["note"]
    assert report["protocol"]["test_users"] == 0
    assert report["protocol"]["min_items_per_user"] == 11
    assert report["algorithms"]["popularity"]["test"] == {}
    # a named algorithm is trained as asked, with no note
    named = unevaluated(data, "content", reason)
    assert named.selected == "content"
    assert "note" not in named.report


@pytest.mark.parametrize(
    "algorithm", ["auto", "hybrid", "popularity", "content", "als", "bpr", "ease"]
)
def test_the_docs_example_trains_and_serves_without_an_evaluation(algorithm: str) -> None:
    data = docs_example()
    reason = not_evaluated_reason(data.interactions)
    assert reason is not None
    comparison = unevaluated(data, algorithm, reason)
    model = build_model(data, comparison)
    seen = [data.interactions.item_ids.index("sku-1"), data.interactions.item_ids.index("sku-2")]
    unseen = np.ones(model.n_items, bool)
    unseen[seen] = False
    recs = model.recommend("u42", seen, has_new=False, allowed=unseen, n=5)
    assert [model.item_ids[r.item] for r in recs] == ["sku-3"]  # the only one not seen
    allowed = np.ones(model.n_items, bool)
    cold = model.recommend("new-user", [], has_new=False, allowed=allowed, n=5)
    assert {model.item_ids[r.item] for r in cold} <= {"sku-1", "sku-2", "sku-3"}
    assert cold


def two_users(n_items: int) -> RecommendationData:
    """Two users with the same ``n_items`` distinct items."""
    ids = [f"i{i}" for i in range(n_items)] * 2
    users = ["u"] * n_items + ["v"] * n_items
    rows = TrainingRows(users, ids, [float(t) for t in range(2 * n_items)], 2 * n_items, [])
    return RecommendationData.from_rows(rows)


def test_auto_leaves_out_what_the_data_cannot_fit() -> None:
    data = two_users(12)  # enough to evaluate
    params = {"ease": {"max_items": 5}}  # EASE refuses more than 5 items
    names, hybrid = compared("auto", data)
    comparison = compare(data, names, hybrid=hybrid, params=params)
    assert "5 items" in comparison.report["skipped"]["ease"]
    assert "ease" not in comparison.report["algorithms"]
    assert comparison.selected in comparison.report["algorithms"]
    assert comparison.report["evaluated"] is True
    # asked for by name, it is a clear error (422), not a silent substitute
    with pytest.raises(InvalidInputError, match="limit is 5 items"):
        compare(data, ("ease",), hybrid=False, params=params)
