"""The example apps of ``examples/`` (issue 27, item 7) against a live ``aiweb serve``.

One real server (SQLite home, embedded jobs, a fast scheduler tick) serves a sentiment
model trained by a job, a recommender trained by a job and a collection embedded by the
tiny real ONNX embedder of ``tests/tiny_embedder.py`` (registered as ``minilm``: the real
MiniLM export is not needed). The example apps run in this process: Django's and Flask's
test clients drive them, and the Django app is also served over HTTP (wsgiref, in a
thread) so that aiweb's scheduler delivers its signed ``job.finished`` webhook to it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from stack import base_env, create_admin_key, free_port, labeled_csv, start_server, wait_job

from aiweb.client import Client
from aiweb.client.webhooks import SIGNATURE_HEADER
from aiweb.config import Settings
from aiweb.db.migrate import upgrade
from aiweb.embeddings.install import register_exported
from aiweb.registry.factory import build_registry
from tiny_embedder import write_export

pytest.importorskip("django")
pytest.importorskip("flask")

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "whsec_examples_0123456789"
DOCS = [
    {"id": "praise", "text": "a wonderful moving film, brilliant and funny"},
    {"id": "pan", "text": "terrible and boring, a dull lifeless mess"},
    {"id": "waste", "text": "the plot was stupid, a waste of time"},
]


class Live:
    def __init__(self, base_url: str, key: str, tmp: Path) -> None:
        self.base_url = base_url
        self.key = key
        self.tmp = tmp
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``aiweb serve`` with the tiny embedder as ``minilm``, a ``sentiment`` model trained
    by a job and a ``shows`` recommender trained by a job on a small catalogue."""
    tmp = tmp_path_factory.mktemp("examples")
    home = tmp / "home"
    env = base_env(
        home,
        AIWEB_SECRET_KEY=uuid.uuid4().hex * 2,
        AIWEB_RATE_LIMIT__ENABLED="false",
        AIWEB_JOBS__POLL_INTERVAL_S="0.1",
        AIWEB_JOBS__SCHEDULER_INTERVAL_S="0.5",
    )
    key = create_admin_key(env)  # migrates the home's database
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'aiweb.db'}")
    registry, engine = build_registry(settings)
    try:
        upgrade(engine)
        register_exported(registry, write_export(tmp / "tiny"), include_int8=False, actor="e2e")
    finally:
        engine.dispose()
    port = free_port()
    server = start_server(env, tmp / "serve.log", port)
    live = Live(f"http://127.0.0.1:{port}", key, tmp)
    try:
        http = live.http
        items = [
            {"item_id": f"m{i}", "title": f"{'space' if i < 10 else 'love'} story {i}"}
            for i in range(20)
        ]
        assert http.post("/v1/items", json={"items": items}).status_code == 200
        events = [
            {
                "user_id": f"u{u}",
                "item_id": f"m{(u % 2) * 10 + (u + t) % 10}",
                "type": "rating",
                "value": 4.0,
                "timestamp": 1_600_000_000 + 3600 * t + u,
                "event_id": f"e{u}-{t}",
            }
            for u in range(20)
            for t in range(6)
        ]
        assert http.post("/v1/interactions", json={"interactions": events}).status_code == 200
        job = http.post(
            "/v1/jobs",
            json={"type": "train", "task": "recommendation", "model": "shows", "algorithm": "ease"},
        )
        assert job.status_code == 202, job.text
        trained = wait_job(http, job.json()["id"])
        assert trained["status"] == "succeeded", trained
        # promoted only when it beats the popularity baseline: serve it regardless
        version = trained["result"]["version"]
        moved = http.put("/v1/models/shows/aliases/production", json={"version": version})
        assert moved.status_code in (200, 201), moved.text
        yield live
    finally:
        live.http.close()
        server.stop()


def train_sentiment(live: Live) -> dict[str, Any]:
    http = live.http
    dataset = http.post(
        "/v1/datasets", files={"file": ("train.csv", labeled_csv(10), "text/csv")}
    ).json()
    job = http.post(
        "/v1/jobs", json={"type": "train", "model": "sentiment", "dataset_id": dataset["id"]}
    )
    assert job.status_code == 202, job.text
    done = wait_job(http, job.json()["id"])
    assert done["status"] == "succeeded", done
    return done


# ---- Django -------------------------------------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class DjangoServer:
    def __init__(self, url: str) -> None:
        self.url = url
        #: (raw body, Aiweb-Signature) of every POST to the webhook view, as received
        self.posts: list[tuple[bytes, str]] = []


