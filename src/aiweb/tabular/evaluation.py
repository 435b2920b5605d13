"""Evaluation reports of tabular models, and the cost-minimising decision threshold.

Every metric is scikit-learn's (``sklearn.metrics``): ``accuracy_score``,
``balanced_accuracy_score``, ``roc_auc_score`` (ROC-AUC; one-vs-rest macro for more than
two classes), ``average_precision_score`` (PR-AUC as average precision: the area under the
precision-recall curve by the step rule, not the trapezoid), ``log_loss``,
``brier_score_loss`` (binary; for more classes the mean over rows of ``Σ_k (p_k -
1[y=k])²``), ``confusion_matrix``; ``sklearn.calibration.calibration_curve`` (uniform
bins); ``root_mean_squared_error``, ``mean_absolute_error``, ``r2_score``.

Reports are JSON-safe: plain ``float``/``int``/``str``/lists/dicts, with ``None`` where a
metric is undefined (one class only in the test rows, a NaN from scikit-learn) —
never NaN or an infinity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

__all__ = [
    "anomaly_report",
    "choose_threshold",
    "classification_report",
    "cost_curve",
    "expected_cost",
    "json_safe",
    "regression_report",
]

FloatArray = npt.NDArray[np.float64]

#: The thresholds of a cost curve: 0.00, 0.01, …, 1.00.
THRESHOLD_GRID: FloatArray = np.round(np.linspace(0.0, 1.0, 101), 2)
#: At most this many points of a residual plot.
MAX_RESIDUALS = 200


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python ones and every NaN or
    infinity into ``None`` (recursively through dicts, lists and tuples)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def expected_cost(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, costs: Mapping[str, float]
) -> float:
    """Mean cost per row: ``(fp · #false positives + fn · #false negatives) / n``.

    Args:
        y_true: 0/1 array of shape ``(n,)`` (1 = the positive class).
        y_pred: 0/1 array of shape ``(n,)``.
        costs: ``{"fp": cost of a false positive, "fn": cost of a false negative}``.
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    if t.size == 0:
        return 0.0
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    return (float(costs["fp"]) * fp + float(costs["fn"]) * fn) / t.size


def cost_curve(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    costs: Mapping[str, float],
    thresholds: FloatArray = THRESHOLD_GRID,
) -> list[dict[str, float]]:
    """Expected cost per row at each threshold (a row is predicted positive when its
    probability is ``>= threshold``).

    Returns:
        ``[{"threshold", "cost", "fp", "fn"}]`` (``fp``/``fn`` are counts), one per threshold.
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(proba, dtype=np.float64)
    curve = []
    for threshold in thresholds:
        pred = p >= threshold
        curve.append(
            {
                "threshold": float(threshold),
                "cost": expected_cost(t, pred, costs),
                "fp": float(np.sum(pred & ~t)),
                "fn": float(np.sum(~pred & t)),
            }
        )
    return curve


def choose_threshold(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    costs: Mapping[str, float],
    thresholds: FloatArray = THRESHOLD_GRID,
) -> tuple[float, list[dict[str, float]]]:
    """The threshold on the positive class's probability that minimises expected cost.

    Among the thresholds of ``thresholds`` whose cost is minimal, the one nearest the
    Bayes-optimal threshold for calibrated probabilities, ``fp / (fp + fn)`` (Elkan 2001,
    "The foundations of cost-sensitive learning"), is chosen; then the lower one.

    Args:
        y_true: 0/1 array of shape ``(n,)``.
        proba: the positive class's probability, shape ``(n,)``.
        costs: ``{"fp": …, "fn": …}``, non-negative, not both 0.

    Returns:
        ``(threshold, curve)`` with ``curve`` as :func:`cost_curve` gives it.
    """
    curve = cost_curve(y_true, proba, costs, thresholds)
    fp, fn = float(costs["fp"]), float(costs["fn"])
    bayes = fp / (fp + fn) if fp + fn > 0 else 0.5
    best = min(c["cost"] for c in curve)
    ties = [c["threshold"] for c in curve if math.isclose(c["cost"], best, abs_tol=1e-12)]
    threshold = min(ties, key=lambda t: (abs(t - bayes), t))
    return threshold, curve


def _or_none(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def classification_report(
    y_true: Sequence[str],
    proba: FloatArray,
    classes: Sequence[str],
    predicted: Sequence[str],
    *,
    positive_class: str | None = None,
    threshold: float | None = None,
    costs: Mapping[str, float] | None = None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Metrics of a classifier on labelled rows.

    Args:
        y_true: ``n`` true labels.
        proba: float64 array of shape ``(n, len(classes))``, rows summing to 1.
        classes: the class names, in the column order of ``proba``.
        predicted: the ``n`` labels the model answers (at its threshold).
        positive_class: the positive class of a binary model.
        threshold: the decision threshold on the positive class (reported).
        costs: ``{"fp", "fn"}``: adds ``expected_cost`` and its baselines.
        n_bins: bins of the calibration curve.

    Returns:
        ``{"n", "accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "log_loss", "brier",
        "confusion_matrix": {"labels", "matrix"}, "calibration": {"prob_pred",
        "prob_true"} | None, "threshold", "expected_cost", "expected_cost_all_negative",
        "expected_cost_all_positive"}`` (JSON-safe; ``None`` where undefined).
    """
    labels = list(classes)
    truth = np.asarray(list(y_true), dtype=object)
    pred = np.asarray(list(predicted), dtype=object)
    index = {c: k for k, c in enumerate(labels)}
    y_idx = np.asarray([index[str(t)] for t in truth], dtype=np.int64)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y_idx)), y_idx] = 1.0
    report: dict[str, Any] = {
        "n": len(truth),
        "accuracy": _or_none(accuracy_score, truth, pred),
        "balanced_accuracy": _or_none(balanced_accuracy_score, truth, pred),
        "log_loss": _or_none(log_loss, y_idx, proba, labels=list(range(len(labels)))),
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(truth, pred, labels=labels).tolist(),
        },
        "threshold": threshold,
        "positive_class": positive_class,
    }
    if len(labels) == 2 and positive_class is not None:
        pos = index[positive_class]
        is_pos = (y_idx == pos).astype(np.int64)
        p = proba[:, pos]
        both = 0 < is_pos.sum() < len(is_pos)
        report["roc_auc"] = _or_none(roc_auc_score, is_pos, p) if both else None
        report["pr_auc"] = _or_none(average_precision_score, is_pos, p) if both else None
        report["brier"] = _or_none(brier_score_loss, is_pos, p)
        if both:
            prob_true, prob_pred = calibration_curve(is_pos, p, n_bins=n_bins)
            report["calibration"] = {
                "prob_pred": prob_pred.tolist(),
                "prob_true": prob_true.tolist(),
            }
        else:
            report["calibration"] = None
        if costs is not None:
            pred_pos = np.asarray([str(x) == positive_class for x in pred])
            report["costs"] = dict(costs)
            report["expected_cost"] = expected_cost(is_pos, pred_pos, costs)
            report["expected_cost_all_negative"] = expected_cost(
                is_pos, np.zeros_like(pred_pos), costs
            )
            report["expected_cost_all_positive"] = expected_cost(
                is_pos, np.ones_like(pred_pos), costs
            )
    else:
        present = sorted(set(y_idx.tolist()))
        ok = len(present) == len(labels)
        report["roc_auc"] = (
            _or_none(
                roc_auc_score, y_idx, proba, multi_class="ovr", labels=list(range(len(labels)))
            )
            if ok
            else None
        )
        report["pr_auc"] = _or_none(average_precision_score, onehot, proba, average="macro")
        report["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        report["calibration"] = None
    return json_safe(report)  # type: ignore[no-any-return]


def regression_report(y_true: FloatArray, y_pred: FloatArray, *, seed: int = 0) -> dict[str, Any]:
    """Metrics of a regressor on rows with known values.

    Args:
        y_true: float64 array of shape ``(n,)``.
        y_pred: float64 array of shape ``(n,)``.
        seed: picks the residual sample when ``n > 200``.

    Returns:
        ``{"n", "rmse", "mae", "r2", "rmse_constant", "mae_constant", "residuals":
        [{"predicted", "actual", "residual"}] (at most 200 points, a uniform sample)}``;
        ``*_constant`` are the errors of predicting the test mean / median everywhere.
    """
    n = len(y_true)
    picked = np.arange(n)
    if n > MAX_RESIDUALS:
        picked = np.sort(np.random.default_rng(seed).choice(n, MAX_RESIDUALS, replace=False))
    report = {
        "n": n,
        "rmse": _or_none(root_mean_squared_error, y_true, y_pred) if n else None,
        "mae": _or_none(mean_absolute_error, y_true, y_pred) if n else None,
        "r2": _or_none(r2_score, y_true, y_pred) if n > 1 else None,
        "rmse_constant": float(np.std(y_true)) if n else None,
        "mae_constant": float(np.mean(np.abs(y_true - np.median(y_true)))) if n else None,
        "residuals": [
            {
                "predicted": float(y_pred[i]),
                "actual": float(y_true[i]),
                "residual": float(y_true[i] - y_pred[i]),
            }
            for i in picked
        ],
    }
    return json_safe(report)  # type: ignore[no-any-return]


def anomaly_report(
    scores: FloatArray,
    threshold: float,
    labels: Sequence[bool] | None = None,
    *,
    n_bins: int = 20,
) -> dict[str, Any]:
    """The score distribution of an anomaly detector and, with labels, its ROC-AUC.

    Args:
        scores: float64 array of shape ``(n,)``; higher is more anomalous.
        threshold: rows scoring above it are flagged.
        labels: ``n`` booleans (true = a known anomaly), for evaluation only.
        n_bins: bins of the histogram.

    Returns:
        ``{"n", "threshold", "flagged", "flagged_share", "histogram": {"edges", "counts"},
        "roc_auc", "pr_auc"}`` (the last two ``None`` without labels or with one class).
    """
    n = len(scores)
    counts, edges = np.histogram(scores, bins=n_bins) if n else (np.zeros(0), np.zeros(0))
    flagged = int(np.sum(scores > threshold))
    report: dict[str, Any] = {
        "n": n,
        "threshold": threshold,
        "flagged": flagged,
        "flagged_share": flagged / n if n else None,
        "histogram": {"edges": edges.tolist(), "counts": counts.astype(int).tolist()},
        "roc_auc": None,
        "pr_auc": None,
    }
    if labels is not None:
        y = np.asarray(list(labels), dtype=np.int64)
        if 0 < y.sum() < len(y):
            report["roc_auc"] = _or_none(roc_auc_score, y, scores)
            report["pr_auc"] = _or_none(average_precision_score, y, scores)
    return json_safe(report)  # type: ignore[no-any-return]
