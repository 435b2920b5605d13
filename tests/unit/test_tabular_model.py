"""The served tabular model: hostile rows, missing columns, artifacts that round-trip."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.tabular.model import MAX_STRING_CHARS, RowError, TabularModel
from aiweb.tabular.trainer import TabularParams, fit_tabular


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    """Rows with every column kind; ``bought`` depends on age, plan, member and when."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(n):
        age = int(rng.integers(18, 80))
        plan = str(rng.choice(["free", "pro", "team", "enterprise"]))
        member = bool(rng.random() < 0.5)
        day = int(rng.integers(1, 28))
        score = (age - 45) / 15 + {"free": -1, "pro": 0.5, "team": 1, "enterprise": 1.5}[plan]
        score += 0.8 * member + (0.5 if day % 7 in (5, 6) else 0) + rng.normal(0, 0.7)
        rows.append(
            {
                "age": str(age) if i % 3 else age,
                "plan": plan if i % 11 else "?",
                "member": "yes" if member else "no",
                "signup": f"2024-03-{day:02d}T{int(rng.integers(0, 24)):02d}:00:00Z",
                "note": f"customer {i} wrote a short note number {i * 7}",
                "spend": round(float(np.exp(score / 2 + 3)), 2),
                "bought": "yes" if score > 0 else "no",
            }
        )
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return synthetic_rows(600)


@pytest.fixture(scope="module")
def models(rows: list[dict[str, object]]) -> dict[str, TabularModel]:
    fast = {"max_iter": 60}
    return {
        "hgb": fit_tabular(rows, "bought", "classification", TabularParams(**fast)).model,
        "linear": fit_tabular(
            rows, "bought", "classification", TabularParams(algorithm="linear")
        ).model,
        "regression": fit_tabular(
            rows, "spend", "regression", TabularParams(drop=["bought"], **fast)
        ).model,
        "anomaly": fit_tabular(rows, None, "anomaly", TabularParams(drop=["bought"])).model,
    }


def test_schema_and_kinds(models: dict[str, TabularModel]) -> None:
    kinds = {s.name: s.kind for s in models["hgb"].schema}
    assert kinds == {
        "age": "numeric",
        "plan": "categorical",
        "member": "boolean",
        "signup": "datetime",
        "note": "text",
        "spend": "numeric",
    }
    assert models["hgb"].classes == ["no", "yes"]
    assert models["hgb"].positive_class == "yes"
    assert models["hgb"].threshold == 0.5


@pytest.mark.parametrize("kind", ["hgb", "linear", "regression", "anomaly"])
def test_round_trip_predicts_the_same(
    kind: str, models: dict[str, TabularModel], rows: list[dict[str, object]]
) -> None:
    model = models[kind]
    data = model.to_bytes()
    loaded = TabularModel.from_bytes(data)
    assert loaded.predict(rows[:100]) == model.predict(rows[:100])
    assert loaded.schema == model.schema
    assert loaded.threshold == model.threshold
    loaded.warm()


def test_prediction_shapes(models: dict[str, TabularModel], rows: list[dict[str, object]]) -> None:
    out = models["hgb"].predict(rows[:20])
    assert len(out) == 20
    for answer in out:
        assert set(answer) == {"label", "scores"}
        assert math.isclose(sum(answer["scores"].values()), 1.0)
        assert answer["label"] == ("yes" if answer["scores"]["yes"] >= 0.5 else "no")
    assert set(models["regression"].predict(rows[:1])[0]) == {"value"}
    anomaly = models["anomaly"].predict(rows[:5])
    assert all(0 < a["score"] <= 1 and isinstance(a["anomaly"], bool) for a in anomaly)
    assert models["hgb"].predict([]) == []


def test_missing_columns_are_missing_values(models: dict[str, TabularModel]) -> None:
    for model in models.values():
        assert len(model.predict([{}, {"age": 30}, {"plan": "never-seen", "age": None}])) == 3
    # the target and dropped columns may be sent; they are ignored
    models["regression"].predict([{"age": 30, "spend": 10, "bought": "yes"}])


