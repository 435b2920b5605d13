"""The Python SDK (:mod:`aiweb.client`) against a live server (uvicorn on 127.0.0.1), on
every database: typed results equal to the raw ``/v1`` answers, jobs with a progress
callback, problems raised as the :mod:`aiweb.errors` classes, and retries that honour
``Retry-After`` on real 429 and 503 answers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import NEGATIVE_TEXT, POSITIVE_TEXT, live_server, open_registry, register_tiny

from aiweb import errors as server_errors
from aiweb.client import AsyncClient, Client, errors, models
from aiweb.config import Settings

POS = ["a wonderful, moving film", "great acting and a clever story", "brilliant and funny"]
NEG = ["terrible and boring", "a dull, lifeless mess", "awful acting and a stupid plot"]


def labeled_csv(repeat: int = 4) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "text", "label"])
    n = 0
    for r in range(repeat):
        for text, label in [(t, "positive") for t in POS] + [(t, "negative") for t in NEG]:
            n += 1
            writer.writerow([f"row-{n}", f"{text} ({r})", label])
    return buf.getvalue().encode()


class Counting(httpx.HTTPTransport):
    """An httpx transport that records the status of every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def serve_tiny(settings: Settings, tiny_model_bytes: bytes) -> None:
    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "tiny", tiny_model_bytes, alias="production")
    finally:
        engine.dispose()


@pytest.fixture
def base_url(settings: Settings, admin_key: str, tiny_model_bytes: bytes) -> Iterator[str]:
    serve_tiny(settings, tiny_model_bytes)
    with live_server(settings, "client-test") as port:
        yield f"http://127.0.0.1:{port}"


def test_predict_and_explain_equal_the_v1_answers(base_url: str, admin_key: str) -> None:
    texts = [POSITIVE_TEXT, NEGATIVE_TEXT]
    raw = httpx.post(
        f"{base_url}/v1/models/tiny/predict",
        json={"inputs": texts},
        headers={"Authorization": f"Bearer {admin_key}"},
    ).json()
    with Client(base_url, api_key=admin_key) as client:
        answer = client.predict("tiny", texts)
        assert isinstance(answer, models.PredictResponse)
        assert (answer.model, answer.version) == (raw["model"], raw["version"])
        assert [p.label for p in answer.predictions] == ["positive", "negative"]
        assert [p.label for p in answer.predictions] == [p["label"] for p in raw["predictions"]]
        for got, want in zip(answer.predictions, raw["predictions"], strict=True):
            assert got.scores == pytest.approx(want["scores"])
        assert client.predict("tiny@production", texts).version == 1

        why = client.explain("tiny", [POSITIVE_TEXT], top_k=3)
        assert isinstance(why, models.ExplainResponse)
        first = why.explanations[0]
        assert first.label == first.target == "positive"
        assert 0 < len(first.contributions) <= 3
        assert all(isinstance(c, models.Contribution) for c in first.contributions)
        assert client.explain("tiny", [POSITIVE_TEXT], target="negative").explanations[
            0
        ].target == ("negative")

        listed = client.models()
        assert [m.name for m in listed] == ["tiny"]
        detail = client.model("tiny")
        assert detail.aliases == {"production": 1}
        assert [v.version for v in detail.versions] == [1]
        assert client.model_version("tiny", 1).labels == ["negative", "positive"]
        event = client.set_alias("tiny", "staging", 1)
        assert (event.alias, event.to_version) == ("staging", 1)

        pid = answer.predictions[0].id
        feedback = client.feedback(pid, "positive", comment="right")
        assert feedback.correct
        assert feedback.prediction_id == pid


def test_upload_train_wait_and_stream_a_batch_result(
    base_url: str, admin_key: str, tmp_path: Path
) -> None:
    data = tmp_path / "reviews.csv"
    data.write_bytes(labeled_csv())
    seen: list[models.Job] = []
    with Client(base_url, api_key=admin_key) as client:
        dataset = client.upload_dataset(data)
        assert (dataset.name, dataset.rows) == ("reviews.csv", 24)
        assert dataset.columns == ["id", "text", "label"]
        assert client.dataset(dataset.id) == dataset
        assert [d.id for d in client.datasets().datasets] == [dataset.id]
        with data.open("rb") as f:  # a file object, and another name
            assert client.upload_dataset(f, name="again.csv").name == "again.csv"

        job = client.submit_job("train", "reviews", dataset_id=dataset.id, params={"C": 4})
        assert job.status == "pending"
        done = client.wait_job(job.id, progress=seen.append, timeout=120, poll_interval=0.05)
        assert done.status == "succeeded", done.error
        assert done.result is not None
        assert done.result["version"] == 1
        assert seen
        assert seen[-1] == done
        assert [j.progress for j in seen] == sorted(j.progress for j in seen)
        assert client.predict("reviews", ["i loved it, wonderful"]).predictions[0].label == (
            "positive"
        )

        batch = client.submit_job("batch-predict", "reviews", dataset_id=dataset.id)
        batch = client.wait_job(batch.id, timeout=120, poll_interval=0.05)
        assert batch.status == "succeeded", batch.error
        chunks = list(client.iter_job_result(batch.id, chunk_size=64))
        assert len(chunks) > 1
        rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
        assert len(rows) == 24
        assert list(rows[0]) == ["id", "label", "score_negative", "score_positive"]
        out = client.download_job_result(batch.id, tmp_path / "result.csv")
        assert out.read_bytes() == b"".join(chunks)
        # a train job writes no file: its result is the job's result, as JSON
        assert json.loads(b"".join(client.iter_job_result(job.id))) == done.result
        assert batch.id in [j.id for j in client.jobs(type="batch-predict").jobs]


