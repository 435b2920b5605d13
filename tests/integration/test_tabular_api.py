"""Tabular models end to end, in-process, on every database: trained through the job API
on small CSVs made here (classification with costs and a time split, regression,
anomaly detection) and through ``aiweb train tabular-classification`` on German Credit;
served by ``POST /v1/models/{name}/predict`` with JSON rows and explained by
``POST /v1/models/{name}/explain``; hostile rows answered 4xx naming the row and the
column, never 5xx; the 1-1,000 rows limit."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import train_tabular
from aiweb.config import Settings
from aiweb.contract import Task
from aiweb.tabular.data import load_dataset
from aiweb.tabular.schemas import KNOWN_COLUMNS
from aiweb.tabular.task import TASK as TABULAR
from aiweb.tasks import installed
from tabular_helpers import price_rows, to_csv, train_job, upload

COUNTRIES = ["FR", "DE", "US", "BR", "NG"]


def tasks_with_tabular() -> tuple[Task, ...]:
    """The installed tasks, with the tabular task (until aiweb.tasks lists it)."""
    tasks = installed()
    return tasks if any(t.name == TABULAR.name for t in tasks) else (*tasks, TABULAR)


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(settings, tasks=tasks_with_tabular())
    with TestClient(app, headers=auth_headers) as c:
        yield c


def fraud_rows(n: int = 400, seed: int = 7) -> list[dict[str, Any]]:
    """Card payments: fraud when a large amount comes from two countries, or a new
    account pays at night (5 % of labels flipped); ``created_at`` increases."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        amount = round(rng.lognormvariate(5.0, 1.0), 2)
        country = rng.choice(COUNTRIES)
        new_account = rng.random() < 0.3
        hour = rng.randrange(24)
        fraud = (amount > 250 and country in ("BR", "NG")) or (new_account and hour < 5)
        if rng.random() < 0.05:
            fraud = not fraud
        rows.append(
            {
                "amount": "?" if rng.random() < 0.03 else amount,  # UCI's missing value
                "country": country,
                "new_account": "yes" if new_account else "no",
                "hour": hour,
                "created_at": (start + timedelta(hours=7 * i)).isoformat(),
                "fraud": "yes" if fraud else "no",
            }
        )
    return rows


