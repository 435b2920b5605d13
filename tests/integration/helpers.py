"""Helpers shared by the integration tests: registries on a settings' database and
models registered from the tiny fixture pipeline."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.migrate import upgrade
from aiweb.registry.entities import ModelVersion
from aiweb.registry.factory import build_registry
from aiweb.registry.service import RegistryService

TASK = "text-classification"
LABELS = ["negative", "positive"]
POSITIVE_TEXT = "a wonderful, moving film, brilliant and funny"
NEGATIVE_TEXT = "terrible and boring, a dull lifeless mess"


def redis_reachable(url: str = "redis://127.0.0.1:6379/0") -> bool:
    """Whether the Redis at ``url`` answers PING within half a second."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def open_registry(settings: Settings) -> tuple[RegistryService, Engine]:
    """A registry on the (migrated) database and artifact store of ``settings``."""
    registry, engine = build_registry(settings)
    upgrade(engine)
    return registry, engine


def register_tiny(
    registry: RegistryService,
    name: str,
    artifact: bytes,
    *,
    alias: str | None = None,
    tag: str = "",
) -> ModelVersion:
    """Register one version of ``name`` from the tiny model's bytes."""
    return registry.register_version(
        name,
        TASK,
        artifact=artifact,
        artifact_format="skops",
        labels=list(LABELS),
        signature={"inputs": {"type": "array", "items": {"type": "string"}}},
        lineage={"dataset": "tiny", "tag": tag},
        evaluation={"accuracy": 1.0},
        alias=alias,
        actor="tests",
    )


def register_versions(settings: Settings, name: str, artifact: bytes, count: int) -> None:
    """Register ``count`` versions of ``name`` on the database of ``settings``."""
    registry, engine = open_registry(settings)
    try:
        for i in range(count):
            register_tiny(registry, name, artifact, tag=str(i + 1))
    finally:
        engine.dispose()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(
    settings: Settings,
    name: str = "uvicorn-test",
    app: FastAPI | None = None,
    *,
    http: str = "auto",
) -> Iterator[int]:
    """Run ``create_app(settings)`` under a real uvicorn on 127.0.0.1 in a thread.

    Yields the port once the server is started (lifespan done); stops it afterwards.
    ``http``: uvicorn's HTTP protocol (``aiweb.serving.protocol.PROTOCOL``: the one
    ``aiweb serve`` runs, after ``configure``).
    """
    port = free_port()
    config = uvicorn.Config(
        app=app or create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive()


def standalone_settings(home: Path) -> Settings:
    """Settings for a module-scoped server of its own: SQLite under ``home``, no rate
    limits, fast alias refresh and log flush."""
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'aiweb.db'}",
        rate_limit={"enabled": False},
        serving={"alias_refresh_s": 0.2},
        prediction_log={"flush_interval_s": 0.1},
    )


class Receiver:
    """A webhook on 127.0.0.1 that answers 503 to the first ``fail_first`` posts."""

    def __init__(self, fail_first: int) -> None:
        self.bodies: list[dict[str, Any]] = []
        #: ``(raw body, Aiweb-Signature header or None)`` of each body taken
        self.raw: list[tuple[bytes, str | None]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                raw = self.rfile.read(length)
                body = json.loads(raw)
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    receiver.raw.append((raw, self.headers.get("aiweb-signature")))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def write_labeled_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    """``path`` written as a CSV of ``text,label`` rows (a header first)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def wait_job(client: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has finished (succeeded, failed or cancelled), polled over the
    client's ``GET /v1/jobs/{id}``."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)
