"""Exact explanations of tabular models: TreeSHAP additivity, linear terms, the shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiweb.contract import Explanation
from aiweb.errors import InvalidInputError
from aiweb.tabular.data import load_dataset
from aiweb.tabular.explain import explain_rows, tree_shap
from aiweb.tabular.model import TabularModel
from aiweb.tabular.trainer import TabularParams, fit_tabular


def _additive(e: dict[str, Any]) -> float:
    total = e["base_value"] + sum(c["weight"] for c in e["contributions"]) + e["omitted"]["weight"]
    return float(abs(total - e["logit"]))


@pytest.fixture(scope="module")
def german(shared_data: Path) -> tuple[list[dict[str, object]], dict[str, TabularModel]]:
    data = load_dataset("german_credit", shared_data)
    models = {
        alg: fit_tabular(data.rows, data.target, data.problem, TabularParams(algorithm=alg)).model
        for alg in ("hgb", "linear")
    }
    return data.rows, models


@pytest.mark.parametrize("algorithm", ["hgb", "linear"])
def test_additivity_on_german_credit(
    algorithm: str, german: tuple[list[dict[str, object]], dict[str, TabularModel]]
) -> None:
    rows, models = german
    model = models[algorithm]
    explanations = explain_rows(model, rows[:300], top_k=4)
    margins = model.margins(model.validate_rows(rows[:300]))[:, 0]
    for row, e, margin in zip(rows, explanations, margins, strict=False):
        Explanation.model_validate(e)  # the contract's shape
        assert e["exact"] is True
        assert e["method"] == ("tree" if algorithm == "hgb" else "linear")
        assert _additive(e) < 1e-6
        assert len(e["contributions"]) == 4
        assert e["omitted"]["count"] == 20 - 4
        # logit of the explained (predicted) class: the margin of "bad", negated for "good"
        assert e["target"] == e["label"]
        assert e["logit"] == pytest.approx(margin if e["target"] == "bad" else -margin)
        assert all(c["value"] == row[c["feature"]] for c in e["contributions"])
        weights = [abs(c["weight"]) for c in e["contributions"]]
        assert weights == sorted(weights, reverse=True)


def test_the_model_uses_categorical_splits_and_shap_agrees_where_it_can(
    german: tuple[list[dict[str, object]], dict[str, TabularModel]],
) -> None:
    rows, models = german
    hgb = models["hgb"]
    nodes = np.concatenate([p[0].nodes for p in hgb.estimator._predictors])
    assert nodes["is_categorical"].any()  # the additivity above covers categorical splits
    explained = explain_rows(hgb, rows[:5], target="bad")
    other = explain_rows(hgb, rows[:5], target="good")
    for a, b in zip(explained, other, strict=True):
        assert a["logit"] == pytest.approx(-b["logit"])
        assert a["base_value"] == pytest.approx(-b["base_value"])
    with pytest.raises(InvalidInputError, match="not a class"):
        explain_rows(hgb, rows[:1], target="maybe")


def test_tree_shap_equals_shap_tree_explainer_on_numeric_trees() -> None:
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    x[rng.random(size=x.shape) < 0.1] = np.nan
    rows = [{f"f{j}": (None if np.isnan(v) else float(v)) for j, v in enumerate(r)} for r in x]
    y = np.nan_to_num(x[:, 0]) * 2 + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])
    for row, target in zip(rows, y, strict=True):
        row["y"] = float(target)
    model = fit_tabular(rows, "y", "regression", TabularParams(max_iter=50)).model
    raw = model.validate_rows(rows[:50])
    ours = tree_shap(model).shap_values(raw)
    explainer = shap.TreeExplainer(model.estimator)
    theirs = explainer.shap_values(raw)
    assert np.abs(ours - theirs).max() < 1e-9
    assert tree_shap(model).expected_value == pytest.approx(
        float(np.ravel(explainer.expected_value)[0])
    )
    for e in explain_rows(model, rows[:50]):
        assert e["exact"]
        assert _additive(e) < 1e-6
        assert e["value"] == e["logit"]


@pytest.fixture(scope="module")
def multiclass() -> TabularModel:
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(600):
        a, b = rng.normal(size=2)
        colour = str(rng.choice(["red", "green", "blue", "black"]))
        score = a + {"red": 1, "green": 0, "blue": -1, "black": 0.5}[colour]
        label = "low" if score < -0.5 else ("mid" if score < 0.8 else "high")
        rows.append({"a": float(a), "b": float(b), "colour": colour, "label": label})
    return fit_tabular(rows, "label", "classification", TabularParams(max_iter=40)).model


cells = st.fixed_dictionaries(
    {},
    optional={
        "a": st.one_of(st.none(), st.floats(-5, 5)),
        "b": st.one_of(st.none(), st.floats(-5, 5)),
        "colour": st.sampled_from(["red", "green", "blue", "black", "purple", "?"]),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(cells, min_size=1, max_size=5), st.sampled_from([None, "low", "mid", "high"]))
def test_multiclass_tree_shap_is_additive_for_any_row(
    multiclass: TabularModel, rows: list[dict[str, object]], target: str | None
) -> None:
    for e in explain_rows(multiclass, rows, target=target):
        assert e["exact"]
        assert _additive(e) < 1e-6
        if target is not None:
            assert e["target"] == target
        assert sum(e["scores"].values()) == pytest.approx(1.0)


def test_anomaly_models_are_not_explained() -> None:
    rows = [{"a": float(i % 7), "b": float(i % 5)} for i in range(100)]
    model = fit_tabular(rows, None, "anomaly").model
    with pytest.raises(InvalidInputError, match="not explained"):
        explain_rows(model, rows[:1])