def sensor_rows(n: int = 300, seed: int = 5) -> list[dict[str, Any]]:
    """Readings around (20, 50); every 30th row far away and labelled an outlier."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        outlier = i % 30 == 29
        temperature = rng.gauss(20, 1) + (40 if outlier else 0)
        humidity = rng.gauss(50, 3) - (45 if outlier else 0)
        rows.append(
            {
                "temperature": round(temperature, 2),
                "humidity": round(humidity, 2),
                "site": rng.choice(["a", "b"]),
                "is_outlier": "true" if outlier else "false",
            }
        )
    return rows


def predict(client: TestClient, name: str, rows: list[Any]) -> Any:
    return client.post(f"/v1/models/{name}/predict", json={"inputs": rows})


def check_additive(explanation: dict[str, Any]) -> None:
    total = (
        explanation["base_value"]
        + sum(c["weight"] for c in explanation["contributions"])
        + explanation["omitted"]["weight"]
    )
    assert explanation["exact"] is True
    assert math.isclose(total, explanation["logit"], rel_tol=1e-6, abs_tol=1e-6)


# ---------------------------------------------------------------- classification


@pytest.fixture
def fraud(client: TestClient) -> dict[str, Any]:
    """``fraud:1``, trained by a job with costs fp 1, fn 10 and a split by time."""
    dataset_id = upload(client, to_csv(fraud_rows()), "payments.csv")
    return train_job(
        client,
        task="tabular-classification",
        model="fraud",
        dataset_id=dataset_id,
        target="fraud",
        time_column="created_at",
        params={"costs": {"fp": 1, "fn": 10}},
    )


def test_train_job_classification_report_and_schema(
    client: TestClient, fraud: dict[str, Any]
) -> None:
    result = fraud["result"]
    assert result["model"] == "fraud"
    assert result["version"] == 1
    assert result["task"] == "tabular-classification"
    assert result["metrics"]["roc_auc"] > 0.8
    assert result["split"]["method"] == "time"
    assert 0.0 < result["threshold"] < 0.5  # a missed fraud costs 10 times a false alarm
    version = client.get("/v1/models/fraud/versions/1").json()
    report = version["evaluation"]
    kinds = {c["name"]: c["kind"] for c in report["schema"]}
    assert kinds == {
        "amount": "numeric",
        "country": "categorical",
        "new_account": "boolean",
        "hour": "numeric",
    }  # the time column orders the split and is not a feature
    assert report["split"]["train_until"] < report["split"]["test_from"]
    assert report["costs"] == {"fp": 1.0, "fn": 10.0}
    assert report["cost_curve"]
    assert report["metrics"]["expected_cost"] <= report["metrics"]["expected_cost_all_negative"]
    assert version["signature"]["inputs"]["columns"] == report["schema"]
    assert client.get("/v1/models/fraud").json()["task"] == "tabular-classification"


def test_predict_rows_at_the_costed_threshold(client: TestClient, fraud: dict[str, Any]) -> None:
    threshold = fraud["result"]["threshold"]
    rows = [
        {"amount": 900.0, "country": "NG", "new_account": "no", "hour": 14},
        {"amount": 12.5, "country": "FR", "new_account": False, "hour": 15},
        {"amount": None, "country": "DE", "new_account": "yes", "hour": 2},
        {"country": "US"},  # missing columns are missing values
        {"amount": 30, "country": "Atlantis", "new_account": True, "hour": 3},  # unseen
    ]
    r = predict(client, "fraud", rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"]) == ("fraud", 1)
    predictions = body["predictions"]
    assert len(predictions) == len(rows)
    assert len({p["id"] for p in predictions}) == len(rows)
    for p in predictions:
        assert set(p) == {"id", "label", "scores"}
        assert set(p["scores"]) == {"no", "yes"}
        assert math.isclose(sum(p["scores"].values()), 1.0, abs_tol=1e-9)
        assert p["label"] == ("yes" if p["scores"]["yes"] >= threshold else "no")
    assert predictions[0]["label"] == "yes"
    assert predictions[1]["label"] == "no"
    again = predict(client, "fraud@production", rows[:2]).json()["predictions"]
    assert [p["scores"] for p in again] == [p["scores"] for p in predictions[:2]]
    assert {p["id"] for p in again}.isdisjoint({p["id"] for p in predictions})


def test_explain_rows_exactly(client: TestClient, fraud: dict[str, Any]) -> None:
    rows = [
        {"amount": 900.0, "country": "NG", "new_account": "no", "hour": 14},
        {"amount": 20.0, "country": "FR", "new_account": "yes", "hour": 1},
    ]
    r = client.post("/v1/models/fraud/explain", json={"inputs": rows, "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"]) == ("fraud", 1)
    answers = predict(client, "fraud", rows).json()["predictions"]
    for row, explanation, answer in zip(rows, body["explanations"], answers, strict=True):
        assert explanation["method"] == "tree"
        assert explanation["label"] == answer["label"]
        assert explanation["target"] == answer["label"]
        assert len(explanation["contributions"]) == 2
        assert explanation["omitted"]["count"] == 2  # four feature columns
        for c in explanation["contributions"]:
            assert c["feature"] in row
            assert c["value"] == row[c["feature"]]
        check_additive(explanation)
    r = client.post("/v1/models/fraud/explain", json={"inputs": rows, "target": "no"})
    assert r.status_code == 200, r.text
    for explanation in r.json()["explanations"]:
        assert explanation["target"] == "no"
        check_additive(explanation)
    r = client.post("/v1/models/fraud/explain", json={"inputs": rows, "target": "maybe"})
    assert r.status_code == 422
    assert "maybe" in r.json()["detail"]


# ---------------------------------------------------------------- hostile rows

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("unknown column", {"amount": 1.0, "colour": "red"}, "colour"),
    ("word in a number", {"amount": "lots"}, "amount"),
    ("nested object", {"country": {"$gt": ""}}, "country"),
    ("nested array", {"hour": [1, 2]}, "hour"),
    ("huge number", {"amount": 1e300}, "amount"),
    ("long string", {"country": "x" * 10_001}, "country"),
    ("not a boolean", {"new_account": "perhaps"}, "new_account"),
    ("long column name", {"c" * 300: 1}, "ccc"),
]


def test_hostile_rows_are_4xx_naming_row_and_column(
    client: TestClient, fraud: dict[str, Any]
) -> None:
    good = {"amount": 10.0, "country": "FR", "new_account": "no", "hour": 12}
    for route in ("predict", "explain"):
        for what, row, column in HOSTILE:
            r = client.post(f"/v1/models/fraud/{route}", json={"inputs": [good, row]})
            assert r.status_code == 422, (route, what, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            located = [e["loc"][:3] for e in problem.get("errors", [])]
            assert column in problem["detail"], (what, problem)
            assert "row 1" in problem["detail"] or ["body", "inputs", 1] in located, problem
    raw_bodies = [
        b'{"inputs": [{"amount": NaN}]}',
        b'{"inputs": [{"amount": Infinity}]}',
        b'{"inputs": [{"amount": 1e400}]}',
        b'{"inputs": [{"country": "\\ud800"}]}',
        b'{"inputs": [{"amount": 123456789012345678901234567890}]}',
        b'{"inputs": [{"country": "a\\u0000b"}]}',
        b'{"inputs": ["a text, not a row"]}',
        b'{"inputs": [[1, 2]]}',
        b'{"inputs": {"amount": 1}}',
        b'{"rows": []}',
    ]
    for body in raw_bodies:
        r = client.post(
            "/v1/models/fraud/predict", content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        if body.startswith(b'{"inputs": [{'):  # a cell no column holds: row and column named
            assert r.status_code == 422, (body, r.text)
            column = "amount" if b"amount" in body else "country"
            assert f"inputs[0].{column}" in r.json()["detail"], (body, r.text)
            assert r.json()["errors"][0]["loc"] == ["body", "inputs", 0, column]


def test_row_limits(client: TestClient, fraud: dict[str, Any]) -> None:
    row = {"amount": 10.0, "country": "FR", "new_account": "no", "hour": 12}
    assert predict(client, "fraud", []).status_code == 422
    r = predict(client, "fraud", [row] * 1000)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1000
    r = predict(client, "fraud", [row] * 1001)
    assert r.status_code == 413, r.text
    r = client.post("/v1/models/fraud/explain", json={"inputs": [row] * 101})
    assert r.status_code == 413, r.text


def test_train_job_checks_at_submit(client: TestClient) -> None:
    dataset_id = upload(client, to_csv(fraud_rows(60)), "payments.csv")
    uploaded = {"dataset_id": dataset_id}
    bad: list[tuple[str, dict[str, Any]]] = [
        ("tabular-classification", {**uploaded, "target": "nope"}),  # not a column
        ("tabular-classification", {**uploaded, "target": "fraud", "drop": ["nope"]}),
        ("tabular-classification", {**uploaded, "target": "fraud", "time_column": "when"}),
        ("tabular-classification", {**uploaded}),  # no target
        ("tabular-classification", {**uploaded, "target": "fraud", "params": {"seed": "3"}}),
        ("tabular-classification", {**uploaded, "target": "fraud", "params": {"unknown": 1}}),
        (
            "tabular-classification",
            {**uploaded, "target": "fraud", "params": {"algorithm": "xgboost"}},
        ),
        (
            "tabular-classification",
            {**uploaded, "target": "fraud", "params": {"costs": {"fp": -1, "fn": 5}}},
        ),
        (
            "tabular-classification",
            {**uploaded, "target": "fraud", "params": {"column_types": {"nope": "numeric"}}},
        ),
        (
            "tabular-regression",
            {**uploaded, "target": "amount", "params": {"costs": {"fp": 1, "fn": 2}}},
        ),
        ("anomaly-detection", {**uploaded, "params": {"algorithm": "hgb"}}),
        ("anomaly-detection", {**uploaded, "params": {"contamination": 0.9}}),
        ("tabular-classification", {"dataset": "german_credit", "target": "nope"}),
        ("tabular-classification", {"dataset": "german_credit", "drop": ["nope"]}),
        # params' time_column is overridden by the body's, and must still be a column
        # (found by schemathesis: the schema says so)
        (
            "anomaly-detection",
            {"dataset": "adult", "time_column": "age", "params": {"time_column": "{"}},
        ),
        (
            "tabular-classification",
            {**uploaded, "target": "fraud", "time_column": "hour", "params": {"time_column": 5}},
        ),
        ("anomaly-detection", {"dataset": "wine_quality", "target": "nope"}),
        ("tabular-classification", {"dataset": "iris"}),
        ("tabular-classification", {"dataset": "german_credit", "dataset_id": dataset_id}),
    ]
    for task, extra in bad:
        r = client.post("/v1/jobs", json={"type": "train", "task": task, "model": "m", **extra})
        assert r.status_code == 422, (task, extra, r.text)
    r = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "tabular-classification",
            "model": "fraud",
            "dataset_id": "0" * 32,
            "target": "fraud",
        },
    )
    assert r.status_code == 404, r.text


# ---------------------------------------------------------------- regression, anomaly


def test_regression_job_predict_explain(client: TestClient) -> None:
    dataset_id = upload(client, to_csv(price_rows(300, 3)), "flats.csv")
    job = train_job(
        client,
        task="tabular-regression",
        model="prices",
        dataset_id=dataset_id,
        target="price",
        params={"algorithm": "linear"},
    )
    assert job["result"]["metrics"]["r2"] > 0.9
    rows = [{"size_m2": 100, "city": "paris"}, {"size_m2": 40, "city": "lille"}]
    r = predict(client, "prices", rows)
    assert r.status_code == 200, r.text
    values = [p["value"] for p in r.json()["predictions"]]
    assert all(set(p) == {"id", "value"} for p in r.json()["predictions"])
    assert abs(values[0] - (50 + 300 + 120)) < 25
    assert abs(values[1] - (50 + 120)) < 25
    r = client.post("/v1/models/prices/explain", json={"inputs": rows, "top_k": 0})
    assert r.status_code == 200, r.text
    for explanation, value in zip(r.json()["explanations"], values, strict=True):
        assert explanation["method"] == "linear"
        assert math.isclose(explanation["logit"], value, rel_tol=1e-9)
        assert {c["feature"] for c in explanation["contributions"]} == {"size_m2", "city"}
        check_additive(explanation)


def test_anomaly_job_predict(client: TestClient) -> None:
    dataset_id = upload(client, to_csv(sensor_rows()), "sensors.csv")
    job = train_job(
        client,
        task="anomaly-detection",
        model="sensors",
        dataset_id=dataset_id,
        params={"label_column": "is_outlier"},
    )
    assert job["result"]["metrics"]["roc_auc"] > 0.9
    rows = [
        {"temperature": 20.1, "humidity": 50.5, "site": "a"},
        {"temperature": 61.0, "humidity": 4.0, "site": "b"},
    ]
    r = predict(client, "sensors", rows)
    assert r.status_code == 200, r.text
    normal, odd = r.json()["predictions"]
    assert set(normal) == {"id", "score", "anomaly"}
    assert odd["score"] > normal["score"]
    assert (normal["anomaly"], odd["anomaly"]) == (False, True)
    r = client.post("/v1/models/sensors/explain", json={"inputs": rows})
    assert r.status_code == 422  # anomaly models are not explained
    assert 400 <= predict(client, "sensors", [{"is_outlier": {"a": 1}}]).status_code < 500


# ---------------------------------------------------------------- the CLI


def cli() -> typer.Typer:
    """``aiweb train`` with the tabular commands (as ``aiweb.cli`` mounts them)."""
    app = typer.Typer()
    train_app = typer.Typer()
    train_tabular.register(train_app)
    app.add_typer(train_app, name="train")
    return app


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    if settings.data_home is not None:
        monkeypatch.setenv("AIWEB_DATA_HOME", str(settings.data_home))
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def test_cli_german_credit_costs_then_serve(
    cli_env: Settings, shared_data: Path, auth_headers: dict[str, str]
) -> None:
    result = CliRunner().invoke(
        cli(),
        [
            "train",
            "tabular-classification",
            "credit",
            "--dataset",
            "german_credit",
            "--param",
            'costs={"fp": 1, "fn": 5}',
        ],
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "threshold on p(bad)" in out
    assert "expected cost per row" in out
    assert "checking_status" in out
    assert "categorical" in out
    assert "registered credit:1" in result.stderr
    row = {
        "checking_status": "A11",
        "duration_months": 6,
        "credit_history": "A34",
        "purpose": "A43",
        "credit_amount": 1169,
        "savings": "A65",
        "employment_since": "A75",
        "installment_rate": 4,
        "personal_status_sex": "A93",
        "other_debtors": "A101",
        "residence_since": 4,
        "property": "A121",
        "age": 67,
        "other_installment_plans": "A143",
        "housing": "A152",
        "existing_credits": 2,
        "job": "A173",
        "people_liable": 1,
        "telephone": "A192",
        "foreign_worker": "A201",
    }
    app = create_app(cli_env, tasks=tasks_with_tabular())
    with TestClient(app, headers=auth_headers) as client:
        version = client.get("/v1/models/credit/versions/1").json()
        threshold = version["evaluation"]["threshold"]
        assert version["lineage"]["dataset"] == "german_credit"
        r = predict(client, "credit", [row])
        assert r.status_code == 200, r.text
        (answer,) = r.json()["predictions"]
        assert answer["label"] == ("bad" if answer["scores"]["bad"] >= threshold else "good")
        r = client.post("/v1/models/credit/explain", json={"inputs": [row], "top_k": 5})
        assert r.status_code == 200, r.text
        (explanation,) = r.json()["explanations"]
        assert explanation["method"] == "tree"
        check_additive(explanation)


def test_cli_csv_file_and_errors(cli_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "flats.csv"
    path.write_bytes(to_csv(price_rows(120, 3)))
    result = CliRunner().invoke(
        cli(),
        ["train", "tabular-regression", "prices", "--data", str(path), "--target", "price"],
    )
    assert result.exit_code == 0, result.stderr
    assert "RMSE" in result.stdout
    assert "R²" in result.stdout
    for args, message in [
        (["--target", "cost"], "cost"),
        (["--target", "price", "--drop", "nope"], "nope"),
        (["--target", "price", "--param", "algorithm=forest"], "algorithm"),
        (["--target", "price", "--param", 'costs={"fp": 1, "fn": 2}'], "costs"),
    ]:
        result = CliRunner().invoke(
            cli(), ["train", "tabular-regression", "prices", "--data", str(path), *args]
        )
        assert result.exit_code == 1, (args, result.stdout)
        assert "error:" in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
    json_path = tmp_path / "sensors.jsonl"
    json_path.write_text("\n".join(json.dumps(r) for r in sensor_rows(90)))
    result = CliRunner().invoke(
        cli(), ["train", "anomaly-detection", "sensors", "--data", str(json_path)]
    )
    assert result.exit_code == 0, result.stderr
    assert "flagged share" in result.stdout


def test_dashboard_pages_show_tabular_versions(
    client: TestClient, fraud: dict[str, Any], admin_key: str
) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"csrf_token": token.group(1), "next": "/", "token": admin_key},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    for path in ("/models", "/models/fraud", "/models/fraud/versions/1", "/playground"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
    assert "fraud" in client.get("/models").text


def test_known_columns_are_the_loaders(shared_data: Path) -> None:
    for name, columns in KNOWN_COLUMNS.items():
        assert tuple(load_dataset(name, shared_data).columns) == columns, name
