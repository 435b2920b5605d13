"""The request-body limit over real HTTP: a uvicorn server (in a background thread, on a
free loopback port) answers an oversized body 413 without reading it.

* A declared ``Content-Length`` over ``AIWEB_LIMITS__MAX_BODY_BYTES`` (4 MiB) is
  answered while the client has sent only the first 64 KiB of 8 MiB (a raw socket, so
  nothing buffers the rest behind our back).
* A chunked upload (no ``Content-Length``) is cut off once it passes the limit.
* A body under the limit but with too many inputs is the app's 413/422 problem, not 500.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from helpers import live_server, register_versions, standalone_settings

from aiweb.config import Settings
from conftest import create_key

LIMIT = 4 * 1024 * 1024  # the default AIWEB_LIMITS__MAX_BODY_BYTES
BIG = 8 * 1024 * 1024
SENT = 64 * 1024
PREDICT = "/v1/models/sentiment/predict"


def json_body(size: int, text_chars: int) -> bytes:
    """Valid predict JSON of exactly ``size`` bytes, texts of ``text_chars`` characters."""
    text = "a" * (text_chars - 1)
    per_item = len(json.dumps(text)) + 2  # the quoted text and ", "
    count = max(1, (size - 32) // per_item)
    body = json.dumps({"inputs": [text] * count}).encode()
    assert len(body) <= size
    # pad the first text so the body has exactly the size asked for
    pad = size - len(body)
    body = json.dumps({"inputs": ["a" * (text_chars - 1 + pad)] + [text] * (count - 1)}).encode()
    assert len(body) == size
    json.loads(body)
    return body


@pytest.fixture(scope="module")
def limit_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return standalone_settings(tmp_path_factory.mktemp("body-limit") / "home")


@pytest.fixture(scope="module")
def admin_secret(limit_settings: Settings, tiny_model_bytes: bytes) -> str:
    secret = create_key(limit_settings, ("admin",), "body-limit")
    register_versions(limit_settings, "sentiment", tiny_model_bytes, 2)
    return secret


@pytest.fixture(scope="module")
def server(limit_settings: Settings, admin_secret: str) -> Iterator[tuple[str, int]]:
    assert limit_settings.limits.max_body_bytes == LIMIT
    with live_server(limit_settings, "uvicorn-body-limit") as port:
        yield "127.0.0.1", port


@pytest.fixture
def base_url(server: tuple[str, int]) -> str:
    host, port = server
    return f"http://{host}:{port}"


@pytest.fixture
def auth(admin_secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_secret}"}


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length body from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return int(status_line.split(" ")[1]), headers, rest[:length]


def assert_too_large(status: int, content_type: str, body: dict[str, object]) -> None:
    assert status == 413, body
    assert content_type.startswith("application/problem+json")
    assert body["status"] == 413
    assert body["type"] == "/problems/payload-too-large"
    assert f"larger than {LIMIT} bytes" in str(body["detail"])
    assert "AIWEB_LIMITS__MAX_BODY_BYTES" in str(body["detail"])


def test_declared_oversized_body_is_refused_before_it_is_read(
    server: tuple[str, int], admin_secret: str
) -> None:
    body = json_body(BIG, 1000)
    head = (
        f"POST {PREDICT} HTTP/1.1\r\n"
        f"Host: {server[0]}:{server[1]}\r\n"
        f"Authorization: Bearer {admin_secret}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode("latin-1")
    assert len(body) == 8388608
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(head + body[:SENT])
        # 8 MiB - 64 KiB is never sent: an answer at all proves the server did not wait
        # for the body (else recv times out after 10 s)
        status, headers, raw = read_response(sock)
    assert_too_large(status, headers["content-type"], json.loads(raw))
    assert headers.get("connection") == "close"


def test_chunked_oversized_body_is_cut_off(base_url: str, auth: dict[str, str]) -> None:
    body = json_body(BIG, 1000)

    def stream() -> Iterator[bytes]:  # a generator: httpx sends it chunked
        for start in range(0, len(body), SENT):
            yield body[start : start + SENT]

    with httpx.Client(base_url=base_url, timeout=30) as client:
        resp = client.post(
            PREDICT, content=stream(), headers={**auth, "Content-Type": "application/json"}
        )
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert_too_large(resp.status_code, resp.headers["content-type"], resp.json())


def test_body_under_the_limit_with_too_many_inputs_is_a_problem(
    base_url: str, auth: dict[str, str]
) -> None:
    body = json_body(3 * 1024 * 1024, 1000)
    inputs = json.loads(body)["inputs"]
    assert len(inputs) > 256
    with httpx.Client(base_url=base_url, timeout=60) as client:
        resp = client.post(
            PREDICT, content=body, headers={**auth, "Content-Type": "application/json"}
        )
    assert resp.status_code in (413, 422), resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["status"] == resp.status_code
    assert "256" in problem["detail"], problem
