"""Atomic swap: flipping ``production`` under concurrent load never fails a request.

The app runs under a real uvicorn server (in a background thread, on a free port);
eight clients predict continuously while the alias is flipped between versions 1 and 2.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from helpers import POSITIVE_TEXT, live_server, register_versions

from aiweb.config import Settings

CLIENTS = 8
DURATION_S = 3.0
FLIPS = 6


@pytest.fixture
def server_url(
    settings: Settings, tiny_model_bytes: bytes, auth_headers: dict[str, str]
) -> Iterator[str]:
    if not settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("the swap test runs on SQLite only")
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    with live_server(settings) as port:
        yield f"http://127.0.0.1:{port}"


def test_alias_flips_under_load_fail_no_request(
    server_url: str, auth_headers: dict[str, str]
) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    versions: Counter[int] = Counter()
    failures: list[str] = []

    def drive() -> None:
        with httpx.Client(base_url=server_url, timeout=10, headers=auth_headers) as client:
            while not stop.is_set():
                try:
                    resp = client.post(
                        "/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]}
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    statuses[resp.status_code] += 1
                    if resp.status_code == 200:
                        versions[resp.json()["version"]] += 1
                    else:
                        failures.append(resp.text[:300])

    workers = [threading.Thread(target=drive) for _ in range(CLIENTS)]
    for w in workers:
        w.start()
    flips = []
    try:
        with httpx.Client(base_url=server_url, timeout=30, headers=auth_headers) as admin:
            for i in range(FLIPS):
                time.sleep(DURATION_S / (FLIPS + 1))
                target = 2 if i % 2 == 0 else 1
                resp = admin.put(
                    "/v1/models/sentiment/aliases/production", json={"version": target}
                )
                assert resp.status_code == 200, resp.text
                flips.append(resp.json()["to_version"])
            time.sleep(DURATION_S / (FLIPS + 1))
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)

    assert flips == [2, 1] * (FLIPS // 2)
    assert failures == []
    assert set(statuses) == {200}
    assert sum(statuses.values()) > 50
    assert set(versions) == {1, 2}, versions
