"""Out-of-scope rejection: answer a reserved label when the classifier is not confident.

Intent detection must say "none of my intents" for queries it was not built for. The
standard baseline of Larson et al. ("An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", EMNLP-IJCNLP 2019, the CLINC150 paper) is a confidence
threshold: train on the in-scope intents, and answer ``oos`` whenever the top predicted
probability falls below a threshold chosen on a validation split that holds
out-of-scope queries. Probabilities stay as the classifier gives them; only the answered
label changes.

:func:`calibrate_threshold` picks the threshold; :class:`Rejection` is what a model
version stores (lineage ``"rejection"``) and :func:`decide` applies it at predict time.

Metrics, as in the CLINC150 paper: *in-scope accuracy* is the fraction of in-scope queries
answered with their intent (answering ``oos`` to one counts as wrong); *out-of-scope
recall* is the fraction of out-of-scope queries answered ``oos``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from aiweb.errors import InvalidInputError

__all__ = [
    "CRITERIA",
    "Criterion",
    "Rejection",
    "ThresholdChoice",
    "calibrate_threshold",
    "decide",
    "output_labels",
]

Criterion = Literal["oos_f2", "oos_f1", "balanced"]
#: ``oos_f2``: maximise the F2 score of the out-of-scope answer (F-beta with beta = 2,
#: van Rijsbergen 1979: recall weighs four times precision — a missed out-of-scope query
#: gets a confident wrong answer, a false one only a fallback); ``oos_f1``: its F1 score;
#: ``balanced``: in-scope accuracy + out-of-scope recall, each weighing the same whatever
#: the class sizes (on CLINC150's 3,000 / 100 validation rows it turns away many in-scope
#: queries: docs/benchmarks.md).
CRITERIA: tuple[str, ...] = ("oos_f2", "oos_f1", "balanced")
_BETA = {"oos_f2": 2.0, "oos_f1": 1.0}


@dataclass(frozen=True)
class Rejection:
    """A version's rejection rule: answer ``label`` when the top probability < ``threshold``.

    Attributes:
        label: the reserved label, e.g. ``"oos"``.
        threshold: probability in [0, 1]; ``0`` never rejects.
    """

    label: str
    threshold: float

    def to_json(self) -> dict[str, Any]:
        """``{"label", "threshold"}``, as stored in a version's lineage."""
        return {"label": self.label, "threshold": self.threshold}

    @classmethod
    def of_lineage(cls, lineage: dict[str, Any]) -> Rejection | None:
        """The rule stored under ``lineage["rejection"]``, or ``None`` when there is none."""
        stored = lineage.get("rejection")
        if not isinstance(stored, dict):
            return None
        return cls(label=str(stored["label"]), threshold=float(stored["threshold"]))


def output_labels(score_labels: Sequence[str], rejection: Rejection | None) -> list[str]:
    """The labels a model can answer: its score columns, and the rejection label.

    Args:
        score_labels: the classifier's classes (columns of its probabilities).
        rejection: the version's rule, or ``None``.

    Returns:
        ``score_labels`` followed by ``rejection.label`` when it is not one of them.
    """
    labels = list(score_labels)
    if rejection is not None and rejection.label not in labels:
        labels.append(rejection.label)
    return labels


def decide(
    score_labels: Sequence[str],
    proba: npt.NDArray[np.float64],
    rejection: Rejection | None,
) -> list[str]:
    """The answered label of each row: the most probable class, or the rejection label
    where the top probability is below the threshold.

    Args:
        score_labels: class names, in the column order of ``proba``.
        proba: float array ``(n, len(score_labels))`` of class probabilities.
        rejection: the rule, or ``None`` for plain argmax.

    Returns:
        ``n`` labels, aligned with the rows of ``proba``.
    """
    if proba.shape[0] == 0:
        return []
    best = proba.argmax(axis=1)
    labels = [score_labels[i] for i in best.tolist()]
    if rejection is None:
        return labels
    top = proba[np.arange(proba.shape[0]), best]
    for i in np.flatnonzero(top < rejection.threshold).tolist():
        labels[i] = rejection.label
    return labels


