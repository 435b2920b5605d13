"""Evaluation report of a classifier on held-out data (metrics from scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def evaluate(
    y_true: list[str],
    proba: npt.NDArray[np.float64],
    labels: list[str],
    *,
    split: str,
    predicted: list[str] | None = None,
) -> dict[str, Any]:
    """Build the evaluation report stored with a model version.

    Metrics: accuracy, macro-F1, per-class precision/recall/F1/support and the
    confusion matrix (rows = true label, columns = predicted, in ``labels`` order),
    from :mod:`sklearn.metrics`; ROC-AUC (``roc_auc_score``) when there are two
    classes, with ``labels[1]`` as the positive class.

    Args:
        y_true: ``n`` true labels.
        proba: float array ``(n, len(labels))`` of predicted probabilities.
        labels: class names in the column order of ``proba``; with ``predicted``, every
            label that can be answered (the columns of ``proba`` first, then e.g. an
            out-of-scope label, see :mod:`aiweb.classification.rejection`).
        split: name of the evaluated split (``dev``, ``test``, ``eval-data``).
        predicted: the answered label of each row, when it is not the most probable
            column (a rejection threshold); ``None`` for argmax.

    Returns:
        A JSON-serialisable dict: ``{"split", "n", "accuracy", "macro_f1",
        "roc_auc"?, "per_class": {label: {"precision", "recall", "f1", "support"}},
        "confusion_matrix": {"labels": [...], "matrix": [[int]]}}``.
    """
    y_pred = predicted if predicted is not None else [labels[i] for i in np.argmax(proba, axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    report: dict[str, Any] = {
        "split": split,
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": list(labels),
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).astype(int).tolist(),
        },
    }
    if len(labels) == 2 and proba.shape[1] == 2 and len(set(y_true)) == 2:
        positives = [1 if y == labels[1] else 0 for y in y_true]
        report["roc_auc"] = float(roc_auc_score(positives, proba[:, 1]))
    return report
