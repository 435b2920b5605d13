"""Token-classification training jobs on uploaded JSONL span files (``POST /v1/datasets``
with ``{"text", "spans": [{"start", "end", "label"}]}`` lines: dataset format ``spans``):
the upload's checks (a 422 naming the line), the job's report and model, what only the job
checks (a span given twice), and the jobs that read records refusing such a dataset at
submit. On every database (the ``settings`` fixture)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aiweb.app import create_app
from aiweb.config import Settings
from tabular_helpers import run_job

SKILLS = ["python", "java", "sql", "docker", "kubernetes", "react", "excel", "spark", "rust"]
CITIES = ["paris", "berlin", "madrid", "rome", "oslo", "lisbon", "vienna", "prague", "dublin"]
VERBS = ["use", "teach", "love", "learned", "need"]


def example(rng: random.Random) -> dict[str, Any]:
    """A line of a spans file: a skill (``Skill``) and a city (``City``) in a short
    sentence, or a sentence without either (offsets computed as the text is built)."""
    if rng.random() < 0.15:
        return {"text": "nothing to report today", "spans": []}
    skill, city = rng.choice(SKILLS), rng.choice(CITIES)
    if rng.random() < 0.5:
        parts = ["I ", rng.choice(VERBS), " ", (skill, "Skill"), " in ", (city, "City"), " daily"]
    else:
        parts = ["In ", (city, "City"), " we ", rng.choice(VERBS), " ", (skill, "Skill"), " now"]
    text, spans = "", []
    for part in parts:
        if isinstance(part, tuple):
            word, label = part
            spans.append({"start": len(text), "end": len(text) + len(word), "label": label})
            text += word
        else:
            text += part
    return {"text": text, "spans": spans}


def spans_file(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return "".join(json.dumps(example(rng)) + "\n" for _ in range(n)).encode()


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def upload(client: TestClient, name: str, content: bytes) -> dict[str, Any]:
    r = client.post("/v1/datasets", files={"file": (name, content, "application/octet-stream")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_train_job_on_uploaded_spans_files_scores_per_label_then_serves(
    client: TestClient,
) -> None:
    train = upload(client, "skills-train.jsonl", spans_file(160, seed=1))
    assert (train["format"], train["rows"], train["columns"]) == ("spans", 160, ["text", "spans"])
    held = upload(client, "skills-eval.ndjson", spans_file(40, seed=2))
    assert client.get(f"/v1/datasets/{held['id']}").json()["format"] == "spans"
    body = {
        "type": "train",
        "task": "token-classification",
        "model": "skills",
        "dataset_id": train["id"],
        "eval_dataset_id": held["id"],
        "params": {"epochs": 6},
    }
    job = run_job(client, body)
    assert job["status"] == "succeeded", job
    result: dict[str, Any] = job["result"]
    assert result["evaluated_on"] == "test"
    assert result["metrics"]["micro_f1"] >= 0.9, result  # the sentences are easy
    version = client.get("/v1/models/skills/versions/1").json()
    assert version["labels"] == ["City", "Skill"]
    report = version["evaluation"]
    assert report["examples"] == {"train": 160, "dev": 0, "test": 40}
    per_label = report["model"]["report"]["per_type"]
    assert set(per_label) == {"City", "Skill"}
    for label, scores in per_label.items():
        assert scores["support"] > 0, label
        assert scores["f1"] >= 0.8, (label, scores)
    assert version["lineage"]["dataset"] == "skills-train.jsonl"
    assert version["lineage"]["dataset_id"] == train["id"]
    assert version["lineage"]["eval_dataset_id"] == held["id"]
    text = "I need rust in dublin daily"
    answer = client.post("/v1/models/skills/predict", json={"inputs": [text]})
    assert answer.status_code == 200, answer.text
    entities = answer.json()["predictions"][0]["entities"]
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"], entity
    assert {(e["text"], e["label"]) for e in entities} == {("rust", "Skill"), ("dublin", "City")}


def test_what_only_the_job_checks_fails_it_naming_the_file_and_the_line(
    client: TestClient,
) -> None:
    lines = spans_file(12, seed=3).decode().splitlines()
    twice = {"start": 0, "end": 4, "label": "Skill"}
    lines[2] = json.dumps({"text": "java and sql", "spans": [twice, twice]})
    dup = upload(client, "dup.jsonl", ("\n".join(lines) + "\n").encode())  # the upload takes it
    fast = {"epochs": 1, "baseline": False, "vectors": False, "contextual": False}
    base = {"type": "train", "task": "token-classification", "params": fast}
    job = run_job(client, {**base, "model": "dup", "dataset_id": dup["id"]})
    assert job["status"] == "failed", job
    assert "dup.jsonl: line 3: span [0, 4) 'Skill' is given twice" in job["error"], job
    # a span's own text must be its slice (offsets counted in bytes or UTF-16 units are not)
    sql = {"start": 14, "end": 17, "label": "Skill", "text": "sql"}  # UTF-8 byte offsets
    lines[2] = json.dumps({"text": "Zürich loves sql daily", "spans": [sql]})
    shifted = upload(client, "shifted.jsonl", ("\n".join(lines) + "\n").encode())
    job = run_job(client, {**base, "model": "shifted", "dataset_id": shifted["id"]})
    assert job["status"] == "failed", job
    assert (
        "shifted.jsonl: line 3: span 1: its text 'sql' differs from text[14:17] 'ql '"
        in (job["error"])
    ), job
    # overlapping spans are read (as overlapping tag layers are): training keeps the longest
    lines[2] = json.dumps(
        {
            "text": "big data spark",
            "spans": [
                {"start": 0, "end": 14, "label": "Skill"},
                {"start": 9, "end": 14, "label": "Skill"},
            ],
        }
    )
    overlap = upload(client, "overlap.jsonl", ("\n".join(lines) + "\n").encode())
    job = run_job(client, {**base, "model": "overlap", "dataset_id": overlap["id"]})
    assert job["status"] == "succeeded", job


def test_a_malformed_spans_file_is_a_422_naming_the_line(client: TestClient) -> None:
    before = client.get("/v1/datasets").json()["total"]
    good = json.dumps({"text": "Python and SQL", "spans": [{"start": 0, "end": 6, "label": "S"}]})
    for second, detail in [
        (
            '{"text": "Docker", "spans": [{"start": 0, "end": 9, "label": "Skill"}]}',
            "bad.jsonl: line 2: span 1: end 9 is beyond the text (6 characters)",
        ),
        (
            '{"text": "Docker", "spans": [{"start": 0, "end": true, "label": "Skill"}]}',
            "bad.jsonl: line 2: span 1: end must be an integer, found True",
        ),
        (
            '{"text": "Docker", "spans": [{"start": 0, "end": 6, "label": "a skill"}]}',
            "bad.jsonl: line 2: span 1: label 'a skill' contains whitespace",
        ),
        ('{"text": "Docker", "spans": null}', 'bad.jsonl: line 2: "spans" must be an array'),
    ]:
        content = f"{good}\n{second}\n".encode()
        r = client.post("/v1/datasets", files={"file": ("bad.jsonl", content, "text/plain")})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/data-format"), r.json()
        assert detail in r.json()["detail"], r.json()
    assert client.get("/v1/datasets").json()["total"] == before  # nothing kept


def test_jobs_that_read_records_refuse_a_spans_dataset_at_submit(client: TestClient) -> None:
    spans = upload(client, "skills.jsonl", spans_file(10, seed=4))
    rows = "".join(f"hello {i},greeting\nbye {i},farewell\n" for i in range(10))
    table = upload(client, "table.csv", f"text,label\n{rows}".encode())
    refused = "is a JSONL spans file; this job reads CSV or JSONL files"
    for body in [
        {"type": "train", "model": "clf", "dataset_id": spans["id"]},
        {
            "type": "train",
            "model": "clf",
            "dataset_id": table["id"],
            "eval_dataset_id": spans["id"],
        },
        {
            "type": "train",
            "task": "tabular-classification",
            "model": "tab",
            "dataset_id": spans["id"],
            "target": "text",
        },
    ]:
        r = client.post("/v1/jobs", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert f"({spans['name']}) {refused}" in r.json()["detail"], (body, r.text)
    # batch prediction with a ready text classifier: the dataset is refused, not the model
    job = run_job(client, {"type": "train", "model": "clf", "dataset_id": table["id"]})
    assert job["status"] == "succeeded", job
    r = client.post(
        "/v1/jobs",
        json={"type": "batch-predict", "model": "clf", "dataset_id": spans["id"]},
    )
    assert r.status_code == 422, r.text
    assert refused in r.json()["detail"], r.text
    # and a training job of entities names the formats it reads
    r = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "token-classification",
            "model": "skills",
            "dataset_id": table["id"],
        },
    )
    assert r.status_code == 422, r.text
    assert "is a CSV file; this job reads CoNLL or JSONL spans files" in r.json()["detail"]
