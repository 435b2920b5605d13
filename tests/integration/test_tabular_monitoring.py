"""The life cycle of tabular models after training, on every database: drift per column
(PSI with the shares of missing values and unseen categories) in the drift API, feedback
that is a label (live accuracy) or a value (live RMSE and MAE), promotion of a second
version, and a batch job against the promoted one."""

from __future__ import annotations

import html
import json
import math
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.orm import SqlPrediction
from aiweb.db.session import make_engine
from tabular_helpers import price_rows, run_job, to_csv, train_job, upload

COUNTRIES = ["FR", "DE", "US", "BR", "NG"]


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def payments(n: int, seed: int) -> list[dict[str, Any]]:
    """Card payments; fraud when a large amount comes from two countries, or a new
    account pays at night (5 % of labels flipped); 3 % of amounts missing."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        amount = round(rng.lognormvariate(5.0, 1.0), 2)
        country = rng.choice(COUNTRIES)
        new_account = rng.random() < 0.3
        hour = rng.randrange(24)
        fraud = (amount > 250 and country in ("BR", "NG")) or (new_account and hour < 5)
        if rng.random() < 0.05:
            fraud = not fraud
        rows.append(
            {
                "amount": "" if rng.random() < 0.03 else amount,
                "country": country,
                "new_account": "yes" if new_account else "no",
                "hour": hour,
                "fraud": "yes" if fraud else "no",
            }
        )
    return rows


def live(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as an app sends them: no label, no missing-value token."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "fraud"}
        if row["amount"] == "":
            row["amount"] = None
        out.append(row)
    return out


def drift_of(client: TestClient, ref: str) -> dict[str, Any]:
    """The drift answer of ``ref``'s last hour, its features by name (the prediction
    log written first)."""
    client.app.state.prediction_logger.flush()  # type: ignore[attr-defined]
    r = client.get(f"/v1/models/{ref}/drift", params={"window": "1h"})
    assert r.status_code == 200, r.text
    return {"n": r.json()["n"], "drift": r.json()["drift"]} | {
        f["name"]: f for f in r.json()["features"]
    }


def test_drift_per_column_feedback_promotion_and_batch(
    client: TestClient, settings: Settings, admin_key: str
) -> None:
    dataset_id = upload(client, to_csv(payments(2000, 1)), "payments.csv")
    train_job(
        client,
        task="tabular-classification",
        model="fraud",
        dataset_id=dataset_id,
        target="fraud",
    )

    # traffic like the training data: judged (n >= 200), and no column drifts
    same = live(payments(300, 2))
    answers = [p for i in range(0, 300, 100) for p in predict(client, "fraud", same[i : i + 100])]
    calm = drift_of(client, "fraud")
    assert calm["n"] == 300
    for column in ("amount", "country", "new_account", "hour"):
        assert calm[column]["statistic"] == "psi"
        assert calm[column]["value"] < 0.1, calm[column]
        assert calm[column]["drift"] is False
    assert calm["drift"] is False, calm["predicted_label"]
    assert calm["predicted_label"]["drift"] is False
    country = calm["country"]
    assert country["kind"] == "categorical"
    assert country["bins"][-3:] == ["other", "unseen", "missing"]
    assert sorted(country["bins"][:-3]) == sorted(COUNTRIES)
    assert math.isclose(sum(country["live"]), 1.0)
    assert math.isclose(sum(country["reference"]), 1)
    assert country["unseen_share"] == {"reference": 0.0, "live": 0.0}
    assert 0.0 < calm["amount"]["missing_share"]["reference"] < 0.1

    # the prediction log keeps bins, never values
    engine = make_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        logged = conn.execute(select(SqlPrediction.drift_bins).limit(50)).scalars().all()
    engine.dispose()
    assert len(logged) == 50
    for bins in logged:
        assert bins is not None
        assert set(bins) == {"amount", "country", "new_account", "hour"}
        assert all(isinstance(v, int) for v in bins.values())

    # amounts ten times larger, half the countries never seen, a third of new_account
    # missing: those three columns drift, hour does not
    shifted = live(payments(300, 3))
    for i, row in enumerate(shifted):
        row["amount"] = None if row["amount"] is None else row["amount"] * 10
        if i % 2 == 0:
            row["country"] = "JP"
        if i % 3 == 0:
            del row["new_account"]
    client.put("/v1/models/fraud/aliases/production", json={"version": 1})
    for i in range(0, 300, 100):
        predict(client, "fraud", shifted[i : i + 100])
    moved = drift_of(client, "fraud")
    assert moved["n"] == 600
    assert moved["drift"] is True
    assert moved["amount"]["drift"] is True
    assert moved["country"]["drift"] is True
    assert moved["country"]["unseen_share"]["live"] == pytest.approx(150 / 600)
    assert moved["new_account"]["drift"] is True  # missing values it never had
    assert moved["new_account"]["bins"] == ["false", "true", "other", "unseen", "missing"]
    assert moved["new_account"]["missing_share"]["live"] == pytest.approx(100 / 600)
    assert moved["hour"]["drift"] is False

    # the dashboard's model page: the drift table with missing and unseen shares, and
    # the bins of the largest shifts, reference against live
    page = dashboard_page(client, admin_key, "/models/fraud")
    assert "Missing (ref → live)" in page
    charts = dict(SPEC_RE.findall(page))
    first = json.loads(html.unescape(charts["drift-bins-1"]))
    assert first["labels"][-1] == "missing"
    assert [s["name"] for s in first["series"]] == ["reference", "live"]
    assert "bin shares of" in first["title"]

    # feedback with the true label: live accuracy
    truth = [row["fraud"] for row in payments(300, 2)][:40]
    for answer, label in zip(answers[:40], truth, strict=True):
        r = client.post(f"/v1/predictions/{answer['id']}/feedback", json={"label": label})
        assert r.status_code == 201, r.text
        assert r.json()["correct"] is (label == answer["label"])
    expected = sum(a["label"] == t for a, t in zip(answers, truth, strict=False)) / 40
    windows = client.get("/v1/models/fraud/versions/1/performance").json()["windows"]
    assert windows["1h"]["n"] == 40
    assert windows["1h"]["accuracy"] == pytest.approx(expected)
    assert windows["1h"]["rmse"] is None
    r = client.post(f"/v1/predictions/{answers[0]['id']}/feedback", json={"value": 1.0})
    assert r.status_code == 422
    assert "label" in r.json()["detail"]

    # a second version, promoted: drift follows the alias; a batch job scores with it
    train_job(
        client,
        task="tabular-classification",
        model="fraud",
        dataset_id=dataset_id,
        target="fraud",
        params={"costs": {"fp": 1, "fn": 5}},
    )
    r = client.put("/v1/models/fraud/aliases/production", json={"version": 2})
    assert r.status_code == 200, r.text
    assert drift_of(client, "fraud")["n"] == 0
    assert drift_of(client, "fraud:1")["n"] == 600
    batch_id = upload(client, to_csv(live(payments(30, 4))), "batch.csv")
    job = run_job(
        client,
        {
            "type": "batch-predict",
            "task": "tabular-classification",
            "model": "fraud",
            "dataset_id": batch_id,
        },
    )
    assert job["status"] == "succeeded", job
    assert (job["result"]["rows"], job["result"]["version"]) == (30, 2)


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
SPEC_RE = re.compile(r"<canvas id=\"([\w-]+)\" data-spec='([^']*)'")


def dashboard_page(client: TestClient, key: str, path: str) -> str:
    """The HTML of a dashboard page, logged in with the API key ``key``."""
    with TestClient(client.app, base_url="http://testserver") as browser:
        token = CSRF_RE.search(browser.get("/login").text)
        assert token
        r = browser.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": key},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        page = browser.get(path)
        assert page.status_code == 200, page.text
        return page.text


def predict(client: TestClient, name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = client.post(f"/v1/models/{name}/predict", json={"inputs": rows})
    assert r.status_code == 200, r.text
    answers: list[dict[str, Any]] = r.json()["predictions"]
    return answers


def test_regression_feedback_is_a_value_and_gives_live_rmse(
    client: TestClient, admin_key: str
) -> None:
    dataset_id = upload(client, to_csv(price_rows(400, 1)), "prices.csv")
    train_job(
        client, task="tabular-regression", model="price", dataset_id=dataset_id, target="price"
    )
    rows = price_rows(20, 2)
    answers = predict(client, "price", [{k: v for k, v in r.items() if k != "price"} for r in rows])
    for answer, row in zip(answers, rows, strict=True):
        r = client.post(f"/v1/predictions/{answer['id']}/feedback", json={"value": row["price"]})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["value"] == row["price"]
        assert body["predicted_value"] == answer["value"]
        assert body["correct"] is None
    errors = [row["price"] - a["value"] for a, row in zip(answers, rows, strict=True)]
    windows = client.get("/v1/models/price/versions/1/performance").json()["windows"]
    assert windows["24h"]["n"] == 20
    assert windows["24h"]["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 20))
    assert windows["24h"]["mae"] == pytest.approx(sum(abs(e) for e in errors) / 20)
    assert windows["24h"]["accuracy"] is None
    assert 0 < windows["24h"]["rmse"] < 30  # noise sd 10
    page = dashboard_page(client, admin_key, "/models/price")
    assert "<th>RMSE</th>" in page
    assert "Daily accuracy" not in page
    assert f"{windows['24h']['rmse']:.4f}" in page

    pid = answers[0]["id"]
    for body in ({"label": "expensive"}, {"label": "x", "value": 1.0}, {}):
        r = client.post(f"/v1/predictions/{pid}/feedback", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for raw in (b'{"value": NaN}', b'{"value": 1e400}', b'{"value": "twelve"}'):
        r = client.post(
            f"/v1/predictions/{pid}/feedback",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.text)

    # the predicted value is a drift feature of its own
    drift = {f["name"]: f for f in client.get("/v1/models/price/drift").json()["features"]}
    assert {"size_m2", "city", "prediction"} <= set(drift)
    assert "predicted_label" not in drift


def test_anomaly_feedback_is_anomaly_or_normal(client: TestClient) -> None:
    rng = random.Random(5)
    rows = [
        {"temperature": round(rng.gauss(20, 1), 2), "humidity": round(rng.gauss(50, 3), 2)}
        for _ in range(300)
    ]
    dataset_id = upload(client, to_csv(rows), "sensors.csv")
    train_job(client, task="anomaly-detection", model="sensors", dataset_id=dataset_id)
    answers = predict(client, "sensors", [{"temperature": 60.0, "humidity": 5.0}, rows[0]])
    assert answers[0]["anomaly"] is True
    for answer, label in zip(answers, ("anomaly", "anomaly"), strict=True):
        r = client.post(f"/v1/predictions/{answer['id']}/feedback", json={"label": label})
        assert r.status_code == 201, r.text
    r = client.post(f"/v1/predictions/{answers[0]['id']}/feedback", json={"label": "weird"})
    assert r.status_code == 422
    windows = client.get("/v1/models/sensors/versions/1/performance").json()["windows"]
    expected = (1 + (answers[1]["anomaly"] is True)) / 2
    assert windows["1h"] == {
        "n": 2,
        "accuracy": expected,
        "macro_f1": windows["1h"]["macro_f1"],
        "rmse": None,
        "mae": None,
    }