def test_problems_are_raised_as_the_server_error_classes(base_url: str, admin_key: str) -> None:
    with Client(base_url, api_key=admin_key) as client:
        with pytest.raises(errors.ModelNotFound) as caught:
            client.predict("nope", ["x"])
        exc = caught.value
        assert isinstance(exc, server_errors.ModelNotFound)
        assert isinstance(exc, errors.NotFoundError)
        assert isinstance(exc, server_errors.NotFoundError)
        assert exc.status == 404
        assert exc.problem["type"] == "/problems/model-not-found"
        assert exc.problem["instance"] == "/v1/models/nope/predict"
        assert "nope" in exc.detail
        assert "404" in str(exc)

        with pytest.raises(errors.InvalidInputError) as invalid:
            client.predict("tiny", [])
        assert invalid.value.status == 422
        assert invalid.value.problem["errors"]

        with pytest.raises(errors.CollectionNotFound):
            client.collection("nothing")
        with pytest.raises(errors.CollectionNotFound):
            client.search("nothing", "a query", top_k=3, filter={"lang": "en"})
        with pytest.raises(errors.ModelNotFound) as no_recommender:
            client.similar("no-such-item")
        assert "recommendation" in no_recommender.value.detail
        with pytest.raises(errors.JobNotFound):
            client.job("00000000-0000-0000-0000-000000000000")
        with pytest.raises(errors.DataFormatError) as bad:
            client.upload_dataset(io.BytesIO(b'text,label\n"a",b,c\n'), name="bad.csv")
        assert "line 2" in bad.value.detail

    with Client(base_url, api_key="aiw_wrong") as stranger:
        with pytest.raises(errors.UnauthorizedError) as denied:
            stranger.models()
        assert denied.value.status == 401
        assert "Bearer" in denied.value.headers["www-authenticate"]


def test_recommend_and_similar_equal_the_v1_answers(settings: Settings, admin_key: str) -> None:
    from aiweb.recommendations.store import RecommendationStore
    from aiweb.recommendations.training import RecommendationData, train_recommendation

    items = [
        {"item_id": f"m{i}", "title": f"story {i}", "categories": ["a" if i < 10 else "b"]}
        for i in range(20)
    ]
    events = [
        {
            "user_id": f"u{u}",
            "item_id": f"m{(u % 10 + t) % 10 + (0 if u < 10 else 10)}",
            "type": "rating",
            "value": 4.0,
            "timestamp": 1_600_000_000 + 3600 * t + u,
            "event_id": f"e{u}-{t}",
        }
        for u in range(20)
        for t in range(8)
    ]
    with live_server(settings, "client-recommend") as port:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {admin_key}"}
        assert httpx.post(f"{base}/v1/items", json={"items": items}, headers=auth).is_success
        assert httpx.post(
            f"{base}/v1/interactions", json={"interactions": events}, headers=auth
        ).is_success
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(
                registry, "shows", data, algorithm="ease", alias="production", actor="tests"
            )
        finally:
            engine.dispose()
        with Client(base, api_key=admin_key) as client:
            recs = client.recommend("u0", n=3, model="shows")
            raw = httpx.get(
                f"{base}/v1/users/u0/recommendations",
                params={"model": "shows", "n": 3},
                headers=auth,
            ).json()
            assert [r.item_id for r in recs] == [r["item_id"] for r in raw]
            assert all(isinstance(r, models.Recommended) for r in recs)
            assert [r.score for r in recs] == pytest.approx([r["score"] for r in raw])
            explained = client.recommend("u0", n=3, model="shows", explain=True, include="item")
            assert all(r.item is not None and r.item.title for r in explained)
            assert any(r.because or r.explanation for r in explained)
            seen = {e["item_id"] for e in events if e["user_id"] == "u0"}
            unseen = client.recommend("u0", n=20, model="shows", exclude_seen=False)
            assert {r.item_id for r in unseen} & seen

            similar = client.similar("m2", n=4, model="shows")
            raw_similar = httpx.get(
                f"{base}/v1/items/m2/similar", params={"model": "shows", "n": 4}, headers=auth
            ).json()
            assert [i.item_id for i in similar] == [i["item_id"] for i in raw_similar]
            assert "m2" not in [i.item_id for i in similar]
            with pytest.raises(errors.ItemNotFound):
                client.similar("nope", model="shows")


