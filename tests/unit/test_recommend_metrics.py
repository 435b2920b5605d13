"""Top-N metrics against hand-computed cases, and the temporal split (no leakage)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from aiweb.errors import InvalidInputError
from aiweb.recommendations.data import Interactions, leave_last_out
from aiweb.recommendations.evaluation import (
    EvalSet,
    average_precision_at_k,
    coverage,
    evaluate_lists,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    top_k,
)

RANKED = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "z"}


def test_precision_recall_hit_rate() -> None:
    assert precision_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 5)
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RANKED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_rate_at_k(RANKED, RELEVANT, 2) == 1.0


def test_ndcg_by_hand() -> None:
    # hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3) + 1/log2(4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["x", "y"], {"x", "y"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKED, set(), 5) == 0.0


def test_average_precision_by_hand() -> None:
    # precision at the hits: 1/2 and 2/4; divided by min(|relevant|, k) = 3
    assert average_precision_at_k(RANKED, RELEVANT, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    # k = 2 < |relevant|: only the hit at 2 counts, divided by 2
    assert average_precision_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 / 2) / 2)
    assert average_precision_at_k(["b"], {"b"}, 10) == 1.0


def test_coverage_and_bad_k() -> None:
    assert coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(0.3)
    with pytest.raises(InvalidInputError):
        precision_at_k(RANKED, RELEVANT, 0)
    with pytest.raises(InvalidInputError):
        coverage([], 0)


def test_evaluate_lists_averages_over_users_with_a_test_set() -> None:
    lists = np.array([[0, 1], [2, 3], [0, 2]])
    metrics = evaluate_lists(lists, [{1}, {9}, set()], n_items=10, k=2)
    assert metrics["users"] == 2
    assert metrics["hit_rate"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["precision"] == pytest.approx(0.25)
    assert metrics["coverage"] == pytest.approx(0.4)


def test_top_k_never_returns_seen_items() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0]], dtype=np.float32)
    seen = sparse.csr_matrix(np.array([[1, 0, 1, 0]], dtype=np.float32))
    assert top_k(scores, seen, 2).tolist() == [[1, 3]]


def _log() -> Interactions:
    # user u1: 8 items at times 1..8 plus a repeat of item i0 at time 20 (counts once, at 1);
    # user u2: 4 items (too few to hold out 5)
    users = ["u1"] * 9 + ["u2"] * 4
    items = [f"i{t}" for t in range(8)] + ["i0"] + ["i0", "i1", "i2", "i3"]
    times = [*range(1, 9), 20, 5, 6, 7, 8]
    return Interactions.build(users, items, times)


def test_leave_last_out_holds_out_the_latest_and_never_trains_on_them() -> None:
    data = _log()
    assert len(data) == 12  # the repeat is de-duplicated
    held = leave_last_out(data, 5)
    u1 = data.user_ids.index("u1")
    test_items = {
        data.item_ids[i]
        for u, i in zip(data.users[held], data.items[held], strict=False)
        if u == u1
    }
    assert test_items == {"i3", "i4", "i5", "i6", "i7"}
    assert not held[data.users == data.user_ids.index("u2")].any()
    # no held-out (user, item) pair is anywhere in training
    train_pairs = set(zip(data.users[~held].tolist(), data.items[~held].tolist(), strict=True))
    test_pairs = set(zip(data.users[held].tolist(), data.items[held].tolist(), strict=True))
    assert not train_pairs & test_pairs
    # every held-out interaction is later than (or as late as) every training one of the user
    for u in np.unique(data.users[held]):
        assert (
            data.times[held & (data.users == u)].min()
            >= data.times[~held & (data.users == u)].max()
        )


def test_eval_set_fields_align() -> None:
    rows = sparse.csr_matrix((1, 3), dtype=np.float32)
    es = EvalSet(np.zeros(1, np.int32), rows, rows, [{1}])
    assert es.rows.shape == (1, 3)
