"""Tabular batch predictions over HTTP, on every database: ``POST /v1/jobs`` with
``{"type": "batch-predict", "task": <tabular task>, …}`` scores an uploaded CSV or JSONL
file in chunks, and its result file (``GET /v1/jobs/{id}/result``) holds, row for row,
what ``POST /v1/models/{name}/predict`` answers for the same rows. A body without
``task`` is still text classification's; bad bodies are 4xx at submit, a row the model
refuses fails the job naming the row and the column."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aiweb.app import create_app
from aiweb.config import Settings
from tabular_helpers import price_rows, run_job, to_csv, to_jsonl, upload

# minutes of training and scoring on two databases: the e2e stage of .ci/run (make test-e2e)
pytestmark = pytest.mark.slow

#: rows per chunk in these tests: several chunks per file
CHUNK_ROWS = 16


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    jobs = settings.jobs.model_copy(update={"batch_chunk_rows": CHUNK_ROWS})
    app = create_app(settings.model_copy(update={"jobs": jobs}))
    with TestClient(app, headers=auth_headers) as c:
        yield c


def churn_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Subscribers: churn when the plan is cheap and support was called often, or the
    account is not a member (10 % of labels flipped); a few missing values."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for _ in range(n):
        monthly = round(rng.uniform(5, 80), 2)
        calls = rng.randrange(8)
        member = rng.random() < 0.6
        churn = (monthly < 30 and calls >= 3) or not member
        if rng.random() < 0.1:
            churn = not churn
        rows.append(
            {
                "monthly": "?" if rng.random() < 0.05 else monthly,
                "calls": calls,
                "plan": rng.choice(["basic", "plus", "pro"]),
                "member": "yes" if member else "no",
                "signup": (start + timedelta(hours=rng.randrange(20000))).isoformat(),
                "churn": "yes" if churn else "no",
            }
        )
    return rows


def sensor_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Readings around (20, 50); every 25th row far away."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        odd = i % 25 == 24
        rows.append(
            {
                "temperature": round(rng.gauss(20, 1) + (40 if odd else 0), 2),
                "humidity": round(rng.gauss(50, 3) - (45 if odd else 0), 2),
                "site": rng.choice(["a", "b"]),
            }
        )
    return rows


#: task -> (model name, rows maker, training target, the model's input columns)
CASES: dict[str, tuple[str, Any, str | None, tuple[str, ...]]] = {
    "tabular-classification": (
        "churn",
        churn_rows,
        "churn",
        ("monthly", "calls", "plan", "member", "signup"),
    ),
    "tabular-regression": ("prices", price_rows, "price", ("size_m2", "city")),
    "anomaly-detection": ("sensors", sensor_rows, None, ("temperature", "humidity", "site")),
}


#: task -> a categorical input column
UNSEEN = {
    "tabular-classification": "plan",
    "tabular-regression": "city",
    "anomaly-detection": "site",
}


def train(client: TestClient, task: str) -> str:
    """Train the case's model through a job on 200 rows; its name."""
    name, make_rows, target, _ = CASES[task]
    dataset_id = upload(client, to_csv(make_rows(200, 1)), f"{name}.csv")
    body: dict[str, Any] = {"type": "train", "task": task, "model": name, "dataset_id": dataset_id}
    if target is not None:
        body["target"] = target
    job = run_job(client, body)
    assert job["status"] == "succeeded", job
    return name


def batch(client: TestClient, task: str, model: str, dataset_id: str) -> dict[str, Any]:
    body = {"type": "batch-predict", "task": task, "model": model, "dataset_id": dataset_id}
    return run_job(client, body)


