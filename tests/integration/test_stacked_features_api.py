"""Text classification on stacked features (TF-IDF n-grams + MiniLM sentence embeddings,
blended), end to end on a slice of real SST-2: ``aiweb train text-classification
--features stacked`` (the CLI, SQLite) -> the version's format, lineage and weight
search in its report -> prediction and an occlusion explanation over HTTP with a key,
the blend served as trained; and a training job with ``"features": "stacked"``."""

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
from aiweb.classification.loader import load_runtime, needs_embedder
from aiweb.classification.stacked_features import (
    ARTIFACT_FORMAT,
    WEIGHT_GRID,
    StackedTextClassifier,
)
from aiweb.cli import app
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits
from aiweb.embeddings.install import register_exported
from aiweb.registry.entities import ModelVersion
from conftest import create_key

TRAIN_ROWS = 400
EVAL_ROWS = 200


@dataclass
class Trained:
    settings: Settings
    version: ModelVersion
    dev: tuple[list[str], list[str]]
    stdout: str


@pytest.fixture(scope="module")
def sst2(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("sst2-home")
    return datasets.load("sst2", Settings(home=home, data_home=shared_data), progress=False)


@pytest.fixture(scope="module")
def sentiment(
    sst2: DatasetSplits, minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """``sentiment:1``: 400 SST-2 training phrases, evaluated on 200 dev sentences,
    trained by the CLI with ``--features stacked``."""
    home = tmp_path_factory.mktemp("stacked-home")
    settings = standalone_settings(home)
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
    finally:
        engine.dispose()
    assert sst2.eval is not None
    train = write_labeled_csv(
        home / "train.csv", sst2.train.texts[:TRAIN_ROWS], sst2.train.labels[:TRAIN_ROWS]
    )
    dev = (sst2.eval.texts[:EVAL_ROWS], sst2.eval.labels[:EVAL_ROWS])
    evals = write_labeled_csv(home / "dev.csv", *dev)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIWEB_HOME", str(home))
        mp.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
        mp.delenv("AIWEB_BROKER_URL", raising=False)
        mp.delenv("AIWEB_SERVING__RUNTIME", raising=False)
        result = CliRunner().invoke(
            app,
            [
                "train",
                "text-classification",
                "sentiment",
                "--data",
                str(train),
                "--eval-data",
                str(evals),
                "--features",
                "stacked",
            ],
        )
    assert result.exit_code == 0, result.output
    registry, engine = open_registry(settings)
    try:
        version = registry.store.get_version("sentiment", 1)
    finally:
        engine.dispose()
    return Trained(settings, version, dev, result.stdout)


def client_for(settings: Settings, scopes: tuple[str, ...] = ("predict",)) -> TestClient:
    key = create_key(settings, scopes, name="-".join(scopes) + str(time.monotonic_ns()))
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def test_cli_training_records_the_blend(sentiment: Trained) -> None:
    version = sentiment.version
    assert version.artifact_format == ARTIFACT_FORMAT
    assert needs_embedder(version)
    assert version.labels == ["negative", "positive"]
    lineage = version.lineage
    assert lineage["features"] == "stacked"
    assert lineage["params"]["features"] == "stacked"
    assert lineage["params"]["C"] == 2.0
    assert lineage["embedding_model"]["name"] == "minilm"
    assert lineage["embedding_model"]["dim"] == 384
    assert lineage["pipeline"].startswith("blend: ")
    assert "tfidf(word 1-2 + char_wb 2-5)" in lineage["pipeline"]
    assert "sentence embeddings (minilm:" in lineage["pipeline"]
    report = version.evaluation
    stacked = report["stacked"]
    assert stacked["design"] == "blend"
    assert stacked["weight_tfidf"] in WEIGHT_GRID
    assert [g["weight_tfidf"] for g in stacked["grid"]] == list(WEIGHT_GRID)
    chosen = next(g for g in stacked["grid"] if g["weight_tfidf"] == stacked["weight_tfidf"])
    assert chosen["macro_f1"] == max(g["macro_f1"] for g in stacked["grid"])
    assert report["macro_f1"] == pytest.approx(chosen["macro_f1"])
    assert report["accuracy"] == pytest.approx(chosen["accuracy"])
    assert report["n"] == EVAL_ROWS
    # 400 phrases are enough for both parts to be far above chance on real sentences
    assert report["accuracy"] >= 0.7
    assert report["onnx"]["status"] == "unsupported"
    assert report["onnx"]["reason"].startswith("stacked features")
    assert "accuracy" in sentiment.stdout


def test_served_prediction_and_explanation(sentiment: Trained) -> None:
    texts = ["a gorgeous, witty and moving film", "a dull, tedious and lifeless mess"]
    with client_for(sentiment.settings) as client:
        r = client.post("/v1/models/sentiment/predict", json={"inputs": texts})
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert [p["label"] for p in predictions] == ["positive", "negative"]
        for p in predictions:
            assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        r = client.post(
            "/v1/models/sentiment/explain", json={"inputs": texts[:1], "target": "positive"}
        )
        assert r.status_code == 200, r.text
        [explanation] = r.json()["explanations"]
    assert explanation["method"] == "occlusion"
    assert explanation["exact"] is False
    assert explanation["target"] == "positive"
    p = explanation["scores"]["positive"]
    assert explanation["logit"] == pytest.approx(np.log(p / (1 - p)), abs=1e-4)
    words = {c["feature"]: c["weight"] for c in explanation["contributions"]}
    for c in explanation["contributions"]:
        assert texts[0][c["start"] : c["end"]] == c["feature"]
    assert max(words, key=words.__getitem__) in {"gorgeous", "witty", "moving"}
    # the served probabilities are the blend's, as trained
    registry, engine = open_registry(sentiment.settings)
    try:
        runtime = load_runtime(registry, sentiment.version)
    finally:
        engine.dispose()
    assert isinstance(runtime, StackedTextClassifier)
    assert runtime.weight_tfidf == sentiment.version.evaluation["stacked"]["weight_tfidf"]
    served = [predictions[0]["scores"]["positive"], predictions[1]["scores"]["positive"]]
    np.testing.assert_allclose(runtime.predict_proba(texts)[:, 1], served, atol=1e-5)


def test_training_job_with_stacked_features(sentiment: Trained, tmp_path: Path) -> None:
    registry, engine = open_registry(sentiment.settings)
    try:
        minilm = registry.store.get_version("minilm", 1)
    finally:
        engine.dispose()
    texts, labels = sentiment.dev
    data = write_labeled_csv(tmp_path / "dev.csv", texts, labels).read_bytes()
    with client_for(sentiment.settings, ("train", "predict")) as client:
        up = client.post("/v1/datasets", files={"file": ("dev.csv", data, "text/csv")})
        assert up.status_code == 201, up.text
        r = client.post(
            "/v1/jobs",
            json={
                "type": "train",
                "model": "reviews",
                "dataset_id": up.json()["id"],
                "params": {"features": "stacked", "embedding_model": "minilm:1"},
            },
        )
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        version: dict[str, Any] = client.get("/v1/models/reviews/versions/1").json()
    assert version["artifact_format"] == ARTIFACT_FORMAT
    assert version["lineage"]["embedding_model"]["sha256"] == minilm.artifact_sha256
    assert version["evaluation"]["stacked"]["design"] == "blend"
