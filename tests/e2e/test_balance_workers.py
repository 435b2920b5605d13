"""`aiweb serve --workers 2`: keep-alive connections end up split evenly over the
workers (aiweb.serving.balance), whichever worker the kernel first gave them to."""

from __future__ import annotations

import http.client
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from stack import base_env, free_port, running, start_server


@contextmanager
def serving(tmp_path: Path, balance: bool) -> Iterator[tuple[str, Path]]:
    """``aiweb serve --workers 2``; yields its host:port and the directory where it makes
    its connection table (its TMPDIR), which should be empty again afterwards."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = base_env(
        tmp_path / "home",
        AIWEB_RATE_LIMIT__ENABLED="false",
        AIWEB_SERVING__BALANCE_CONNECTIONS=str(balance).lower(),
        TMPDIR=str(scratch),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    with running(start_server(env, tmp_path / "server.log", port, workers=2)):
        yield f"127.0.0.1:{port}", scratch


def drive(host: str, clients: int, seconds: float) -> list[int]:
    """``clients`` threads, each with one keep-alive connection (reopened when the server
    closes it), sending requests for ``seconds``; returns each client's reconnections."""
    reconnects = [0] * clients
    stop_at = time.monotonic() + seconds
    errors: list[BaseException] = []

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=10)
        try:
            while time.monotonic() < stop_at:
                conn.request("GET", "/livez")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                if response.will_close:
                    reconnects[i] += 1
                    conn.close()
        except BaseException as e:
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return reconnects


def settle(
    host: str, clients: int, rounds: int
) -> tuple[int, int, list[http.client.HTTPConnection]]:
    """Open ``clients`` connections, then send one request on each per round, reopening
    those the server closes, until a round with no close; returns the rounds that took
    (``rounds`` if it never settled), the connections the server closed, and the open
    connections."""
    total = 0
    conns = [http.client.HTTPConnection(host, timeout=10) for _ in range(clients)]
    for conn in conns:
        conn.connect()
    for done in range(rounds):
        closed = 0
        for conn in conns:
            conn.request("GET", "/livez")
            response = conn.getresponse()
            response.read()
            if response.will_close:
                closed += 1
                total += 1
                conn.close()
                conn.connect()
        if not closed:
            return done, total, conns
    return rounds, total, conns


def table_counts(scratch: Path) -> list[int]:
    (path,) = scratch.glob("aiweb-connections-*")
    data = path.read_bytes()
    return list(struct.unpack(f"{len(data) // 8}q", data))


@pytest.mark.e2e
def test_keep_alive_connections_end_up_evenly_split_over_two_workers(tmp_path: Path) -> None:
    with serving(tmp_path, balance=True) as (host, scratch):
        # concurrent clients: a crowded worker closes connections, no request fails
        closed = sum(drive(host, 4, 2.0))
        # whichever worker the kernel gives each connection, the workers close some
        # until each holds its share, and then they close no more
        for clients, split in ((4, [2, 2]), (6, [3, 3])):
            took, more, conns = settle(host, clients, rounds=100)
            closed += more
            assert took < 100
            assert sorted(table_counts(scratch)) == split
            for conn in conns:
                conn.close()
            deadline = time.monotonic() + 10
            while sum(table_counts(scratch)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert table_counts(scratch) == [0, 0]  # closed connections are uncounted
        metrics = httpx.get(f"http://{host}/metrics", timeout=10).text
        (rebalanced,) = [
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("aiweb_http_connections_rebalanced_total ")
        ]
        assert rebalanced == closed  # every close the clients saw, counted once
    assert not list(scratch.glob("aiweb-connections-*"))  # removed on shutdown


@pytest.mark.e2e
def test_balancing_off_serves_without_a_table_and_never_closes(tmp_path: Path) -> None:
    with serving(tmp_path, balance=False) as (host, scratch):
        assert drive(host, 4, 1.0) == [0, 0, 0, 0]
        assert not list(scratch.glob("aiweb-connections-*"))
