"""`aiweb serve --workers 2`: /metrics adds up both workers (prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

CLI = Path(sys.executable).parent / "aiweb"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def models_requests(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "aiweb_http_requests_total" and s.labels.get("route") == "/v1/models":
                total += s.value
    return total


@pytest.mark.e2e
@pytest.mark.parametrize("operator_dir", [False, True], ids=["own-dir", "operator-dir"])
def test_metrics_sum_requests_across_two_workers(tmp_path: Path, operator_dir: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["AIWEB_HOME"] = str(tmp_path / "home")
    env["AIWEB_RATE_LIMIT__ENABLED"] = "false"
    metrics_dir = tmp_path / "prom"
    if operator_dir:
        metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    key = subprocess.run(
        [str(CLI), "keys", "create", "metrics", "--scopes", "predict"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = 0
        while ready < 5:  # several fresh connections in a row: both workers are up
            try:
                ok = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        sent = 40
        for _ in range(sent):
            # a new connection each time, so the kernel spreads them over both workers
            r = httpx.get(f"{base}/v1/models", headers={"X-API-Key": key}, timeout=10)
            assert r.status_code == 200, r.text
        scraped = [httpx.get(f"{base}/metrics", timeout=10).text for _ in range(8)]
        # whichever worker answers the scrape, it reports every worker's requests
        assert [models_requests(text) for text in scraped] == [float(sent)] * len(scraped)
        if operator_dir:
            pids = {
                m.group(1)
                for f in metrics_dir.iterdir()
                if (m := re.fullmatch(r"counter_(\d+)\.db", f.name))
            }
            assert len(pids) >= 2, sorted(f.name for f in metrics_dir.iterdir())
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
