"""Recommendations over HTTP: latency at concurrency 8 and the server's memory.

Run from the project root (needs ``wrk``)::

    .venv/bin/python -m bench.recommend [--duration 10] [--cache on|off|both]

In a fresh temporary ``AIWEB_HOME`` (``AIWEB_DATA_HOME``: ``--data-home``, else
``../shared/data``): ``aiweb import movielens``, ``aiweb train recommendation movies
--algorithm auto`` (the comparison table is printed) and ``aiweb keys create bench``
(scope predict). Then for each cache setting a server — ``uvicorn`` with one worker on
loopback running ``aiweb.app:app_factory`` (the recommendation routes are part of the app; the
rate limit lifted) — is started, warmed with one request per user (which loads the model),
and driven by wrk (1 thread, 8 connections, ``bench/wrk/requests.lua``) through
``GET /v1/users/{user}/recommendations?model=movies&n=10`` for every MovieLens user and 10%
unknown users (cold start), in a shuffled order. ``cache off`` (``AIWEB_CACHE__ENABLED=false``)
reads each user's interactions from SQLite and scores every request; ``cache on`` serves
repeat users from the per-user cache. The server's RSS (VmRSS, MB = 10^6 bytes) is read
after the run.

Bar (PASS/FAIL): p99 <= 20 ms at concurrency 8 with no errors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
LUA = REPO / "bench" / "wrk" / "requests.lua"
BIN = Path(sys.executable).parent
P99_MAX_MS = 20.0
MB = 1e6


def aiweb(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(BIN / "aiweb"), *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"aiweb {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    sys.stderr.write(proc.stderr[-4000:] if "train" in args else "")
    sys.stdout.write(proc.stdout if "train" in args else "")
    return proc.stdout


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(
    env: dict[str, str], key: str, users: list[str], cache: bool, seconds: int, work: Path
) -> dict[str, object]:
    port = free_port()
    server_env = dict(env, AIWEB_CACHE__ENABLED="true" if cache else "false")
    server_env["AIWEB_RATE_LIMIT__ENABLED"] = "false"
    server_env["AIWEB_LOG_LEVEL"] = "warning"
    proc = subprocess.Popen(
        [
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "aiweb.app:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=server_env,
        cwd=REPO,
        stdout=(work / f"server-{cache}.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/livez").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            for user in users:  # warm-up: loads the model (and fills the cache when on)
                resp = client.get(f"/v1/users/{user}/recommendations", params={"model": "movies"})
                resp.raise_for_status()
            sample = client.get("/v1/users/1/recommendations", params={"model": "movies"}).json()
        paths = work / "paths.txt"
        paths.write_text(
            "".join(f"/v1/users/{u}/recommendations?model=movies&n=10\t\n" for u in users)
        )
        cmd = [
            "wrk",
            "-t1",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(LUA),
            url,
            "--",
            str(paths),
            key,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        summary["rss_mb"] = round(rss_mb(proc.pid), 1)
        summary["sample"] = sample[:3]
        return summary
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--cache", choices=["on", "off", "both"], default="both")
    parser.add_argument("--data-home", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    data_home = args.data_home or (REPO.parent / "shared" / "data")
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-rec-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, AIWEB_HOME=str(work / "home"), AIWEB_DATA_HOME=str(data_home))
        aiweb(env, "import", "movielens")
        started = time.perf_counter()
        aiweb(env, "train", "recommendation", "movies", "--algorithm", "auto")
        train_s = time.perf_counter() - started
        key = aiweb(env, "keys", "create", "bench", "--scopes", "predict").strip().splitlines()[-1]
        users = [str(u) for u in range(1, 611)] + [f"visitor-{i}" for i in range(61)]
        random.Random(0).shuffle(users)
        results = {}
        for cache in {"on": [True], "off": [False], "both": [False, True]}[args.cache]:
            results[cache] = run(env, key, users, cache, args.duration, work)
    print(f"\ntraining (import excluded): {train_s:.1f} s wall clock")
    print(
        "| cache | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | server RSS MB | bar |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cache, r in results.items():
        rps = r["requests"] / (r["duration_us"] / 1e6)  # type: ignore[operator]
        p99 = r["p99_us"] / 1000  # type: ignore[operator]
        ok = p99 <= P99_MAX_MS and r["errors"] == 0
        print(
            f"| {'on' if cache else 'off'} | {rps:,.0f} | {r['p50_us'] / 1000:.2f} | "  # type: ignore[operator]
            f"{r['p90_us'] / 1000:.2f} | {p99:.2f} | {r['max_us'] / 1000:.1f} | {r['errors']} | "  # type: ignore[operator]
            f"{r['rss_mb']} | {'PASS' if ok else 'FAIL'} |"
        )
    print("sample (user 1):", json.dumps(next(iter(results.values()))["sample"]))


if __name__ == "__main__":
    main()
