"""Real ``aiweb serve`` / ``aiweb worker`` processes for the end-to-end job tests."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLI = Path(sys.executable).parent / "aiweb"
PG_URL = os.environ.get("AIWEB_TEST_DATABASE_URL")
AMQP_URL = os.environ.get("AIWEB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("AIWEB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

POSITIVE = ["a wonderful, moving film", "great acting, clever story", "i loved every minute"]
NEGATIVE = ["terrible and boring", "a dull, lifeless mess", "i hated every minute"]


def reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without AIWEB_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.update(AIWEB_HOME=str(home), PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200", **extra)
    return env


class Proc:
    """An ``aiweb`` subprocess in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            [str(CLI), *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: a machine dying, not a clean stop."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(20)
        self._fh.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._fh.close()


@dataclass
class Stack:
    """A running ``aiweb serve`` (its environment, home, port) and an admin key."""

    env: dict[str, str]
    home: Path
    port: int
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )

    def worker(self, name: str, concurrency: int = 2) -> Proc:
        return start_worker(self.env, self.home / f"{name}.log", concurrency=concurrency)


def start_worker(env: dict[str, str], log: Path, *, concurrency: int = 2) -> Proc:
    """``aiweb worker``, returned once it says it is ready."""
    proc = Proc(["worker", f"--concurrency={concurrency}", "--loglevel=INFO"], env, log)
    deadline = time.monotonic() + 60
    while "ready." not in proc.output():
        assert proc.popen.poll() is None, f"worker exited:\n{proc.output()}"
        assert time.monotonic() < deadline, f"worker not ready:\n{proc.output()}"
        time.sleep(0.1)
    return proc


def start_server(env: dict[str, str], log: Path, port: int, *, workers: int = 1) -> Proc:
    """``aiweb serve --workers N``, returned once /readyz answers 200 (on ``2 * workers``
    fresh connections in a row with several workers, so that every worker is up)."""
    proc = Proc(["serve", "--port", str(port), "--workers", str(workers)], env, log)
    # generous: on a loaded 2-core machine importing the app alone has taken 25 s
    deadline = time.monotonic() + 180
    ready = 0
    try:
        while ready < (1 if workers == 1 else 2 * workers):
            assert proc.popen.poll() is None, f"server exited:\n{proc.output()}"
            assert time.monotonic() < deadline, f"server not ready:\n{proc.output()}"
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            if not ok:
                time.sleep(0.1)
    except BaseException:
        proc.stop()  # never leave a half-started server behind a failed test
        raise
    return proc


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def create_admin_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(CLI), "keys", "create", f"e2e-{uuid.uuid4().hex[:6]}", "--scopes", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1].strip()


def labeled_csv(repeat: int = 10) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "label"])
    for i in range(repeat):
        for text in POSITIVE:
            writer.writerow([f"{text} {i}", "positive"])
        for text in NEGATIVE:
            writer.writerow([f"{text} {i}", "negative"])
    return buf.getvalue().encode()


def scoring_csv(path: Path, rows: int) -> Path:
    """``rows`` rows ``id,text`` with unique ids ``r<n>``."""
    texts = POSITIVE + NEGATIVE
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([f"r{i}", f"{texts[i % len(texts)]} number {i % 997}"])
    return path


def wait_job(
    client: httpx.Client, job_id: str, *, timeout: float = 300, until: Any = None
) -> dict[str, Any]:
    """Poll until the job is finished (or ``until(job)`` is true)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if until is not None and until(job):
            return job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)
