"""Text classification on MiniLM sentence-embedding features, and intent detection with an
out-of-scope threshold, end to end: train on real CLINC150 rows -> register -> predict
over HTTP with a key (SQLite), the training and batch jobs, pinning of the embedding
model version, one shared embedder, and refusal of a changed embedding model."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, standalone_settings, wait_job

from aiweb import datasets
from aiweb.app import create_app
from aiweb.classification.embedding_features import (
    ARTIFACT_FORMAT,
    EmbeddingRef,
    EmbeddingTextClassifier,
)
from aiweb.classification.trainer import TrainParams
from aiweb.classification.training import TrainingData, train_text_classification
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits
from aiweb.embeddings.install import register_exported
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import EmbeddingModelNotInstalled, ModelNotReadyError
from aiweb.registry.entities import ModelVersion
from aiweb.registry.service import RegistryService
from conftest import create_key

INTENTS = ("balance", "book_flight", "weather", "recipe", "alarm", "translate")
TRAIN_PER_INTENT = 30
MINILM = TrainParams(features="minilm")


@pytest.fixture(scope="module")
def clinc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("clinc-home")
    return datasets.load("clinc150", Settings(home=home, data_home=shared_data), progress=False)


def subset(clinc: DatasetSplits) -> TrainingData:
    """Six intents (30 training queries each) and the out-of-scope rows of CLINC150."""
    assert clinc.eval is not None
    taken: dict[str, int] = {}
    train_t, train_l = [], []
    for text, label in zip(clinc.train.texts, clinc.train.labels, strict=True):
        if label == "oos" or (label in INTENTS and taken.get(label, 0) < TRAIN_PER_INTENT):
            taken[label] = taken.get(label, 0) + 1
            train_t.append(text)
            train_l.append(label)
    pairs = [
        (t, y)
        for t, y in zip(clinc.eval.texts, clinc.eval.labels, strict=True)
        if y in INTENTS or y == "oos"
    ]
    return TrainingData(
        name="clinc150-subset",
        train_texts=train_t,
        train_labels=train_l,
        sha256="subset",
        eval_texts=[t for t, _ in pairs],
        eval_labels=[y for _, y in pairs],
        eval_split="val",
    )


def install_minilm(registry: RegistryService, minilm_dir: Path, *, int8: bool = False) -> None:
    register_exported(registry, minilm_dir, include_int8=int8, actor="tests")


@dataclass
class Trained:
    settings: Settings
    version: ModelVersion
    report: dict[str, Any]
    data: TrainingData


@pytest.fixture(scope="module")
def intents(
    clinc: DatasetSplits, minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    """``intents:1`` trained on the subset with minilm features, in a SQLite home."""
    settings = standalone_settings(tmp_path_factory.mktemp("intents-home"))
    registry, engine = open_registry(settings)
    try:
        install_minilm(registry, minilm_dir)
        data = subset(clinc)
        result = train_text_classification(registry, "intents", data, params=MINILM)
    finally:
        engine.dispose()
    return Trained(settings, result.version, result.report, data)


def client_for(settings: Settings, scopes: tuple[str, ...] = ("predict",)) -> TestClient:
    key = create_key(settings, scopes, name="-".join(scopes) + str(time.monotonic_ns()))
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def predict(client: TestClient, model: str, inputs: list[str]) -> dict[str, Any]:
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- training ----------------------------------------------------------------------------
def test_training_pins_the_embedder_and_calibrates_the_threshold(intents: Trained) -> None:
    version, report = intents.version, intents.report
    assert version.artifact_format == ARTIFACT_FORMAT
    assert version.labels == sorted([*INTENTS, "oos"])  # oos is a class (oos_training=class)
    lineage = version.lineage
    assert lineage["features"] == "minilm"
    assert lineage["embedding_model"]["name"] == "minilm"
    assert lineage["embedding_model"]["version"] == 1
    assert lineage["embedding_model"]["dim"] == 384
    assert len(lineage["embedding_model"]["sha256"]) == 64
    assert lineage["pipeline"].startswith("sentence embeddings (minilm:1, 384 dims)")
    assert lineage["split"]["out_of_scope_training_rows"] == 100
    oos = report["out_of_scope"]
    assert lineage["rejection"] == {"label": "oos", "threshold": oos["threshold"]}
    assert 0.0 < oos["threshold"] < 1.0
    assert (oos["n_in_scope"], oos["n_oos"]) == (20 * len(INTENTS), 100)
    assert oos["criterion"] == "oos_f2"
    # six far-apart intents: the embeddings separate them, and most oos queries too
    assert oos["in_scope_accuracy"] >= 0.9
    assert oos["oos_recall"] >= 0.7
    # the report counts the answers with the rule: oos recall is the oos row's recall
    assert report["per_class"]["oos"]["recall"] == pytest.approx(oos["oos_recall"])
    assert report["onnx"]["status"] == "unsupported"
    assert "minilm:1" in report["onnx"]["reason"]
    assert set(report["drift_reference"]["labels"]) == set(version.labels)


def test_oos_training_exclude_trains_on_in_scope_rows_only(
    intents: Trained, minilm_dir: Path, tmp_path: Path
) -> None:
    registry, engine = open_registry(standalone_settings(tmp_path))
    try:
        install_minilm(registry, minilm_dir)
        params = TrainParams(features="minilm", oos_training="exclude", oos_criterion="balanced")
        result = train_text_classification(registry, "intents", intents.data, params=params)
    finally:
        engine.dispose()
    assert result.version.labels == [*sorted(INTENTS), "oos"]  # answered, not a class
    assert result.version.lineage["split"]["out_of_scope_training_rows"] == 0
    oos = result.report["out_of_scope"]
    assert oos["training"] == "exclude"
    assert oos["criterion"] == "balanced"
    assert oos["in_scope_accuracy"] + oos["oos_recall"] == pytest.approx(oos["value"])


def test_minilm_without_an_installed_embedder_says_how_to_install(
    intents: Trained, tmp_path: Path
) -> None:
    registry, engine = open_registry(standalone_settings(tmp_path))
    try:
        with pytest.raises(EmbeddingModelNotInstalled, match="aiweb embeddings install"):
            train_text_classification(registry, "intents", intents.data, params=MINILM)
    finally:
        engine.dispose()


# -- serving -----------------------------------------------------------------------------
def test_served_intent_model_answers_oos_over_http(intents: Trained) -> None:
    data = intents.data
    oos_queries = [
        t for t, y in zip(data.eval_texts or [], data.eval_labels or [], strict=True) if y == "oos"
    ]
    threshold = intents.report["out_of_scope"]["threshold"]
    with client_for(intents.settings) as client:
        body = predict(
            client, "intents", ["what's the weather going to be like tomorrow", *oos_queries]
        )
        assert body["model"] == "intents"
        assert body["version"] == 1
        first, *rest = body["predictions"]
        assert first["label"] == "weather"
        answered = [p["label"] for p in rest]
        # the same rule as at training: the same share of out-of-scope queries caught
        recall = answered.count("oos") / len(answered)
        assert recall == pytest.approx(intents.report["out_of_scope"]["oos_recall"], abs=0.02)
        for p in rest:
            scores = p["scores"]
            assert set(scores) == set(intents.version.labels)  # scores stay available
            assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)
            top_label = max(scores, key=scores.__getitem__)
            expected = "oos" if scores[top_label] < threshold else top_label
            assert p["label"] == expected
        # an oos answer below the threshold whose most probable class is an intent
        below = [p for p in rest if max(p["scores"].values()) < threshold]
        assert below
        assert all(p["label"] == "oos" for p in below)
        # oos is a label of the version: feedback may say so
        fb = client.post(f"/v1/predictions/{first['id']}/feedback", json={"label": "oos"})
        assert fb.status_code in (200, 201), fb.text
        info = client.get("/v1/models/intents/versions/1").json()
        assert info["lineage"]["rejection"]["label"] == "oos"


def test_dashboard_playground_shows_the_oos_answer(intents: Trained) -> None:
    import re

    csrf_re = re.compile(r'name="csrf_token" value="([^"]+)"')
    admin = create_key(intents.settings, ("admin",), name=f"dash{time.monotonic_ns()}")
    data = intents.data
    queries = [
        t for t, y in zip(data.eval_texts or [], data.eval_labels or [], strict=True) if y == "oos"
    ]
    with TestClient(create_app(intents.settings), base_url="http://testserver") as client:
        answers = client.post(
            "/v1/models/intents/predict",
            json={"inputs": queries[:20]},
            headers={"Authorization": f"Bearer {admin}"},
        ).json()["predictions"]
        query = next(q for q, a in zip(queries[:20], answers, strict=True) if a["label"] == "oos")
        token = csrf_re.search(client.get("/login").text)
        assert token
        login = client.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": admin},
            follow_redirects=False,
        )
        assert login.status_code == 303
        csrf = csrf_re.search(client.get("/playground").text)
        assert csrf
        r = client.post(
            "/playground",
            data={"model": "intents", "text": query, "csrf_token": csrf.group(1)},
            headers={"HX-Request": "true"},
        )
    assert r.status_code == 200
    assert re.search(r'id="predicted-label">oos<', r.text)


def test_an_alias_move_of_the_embedder_does_not_change_a_classifier(
    intents: Trained, minilm_dir: Path, tmp_path: Path
) -> None:
    settings = standalone_settings(tmp_path)
    registry, engine = open_registry(settings)
    queries = ["set an alarm for 7 am", "how do i make lasagna", "who won the world cup"]
    try:
        install_minilm(registry, minilm_dir)
        train_text_classification(registry, "intents", intents.data, params=MINILM)
        plain = TrainingData(
            name="six",
            train_texts=[
                t
                for t, y in zip(intents.data.train_texts, intents.data.train_labels, strict=True)
                if y != "oos"
            ],
            train_labels=[y for y in intents.data.train_labels if y != "oos"],
            sha256="six",
        )
        train_text_classification(registry, "six", plain, params=MINILM)
        with client_for(settings) as client:
            before = predict(client, "intents", queries)
            predict(client, "six", queries)
            pool: EmbedderPool = client.app.state.embedders  # type: ignore[attr-defined]
            # two classifiers on minilm:1, one embedder session
            assert pool.loaded() == [("minilm", 1)]
            loader = client.app.state.loader  # type: ignore[attr-defined]
            runtimes = [m.runtime for m in loader.loaded()]
            assert len(runtimes) == 2
            assert runtimes[0].embedder is runtimes[1].embedder
        # the embedding model's production alias moves to a new (int8) version
        install_minilm(registry, minilm_dir, int8=True)
        assert registry.get_model("minilm").aliases["production"] == 3
    finally:
        engine.dispose()
    with client_for(settings) as client:
        after = predict(client, "intents", queries)
        pool = client.app.state.embedders  # type: ignore[attr-defined]
        assert pool.loaded() == [("minilm", 1)]  # still the pinned version
    for a, b in zip(before["predictions"], after["predictions"], strict=True):
        assert a["label"] == b["label"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-6)


def test_a_classifier_whose_embedder_changed_is_refused(
    intents: Trained, minilm_dir: Path, tmp_path: Path
) -> None:
    settings = standalone_settings(tmp_path)
    registry, engine = open_registry(settings)
    try:
        install_minilm(registry, minilm_dir)
        pool = EmbedderPool(registry)
        minilm = pool.resolve("minilm:1")
        classifier, ref = EmbeddingTextClassifier.read_head(_artifact(intents))
        forged = EmbeddingRef(ref.name, ref.version, "0" * 64, ref.dim)
        data = EmbeddingTextClassifier(classifier, pool.get(minilm), forged).to_bytes()
        with pytest.raises(ModelNotReadyError, match="retrain it"):
            EmbeddingTextClassifier.from_bytes(data, pool)
        registry.register_version(
            "forged",
            "text-classification",
            artifact=data,
            artifact_format=ARTIFACT_FORMAT,
            labels=list(classifier.classes_),
            signature={},
            lineage={},
            evaluation={},
        )
    finally:
        engine.dispose()
    with client_for(settings) as client:
        r = client.post("/v1/models/forged/predict", json={"inputs": ["hello"]})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert "retrain" in r.json()["detail"]


def _artifact(trained: Trained) -> bytes:
    registry, engine = open_registry(trained.settings)
    try:
        return registry.artifacts.read_bytes(trained.version.artifact_uri or "")
    finally:
        engine.dispose()


# -- jobs over HTTP ----------------------------------------------------------------------


def as_csv(texts: list[str], labels: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "label"] if labels is not None else ["text"])
    for i, text in enumerate(texts):
        writer.writerow([text, labels[i]] if labels is not None else [text])
    return buf.getvalue().encode()


def test_training_and_batch_jobs_with_minilm_features(
    intents: Trained, minilm_dir: Path, tmp_path: Path
) -> None:
    settings = standalone_settings(tmp_path)
    registry, engine = open_registry(settings)
    try:
        install_minilm(registry, minilm_dir)
    finally:
        engine.dispose()
    data = intents.data
    train_csv = as_csv(
        data.train_texts + (data.eval_texts or []), data.train_labels + (data.eval_labels or [])
    )
    with client_for(settings, ("train", "predict")) as client:
        up = client.post("/v1/datasets", files={"file": ("intents.csv", train_csv, "text/csv")})
        assert up.status_code == 201, up.text
        r = client.post(
            "/v1/jobs",
            json={
                "type": "train",
                "model": "helpdesk",
                "dataset_id": up.json()["id"],
                "params": {"features": "minilm"},
            },
        )
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        metrics = job["result"]["metrics"]
        assert metrics["in_scope_accuracy"] >= 0.85
        assert metrics["oos_recall"] > 0.5
        version = client.get("/v1/models/helpdesk/versions/1").json()
        assert version["artifact_format"] == ARTIFACT_FORMAT
        assert version["lineage"]["rejection"]["label"] == "oos"
        # batch scoring applies the same rule
        oos = [
            t
            for t, y in zip(data.eval_texts or [], data.eval_labels or [], strict=True)
            if y == "oos"
        ]
        score = client.post("/v1/datasets", files={"file": ("q.csv", as_csv(oos), "text/csv")})
        r = client.post(
            "/v1/jobs",
            json={"type": "batch-predict", "model": "helpdesk", "dataset_id": score.json()["id"]},
        )
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/result").text)))
    assert len(rows) == len(oos)
    threshold = version["lineage"]["rejection"]["threshold"]
    for row in rows:
        scores = {k[len("score_") :]: float(v) for k, v in row.items() if k.startswith("score_")}
        best = max(scores, key=scores.__getitem__)
        if abs(scores[best] - threshold) > 1e-5:  # scores are written rounded to 1e-6
            assert row["label"] == ("oos" if scores[best] < threshold else best)
    assert sum(row["label"] == "oos" for row in rows) > len(rows) / 2