HOSTILE: list[tuple[str, object, str]] = [
    ("age", float("nan"), "not a finite number"),
    ("age", float("inf"), "not a finite number"),
    ("age", float("-inf"), "not a finite number"),
    ("age", 10**400, "beyond the float range"),
    ("age", "forty", "expected a number"),
    ("age", True, "expected a number"),
    ("plan", "x" * (MAX_STRING_CHARS + 1), "characters"),
    ("plan", {"nested": 1}, "nested JSON"),
    ("plan", [1, 2], "nested JSON"),
    ("plan", "\ud800", "lone surrogate"),
    ("member", "perhaps", "true or false"),
    ("signup", "yesterday", "ISO 8601"),
    ("note", 5, "expected a string"),
    ("colour", "red", "unknown column"),
]


@pytest.mark.parametrize(("column", "value", "message"), HOSTILE)
@pytest.mark.parametrize("kind", ["hgb", "linear", "regression", "anomaly"])
def test_hostile_rows_name_the_row_and_column(
    kind: str, column: str, value: object, message: str, models: dict[str, TabularModel]
) -> None:
    with pytest.raises(RowError) as caught:
        models[kind].predict([{"age": 30}, {column: value}])
    assert caught.value.status == 422
    assert isinstance(caught.value, InvalidInputError)
    assert caught.value.detail.startswith(f"row 1, column {column!r}")
    assert message in caught.value.detail


def test_a_row_that_is_not_an_object_is_refused(models: dict[str, TabularModel]) -> None:
    with pytest.raises(RowError, match="row 0: expected a JSON object"):
        models["hgb"].predict(["age=3"])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "x" * (MAX_STRING_CHARS + 1), "?", "2024-01-01", "1e999"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["age", "plan", "member", "signup", "note", "spend", "other"]),
            json_values,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_json_rows_predict_or_give_a_row_error(
    models: dict[str, TabularModel], rows: list[dict[str, Any]]
) -> None:
    for model in models.values():
        outcome: list[dict[str, Any]] | RowError
        try:
            outcome = model.predict(rows)
        except RowError as exc:
            outcome = exc
        if isinstance(outcome, RowError):
            assert outcome.status == 422
            assert outcome.detail.startswith("row ")
        else:
            assert len(outcome) == len(rows)


def test_unsafe_or_foreign_artifacts_are_refused(models: dict[str, TabularModel]) -> None:
    with pytest.raises(UnsafeArtifactError, match="not a valid skops"):
        TabularModel.from_bytes(b"not a zip file")
    with pytest.raises(UnsafeArtifactError, match="not a tabular model"):
        TabularModel.from_bytes(bytes(sio.dumps({"something": "else"})))
    with pytest.raises(UnsafeArtifactError, match="not trusted"):
        TabularModel.from_bytes(bytes(sio.dumps({"meta": "{}", "estimator": print})))


@pytest.mark.parametrize("kind", ["hgb", "regression"])
def test_fast_tree_path_equals_scikit_learn(
    kind: str, models: dict[str, TabularModel], rows: list[dict[str, object]]
) -> None:
    model = models[kind]
    odd: list[dict[str, object]] = [{}, {"plan": "never-seen"}, {"plan": "?", "age": 200}]
    raw = model.validate_rows([*rows[:300], *odd])
    if kind == "hgb":
        expected = model.estimator.decision_function(raw)
    else:
        expected = model.estimator.predict(raw)
    np.testing.assert_allclose(model.margins(raw)[:, 0], expected, rtol=0, atol=1e-12)
    big = np.repeat(raw, 8, axis=0)  # the multi-threaded path
    np.testing.assert_allclose(model.margins(big)[:, 0], np.repeat(expected, 8), atol=1e-12)
