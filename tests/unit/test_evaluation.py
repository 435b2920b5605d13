from __future__ import annotations

import numpy as np
import pytest

from aiweb.classification.evaluation import evaluate


def test_binary_report_against_hand_computed_values() -> None:
    labels = ["neg", "pos"]
    y_true = ["pos", "pos", "pos", "neg", "neg"]
    # predicted: pos, pos, neg, neg, pos -> TP=2 FN=1 TN=1 FP=1
    proba = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]])
    report = evaluate(y_true, proba, labels, split="test")
    assert report["n"] == 5
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["per_class"]["pos"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert report["per_class"]["neg"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2}
    )
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert report["confusion_matrix"] == {"labels": labels, "matrix": [[1, 1], [1, 2]]}
    # pos scores 0.9, 0.8, 0.4 vs neg 0.3, 0.6: 5 of 6 pairs ordered right
    assert report["roc_auc"] == pytest.approx(5 / 6)


def test_multiclass_report_has_no_roc_auc() -> None:
    labels = ["a", "b", "c"]
    proba = np.eye(3)
    report = evaluate(["a", "b", "c"], proba, labels, split="dev")
    assert report["accuracy"] == 1.0
    assert report["macro_f1"] == 1.0
    assert "roc_auc" not in report
    assert report["split"] == "dev"
