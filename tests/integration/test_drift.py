"""Drift on real data: airline tweets sent to the SST-2 sentiment model drift; SST-2 dev
sentences do not."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import Receiver, open_registry

from aiweb import datasets
from aiweb.app import create_app
from aiweb.classification.training import TrainingData, train_text_classification
from aiweb.config import Settings
from aiweb.monitoring.drift import MIN_SAMPLES, VOCABULARY_ARTIFACT

N = 400


def tweets(shared_data: Path, n: int) -> list[str]:
    with (shared_data / "twitter_airline_sentiment" / "Tweets.csv").open(encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return random.Random(0).sample(texts, n)


@pytest.mark.slow
def test_tweets_drift_from_sst2_and_sst2_dev_does_not(
    settings: Settings, shared_data: Path, auth_headers: dict[str, str]
) -> None:
    if not settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("SST-2 training on real data: SQLite only (test_drift_alerts covers PG)")
    registry, engine = open_registry(settings)
    try:
        splits = datasets.load("sst2", settings)
        result = train_text_classification(registry, "sentiment", TrainingData.from_splits(splits))
        v1 = result.version
        reference = v1.evaluation["drift_reference"]
        assert reference["split"] == "dev"
        assert reference["n"] == 872
        assert reference["vocabulary_size"] > 10_000
        # a second version with the same model and profile: one window per kind of traffic
        v2 = registry.register_version(
            "sentiment",
            v1.task,
            artifact=registry.artifacts.read_bytes(v1.artifact_uri),  # type: ignore[arg-type]
            artifact_format="skops",
            labels=v1.labels,
            signature=v1.signature,
            lineage=v1.lineage,
            evaluation=v1.evaluation,
            extra_artifacts={
                VOCABULARY_ARTIFACT: registry.artifacts.read_bytes(v1.file_uri(VOCABULARY_ARTIFACT))
            },
        )
    finally:
        engine.dispose()
    receiver = Receiver(fail_first=0)
    settings = settings.model_copy(update={"alert_webhook_url": receiver.url})
    dev = random.Random(0).sample(list(TrainingData.from_splits(splits).eval_texts or []), N)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert client.get("/v1/models/sentiment/drift").json()["n"] == 0
        for ref, texts in (
            (f"sentiment:{v1.version}", dev),
            (f"sentiment:{v2.version}", tweets(shared_data, N)),
        ):
            for start in range(0, N, 100):
                resp = client.post(
                    f"/v1/models/{ref}/predict", json={"inputs": texts[start : start + 100]}
                )
                assert resp.status_code == 200, resp.text
        client.app.state.prediction_logger.flush()  # type: ignore[attr-defined]
        same = client.get(f"/v1/models/sentiment:{v1.version}/drift", params={"window": "1h"})
        shifted = client.get(f"/v1/models/sentiment:{v2.version}/drift", params={"window": "1h"})
        assert same.status_code == 200, same.text
        assert shifted.status_code == 200, shifted.text
        metrics = client.get("/metrics").text
        bad_window = client.get("/v1/models/sentiment/drift", params={"window": "forever"})
        assert bad_window.status_code == 422
        client.app.state.drift.alerts.close()  # type: ignore[attr-defined]  # sent
    receiver.server.shutdown()
    same_body, shifted_body = same.json(), shifted.json()
    assert same_body["n"] == N
    assert shifted_body["n"] == N
    assert same_body["drift"] is False, same_body
    assert shifted_body["drift"] is True, shifted_body
    by_name = {f["name"]: f for f in shifted_body["features"]}
    assert set(by_name) == {"predicted_label", "text_length", "oov_rate"}
    assert by_name["oov_rate"]["drift"] is True  # @handles, airline names, flight talk
    assert by_name["oov_rate"]["value"] > 0.2
    for feature in same_body["features"]:
        assert feature["drift"] is False, feature
    line = f'aiweb_model_drift_score{{feature="oov_rate",model="sentiment",version="{v2.version}"}}'
    assert any(row.startswith(line) for row in metrics.splitlines()), "drift gauge missing"
    assert MIN_SAMPLES <= N
    # one webhook alert per drifted feature of the tweets' version, none for SST-2 dev
    drifted = {f["name"] for f in shifted_body["features"] if f["drift"]}
    assert sorted(b["feature"] for b in receiver.bodies) == sorted(drifted)
    assert {b["version"] for b in receiver.bodies} == {v2.version}
    assert all(signed is None for _, signed in receiver.raw)  # no AIWEB_ALERTS__WEBHOOK_SECRET
