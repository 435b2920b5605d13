"""Fine-tuned transformer text classifiers end to end on a slice of real SST-2:
``aiweb train text-classification --features finetune`` (the CLI, SQLite; one short
epoch) -> the version's ONNX archive, lineage and training history -> prediction and an
occlusion explanation over HTTP with a key, served by onnxruntime with the probabilities
of the check; a training job with ``"features": "finetune"``; and ``--features auto``
choosing by the evaluation macro-F1 with its comparison table in the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, standalone_settings, wait_job, write_labeled_csv
from typer.testing import CliRunner

from aiweb import datasets
from aiweb.app import create_app
from aiweb.classification.loader import load_runtime
from aiweb.classification.transformer import ARTIFACT_FORMAT, FineTunedTextClassifier
from aiweb.cli import app
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits
from aiweb.embeddings.install import register_exported
from aiweb.registry.entities import ModelVersion
from conftest import create_key

pytest.importorskip("torch")

# fine-tuning a transformer takes minutes of both cores: the slow stage (make test-e2e)
pytestmark = pytest.mark.slow

TRAIN_ROWS = 300
EVAL_ROWS = 150
#: one short epoch: 300 rows in 19 steps of 16, texts cut at 32 word pieces
SHORT = ["epochs=1", "batch_size=16", "max_tokens=32", "learning_rate=0.0001"]


@dataclass
class Trained:
    settings: Settings
    home: Path
    version: ModelVersion
    dev: tuple[list[str], list[str]]
    stdout: str
    train_csv: Path
    dev_csv: Path


def train_cli(home: Path, settings: Settings, args: list[str]) -> str:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIWEB_HOME", str(home))
        mp.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
        mp.delenv("AIWEB_BROKER_URL", raising=False)
        result = CliRunner().invoke(app, ["train", "text-classification", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def sst2(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("sst2-home")
    return datasets.load("sst2", Settings(home=home, data_home=shared_data), progress=False)


@pytest.fixture(scope="module")
def sentiment(sst2: DatasetSplits, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """``sentiment:1``: 300 SST-2 training sentences of 6+ words, evaluated on 150 dev
    sentences, fine-tuned by the CLI for one short epoch."""
    home = tmp_path_factory.mktemp("finetune-home")
    settings = standalone_settings(home)
    assert sst2.eval is not None
    rows = [(t, y) for t, y in zip(sst2.train.texts, sst2.train.labels, strict=True)]
    rows = [r for r in rows if len(r[0].split()) >= 6][:TRAIN_ROWS]
    train = write_labeled_csv(home / "train.csv", [t for t, _ in rows], [y for _, y in rows])
    dev = (sst2.eval.texts[:EVAL_ROWS], sst2.eval.labels[:EVAL_ROWS])
    evals = write_labeled_csv(home / "dev.csv", *dev)
    params = [a for p in SHORT for a in ("--param", p)]
    stdout = train_cli(
        home,
        settings,
        [
            "sentiment",
            "--data",
            str(train),
            "--eval-data",
            str(evals),
            "--features",
            "finetune",
            *params,
        ],
    )
    registry, engine = open_registry(settings)
    try:
        version = registry.store.get_version("sentiment", 1)
    finally:
        engine.dispose()
    return Trained(settings, home, version, dev, stdout, train, evals)


def client_for(settings: Settings, scopes: tuple[str, ...] = ("predict",)) -> TestClient:
    key = create_key(settings, scopes, name="-".join(scopes) + str(time.monotonic_ns()))
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def test_cli_training_registers_the_onnx_archive(sentiment: Trained) -> None:
    version = sentiment.version
    assert version.artifact_format == ARTIFACT_FORMAT
    assert version.labels == ["negative", "positive"]
    lineage = version.lineage
    assert lineage["features"] == "finetune"
    assert lineage["params"]["epochs"] == 1
    assert lineage["pipeline"].startswith("fine-tuned sentence-transformers/all-MiniLM-L6-v2")
    report = version.evaluation
    tuned = report["finetune"]
    assert tuned["train_rows"] == TRAIN_ROWS
    assert [h["step"] for h in tuned["history"]][-1] == tuned["steps"] == 19
    assert tuned["best"]["eval_macro_f1"] == max(h["eval_macro_f1"] for h in tuned["history"])
    onnx = report["onnx"]
    assert onnx["status"] == "agrees"
    assert onnx["same_label_rate"] >= 0.995
    assert onnx["precision"] in {"fp32", "int8"}
    # the report scores what is served: the ONNX model's answers on the 150 dev rows
    assert report["n"] == EVAL_ROWS
    assert report["accuracy"] > 0.6
    # the CLI printed the run's evaluations and where the served model came from
    assert "fine-tuning sentence-transformers/all-MiniLM-L6-v2" in sentiment.stdout
    assert "kept" in sentiment.stdout


def test_served_prediction_and_explanation(sentiment: Trained) -> None:
    texts = ["a gorgeous, witty and moving film", "a dull, tedious and lifeless mess"]
    with client_for(sentiment.settings) as client:
        r = client.post("/v1/models/sentiment/predict", json={"inputs": texts})
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        for p in predictions:
            assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        r = client.post(
            "/v1/models/sentiment/explain", json={"inputs": texts[:1], "target": "positive"}
        )
        assert r.status_code == 200, r.text
        [explanation] = r.json()["explanations"]
    assert explanation["method"] == "occlusion"
    assert explanation["exact"] is False
    for c in explanation["contributions"]:
        assert texts[0][c["start"] : c["end"]] == c["feature"]
    registry, engine = open_registry(sentiment.settings)
    try:
        runtime = load_runtime(registry, sentiment.version)
    finally:
        engine.dispose()
    assert isinstance(runtime, FineTunedTextClassifier)
    served = [p["scores"]["positive"] for p in predictions]
    np.testing.assert_allclose(runtime.predict_proba(texts)[:, 1], served, atol=1e-6)


def test_training_job_with_finetune(sentiment: Trained) -> None:
    with client_for(sentiment.settings, ("train", "predict")) as client:
        data = sentiment.dev_csv.read_bytes()
        up = client.post("/v1/datasets", files={"file": ("dev.csv", data, "text/csv")})
        assert up.status_code == 201, up.text
        r = client.post(
            "/v1/jobs",
            json={
                "type": "train",
                "model": "reviews",
                "dataset_id": up.json()["id"],
                "params": {
                    "features": "finetune",
                    "epochs": 1,
                    "batch_size": 16,
                    "max_tokens": 24,
                    "max_train_minutes": 5,
                },
            },
        )
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], timeout=180.0)
        assert job["status"] == "succeeded", job
        version: dict[str, Any] = client.get("/v1/models/reviews/versions/1").json()
        r = client.post("/v1/models/reviews/predict", json={"inputs": ["what a film"]})
        assert r.status_code == 200, r.text
    assert version["artifact_format"] == ARTIFACT_FORMAT
    assert version["evaluation"]["finetune"]["config"]["max_train_minutes"] == 5


def test_bad_finetune_params_are_refused(sentiment: Trained) -> None:
    with client_for(sentiment.settings, ("train",)) as client:
        for params in (
            {"features": "finetune", "max_train_minutes": "NaN"},
            {"features": "finetune", "learning_rate": 1e9},
            {"features": "finetune", "max_tokens": 4},
            {"features": "finetuned"},
        ):
            r = client.post(
                "/v1/jobs",
                json={"type": "train", "model": "x", "dataset": "sst2", "params": params},
            )
            assert r.status_code == 422, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


def test_auto_picks_the_best_evaluation_macro_f1(
    sentiment: Trained, minilm_dir: Path, tmp_path: Path
) -> None:
    settings = standalone_settings(tmp_path)
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
    finally:
        engine.dispose()
    params = [a for p in [*SHORT, "max_train_minutes=2"] for a in ("--param", p)]
    args = ["auto-sentiment", "--data", str(sentiment.train_csv)]
    args += ["--eval-data", str(sentiment.dev_csv), "--features", "auto", *params]
    stdout = train_cli(tmp_path, settings, args)
    registry, engine = open_registry(settings)
    try:
        version = registry.store.get_version("auto-sentiment", 1)
    finally:
        engine.dispose()
    auto = version.evaluation["auto"]
    rows = {row["features"]: row for row in auto["candidates"]}
    assert set(rows) == {"tfidf", "minilm", "stacked", "finetune"}
    best = max(rows.values(), key=lambda row: row["macro_f1"])
    assert auto["chosen"] == best["features"] == version.lineage["features"]
    assert version.evaluation["macro_f1"] == pytest.approx(best["macro_f1"])
    assert version.lineage["params"]["features"] == "auto"
    assert "--features auto" in stdout
    assert "chosen" in stdout


def test_auto_without_a_budget_leaves_finetune_out(sentiment: Trained, tmp_path: Path) -> None:
    """No embedding model registered and no max_train_minutes: auto trains tfidf alone
    and says why each other kind was not tried."""
    settings = standalone_settings(tmp_path)
    args = ["plain", "--data", str(sentiment.train_csv), "--eval-data", str(sentiment.dev_csv)]
    train_cli(tmp_path, settings, [*args, "--features", "auto"])
    registry, engine = open_registry(settings)
    try:
        version = registry.store.get_version("plain", 1)
    finally:
        engine.dispose()
    auto = version.evaluation["auto"]
    assert auto["chosen"] == "tfidf" == version.lineage["features"]
    skipped = {row["features"]: row["skipped"] for row in auto["candidates"] if "skipped" in row}
    assert set(skipped) == {"minilm", "stacked", "finetune"}
    assert "max_train_minutes" in skipped["finetune"]
    assert "embeddings install" in skipped["minilm"]
    assert version.artifact_format == "skops"