@pytest.fixture(scope="module")
def django_app(live: Live) -> Iterator[DjangoServer]:
    """The Django example configured for ``live``, served on 127.0.0.1 (the webhook's raw
    posts kept on the way in)."""
    sys.path.insert(0, str(EXAMPLES / "django_reviews"))
    had_settings = "DJANGO_SETTINGS_MODULE" in os.environ
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviews_site.settings")
    import django
    from django.test.utils import override_settings

    django.setup()
    overrides = override_settings(
        AIWEB_URL=live.base_url,
        AIWEB_API_KEY=live.key,
        AIWEB_WEBHOOK_SECRET=SECRET,
        AIWEB_EVENTS_FILE=live.tmp / "events.jsonl",
    )
    overrides.enable()
    from reviews_site.wsgi import application

    posts: list[tuple[bytes, str]] = []

    def keeping_posts(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/aiweb/events/":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            posts.append((body, environ.get("HTTP_AIWEB_SIGNATURE", "")))
            environ["wsgi.input"] = io.BytesIO(body)
        return application(environ, start_response)

    httpd = make_server(
        "127.0.0.1",
        0,
        keeping_posts,
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server = DjangoServer(f"http://127.0.0.1:{httpd.server_address[1]}")
        server.posts = posts
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        overrides.disable()
        sys.path.remove(str(EXAMPLES / "django_reviews"))
        if not had_settings:
            os.environ.pop("DJANGO_SETTINGS_MODULE", None)


def recorded(live: Live) -> list[dict[str, Any]]:
    path = live.tmp / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_django_records_aiweb_signed_job_finished_and_refuses_a_tampered_one(
    live: Live, django_app: DjangoServer
) -> None:
    hook = live.http.put(
        "/v1/webhooks/reviews",
        json={"url": f"{django_app.url}/aiweb/events/", "events": ["job.*"], "secret": SECRET},
    )
    assert hook.status_code in (200, 201), hook.text
    job = train_sentiment(live)
    deadline = time.monotonic() + 60
    while not any(e["data"]["job_id"] == job["id"] for e in recorded(live)):
        assert time.monotonic() < deadline, live.http.get("/v1/webhooks/reviews/deliveries").text
        time.sleep(0.2)
    event = next(e for e in recorded(live) if e["data"]["job_id"] == job["id"])
    assert event["type"] == "job.finished"
    assert event["data"]["status"] == "succeeded"
    deliveries = live.http.get("/v1/webhooks/reviews/deliveries").json()["deliveries"]
    ours = next(d for d in deliveries if d["event_id"] == event["id"])
    assert (ours["status"], ours["response_status"]) == ("sent", 204)

    # aiweb's delivery as it arrived: replayed, accepted (and recorded once); with its
    # body changed by one field under aiweb's signature, or unsigned: 400, not recorded
    body, signature = next(p for p in django_app.posts if json.loads(p[0])["id"] == event["id"])
    assert signature.startswith("t=")
    url = f"{django_app.url}/aiweb/events/"
    replay = httpx.post(url, content=body, headers={SIGNATURE_HEADER: signature})
    assert replay.status_code == 204
    tampered = body.replace(b'"succeeded"', b'"failed"')
    assert tampered != body
    refused = httpx.post(url, content=tampered, headers={SIGNATURE_HEADER: signature})
    assert refused.status_code == 400
    assert httpx.post(url, content=body).status_code == 400
    assert [e["id"] for e in recorded(live)].count(event["id"]) == 1
    assert all(e["data"]["status"] != "failed" for e in recorded(live))


def test_django_review_shows_sentiment_and_also_liked(live: Live, django_app: DjangoServer) -> None:
    from django.test import Client as DjangoClient

    if live.http.get("/v1/models/sentiment").status_code != 200:
        train_sentiment(live)
    page = DjangoClient().get("/")
    assert page.status_code == 200
    assert b'name="text"' in page.content
    text = "a wonderful, moving film"
    with Client(live.base_url, api_key=live.key) as aiweb:
        label = aiweb.predict("sentiment", [text]).predictions[0].label
        recs = [r.item_id for r in aiweb.recommend("u0", n=5, model="shows")]
    assert label == "positive"
    assert recs
    resp = DjangoClient().post("/", {"user_id": "u0", "text": text})
    assert resp.status_code == 200
    html = resp.content.decode()
    assert re.search(r'<strong id="sentiment">(\w+)</strong>', html)[1] == label  # type: ignore[index]
    assert re.findall(r'data-item-id="([^"]+)"', html) == recs
    negative = DjangoClient().post("/", {"user_id": "u0", "text": "terrible and boring"})
    assert b'<strong id="sentiment">negative</strong>' in negative.content


# ---- Flask --------------------------------------------------------------------------------


def load_flask_example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "aiweb_example_flask_search", EXAMPLES / "flask_search" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flask_search_puts_the_expected_document_first(live: Live) -> None:
    http = live.http
    assert http.put("/v1/collections/reviews", json={}).status_code == 201
    added = http.post("/v1/collections/reviews/documents", json={"documents": DOCS})
    assert added.status_code in (200, 201), added.text
    app = load_flask_example().create_app(live.base_url, live.key, "reviews").test_client()
    for query, expected in [
        ("a waste of time", "waste"),
        ("brilliant and funny", "praise"),
        ("dull mess", "pan"),
    ]:
        resp = app.get("/api/search", query_string={"q": query})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["hits"][0]["id"] == expected, resp.get_json()
        page = app.get("/", query_string={"q": query}).get_data(as_text=True)
        assert re.findall(r'data-id="([^"]+)"', page)[0] == expected
    assert app.get("/api/search").status_code == 400
