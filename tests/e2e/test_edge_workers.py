"""The workers of ``aiweb serve --workers N`` do not outlive it: a ``kill -9`` of the
parent ends them too, and the port is free again for the next start."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from stack import Proc, base_env, free_port

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent has not reaped it yet)


def can_bind(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", AIWEB_RATE_LIMIT__ENABLED="false")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "server.log")
    try:
        parent = proc.popen.pid
        deadline = time.monotonic() + 120
        while proc.output().count("Application startup complete") < 2:
            assert proc.popen.poll() is None, proc.output()
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        workers = [pid for pid in children(parent) if alive(pid)]
        # uvicorn's two workers (multiprocessing may add its resource tracker)
        assert len(workers) >= 2, (workers, proc.output())
        os.kill(parent, signal.SIGKILL)  # the parent only, not its process group
        proc.popen.wait(10)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], proc.output()
        assert can_bind(port), "a worker still holds the port"
    finally:
        # whatever is left of the session this test started (orphans, on the old code)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.kill()
