"""Feedback on predictions and live performance windows, over HTTP, on every database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, open_registry, register_tiny
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from aiweb.app import create_app
from aiweb.classification.model import TextClassifier
from aiweb.config import Settings
from aiweb.db.orm import SqlFeedback, SqlPrediction
from aiweb.db.session import make_engine


@pytest.fixture
def served(settings: Settings, tiny_model: TextClassifier) -> Settings:
    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "sentiment", tiny_model.to_bytes())
    finally:
        engine.dispose()
    return settings


def insert_predictions(settings: Settings, rows: list[tuple[str, datetime]]) -> list[str]:
    """Prediction rows of sentiment:1 with the given predicted labels and times."""
    ids = [str(uuid.uuid4()) for _ in rows]
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(SqlPrediction),
                [
                    {
                        "id": pid,
                        "model": "sentiment",
                        "version": 1,
                        "label": label,
                        "scores": {"negative": 0.5, "positive": 0.5},
                        "latency_ms": 1.0,
                        "input_sha256": "0" * 64,
                        "input_text": None,
                        "created_at": at,
                    }
                    for pid, (label, at) in zip(ids, rows, strict=True)
                ],
            )
    finally:
        engine.dispose()
    return ids


def test_feedback_is_stored_replaced_and_validated(
    served: Settings, auth_headers: dict[str, str]
) -> None:
    with TestClient(create_app(served), headers=auth_headers) as client:
        pred = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
        prediction = pred.json()["predictions"][0]
        url = f"/v1/predictions/{prediction['id']}/feedback"
        first = client.post(url, json={"label": "negative", "comment": "it was sarcasm"})
        assert first.status_code == 201, first.text
        body = first.json()
        assert body["predicted_label"] == prediction["label"] == "positive"
        assert (body["label"], body["correct"], body["version"]) == ("negative", False, 1)
        again = client.post(url, json={"label": "positive"})
        assert again.status_code == 200, again.text
        assert again.json()["correct"] is True

        wrong_label = client.post(url, json={"label": "neutral"})
        assert wrong_label.status_code == 422
        assert wrong_label.headers["content-type"] == "application/problem+json"
        assert "negative, positive" in wrong_label.json()["detail"]
        unknown = client.post(
            f"/v1/predictions/{uuid.uuid4()}/feedback", json={"label": "positive"}
        )
        assert unknown.status_code == 404
        assert unknown.json()["type"].endswith("/prediction-not-found")
        assert client.post(url, json={"label": ""}).status_code == 422
        assert client.post(url, json={"label": "positive", "extra": 1}).status_code == 422
    engine = make_engine(served.resolved_database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(SqlFeedback)).all()
    finally:
        engine.dispose()
    assert len(stored) == 1  # replaced, not duplicated
    assert (stored[0].label, stored[0].comment) == ("positive", None)


def test_feedback_right_after_predict_finds_the_queued_prediction(
    served: Settings, auth_headers: dict[str, str]
) -> None:
    slow_log = served.model_copy(
        update={"prediction_log": served.prediction_log.model_copy(update={"flush_interval_s": 60})}
    )
    with TestClient(create_app(slow_log), headers=auth_headers) as client:
        pid = client.post("/v1/models/sentiment/predict", json={"inputs": ["x"]}).json()[
            "predictions"
        ][0]["id"]
        resp = client.post(f"/v1/predictions/{pid}/feedback", json={"label": "negative"})
        assert resp.status_code == 201, resp.text


def test_performance_windows_match_hand_computed_values(
    served: Settings, auth_headers: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    # (predicted, truth, age)
    cases = [
        ("positive", "positive", timedelta(minutes=30)),
        ("positive", "negative", timedelta(minutes=45)),
        ("negative", "negative", timedelta(hours=5)),
        ("negative", "positive", timedelta(hours=30)),
        ("positive", "positive", timedelta(days=3)),
        ("negative", "negative", timedelta(days=8)),  # outside every window
    ]
    ids = insert_predictions(served, [(p, now - age) for p, _, age in cases])
    with TestClient(create_app(served), headers=auth_headers) as client:
        for pid, (_, truth, _) in zip(ids, cases, strict=True):
            resp = client.post(f"/v1/predictions/{pid}/feedback", json={"label": truth})
            assert resp.status_code == 201, resp.text
        perf = client.get("/v1/models/sentiment/versions/1/performance")
        assert perf.status_code == 200, perf.text
        windows = perf.json()["windows"]
        metrics = client.get("/metrics").text
        assert client.get("/v1/models/sentiment/versions/9/performance").status_code == 404
    # 1h: truth [pos, neg], predicted [pos, pos]: F1(pos) = 2/3, F1(neg) = 0
    assert windows["1h"]["n"] == 2
    assert windows["1h"]["accuracy"] == pytest.approx(1 / 2)
    assert windows["1h"]["macro_f1"] == pytest.approx(1 / 3)
    # 24h: truth [pos, neg, neg], predicted [pos, pos, neg]: F1 2/3 for both classes
    assert windows["24h"]["n"] == 3
    assert windows["24h"]["accuracy"] == pytest.approx(2 / 3)
    assert windows["24h"]["macro_f1"] == pytest.approx(2 / 3)
    # 7d: pos P = R = 2/3, neg P = R = 1/2 -> macro (2/3 + 1/2) / 2 = 7/12
    assert windows["7d"]["n"] == 5
    assert windows["7d"]["accuracy"] == pytest.approx(3 / 5)
    assert windows["7d"]["macro_f1"] == pytest.approx(7 / 12)
    line = 'aiweb_model_live_accuracy{model="sentiment",version="1"}'
    gauge = [row for row in metrics.splitlines() if row.startswith(line)]
    assert gauge, "the live-accuracy gauge is not exposed"
    assert float(gauge[0].split()[-1]) == pytest.approx(2 / 3)


def test_no_feedback_gives_empty_windows(served: Settings, auth_headers: dict[str, str]) -> None:
    with TestClient(create_app(served), headers=auth_headers) as client:
        windows = client.get("/v1/models/sentiment/versions/1/performance").json()["windows"]
    assert windows == {
        w: {"n": 0, "accuracy": None, "macro_f1": None, "rmse": None, "mae": None}
        for w in ("1h", "24h", "7d")
    }


def test_generated_feedback_bodies_get_4xx_never_5xx(
    served: Settings, auth_headers: dict[str, str]
) -> None:
    (pid,) = insert_predictions(served, [("positive", datetime.now(UTC))])
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=300),
        st.lists(st.text(), max_size=3),
    )
    bodies = st.one_of(
        st.dictionaries(st.sampled_from(["label", "comment", "x"]), values, max_size=3),
        values,
    )
    with TestClient(create_app(served), headers=auth_headers) as client:

        @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(bodies)
        def check(body: object) -> None:
            resp = client.post(f"/v1/predictions/{pid}/feedback", json=body)
            assert resp.status_code in (200, 201, 422), resp.text
            if resp.status_code >= 400:
                assert resp.headers["content-type"] == "application/problem+json"

        check()


def test_feedback_waiters_hold_no_threads_and_are_bounded(
    served: Settings, auth_headers: dict[str, str]
) -> None:
    """Feedback for unknown prediction ids waits without a worker thread: predicts sent
    while 70 of them wait answer about as fast as before they came; beyond the bound
    (64 per process) the extra ones get 503 with Retry-After at once, the rest 404 when
    their wait ends; the server is healthy afterwards."""
    import asyncio
    import statistics
    import time

    import httpx
    from helpers import live_server

    # a 3 s flush interval: each unknown id waits 2 * 3 + 0.5 = 6.5 s
    slow = served.model_copy(
        update={"prediction_log": served.prediction_log.model_copy(update={"flush_interval_s": 3})}
    )

    async def scenario(port: int) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=auth_headers, limits=limits, timeout=30
        ) as client:
            texts = iter(range(1_000_000))

            async def predict_s() -> float:
                # a new text each time: the model runs (in a worker thread), no cache hit
                start = time.perf_counter()
                text = f"{POSITIVE_TEXT} {next(texts)}"
                resp = await client.post("/v1/models/sentiment/predict", json={"inputs": [text]})
                assert resp.status_code == 200, resp.text
                return time.perf_counter() - start

            for _ in range(5):
                await predict_s()  # warm up
            baseline = statistics.median([await predict_s() for _ in range(15)])

            async def feedback() -> tuple[int, float, httpx.Response]:
                start = time.perf_counter()
                resp = await client.post(
                    f"/v1/predictions/{uuid.uuid4()}/feedback", json={"label": "positive"}
                )
                return resp.status_code, time.perf_counter() - start, resp

            waiters = [asyncio.create_task(feedback()) for _ in range(70)]
            await asyncio.sleep(0.8)  # all 70 arrived; 64 wait, 6 were refused
            # 15 predicts one after another, each with the model in a worker thread
            during = sum([await predict_s() for _ in range(15)])
            assert not all(w.done() for w in waiters)
            results = await asyncio.gather(*waiters)

            # the old code held a thread per waiter (40 in anyio's pool): the first of these
            # predicts waited for a waiter to end, > 6 s
            assert during < 15 * baseline + 2.0, (baseline, during)
            refused = [(s, t, r) for s, t, r in results if s == 503]
            not_found = [(s, t, r) for s, t, r in results if s == 404]
            statuses = [s for s, _, _ in results]
            assert len(refused) == 70 - 64, statuses
            assert len(not_found) == 64, statuses
            for _, took, resp in refused:
                assert took < 2.0
                assert resp.headers["content-type"] == "application/problem+json"
                assert int(resp.headers["retry-after"]) >= 1
                assert "not logged yet" in resp.json()["detail"]
            for _, took, resp in not_found:
                assert took >= 6.0
                assert resp.json()["type"].endswith("/prediction-not-found")
            assert (await client.get("/livez")).status_code == 200
            # a prediction still queued in this process is written on demand, found fast
            pid = (
                await client.post("/v1/models/sentiment/predict", json={"inputs": ["x"]})
            ).json()["predictions"][0]["id"]
            start = time.perf_counter()
            ok = await client.post(f"/v1/predictions/{pid}/feedback", json={"label": "negative"})
            assert ok.status_code == 201, ok.text
            assert time.perf_counter() - start < 1.5

    with live_server(slow) as port:
        asyncio.run(scenario(port))
