"""Fitting tabular models: time splits, the cost threshold, German Credit, the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiweb.errors import DataFormatError
from aiweb.tabular.data import load_dataset
from aiweb.tabular.evaluation import choose_threshold, cost_curve, expected_cost, json_safe
from aiweb.tabular.trainer import (
    FitResult,
    TabularParams,
    _time_split,
    fit_tabular,
    positive_class_of,
)

# --------------------------------------------------------------------------- time split


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=2, max_size=200),
    st.floats(0.05, 0.95),
)
def test_time_split_never_puts_a_later_row_in_training(times: list[int], share: float) -> None:
    t = np.asarray(times, dtype=np.float64)
    idx = np.arange(len(t), dtype=np.int64)
    earlier, later = _time_split(t, idx, share)
    assert sorted([*earlier.tolist(), *later.tolist()]) == idx.tolist()
    assert len(later) >= 1
    if len(earlier):
        assert t[earlier].max() < t[later].min()


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 0.4))
def test_fit_with_a_time_column_trains_only_on_the_past(seed: int, test_size: float) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    days = rng.integers(1, 29, size=n)
    rows = [
        {
            "when": f"2024-02-{d:02d}T{int(rng.integers(0, 24)):02d}:00:00",
            "x": float(rng.normal()),
            "y": "a" if i % 2 else "b",
        }
        for i, d in enumerate(days)
    ]
    result = fit_tabular(
        rows,
        "y",
        "classification",
        TabularParams(time_column="when", test_size=test_size, max_iter=5, seed=seed),
    )
    split = result.report["split"]
    assert split["method"] == "time"
    assert split["train_until"] < split["test_from"]
    assert split["train"] + split["validation"] + split["test"] == n
    assert "when" not in [s.name for s in result.schema]  # orders the split, not a feature


# --------------------------------------------------------------------------- costs


def test_cost_threshold_matches_a_hand_computed_example() -> None:
    # positives at 0.9 and 0.3, negatives at 0.6, 0.2, 0.1, 0.05; a missed positive costs 5,
    # a false alarm 1. Predicting positive when p >= t:
    #   t <= 0.05: 4 false alarms          -> 4/6
    #   0.2 < t <= 0.3: 1 false alarm (0.6) -> 1/6   (the minimum)
    #   0.3 < t <= 0.6: 1 miss + 1 alarm    -> 6/6
    #   0.6 < t <= 0.9: 1 miss              -> 5/6
    # Every t in 0.21 … 0.30 costs 1/6; the one nearest fp/(fp+fn) = 1/6 is 0.21.
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.6, 0.2, 0.1, 0.05])
    costs = {"fp": 1.0, "fn": 5.0}
    threshold, curve = choose_threshold(y, p, costs)
    assert threshold == pytest.approx(0.21)
    at = {round(c["threshold"], 2): c["cost"] for c in curve}
    assert at[0.0] == pytest.approx(4 / 6)
    assert at[0.25] == pytest.approx(1 / 6)
    assert at[0.3] == pytest.approx(1 / 6)
    assert at[0.5] == pytest.approx(1.0)
    assert at[0.7] == pytest.approx(5 / 6)
    assert min(at.values()) == pytest.approx(1 / 6)
    assert expected_cost(y, p >= threshold, costs) == pytest.approx(1 / 6)
    assert len(cost_curve(y, p, costs)) == 101


def test_costs_are_validated() -> None:
    with pytest.raises(ValidationError):
        TabularParams.model_validate({"costs": {"fp": 0, "fn": 0}})
    with pytest.raises(ValidationError):
        TabularParams.model_validate({"costs": {"fp": -1, "fn": 5}})
    with pytest.raises(ValidationError):
        TabularParams.model_validate({"test_size": 1.5})
    with pytest.raises(ValidationError):
        TabularParams.model_validate({"unknown": 1})


def test_positive_class_default() -> None:
    assert positive_class_of(["No", "Yes"], {"No": 9, "Yes": 1}) == "Yes"
    assert positive_class_of(["0", "1"], {"0": 1, "1": 9}) == "1"
    assert positive_class_of(["bad", "good"], {"bad": 3, "good": 7}) == "bad"


# --------------------------------------------------------------------------- German Credit


@pytest.fixture(scope="module")
def german(shared_data: Path) -> tuple[FitResult, list[tuple[float, str]]]:
    data = load_dataset("german_credit", shared_data)
    params = TabularParams(costs={"fp": 1, "fn": 5})
    steps: list[tuple[float, str]] = []
    result = fit_tabular(
        data.rows, data.target, data.problem, params, progress=lambda f, m: steps.append((f, m))
    )
    return result, steps


def test_german_credit_roc_auc_and_cost(german: tuple[FitResult, list[tuple[float, str]]]) -> None:
    result, steps = german
    report = result.report
    metrics = report["metrics"]
    assert metrics["roc_auc"] > 0.7
    assert report["positive_class"] == "bad"
    # the chosen threshold beats always predicting "good" under the 5:1 matrix
    assert metrics["expected_cost"] < metrics["expected_cost_all_negative"]
    assert report["threshold"] < 0.5  # a missed bad applicant costs 5 times more
    best = min(c["cost"] for c in report["cost_curve"])
    chosen = next(c for c in report["cost_curve"] if c["threshold"] == report["threshold"])
    assert chosen["cost"] == best
    assert report["calibration"]["method"] in {"sigmoid", "isotonic"}
    assert report["split"] == {
        "method": "stratified",
        "train": 680,
        "validation": 120,
        "test": 200,
        "seed": 0,
        "time_column": None,
    }
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_report_is_strict_json(german: tuple[FitResult, list[tuple[float, str]]]) -> None:
    result, _ = german
    text = json.dumps(result.report, allow_nan=False)
    assert json.loads(text) == result.report
    assert {s["name"] for s in result.report["schema"]} == {s.name for s in result.schema}


def test_linear_and_eval_rows(shared_data: Path) -> None:
    data = load_dataset("german_credit", shared_data)
    result = fit_tabular(
        data.rows[:800],
        data.target,
        data.problem,
        TabularParams(algorithm="linear"),
        eval_rows=data.rows[800:],
    )
    assert result.report["split"]["method"] == "given"
    assert result.report["split"]["test"] == 200
    assert result.report["metrics"]["roc_auc"] > 0.7


# --------------------------------------------------------------------------- regression, anomaly


def test_regression_and_anomaly_reports() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 3))
    rows = [
        {
            "a": float(r[0]),
            "b": float(r[1]),
            "c": "up" if r[2] > 0 else "down",
            "y": float(2 * r[0] - r[1] + (r[2] > 0)),
        }
        for r in x
    ]
    reg = fit_tabular(rows, "y", "regression", TabularParams(max_iter=200))
    metrics = reg.report["metrics"]
    assert metrics["r2"] > 0.9
    assert metrics["rmse"] < metrics["rmse_constant"]
    assert 0 < len(metrics["residuals"]) <= 200

    normal = [
        {"a": float(v[0]), "b": float(v[1]), "is_fraud": "no"} for v in rng.normal(size=(500, 2))
    ]
    odd = [
        {"a": float(v[0]), "b": float(v[1]), "is_fraud": "yes"}
        for v in rng.normal(6, 1, size=(25, 2))
    ]
    anomaly = fit_tabular(
        normal + odd, None, "anomaly", TabularParams(label_column="is_fraud", test_size=0.4)
    )
    assert "is_fraud" not in [s.name for s in anomaly.schema]
    report = anomaly.report["metrics"]
    assert report["roc_auc"] > 0.95
    assert sum(report["histogram"]["counts"]) == report["n"]


def test_training_errors() -> None:
    rows = [{"x": i, "y": "a" if i % 2 else "b"} for i in range(40)]
    with pytest.raises(DataFormatError, match="no column 'z'"):
        fit_tabular(rows, "z", "classification")
    with pytest.raises(DataFormatError, match="two classes"):
        fit_tabular([{**r, "y": "a"} for r in rows], "y", "classification")
    with pytest.raises(DataFormatError, match="must be a number"):
        fit_tabular(rows, "y", "regression")
    with pytest.raises(DataFormatError, match="binary classification"):
        fit_tabular(
            [{**r, "y": float(r["x"])} for r in rows],
            "y",
            "regression",
            TabularParams(costs={"fp": 1, "fn": 1}),
        )
    with pytest.raises(DataFormatError, match="isolation_forest"):
        fit_tabular(rows, "y", "classification", TabularParams(algorithm="isolation_forest"))
    bad = [dict(r) for r in rows]
    bad[3]["x"] = "three"
    with pytest.raises(DataFormatError, match="row 3, column 'x'"):
        fit_tabular(bad, "y", "classification", TabularParams(column_types={"x": "numeric"}))


def test_json_safe() -> None:
    assert json_safe({"a": math.nan, "b": [np.float64(1.5), np.inf], "c": np.int64(2)}) == {
        "a": None,
        "b": [1.5, None],
        "c": 2,
    }