def result_rows(client: TestClient, job: dict[str, Any]) -> list[dict[str, str]]:
    assert job["links"]["result"] == f"/v1/jobs/{job['id']}/result"
    r = client.get(job["links"]["result"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert len(r.content) == job["result"]["size_bytes"]
    return list(csv.DictReader(io.StringIO(r.text)))


def assert_same_answers(
    out: list[dict[str, str]], predictions: list[dict[str, Any]], task: str
) -> None:
    """The batch file's rows are the predict route's answers (probabilities and anomaly
    scores written with 6 decimals, regression values in full)."""
    assert len(out) == len(predictions)
    for line, answer in zip(out, predictions, strict=True):
        if task == "tabular-classification":
            assert line["label"] == answer["label"]
            assert set(line) == {"id", "label", *(f"score_{c}" for c in answer["scores"])}
            for cls, p in answer["scores"].items():
                assert float(line[f"score_{cls}"]) == round(p, 6)
        elif task == "tabular-regression":
            assert set(line) == {"id", "value"}
            assert float(line["value"]) == answer["value"]
        else:
            assert set(line) == {"id", "score", "anomaly"}
            assert float(line["score"]) == round(answer["score"], 6)
            assert line["anomaly"] == ("true" if answer["anomaly"] else "false")


@pytest.mark.parametrize("task", list(CASES))
def test_batch_csv_equals_the_predict_route(client: TestClient, task: str) -> None:
    _, make_rows, _, inputs = CASES[task]
    model = train(client, task)
    rows = make_rows(50, 2)
    rows[3][UNSEEN[task]] = "never seen"  # a category training did not see
    rows[4][inputs[0]] = ""  # a missing value
    # an id column, a column the model does not know and the target: none is an input
    scored = [{"id": f"r-{i}", **row, "comment": "hello, world"} for i, row in enumerate(rows)]
    dataset_id = upload(client, to_csv(scored), "to-score.csv")

    job = batch(client, task, model, dataset_id)
    assert job["status"] == "succeeded", job
    assert job["params"]["model_version"] == 1  # pinned at submit
    assert job["params"]["task"] == task
    assert job["progress"] == 1.0
    result = job["result"]
    assert result["rows"] == 50
    assert result["format"] == "csv"
    assert (result["model"], result["version"], result["task"]) == (model, 1, task)
    assert result["missing_columns"] == []
    out = result_rows(client, job)
    assert list(out[0]) == result["columns"]
    assert [line["id"] for line in out] == [f"r-{i}" for i in range(50)]

    # the same rows, as JSON, through the predict route
    answers = client.post(
        f"/v1/models/{model}/predict",
        json={"inputs": [{c: row[c] for c in inputs} for row in rows]},
    )
    assert answers.status_code == 200, answers.text
    assert_same_answers(out, answers.json()["predictions"], task)


def test_batch_jsonl_is_scored_as_the_same_json_rows(client: TestClient) -> None:
    task = "tabular-classification"
    model = train(client, task)
    rows: list[dict[str, Any]] = [
        {k: v for k, v in row.items() if k != "churn"} for row in churn_rows(40, 3)
    ]
    for row in rows[::3]:  # JSON types: a boolean, a number of Unix seconds, a null
        row["member"] = row["member"] == "yes"
        row["signup"] = datetime.fromisoformat(row["signup"]).timestamp()
        row["plan"] = None
    del rows[5]["calls"]  # a key left out: a missing value
    dataset_id = upload(client, to_jsonl(rows), "to-score.jsonl")

    job = batch(client, task, model, dataset_id)
    assert job["status"] == "succeeded", job
    out = result_rows(client, job)
    assert [line["id"] for line in out] == [str(i) for i in range(1, 41)]  # row numbers
    answers = client.post(f"/v1/models/{model}/predict", json={"inputs": rows})
    assert answers.status_code == 200, answers.text
    assert_same_answers(out, answers.json()["predictions"], task)


def test_a_column_the_file_lacks_is_missing_in_every_row(client: TestClient) -> None:
    task = "tabular-regression"
    model = train(client, task)
    rows = [{"size_m2": row["size_m2"]} for row in price_rows(20, 4)]
    dataset_id = upload(client, to_csv(rows), "sizes.csv")
    job = batch(client, task, model, dataset_id)
    assert job["status"] == "succeeded", job
    assert job["result"]["missing_columns"] == ["city"]
    answers = client.post(f"/v1/models/{model}/predict", json={"inputs": rows})
    assert_same_answers(result_rows(client, job), answers.json()["predictions"], task)


def test_a_refused_row_fails_the_job_naming_row_and_column(client: TestClient) -> None:
    task = "tabular-classification"
    model = train(client, task)
    rows = churn_rows(40, 5)
    rows[36]["monthly"] = "lots"  # the third chunk: earlier chunks were scored already
    dataset_id = upload(client, to_csv(rows), "bad.csv")
    job = batch(client, task, model, dataset_id)
    assert job["status"] == "failed", job
    assert "bad.csv: row 37, column 'monthly': expected a number, got 'lots'" in job["error"]
    assert "result" not in job["links"]
    assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 409


def test_bad_bodies_are_refused_at_submit(client: TestClient) -> None:
    model = train(client, "tabular-classification")
    dataset_id = upload(client, to_csv(churn_rows(10, 6)), "ok.csv")
    other_id = upload(client, b"text,label\nhello,a\n", "texts.csv")
    base = {"type": "batch-predict", "model": model, "dataset_id": dataset_id}
    cases: list[tuple[dict[str, Any], int, str]] = [
        # the model is of another tabular task: the body names the right one
        (
            {**base, "task": "tabular-regression"},
            409,
            "needs a ready 'tabular-regression' model (send \\\"task\\\": "
            '\\"tabular-classification\\")',
        ),
        # no task: text classification's batch prediction, as before
        (base, 409, "needs a ready text-classification model"),
        ({**base, "task": "translation"}, 422, "batch_predict_task"),
        ({**base, "task": "tabular-classification", "text_column": "x"}, 422, "text_column"),
        ({**base, "task": "tabular-classification", "model": "ghost"}, 404, "ghost"),
        ({**base, "task": "tabular-classification", "dataset_id": "nope"}, 404, "'nope'"),
        (
            {**base, "task": "tabular-classification", "dataset_id": other_id},
            422,
            "none of the input columns of churn:1",
        ),
    ]
    before = client.get("/v1/jobs").json()["total"]
    for body, status, needle in cases:
        r = client.post("/v1/jobs", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert needle in json.dumps(r.json()), (needle, r.text)
    assert client.get("/v1/jobs").json()["total"] == before


def test_the_result_file_is_read_as_numbers(client: TestClient) -> None:
    """Probabilities of a row sum to 1; ids without an id column are row numbers."""
    task = "tabular-classification"
    model = train(client, task)
    rows = [{k: v for k, v in r.items() if k != "churn"} for r in churn_rows(20, 7)]
    job = batch(client, task, model, upload(client, to_csv(rows), "plain.csv"))
    out = result_rows(client, job)
    assert [line["id"] for line in out] == [str(i) for i in range(1, 21)]
    for line in out:
        total = sum(float(v) for k, v in line.items() if k.startswith("score_"))
        assert math.isclose(total, 1.0, abs_tol=1e-5)
