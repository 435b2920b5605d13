"""The fast serving path over HTTP: the prediction cache (in process and in Redis), its
invalidation when an alias moves, the queue-full answer, and ONNX-served versions."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from helpers import NEGATIVE_TEXT, POSITIVE_TEXT, live_server, open_registry, register_tiny
from sqlalchemy import func, select

from aiweb.app import create_app
from aiweb.classification.loader import ModelLoader, load_runtime
from aiweb.classification.model import TextClassifier
from aiweb.classification.onnx_export import ONNX_ARTIFACT, DualRuntime, OnnxTextClassifier
from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.classification.training import TrainingData, train_text_classification
from aiweb.config import Settings
from aiweb.db.orm import SqlPrediction
from aiweb.db.session import make_engine
from aiweb.monitoring.metrics import PREDICTION_CACHE_HITS
from conftest import TINY_LABELS, TINY_TEXTS

REDIS_URL = "redis://127.0.0.1:6379/11"
EVAL_TEXTS = ["a great and moving film", "boring, dull and awful", "witty fun", "a mess"]
EVAL_LABELS = ["positive", "negative", "positive", "negative"]


def hits() -> float:
    return float(PREDICTION_CACHE_HITS._value.get())


@pytest.fixture(scope="module")
def other_model() -> TextClassifier:
    """A second, differently regularised model: different scores for the same text."""
    return fit_text_classifier(TINY_TEXTS * 3, TINY_LABELS * 3, TrainParams(C=0.05))


@pytest.fixture(params=["memory", "redis"])
def cache_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.flushdb()
        except redis.exceptions.ConnectionError:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
        finally:
            client.close()
        return settings.model_copy(update={"redis_url": REDIS_URL})
    return settings


@pytest.fixture
def two_versions(
    cache_settings: Settings, tiny_model: TextClassifier, other_model: TextClassifier
) -> Settings:
    registry, engine = open_registry(cache_settings)
    try:
        register_tiny(registry, "sentiment", tiny_model.to_bytes())
        register_tiny(registry, "sentiment", other_model.to_bytes())
    finally:
        engine.dispose()
    return cache_settings


def predict(client: TestClient, inputs: list[str], ref: str = "sentiment") -> dict[str, object]:
    resp = client.post(f"/v1/models/{ref}/predict", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, object] = resp.json()
    return body


def scores(body: dict[str, object]) -> list[list[float]]:
    preds = body["predictions"]
    assert isinstance(preds, list)
    return [[p["scores"]["negative"], p["scores"]["positive"]] for p in preds]


def test_repeated_texts_come_from_the_cache_and_are_still_logged(
    two_versions: Settings, tiny_model: TextClassifier, auth_headers: dict[str, str]
) -> None:
    with TestClient(create_app(two_versions), headers=auth_headers) as client:
        before = hits()
        first = predict(client, [POSITIVE_TEXT])
        assert hits() == before  # a miss
        second = predict(client, [NEGATIVE_TEXT, POSITIVE_TEXT, "never seen before"])
        assert hits() == before + 1  # only POSITIVE_TEXT was cached
        assert scores(second)[1] == scores(first)[0]
        expected = tiny_model.predict_proba([NEGATIVE_TEXT, POSITIVE_TEXT, "never seen before"])
        np.testing.assert_allclose(scores(second), expected, rtol=0, atol=1e-12)
        ids = [p["id"] for p in second["predictions"]]  # type: ignore[attr-defined]
        assert first["predictions"][0]["id"] not in ids  # type: ignore[index]
        predict(client, [POSITIVE_TEXT, POSITIVE_TEXT])
        assert hits() == before + 3
    if two_versions.redis_url:  # shared entries carry the TTL
        shared = redis.Redis.from_url(two_versions.redis_url)
        try:
            keys = shared.keys("aiweb:pc:sentiment:1:*")
            assert len(keys) == 3
            assert all(0 < shared.ttl(k) <= two_versions.cache.ttl_s for k in keys)
        finally:
            shared.close()
    engine = make_engine(two_versions.resolved_database_url)
    try:
        with engine.connect() as conn:
            logged = conn.scalar(select(func.count()).select_from(SqlPrediction))
    finally:
        engine.dispose()
    assert logged == 6  # every prediction served is logged, cached or not


def test_moving_the_alias_stops_serving_the_old_versions_cached_scores(
    two_versions: Settings,
    tiny_model: TextClassifier,
    other_model: TextClassifier,
    auth_headers: dict[str, str],
) -> None:
    with TestClient(create_app(two_versions), headers=auth_headers) as client:
        v1 = predict(client, [POSITIVE_TEXT])
        assert v1["version"] == 1
        assert predict(client, [POSITIVE_TEXT]) is not None  # now cached for version 1
        resp = client.put("/v1/models/sentiment/aliases/production", json={"version": 2})
        assert resp.status_code == 200, resp.text
        before = hits()
        v2 = predict(client, [POSITIVE_TEXT])
        assert v2["version"] == 2
        assert hits() == before  # version 1's entry was not used
        np.testing.assert_allclose(
            scores(v2), other_model.predict_proba([POSITIVE_TEXT]), rtol=0, atol=1e-12
        )
        assert scores(v2) != scores(v1)
        # an explicitly pinned version still finds its own entries
        assert scores(predict(client, [POSITIVE_TEXT], "sentiment:1")) == scores(v1)
        assert hits() == before + 1


def test_cache_disabled_never_hits(
    settings: Settings, tiny_model: TextClassifier, auth_headers: dict[str, str]
) -> None:
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    off = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(off), headers=auth_headers) as client:
        before = hits()
        for _ in range(3):
            predict(client, [POSITIVE_TEXT])
        assert hits() == before


def test_redis_down_serves_without_the_cache(
    settings: Settings, tiny_model: TextClassifier, auth_headers: dict[str, str]
) -> None:
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    down = down.model_copy(
        update={"rate_limit": down.rate_limit.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(down), headers=auth_headers) as client:
        body = predict(client, [POSITIVE_TEXT, NEGATIVE_TEXT])
        np.testing.assert_allclose(
            scores(body), tiny_model.predict_proba([POSITIVE_TEXT, NEGATIVE_TEXT]), atol=1e-12
        )


# -- queue full -------------------------------------------------------------------------
def test_a_full_queue_answers_503_problem_with_retry_after(
    tmp_path: Path, tiny_model: TextClassifier
) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'aiweb.db'}",
        rate_limit={"enabled": False},
        auth={"enabled": False},
        cache={"enabled": False},
        serving={"max_queue": 1, "max_batch_size": 1, "max_wait_ms": 0},
    )
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    gate = threading.Event()
    entered = threading.Event()

    def held(texts: list[str]) -> np.ndarray:
        entered.set()
        gate.wait(10)
        return tiny_model.predict_proba(texts)

    app = create_app(settings)
    with live_server(settings, app=app) as port:
        url = f"http://127.0.0.1:{port}/v1/models/sentiment/predict"

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=20) as client:
                # load the model, then hold its next model call
                assert (await client.post(url, json={"inputs": ["warm"]})).status_code == 200
                loader: ModelLoader = app.state.loader
                (loaded,) = loader.loaded()
                loaded.batcher.fn = held
                running = asyncio.ensure_future(client.post(url, json={"inputs": ["a"]}))
                await asyncio.to_thread(entered.wait, 10)
                queued = asyncio.ensure_future(client.post(url, json={"inputs": ["b"]}))
                await asyncio.sleep(0.3)  # "b" waits in the queue (size 1)
                refused = await client.post(url, json={"inputs": ["c"]})
                gate.set()
                return [await running, await queued, refused]

        running, queued, refused = asyncio.run(main())
    assert running.status_code == 200
    assert queued.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/queue-full")


# -- ONNX-served versions ---------------------------------------------------------------
def tiny_data() -> TrainingData:
    return TrainingData(
        name="tiny",
        sha256="0" * 64,
        train_texts=TINY_TEXTS * 3,
        train_labels=TINY_LABELS * 3,
        eval_texts=EVAL_TEXTS,
        eval_labels=EVAL_LABELS,
    )


def test_a_version_whose_export_agrees_is_served_by_onnxruntime(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    registry, engine = open_registry(settings)
    try:
        result = train_text_classification(
            registry, "intent", tiny_data(), params=TrainParams(C=10.0, vectorizer="tfidf")
        )
        version = result.version
        check = version.evaluation["onnx"]
        assert check["status"] == "agrees", check
        assert check["rows"] == len(EVAL_TEXTS)
        onnx_uri = version.file_uri(ONNX_ARTIFACT)
        assert registry.artifacts.read_bytes(onnx_uri)

        auto = load_runtime(registry, version, serving=settings.serving)
        assert isinstance(auto, DualRuntime)
        assert auto.name == "onnx+sklearn"
        assert isinstance(auto.onnx, OnnxTextClassifier)
        sklearn_only = settings.serving.model_copy(update={"runtime": "sklearn"})
        assert isinstance(load_runtime(registry, version, serving=sklearn_only), TextClassifier)

        # an altered ONNX file is never served: scikit-learn answers instead
        registry.artifacts.write_bytes(onnx_uri, b"not the exported model")
        assert isinstance(load_runtime(registry, version, serving=settings.serving), TextClassifier)
        registry.artifacts.delete(onnx_uri)  # and a missing one likewise
        assert isinstance(load_runtime(registry, version, serving=settings.serving), TextClassifier)
    finally:
        engine.dispose()


def test_hashing_versions_record_why_they_are_not_exported(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    registry, engine = open_registry(settings)
    try:
        version = train_text_classification(registry, "sentiment", tiny_data()).version
    finally:
        engine.dispose()
    with TestClient(create_app(settings), headers=auth_headers) as client:
        report = client.get("/v1/models/sentiment/versions/1").json()["evaluation"]
        assert report["onnx"]["status"] == "unsupported"
        assert "HashingVectorizer" in report["onnx"]["reason"]
        assert predict(client, [POSITIVE_TEXT])["version"] == version.version


def test_generated_requests_get_their_own_scores_in_order_cached_or_not(
    settings: Settings, tiny_model: TextClassifier, auth_headers: dict[str, str]
) -> None:
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    words = st.sampled_from(["good", "bad", "film", "dull", "great", "", "é", "🙂", " "])
    texts = st.lists(st.lists(words, max_size=4).map(" ".join), min_size=1, max_size=12)
    fast = settings.model_copy(
        update={"rate_limit": settings.rate_limit.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(fast), headers=auth_headers) as client:

        @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(texts)
        def check(inputs: list[str]) -> None:
            body = predict(client, inputs)
            np.testing.assert_allclose(
                scores(body), tiny_model.predict_proba(inputs), rtol=0, atol=1e-12
            )

        check()
