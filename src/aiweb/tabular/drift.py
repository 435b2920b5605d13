"""Drift profiles of tabular models: every input column, and the prediction.

At training, :func:`drift_reference` profiles the test rows (what live traffic should
resemble) with :mod:`aiweb.monitoring.drift`'s binned profiles: decile bins for numeric,
boolean-as-number and datetime columns (the datetime's Unix seconds), the most frequent
categories for categorical ones, each with its share of missing values (and, for a
category, of values never seen in training, which is 0 in the reference by definition).
Free-text columns are not features and are not profiled. The predicted label's
distribution (classification, anomaly detection) or the predicted value's deciles
(regression, the binned feature ``prediction``) are profiled too.

At serving, :func:`row_bins` turns each row's raw features into the bin of each profiled
column: the prediction log holds those bin numbers, never the values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aiweb.monitoring.drift import (
    CHI2_P_THRESHOLD,
    PSI_THRESHOLD,
    assign_bins,
    categorical_profile,
    numeric_profile,
)
from aiweb.tabular.columns import is_missing
from aiweb.tabular.model import ANOMALY_LABELS, FloatArray, TabularModel

__all__ = ["PREDICTION_FEATURE", "drift_reference", "row_bins"]

PREDICTION_FEATURE = "prediction"
"""Name of the binned feature of a regression model's predicted value."""

_BOOLEAN = ["false", "true"]


def _columns(model: TabularModel) -> list[tuple[str, str, int]]:
    """``(column, kind, raw index)`` of each profiled column: the first raw feature of
    each non-text column (a datetime's Unix seconds)."""
    out: list[tuple[str, str, int]] = []
    for spec in model.schema:
        if spec.kind == "text" or spec.name not in model.feature_columns:
            continue
        out.append((spec.name, spec.kind, model.feature_columns.index(spec.name)))
    return out


def _missing(rows: Sequence[Mapping[str, object]], column: str, raw: FloatArray) -> Any:
    """Bool of shape ``(n,)``: the row's value of ``column`` is missing (only rows whose
    raw value is NaN are looked at: a present value is never missing)."""
    out = np.zeros(len(rows), dtype=bool)
    for i in np.flatnonzero(np.isnan(raw)).tolist():
        row = rows[i]
        out[i] = is_missing(row.get(column)) if isinstance(row, Mapping) else True
    return out


def drift_reference(
    model: TabularModel,
    raw: FloatArray,
    rows: Sequence[Mapping[str, object]],
    answers: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The reference profile of a tabular version, from its test rows.

    Args:
        model: the fitted model.
        raw: its raw feature matrix of the rows, float64 ``(n, len(model.feature_names))``
            (:meth:`TabularModel.validate_rows`).
        rows: the rows themselves (which missing cells were missing, not unseen).
        answers: the model's answer to each row (:meth:`TabularModel.predict_matrix`).

    Returns:
        ``{"n", "labels" (classification, anomaly), "binned_features", "psi_threshold",
        "chi2_p_threshold"}``, as :class:`aiweb.monitoring.drift.DriftService` reads it.
    """
    binned: dict[str, Any] = {}
    for column, kind, at in _columns(model):
        values = raw[:, at]
        if kind == "categorical":
            binned[column] = categorical_profile(
                values, model.categories.get(column, []), _missing(rows, column, values)
            )
        elif kind == "boolean":
            binned[column] = categorical_profile(values, _BOOLEAN, np.isnan(values))
        else:
            binned[column] = numeric_profile(values)
    n = len(answers)
    reference: dict[str, Any] = {"n": n}
    if model.problem == "regression":
        predicted = np.asarray([float(a["value"]) for a in answers], dtype=np.float64)
        binned[PREDICTION_FEATURE] = numeric_profile(predicted)
    else:
        labels = (
            [str(a["label"]) for a in answers]
            if model.problem == "classification"
            else ["anomaly" if a["anomaly"] else "normal" for a in answers]
        )
        counts = Counter(labels)
        classes = model.classes if model.problem == "classification" else ANOMALY_LABELS
        reference["labels"] = {c: counts.get(c, 0) / max(1, n) for c in classes}
    reference.update(
        {
            "binned_features": binned,
            "psi_threshold": PSI_THRESHOLD,
            "chi2_p_threshold": CHI2_P_THRESHOLD,
        }
    )
    return reference


def row_bins(
    model: TabularModel,
    reference: Mapping[str, Any],
    raw: FloatArray,
    rows: Sequence[Mapping[str, object]],
    answers: Sequence[Mapping[str, Any]],
) -> list[dict[str, int]]:
    """The bin of every profiled feature, per row: what the prediction log keeps.

    Args:
        model: the served model.
        reference: its ``drift_reference`` (:func:`drift_reference`).
        raw: the raw feature matrix of ``rows``, float64 ``(n, len(model.feature_names))``.
        rows: the request's rows.
        answers: the answers (for the ``prediction`` feature of a regression model).

    Returns:
        ``n`` dicts ``{feature: bin}``; empty dicts when the reference profiles nothing.
    """
    profiles: Mapping[str, Any] = reference.get("binned_features") or {}
    out: list[dict[str, int]] = [{} for _ in rows]
    if not profiles:
        return out
    for column, kind, at in _columns(model):
        profile = profiles.get(column)
        if profile is None:
            continue
        values = raw[:, at]
        missing = _missing(rows, column, values) if kind == "categorical" else None
        for i, b in enumerate(assign_bins(profile, values, missing).tolist()):
            out[i][column] = b
    profile = profiles.get(PREDICTION_FEATURE)
    if profile is not None and model.problem == "regression":
        predicted = np.asarray([float(a["value"]) for a in answers], dtype=np.float64)
        for i, b in enumerate(assign_bins(profile, predicted).tolist()):
            out[i][PREDICTION_FEATURE] = b
    return out
