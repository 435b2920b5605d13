"""Two `aiweb serve` worker processes share one rate-limit budget: through the real
Redis, and without Redis through the table `aiweb serve` shares with its workers."""

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
from test_balance_workers import settle, table_counts

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


@pytest.mark.e2e
def test_two_workers_share_one_budget_without_redis(tmp_path: Path) -> None:
    """Before, each worker counted on its own: a client whose connections fell on both
    workers got up to twice its budget (300/s admitted ~563/s)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.update(
        AIWEB_HOME=str(tmp_path / "home"),
        AIWEB_RATE_LIMIT__PREDICT="20/minute",
        TMPDIR=str(scratch),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    created = subprocess.run(
        [str(CLI), "keys", "create", "shared", "--scopes", "predict"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1].strip()
    port = free_port()
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while log_path.read_text().count("Application startup complete") < 2:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        assert list(scratch.glob("aiweb-ratelimit-*"))  # the shared table
        # four keep-alive connections, split two and two over the workers (the
        # connection balancing sees to that), take turns
        took, _, conns = settle(f"127.0.0.1:{port}", 4, rounds=100)
        assert took < 100
        assert sorted(table_counts(scratch)) == [2, 2]
        statuses = []
        for i in range(40):
            conn = conns[i % 4]
            conn.request("GET", "/v1/models", headers={"X-API-Key": key})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            if response.will_close:
                conn.close()
        for conn in conns:
            conn.close()
        assert statuses.count(200) == 20, statuses
        assert statuses.count(429) == 20, statuses
        assert statuses[:20] == [200] * 20, statuses
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()
    text = log_path.read_text()
    assert text.count("Started server process") >= 2, text  # really two workers
    assert not list(scratch.glob("aiweb-ratelimit-*"))  # removed on shutdown
