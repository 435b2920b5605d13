"""Structured JSON logs carry the request id, model and version; Sentry gets errors."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, open_registry, register_tiny

from aiweb.app import create_app
from aiweb.classification.model import TextClassifier
from aiweb.config import Settings
from aiweb.monitoring.logs import JsonFormatter, access_log, init_sentry, log_config


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    level = access_log.level
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    yield stream
    access_log.removeHandler(handler)
    access_log.setLevel(level)


def test_access_log_lines_are_json_with_request_model_and_version(
    settings: Settings,
    tiny_model: TextClassifier,
    auth_headers: dict[str, str],
    captured: io.StringIO,
) -> None:
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    with TestClient(create_app(settings), headers=auth_headers) as client:
        resp = client.post(
            "/v1/models/sentiment/predict",
            json={"inputs": [POSITIVE_TEXT]},
            headers={"X-Request-ID": "req-42"},
        )
        assert resp.status_code == 200
        client.get("/v1/models/nope", headers={"X-Request-ID": "req-43"})
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    by_id = {line.get("request_id"): line for line in lines}
    predict = by_id["req-42"]
    assert predict["logger"] == "aiweb.access"
    assert predict["level"] == "info"
    assert (predict["model"], predict["version"]) == ("sentiment", 1)
    assert (predict["method"], predict["route"], predict["status"]) == (
        "POST",
        "/v1/models/{name}/predict",
        200,
    )
    assert predict["duration_ms"] > 0
    assert predict["message"] == "POST /v1/models/{name}/predict 200"
    missing = by_id["req-43"]
    assert missing["status"] == 404
    assert "model" not in missing  # no model was served in that request


def test_log_config_writes_json_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(log_config("json", "info", access_log_on=False))
    try:
        logging.getLogger("aiweb.test").warning("disk %s full", "/data", extra={"free_mb": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("aiweb.test").exception("failed")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        logging.getLogger("aiweb").handlers.clear()
        logging.getLogger("aiweb").propagate = True
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines()[-2:])
    assert (first["level"], first["message"], first["free_mb"]) == ("warning", "disk /data full", 3)
    assert "ValueError: boom" in second["exception"]
    assert logging.getLogger("aiweb.access").level == logging.WARNING  # --access-log off


def test_no_dsn_no_sentry() -> None:
    assert init_sentry(None) is False


def test_errors_reach_sentry(tmp_path: Path) -> None:
    """In a child process (sentry-sdk patches libraries globally): the SDK posts the
    captured error to a Sentry-compatible endpoint on 127.0.0.1."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    script = (
        "import sentry_sdk\n"
        "from aiweb.monitoring.logs import init_sentry\n"
        f"assert init_sentry({dsn!r})\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    sentry_sdk.capture_exception(exc)\n"
        "sentry_sdk.flush(5)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert any(path.startswith("/api/42/") for path in received), received
