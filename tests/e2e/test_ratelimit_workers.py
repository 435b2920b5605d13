"""Two `aiweb serve` worker processes share one rate-limit budget through the real Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

CLI = Path(sys.executable).parent / "aiweb"
REDIS_URL = os.environ.get("AIWEB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
@pytest.mark.skipif(not redis_reachable(), reason="no Redis on 127.0.0.1:6379")
def test_two_workers_share_one_budget(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.update(
        AIWEB_HOME=str(tmp_path / "home"),
        AIWEB_REDIS_URL=REDIS_URL,
        AIWEB_RATE_LIMIT__PREDICT="20/minute",
    )
    name = f"rl-{uuid.uuid4().hex[:8]}"  # a fresh identity: no budget left from other runs
    created = subprocess.run(
        [str(CLI), "keys", "create", name, "--scopes", "predict"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        statuses = []
        for _ in range(40):
            # a new connection each time, so the kernel spreads them over both workers
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10) as c:
                r = c.get("/v1/models")
                statuses.append(r.status_code)
        assert statuses.count(200) == 20, statuses
        assert statuses.count(429) == 20, statuses
        assert statuses[:20] == [200] * 20
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert text.count("Started server process") >= 2, text  # really two workers