def test_a_429_is_retried_after_retry_after(
    settings: Settings, admin_key: str, tiny_model_bytes: bytes
) -> None:
    serve_tiny(settings, tiny_model_bytes)
    limited = settings.model_copy(
        update={
            "rate_limit": settings.rate_limit.model_copy(
                update={"enabled": True, "predict": "2/second", "admin": "2/second"}
            )
        }
    )
    with live_server(limited, "client-429") as port:
        transport = Counting()
        with Client(
            f"http://127.0.0.1:{port}", api_key=admin_key, transport=transport, retries=3
        ) as client:
            started = time.monotonic()
            labels = [
                client.predict("tiny", [POSITIVE_TEXT]).predictions[0].label for _ in range(3)
            ]
            elapsed = time.monotonic() - started
        assert labels == ["positive"] * 3
        assert 429 in transport.statuses
        assert transport.statuses[-1] == 200
        assert elapsed >= 0.9  # Retry-After is whole seconds, at least 1

        time.sleep(1.1)  # a fresh budget
        transport = Counting()
        with Client(
            f"http://127.0.0.1:{port}", api_key=admin_key, transport=transport, retries=0
        ) as client:
            client.models()
            client.models()
            with pytest.raises(errors.RateLimitedError) as caught:
                client.models()
        assert int(caught.value.headers["retry-after"]) >= 1
        assert transport.statuses.count(429) == 1


def test_a_503_is_retried_after_retry_after(settings: Settings, admin_key: str) -> None:
    # a broker nobody listens on: submitting a job answers 503 with Retry-After: 5
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with live_server(broken, "client-503") as port:
        base = f"http://127.0.0.1:{port}"
        with Client(base, api_key=admin_key) as client:
            dataset = client.upload_dataset(io.BytesIO(labeled_csv(1)), name="d.csv")
        transport = Counting()
        with Client(base, api_key=admin_key, transport=transport, retries=1) as client:
            started = time.monotonic()
            with pytest.raises(errors.BrokerUnavailableError) as caught:
                client.submit_job("train", "m", dataset_id=dataset.id)
            elapsed = time.monotonic() - started
        assert transport.statuses == [503, 503]
        assert elapsed >= 5.0
        assert isinstance(caught.value, server_errors.ServiceUnavailableError)
        assert caught.value.headers["retry-after"] == "5"
        # a Retry-After longer than the client will wait: raised at once, not resent
        transport = Counting()
        with (
            Client(base, api_key=admin_key, transport=transport, max_retry_wait=1) as client,
            pytest.raises(errors.BrokerUnavailableError),
        ):
            client.submit_job("train", "m", dataset_id=dataset.id)
        assert transport.statuses == [503]


def test_connection_errors_raise_transport_error_after_retries() -> None:
    from helpers import free_port

    with Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01) as client:
        started = time.monotonic()
        with pytest.raises(errors.TransportError) as caught:
            client.models()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert time.monotonic() - started < 5

    async def unreachable() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=1) as client:
            with pytest.raises(errors.TransportError):
                await client.job("x")

    asyncio.run(unreachable())


def test_async_client(base_url: str, admin_key: str, tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    data.write_bytes(labeled_csv())

    async def main() -> None:
        seen: list[float] = []

        async def progress(job: models.Job) -> None:
            seen.append(job.progress)

        async with AsyncClient(base_url, api_key=admin_key) as client:
            answers = await asyncio.gather(
                client.predict("tiny", [POSITIVE_TEXT]), client.predict("tiny", [NEGATIVE_TEXT])
            )
            assert [a.predictions[0].label for a in answers] == ["positive", "negative"]
            why = await client.explain("tiny", [NEGATIVE_TEXT])
            assert why.explanations[0].label == "negative"
            with pytest.raises(errors.ModelNotFound):
                await client.predict("nope", ["x"])
            dataset = await client.upload_dataset(data)
            assert dataset.rows == 24
            job = await client.submit_job("train", "areviews", dataset_id=dataset.id)
            done = await client.wait_job(job.id, progress=progress, timeout=120, poll_interval=0.05)
            assert done.status == "succeeded", done.error
            assert seen
            assert seen[-1] == 1.0
            batch = await client.submit_job("batch-predict", "areviews", dataset_id=dataset.id)
            batch = await client.wait_job(batch.id, timeout=120, poll_interval=0.05)
            body = b"".join([c async for c in client.iter_job_result(batch.id)])
            assert body.count(b"\n") == 25

    asyncio.run(main())
