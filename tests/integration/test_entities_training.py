"""Training token-classification models: ``aiweb train token-classification`` on CoNLL and
JSONL files, and the ``train`` job on a built-in dataset and on uploaded CoNLL datasets —
the version's report (the model's and the CRF baseline's scores), its registration, and
the 404s and 422s at submit."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import app as cli_app
from aiweb.cli._common import open_registry
from aiweb.config import Settings
from aiweb.entities.data import Example, from_tags
from aiweb.registry.entities import ModelRef, ModelVersion
from tabular_helpers import run_job

SKILLS = ["python", "java", "sql", "docker", "kubernetes", "react", "excel", "spark", "rust"]
TOOLS_VERB = ["know", "use", "teach", "love", "learned"]


def sentence(rng: random.Random) -> Example:
    """``I <verb> <skill> and <skill> daily`` (tokens and IOB2 tags, label ``Skill``)."""
    a, b = rng.sample(SKILLS, 2)
    if rng.random() < 0.2:
        return from_tags(["nothing", "to", "report", "today"], ["O"] * 4)
    words = ["I", rng.choice(TOOLS_VERB), a, "and", b, "daily"]
    return from_tags(words, ["O", "O", "B-Skill", "O", "B-Skill", "O"])


def examples(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(n)]


def to_conll(rows: list[Example]) -> str:
    lines: list[str] = []
    for example in rows:
        tokens = example.tokens()
        tags = ["O"] * len(tokens)
        assert example.token_offsets is not None
        starts = {start: i for i, (start, _end) in enumerate(example.token_offsets)}
        for span in example.spans:
            tags[starts[span.start]] = f"B-{span.label}"
        lines += [f"{tok}\t{tag}" for tok, tag in zip(tokens, tags, strict=True)] + [""]
    return "\n".join(lines) + "\n"


def to_jsonl(rows: list[Example]) -> bytes:
    return "".join(
        json.dumps(
            {
                "text": e.text,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in e.spans],
            }
        )
        + "\n"
        for e in rows
    ).encode()


def registered(ref: str) -> ModelVersion:
    """The version ``ref`` names, read as the CLI reads it (settings from the environment)."""
    with open_registry() as registry:
        return registry.resolve(ModelRef.parse(ref))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


FAST = ["--param", "epochs=6"]


def test_cli_trains_on_conll_with_eval_file_prints_scores_and_registers(
    cli_env: Settings, tmp_path: Path
) -> None:
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text(to_conll(examples(150, 0)))
    test.write_text(to_conll(examples(40, 1)))
    result = CliRunner().invoke(
        cli_app,
        [
            "train",
            "token-classification",
            "skills",
            "--data",
            str(train),
            "--eval-data",
            str(test),
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "CRF F1" in result.stdout, result.stdout
    assert "micro" in result.stdout, result.stdout
    assert "registered skills:1" in result.stderr
    version = registered("skills")
    assert (version.task, version.labels) == ("token-classification", ["Skill"])
    report = version.evaluation
    assert report["evaluated_on"] == "test"
    assert report["examples"]["test"] == 40
    assert report["metrics"]["micro_f1"] >= 0.9, report["metrics"]
    assert report["baseline"]["name"] == "crf"
    assert report["baseline"]["micro_f1"] is not None
    assert "production" in version.aliases  # the first version
    assert version.lineage["dataset"] == "train.conll"
    bins = report["drift_reference"]["binned_features"]
    assert {"text_length", "entities"} <= set(bins)


def test_cli_jsonl_without_eval_holds_out_a_share_and_refuses_bad_input(
    cli_env: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "skills.jsonl"
    path.write_bytes(to_jsonl(examples(100, 2)))
    result = CliRunner().invoke(
        cli_app,
        [
            "train",
            "token-classification",
            "skills",
            "--data",
            str(path),
            "--param",
            "test_size=0.25",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.stderr
    version = registered("skills")
    assert version.evaluation["examples"] == {"train": 75, "dev": 0, "test": 25}
    bad = tmp_path / "bad.conll"
    bad.write_text("I\tO\nknow\tO\tO\n")
    for args, message in [
        (["--data", str(bad)], "line 2"),
        (["--data", str(path), "--param", "epochs=0"], "epochs"),
        (["--data", str(path), "--param", "colour=red"], "colour"),
        (["--dataset", "job_description_entities"], "wnut17"),
        (["--dataset", "wnut17", "--data", str(path)], "exactly one"),
    ]:
        result = CliRunner().invoke(cli_app, ["train", "token-classification", "skills", *args])
        assert result.exit_code == 1, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)


def test_train_job_on_wnut17_scores_on_the_official_test_split_then_serves(
    client: TestClient, shared_data: Path
) -> None:
    body = {
        "type": "train",
        "task": "token-classification",
        "model": "tweets",
        "dataset": "wnut17",
        # one epoch without the MiniLM features (tests/unit/test_entities_vectors.py):
        # the plumbing, not the bar
        "params": {"epochs": 1, "baseline": False, "vectors": False, "contextual": False},
    }
    job = run_job(client, body)
    assert job["status"] == "succeeded", job
    result: dict[str, Any] = job["result"]
    assert (result["model"], result["version"]) == ("tweets", 1)
    assert result["task"] == "token-classification"
    assert result["evaluated_on"] == "test"
    assert 0.0 <= result["metrics"]["micro_f1"] <= 1.0
    assert result["baseline_micro_f1"] is None  # baseline: false
    version = client.get("/v1/models/tweets/versions/1").json()
    assert version["evaluation"]["examples"] == {"train": 3394, "dev": 1009, "test": 1287}
    assert version["lineage"]["job_id"] == job["id"]
    text = "Going to see Taylor Swift in New York tonight!! 🎉"
    answer = client.post("/v1/models/tweets/predict", json={"inputs": [text]})
    assert answer.status_code == 200, answer.text
    for entity in answer.json()["predictions"][0]["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_train_job_is_checked_at_submit(client: TestClient) -> None:
    base = {"type": "train", "task": "token-classification", "model": "skills"}
    for extra, status, message in [
        ({"dataset": "wnut17", "params": {"epochs": 0}}, 422, "epochs"),
        ({"dataset": "wnut17", "params": {"colour": "red"}}, 422, "colour"),
        ({"dataset": "job_description_entities"}, 422, "dataset"),
        ({"dataset": "wnut17", "dataset_id": "x"}, 422, "dataset_id"),
        ({}, 422, "dataset"),
    ]:
        r = client.post("/v1/jobs", json={**base, **extra})
        assert r.status_code == status, (extra, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert message in r.text, (extra, r.text)


def upload(client: TestClient, name: str, content: bytes) -> dict[str, Any]:
    r = client.post("/v1/datasets", files={"file": (name, content, "application/octet-stream")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_train_job_on_uploaded_conll_datasets_then_serves(client: TestClient) -> None:
    train_rows, eval_rows = examples(200, seed=1), examples(40, seed=2)
    train = upload(client, "skills-train.conll", to_conll(train_rows).encode())
    assert train["format"] == "conll"
    assert train["columns"] == ["sentence", "token", "tag"]
    assert train["rows"] == sum(len(e.tokens()) for e in train_rows)
    held = upload(client, "skills-eval.iob", to_conll(eval_rows).encode())
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
    assert result["metrics"]["micro_f1"] >= 0.9  # the sentences are easy
    assert result["baseline_micro_f1"] is not None
    version = client.get("/v1/models/skills/versions/1").json()
    assert version["evaluation"]["examples"] == {"train": 200, "dev": 0, "test": 40}
    assert version["lineage"]["dataset"] == "skills-train.conll"
    assert version["lineage"]["dataset_id"] == train["id"]
    assert version["lineage"]["eval_dataset_id"] == held["id"]
    text = "I love rust and spark daily"
    answer = client.post("/v1/models/skills/predict", json={"inputs": [text]})
    assert answer.status_code == 200, answer.text
    found = {(e["text"], e["label"]) for e in answer.json()["predictions"][0]["entities"]}
    assert found == {("rust", "Skill"), ("spark", "Skill")}

    # without an evaluation file a seeded share is held out
    alone = run_job(
        client,
        {**body, "model": "skills-alone", "eval_dataset_id": None, "params": {"epochs": 2}},
    )
    assert alone["status"] == "succeeded", alone
    examples_of = client.get("/v1/models/skills-alone/versions/1").json()["evaluation"]
    assert examples_of["examples"] == {"train": 160, "dev": 0, "test": 40}


def test_train_job_on_uploads_is_checked_at_submit(client: TestClient) -> None:
    conll = upload(client, "ok.conll", to_conll(examples(5, seed=3)).encode())
    table = upload(client, "table.csv", b"text,label\nhello,greeting\n")
    base = {"type": "train", "task": "token-classification", "model": "skills"}
    for extra, status, message in [
        ({"dataset_id": "no-such-dataset"}, 404, "no-such-dataset"),
        (
            {"dataset_id": table["id"]},
            422,
            "is a CSV file; this job reads CoNLL or JSONL spans files",
        ),
        ({"dataset_id": conll["id"], "eval_dataset_id": table["id"]}, 422, "eval_dataset_id"),
        ({"dataset": "wnut17", "eval_dataset_id": conll["id"]}, 422, "eval_dataset_id goes with"),
    ]:
        r = client.post("/v1/jobs", json={**base, **extra})
        assert r.status_code == status, (extra, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert message in r.text, (extra, r.text)
    # and a CoNLL dataset is not a table of texts for a text classifier
    r = client.post("/v1/jobs", json={"type": "train", "model": "clf", "dataset_id": conll["id"]})
    assert r.status_code == 422, r.text
    assert "is a CoNLL file; this job reads CSV or JSONL files" in r.text
    # a malformed line is refused at upload, naming the line
    r = client.post("/v1/datasets", files={"file": ("bad.conll", b"I\tO\nlonely\n", "text/plain")})
    assert r.status_code == 422, r.text
    assert "bad.conll: line 2: expected a token and its tag" in r.json()["detail"]
