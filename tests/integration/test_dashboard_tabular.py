"""The dashboard on tabular models, over HTTP (no browser; the Chromium check is
``test_dashboard_tabular_browser.py``): a version's page carries the report's charts as
``data-spec`` JSON (classification: calibration curve, cost curve with the chosen
threshold, the confusion matrix at that threshold; regression: residual plot; anomaly
detection: the score histogram); the playground scores a JSON row and shows a waterfall
of the columns' contributions that adds up to the model's margin. Models are trained
here, on small synthetic CSV rows, by :func:`aiweb.tabular.training.train_tabular`. On
every database."""

from __future__ import annotations

import html
import json
import random
import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.dashboard import views
from aiweb.dashboard.web import templates
from aiweb.tabular.training import TabularTrainingData, build_params, train_tabular
from conftest import create_key

# rendering; the registry and predictions on PostgreSQL are tested by the tabular API tests: its
# PostgreSQL variant would add nothing (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
SPEC_RE = re.compile(r"<canvas id=\"([\w-]+)\" data-spec='([^']*)'")
LOAN = {"amount": 4200.0, "months": 48, "purpose": "car", "owner": "no"}


def loan_rows(n: int = 300, seed: int = 11) -> list[dict[str, Any]]:
    """Loans: default ("bad") more likely when the amount is large, the term long and the
    borrower owns no home (a noisy logistic rule)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        amount = round(rng.lognormvariate(8.0, 0.6), 2)
        months = rng.choice([6, 12, 24, 36, 48, 60])
        owner = rng.random() < 0.5
        purpose = rng.choice(["car", "house", "education", "other"])
        risk = 0.0004 * amount + 0.03 * months - (1.0 if owner else 0.0) - 2.2
        bad = rng.random() < 1 / (1 + pow(2.718281828, -risk))
        rows.append(
            {
                "amount": amount,
                "months": months,
                "purpose": purpose,
                "owner": "yes" if owner else "no",
                "risk": "bad" if bad else "good",
            }
        )
    return rows


def price_rows(n: int = 200, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        size = rng.randint(20, 150)
        city = rng.choice(["paris", "lyon"])
        price = 50 + 3.0 * size + (120 if city == "paris" else 0) + rng.gauss(0, 10)
        rows.append({"size_m2": size, "city": city, "price": round(price, 1)})
    return rows


def sensor_rows(n: int = 200, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        outlier = i % 30 == 29
        rows.append(
            {
                "temperature": round(rng.gauss(20, 1) + (40 if outlier else 0), 2),
                "humidity": round(rng.gauss(50, 3) - (45 if outlier else 0), 2),
            }
        )
    return rows


def train_all(settings: Settings) -> None:
    """``loans`` (classification, costs fp 1 / fn 5), ``prices`` (regression),
    ``sensors`` (anomaly detection): version 1 of each, in production."""
    registry, engine = open_registry(settings)
    try:
        for name, task, rows, target, params in (
            ("loans", "tabular-classification", loan_rows(), "risk",
             {"costs": {"fp": 1, "fn": 5}, "positive_class": "bad"}),
            ("prices", "tabular-regression", price_rows(), "price", {}),
            ("sensors", "anomaly-detection", sensor_rows(), None, {}),
        ):  # fmt: skip
            data = TabularTrainingData(name=f"{name}.csv", rows=rows, sha256="0" * 64)
            train_tabular(
                registry,
                name,
                task,
                data,
                target=target,
                params=build_params(task, params=params),
                alias="production",
                actor="tests",
            )
    finally:
        engine.dispose()


@pytest.fixture
def dash(settings: Settings) -> Iterator[TestClient]:
    """A logged-in dashboard client on an app serving the three trained models."""
    key = create_key(settings, ("admin",), name="boss")
    train_all(settings)
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver") as client:
        login = client.get("/login")
        token = CSRF_RE.search(login.text)
        assert token
        r = client.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": key},
            follow_redirects=False,
        )
        assert r.status_code == 303
        yield client


def specs(page: str) -> dict[str, dict[str, Any]]:
    """The charts of a page: canvas id -> its data-spec JSON."""
    return {cid: json.loads(html.unescape(spec)) for cid, spec in SPEC_RE.findall(page)}


def test_classification_page_draws_calibration_cost_and_confusion(
    dash: TestClient,
) -> None:
    r = dash.get("/models/loans/versions/1")
    assert r.status_code == 200
    page = r.text
    charts = specs(page)
    assert {"chart-calibration", "chart-cost"} <= set(charts)
    registry, engine = open_registry(dash.app.state.settings)  # type: ignore[attr-defined]
    try:
        report = registry.get_version("loans", 1).evaluation
    finally:
        engine.dispose()
    calibration = report["metrics"]["calibration"]
    model_curve = charts["chart-calibration"]["series"][0]["points"]
    assert [p[0] for p in model_curve] == pytest.approx(calibration["prob_pred"], abs=1e-6)
    assert [p[1] for p in model_curve] == pytest.approx(calibration["prob_true"], abs=1e-6)
    assert charts["chart-calibration"]["series"][1]["points"] == [[0, 0], [1, 1]]
    cost = charts["chart-cost"]["series"]
    assert len(cost[0]["points"]) == len(report["cost_curve"]) == 101
    assert [p[1] for p in cost[0]["points"]] == pytest.approx(
        [c["cost"] for c in report["cost_curve"]], abs=1e-6
    )
    threshold = report["threshold"]
    assert {p[0] for p in cost[1]["points"]} == {threshold}  # the vertical line
    assert f"chosen threshold {threshold:.2f}" in cost[1]["name"]
    # the confusion matrix at the chosen threshold, as the report has it
    table = re.search(r'<table class="heatmap" id="confusion">(.*?)</table>', page, re.S)
    assert table
    cells = [int(c) for c in re.findall(r'<td class="heat-\d"[^>]*>(\d+)</td>', table.group(1))]
    matrix = report["metrics"]["confusion_matrix"]["matrix"]
    assert cells == [c for row in matrix for c in row]
    assert f"at the threshold {threshold:.2f}" in page
    assert 'id="expected-cost"' in page
    assert "style=" not in page  # CSP: classes only


def test_regression_page_draws_residuals(dash: TestClient) -> None:
    page = dash.get("/models/prices/versions/1").text
    charts = specs(page)
    assert set(charts) == {"chart-residuals"}
    points = charts["chart-residuals"]["series"][0]["points"]
    assert 0 < len(points) <= 200
    assert "RMSE" in page
    assert "R²" in page
    registry, engine = open_registry(dash.app.state.settings)  # type: ignore[attr-defined]
    try:
        residuals = registry.get_version("prices", 1).evaluation["metrics"]["residuals"]
    finally:
        engine.dispose()
    assert points == [
        [pytest.approx(r["predicted"], abs=1e-5), pytest.approx(r["residual"], abs=1e-5)]
        for r in residuals
    ]


def test_anomaly_page_draws_the_score_distribution(dash: TestClient) -> None:
    page = dash.get("/models/sensors/versions/1").text
    charts = specs(page)
    assert set(charts) == {"chart-scores"}
    spec = charts["chart-scores"]
    registry, engine = open_registry(dash.app.state.settings)  # type: ignore[attr-defined]
    try:
        report = registry.get_version("sensors", 1).evaluation
    finally:
        engine.dispose()
    histogram = report["metrics"]["histogram"]
    assert spec["series"][0]["values"] == histogram["counts"]
    middles = [(a + b) / 2 for a, b in pairwise(histogram["edges"])]
    assert spec["colours"] == ["#dc2626" if m > report["threshold"] else "#2563eb" for m in middles]
    assert sum(histogram["counts"]) == report["metrics"]["n"]


def test_text_classifier_pages_are_unchanged_by_the_tabular_report() -> None:
    assert views.tabular_report("text-classification", {"accuracy": 0.9}) is None


def check_waterfall(body: str) -> None:
    """The waterfall's chart and table agree with each other and add up to the margin."""
    charts = specs(body)
    assert set(charts) == {"waterfall"}
    spec = charts["waterfall"]
    assert spec["type"] == "waterfall"
    labels, ranges = spec["labels"], spec["ranges"]
    assert labels[0] == "base value"
    assert labels[-1] == "margin"
    # each step starts where the one before ended, and the last ends at the margin
    assert ranges[1][0] == pytest.approx(ranges[0][1], abs=1e-5)
    for before, step in pairwise(ranges[1:-1]):
        assert step[0] == pytest.approx(before[1], abs=1e-5)
    assert ranges[-2][1] == pytest.approx(ranges[-1][1], abs=1e-5)
    weights = [float(w) for w in re.findall(r'<tr data-weight="([^"]+)">', body)]
    assert len(weights) == len(labels) - 2
    assert [r[1] - r[0] for r in ranges[1:-1]] == pytest.approx(weights, abs=1e-5)
    assert "style=" not in body


