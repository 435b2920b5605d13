"""Out-of-scope threshold calibration and the answered label, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from aiweb.classification.evaluation import evaluate
from aiweb.classification.rejection import (
    Rejection,
    calibrate_threshold,
    decide,
    output_labels,
)
from aiweb.errors import InvalidInputError

LABELS = ["balance", "transfer"]


def rows(*tops: tuple[str, float]) -> np.ndarray:
    """Probabilities over LABELS whose top class and probability (>= 0.5) are given."""
    out = []
    for label, p in tops:
        assert p >= 0.5
        row = [1.0 - p, 1.0 - p]
        row[LABELS.index(label)] = p
        out.append(row)
    return np.array(out, dtype=np.float64)


def test_separable_scores_give_a_threshold_between_the_groups() -> None:
    # in-scope rows are confident, out-of-scope rows are not: a perfect cut exists
    proba = rows(
        ("balance", 0.95), ("transfer", 0.9), ("balance", 0.8), ("transfer", 0.55), ("balance", 0.5)
    )
    truth = ["balance", "transfer", "balance", "oos", "oos"]
    for criterion in ("oos_f2", "oos_f1", "balanced"):
        choice = calibrate_threshold(truth, proba, LABELS, "oos", criterion=criterion)
        assert choice.threshold == pytest.approx((0.55 + 0.8) / 2)  # midpoint of the gap
        assert choice.in_scope_accuracy == 1.0
        assert choice.oos_recall == 1.0
        assert choice.oos_precision == 1.0
        assert (choice.n_in_scope, choice.n_oos) == (3, 2)
    assert decide(LABELS, proba, Rejection("oos", choice.threshold)) == truth


def test_criteria_trade_in_scope_accuracy_for_recall_differently() -> None:
    # one out-of-scope query hides among 4 in-scope ones of similar confidence
    proba = rows(
        ("balance", 0.99),
        ("balance", 0.6),
        ("transfer", 0.62),
        ("balance", 0.64),
        ("transfer", 0.66),
        ("balance", 0.61),
    )
    truth = ["balance", "balance", "transfer", "balance", "transfer", "oos"]
    # oos_f1: catching the oos row costs precision 1/2 (t just above 0.61 turns away 0.6
    # too): F1 = 2/3 there, better than 0 when never rejecting
    f1 = calibrate_threshold(truth, proba, LABELS, "oos", criterion="oos_f1")
    assert f1.threshold == pytest.approx((0.61 + 0.62) / 2)
    assert (f1.in_scope_accuracy, f1.oos_recall, f1.oos_precision) == (0.8, 1.0, 0.5)
    assert f1.oos_f1 == pytest.approx(2 / 3)
    # balanced (accuracy + recall) takes the same cut: 0.8 + 1.0 beats 1.0 + 0.0
    balanced = calibrate_threshold(truth, proba, LABELS, "oos", criterion="balanced")
    assert balanced.threshold == pytest.approx(f1.threshold)
    assert balanced.value == pytest.approx(1.8)


def test_ties_take_the_smallest_threshold_and_zero_never_rejects() -> None:
    # the out-of-scope row is the most confident one: no threshold catches it without
    # turning every in-scope row away
    proba = rows(("balance", 0.7), ("transfer", 0.8), ("balance", 0.9))
    truth = ["balance", "transfer", "oos"]
    f1 = calibrate_threshold(truth, proba, LABELS, "oos", criterion="oos_f1")
    # rejecting everything: P = 1/3, R = 1, F1 = 0.5 beats 0 (never rejecting)
    assert f1.threshold > 0.9
    assert f1.in_scope_accuracy == 0.0
    assert f1.oos_f1 == pytest.approx(0.5)
    balanced = calibrate_threshold(truth, proba, LABELS, "oos", criterion="balanced")
    # 1.0 + 0.0 (never) and 0.0 + 1.0 (always) tie: the smallest threshold wins
    assert balanced.threshold == 0.0
    assert balanced.in_scope_accuracy == 1.0
    assert balanced.oos_recall == 0.0
    assert decide(LABELS, proba, Rejection("oos", 0.0)) == ["balance", "transfer", "balance"]


def test_wrong_in_scope_answers_do_not_count_as_accurate() -> None:
    proba = rows(("transfer", 0.9), ("balance", 0.9), ("balance", 0.5))
    truth = ["balance", "balance", "oos"]  # the first row is answered wrongly
    choice = calibrate_threshold(truth, proba, LABELS, "oos", criterion="balanced")
    assert choice.in_scope_accuracy == 0.5
    assert choice.oos_recall == 1.0


def test_an_oos_class_answers_oos_at_any_threshold() -> None:
    labels = ["balance", "oos"]
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.55, 0.45]])
    truth = ["balance", "oos", "oos"]
    choice = calibrate_threshold(truth, proba, labels, "oos", criterion="oos_f1")
    # row 1 is oos by argmax; row 2 needs a threshold above 0.55, which keeps row 0
    assert 0.55 < choice.threshold <= 0.9
    assert (choice.in_scope_accuracy, choice.oos_recall, choice.oos_precision) == (1.0, 1.0, 1.0)
    rule = Rejection("oos", choice.threshold)
    assert decide(labels, proba, rule) == ["balance", "oos", "oos"]
    assert output_labels(labels, rule) == ["balance", "oos"]  # not listed twice


def test_calibration_needs_both_kinds_of_rows() -> None:
    proba = rows(("balance", 0.9), ("transfer", 0.8))
    with pytest.raises(InvalidInputError, match="needs evaluation rows labeled 'oos'"):
        calibrate_threshold(["balance", "transfer"], proba, LABELS, "oos")
    with pytest.raises(InvalidInputError, match="unknown criterion"):
        calibrate_threshold(["balance", "oos"], proba, LABELS, "oos", criterion="accuracy")
    with pytest.raises(InvalidInputError, match="shape"):
        calibrate_threshold(["balance"], proba, LABELS, "oos")


def test_rule_round_trips_through_lineage_and_evaluation_counts_answers() -> None:
    rule = Rejection("oos", 0.6)
    assert Rejection.of_lineage({"rejection": rule.to_json()}) == rule
    assert Rejection.of_lineage({"dataset": "x"}) is None
    proba = rows(("balance", 0.9), ("transfer", 0.55), ("balance", 0.6))
    answered = decide(LABELS, proba, rule)
    assert answered == ["balance", "oos", "balance"]  # below, not at, the threshold
    labels = output_labels(LABELS, rule)
    assert labels == ["balance", "transfer", "oos"]
    report = evaluate(
        ["balance", "oos", "transfer"], proba, labels, split="val", predicted=answered
    )
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["per_class"]["oos"]["recall"] == 1.0
    assert report["confusion_matrix"]["labels"] == labels
    assert report["confusion_matrix"]["matrix"][1] == [1, 0, 0]  # transfer answered balance
    assert report["confusion_matrix"]["matrix"][2] == [0, 0, 1]  # oos answered oos
    assert "roc_auc" not in report
    assert decide(LABELS, np.zeros((0, 2)), rule) == []