@dataclass(frozen=True)
class ThresholdChoice:
    """The calibrated threshold and what it gives on the calibration rows.

    Attributes:
        threshold: answer the rejection label when the top probability is below it.
        criterion: what was maximised (see :data:`CRITERIA`).
        value: the criterion's value at ``threshold``.
        in_scope_accuracy: in-scope rows answered with their own label / in-scope rows.
        oos_recall: out-of-scope rows answered with the rejection label / out-of-scope rows.
        oos_precision: out-of-scope rows among the rows answered with the rejection label
            (1.0 when none is).
        oos_f1: harmonic mean of ``oos_precision`` and ``oos_recall``.
        oos_f2: F-beta of the out-of-scope answer with beta = 2.
        n_in_scope: in-scope calibration rows.
        n_oos: out-of-scope calibration rows.
    """

    threshold: float
    criterion: str
    value: float
    in_scope_accuracy: float
    oos_recall: float
    oos_precision: float
    oos_f1: float
    oos_f2: float
    n_in_scope: int
    n_oos: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every attribute."""
        return {
            "threshold": self.threshold,
            "criterion": self.criterion,
            "value": self.value,
            "in_scope_accuracy": self.in_scope_accuracy,
            "oos_recall": self.oos_recall,
            "oos_precision": self.oos_precision,
            "oos_f1": self.oos_f1,
            "oos_f2": self.oos_f2,
            "n_in_scope": self.n_in_scope,
            "n_oos": self.n_oos,
        }


def calibrate_threshold(
    y_true: Sequence[str],
    proba: npt.NDArray[np.float64],
    score_labels: Sequence[str],
    reject_label: str,
    *,
    criterion: str = "oos_f2",
) -> ThresholdChoice:
    """Choose the rejection threshold that maximises ``criterion`` on labeled rows.

    Every threshold between two consecutive distinct top probabilities gives the same
    answers on these rows, so the candidates are ``0`` (never reject), the midpoints
    between consecutive distinct top probabilities, and a value just above the largest
    one (always reject). Among equally good candidates the smallest threshold wins
    (fewest in-scope queries turned away). A row whose most probable class is itself
    ``reject_label`` (a model trained with out-of-scope examples as a class) is answered
    ``reject_label`` at every threshold. Cost: O(n log n) for ``n`` rows.

    Args:
        y_true: ``n`` true labels; ``reject_label`` marks out-of-scope rows.
        proba: float array ``(n, len(score_labels))`` of class probabilities.
        score_labels: class names in the column order of ``proba``.
        reject_label: the out-of-scope label, e.g. ``"oos"``.
        criterion: ``"oos_f2"`` (F2 of the out-of-scope answer), ``"oos_f1"`` (its F1)
            or ``"balanced"`` (in-scope accuracy + out-of-scope recall).

    Returns:
        The chosen :class:`ThresholdChoice`.

    Raises:
        InvalidInputError: an unknown criterion, lengths that differ, or rows without
            both in-scope and out-of-scope examples (nothing to calibrate on).
    """
    if criterion not in CRITERIA:
        raise InvalidInputError(f"unknown criterion {criterion!r}; use one of {CRITERIA}")
    n = len(y_true)
    if proba.ndim != 2 or proba.shape != (n, len(score_labels)):
        raise InvalidInputError(
            f"proba has shape {proba.shape}, expected ({n}, {len(score_labels)})"
        )
    truth = np.asarray(list(y_true), dtype=object)
    is_oos = truth == reject_label
    n_oos = int(is_oos.sum())
    n_in = n - n_oos
    if n_oos == 0 or n_in == 0:
        raise InvalidInputError(
            f"calibrating the {reject_label!r} threshold needs evaluation rows labeled "
            f"{reject_label!r} and rows with other labels; found {n_oos} and {n_in}"
        )
    best = proba.argmax(axis=1)
    top = proba[np.arange(n), best]
    predicted = np.asarray(score_labels, dtype=object)[best]
    always = predicted == reject_label  # the classifier itself answers reject_label
    correct_tops = np.sort(top[~is_oos & (predicted == truth)])
    oos_tops = np.sort(top[is_oos & ~always])
    in_tops = np.sort(top[~is_oos & ~always])
    n_oos_always = int((is_oos & always).sum())
    n_in_always = int((~is_oos & always).sum())

    distinct = np.unique(top)
    above = np.nextafter(distinct[-1], np.inf)
    candidates = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2.0, [above]])
    # rows with top < t are rejected: counts by binary search in the sorted tops
    kept_correct = correct_tops.size - np.searchsorted(correct_tops, candidates, side="left")
    oos_hits = n_oos_always + np.searchsorted(oos_tops, candidates, side="left")
    in_rejected = n_in_always + np.searchsorted(in_tops, candidates, side="left")
    accuracy = kept_correct / n_in
    recall = oos_hits / n_oos
    answered = oos_hits + in_rejected
    precision = np.where(answered > 0, oos_hits / np.maximum(answered, 1), 1.0)
    f1 = _f_beta(precision, recall, 1.0)
    f2 = _f_beta(precision, recall, 2.0)
    score = (
        accuracy + recall
        if criterion == "balanced"
        else _f_beta(precision, recall, _BETA[criterion])
    )
    i = int(np.argmax(score))  # first maximum: the smallest threshold
    return ThresholdChoice(
        threshold=float(candidates[i]),
        criterion=criterion,
        value=float(score[i]),
        in_scope_accuracy=float(accuracy[i]),
        oos_recall=float(recall[i]),
        oos_precision=float(precision[i]),
        oos_f1=float(f1[i]),
        oos_f2=float(f2[i]),
        n_in_scope=n_in,
        n_oos=n_oos,
    )


def _f_beta(
    precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64], beta: float
) -> npt.NDArray[np.float64]:
    """F-beta = (1 + b²)·P·R / (b²·P + R), 0 where both are 0."""
    b2 = beta * beta
    denominator = b2 * precision + recall
    out: npt.NDArray[np.float64] = np.where(
        denominator > 0, (1 + b2) * precision * recall / np.maximum(denominator, 1e-12), 0.0
    )
    return out