def answer(client: TestClient, model: str, row: str, target: str | None = None) -> Any:
    """:func:`views.tabular_answer` on the app's own tabular service, on the app's loop."""
    service = client.app.state.tabular  # type: ignore[attr-defined]
    assert client.portal is not None
    return client.portal.call(views.tabular_answer, service, model, row, target)


def test_tabular_answer_explains_a_row_as_a_waterfall(dash: TestClient) -> None:
    """The playground's answer to a row, rendered by its fragment template."""
    result = answer(dash, "loans", json.dumps(LOAN))
    assert result["ok"]
    assert result["version"] == 1
    assert result["ref"] == "loans:1"
    w = result["waterfall"]
    assert w["exact"]
    assert w["sum_ok"]
    assert {s["feature"] for s in w["steps"]} == set(LOAN)
    assert w["base_value"] + sum(s["weight"] for s in w["steps"]) == pytest.approx(w["logit"])
    body = templates.get_template("_explanation.html").render(explanation=result, csrf="t")
    check_waterfall(body)
    assert 'data-kind="tabular"' in body
    assert 'data-exact="true"' in body
    assert f'Answer <span class="label-out">{result["prediction"]["label"]}</span>' in body
    # regression: weights in the target's units; anomaly: scored, not explained
    price = answer(dash, "prices", '{"size_m2": 80, "city": "paris"}')
    assert price["waterfall"]["logit"] == pytest.approx(price["prediction"]["value"])
    sensor = answer(dash, "sensors", '[{"temperature": 60, "humidity": 4}]')
    assert sensor["waterfall"] is None
    assert sensor["prediction"]["anomaly"] is True
    body = templates.get_template("_explanation.html").render(explanation=sensor, csrf="t")
    assert "not explained" in body
    assert ">anomaly<" in body


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "one row as a JSON object"),
        ("", "Type a row"),
    ],
)
def test_tabular_answer_refuses_what_is_not_one_json_row(
    dash: TestClient, row: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        answer(dash, "loans", row)


def csrf(client: TestClient) -> str:
    match = CSRF_RE.search(client.get("/playground").text)
    assert match
    return match.group(1)


def test_playground_lists_tabular_models_with_an_example_row(dash: TestClient) -> None:
    page = dash.get("/playground?model=prices").text
    assert 'id="tabular-form"' in page
    for name in ("loans", "prices", "sensors"):
        assert f'<option value="{name}" data-example=' in page
    area = re.search(r'<textarea name="row" id="tabular-row"[^>]*>([^<]*)</textarea>', page)
    assert area
    assert json.loads(html.unescape(area.group(1))) == {"size_m2": None, "city": None}


def test_playground_scores_a_json_row_and_draws_a_waterfall(dash: TestClient) -> None:
    r = dash.post(
        "/playground/tabular",
        data={"csrf_token": csrf(dash), "model": "loans", "row": json.dumps(LOAN)},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    assert "<html" not in r.text  # the fragment only
    check_waterfall(r.text)
    # another class: the margin of "good" is the negated margin of "bad"
    first = specs(r.text)["waterfall"]["ranges"][-1][1]
    other = "good" if 'value="bad" selected' in r.text else "bad"
    r2 = dash.post(
        "/playground/tabular",
        data={
            "csrf_token": csrf(dash),
            "model": "loans:1",
            "row": json.dumps(LOAN),
            "target": other,
        },
        headers={"HX-Request": "true"},
    )
    assert specs(r2.text)["waterfall"]["ranges"][-1][1] == pytest.approx(-first, abs=1e-5)
    # without JavaScript: the whole page, the row kept in the form
    page = dash.post(
        "/playground/tabular",
        data={
            "csrf_token": csrf(dash),
            "model": "prices",
            "row": '{"size_m2": 90, "city": "lyon"}',
        },
    )
    assert page.status_code == 200
    assert "<html" in page.text
    check_waterfall(page.text)
    assert "Predicted value" in page.text


@pytest.mark.parametrize(
    ("row", "status", "words"),
    [
        ('{"amount": "lots"}', 422, "amount"),
        ('{"colour": "red"}', 422, "colour"),
        ("{oops", 422, "not JSON"),
    ],
)
def test_playground_says_what_is_wrong_with_a_row(
    dash: TestClient, row: str, status: int, words: str
) -> None:
    data = {"csrf_token": csrf(dash), "model": "loans", "row": row}
    r = dash.post("/playground/tabular", data=data, headers={"HX-Request": "true"})
    assert r.status_code == 200  # htmx swaps 2xx only
    assert 'role="alert"' in r.text
    assert words in html.unescape(r.text)
    page = dash.post("/playground/tabular", data=data)
    assert page.status_code == status


def test_playground_tabular_checks_csrf(dash: TestClient) -> None:
    r = dash.post("/playground/tabular", data={"model": "loans", "row": json.dumps(LOAN)})
    assert r.status_code == 403
