"""What a hostile or unlucky client can make a real ``aiweb serve`` hold, and for how
long: request heads are capped (431), slow heads, stalled bodies and idle connections
time out (408 / close), and a request with a body is refused 401/403 before its body is
read. Raw sockets against a real server, so nothing of uvicorn's is bypassed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from stack import CLI, Proc, base_env, free_port, labeled_csv, start_server

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
KEEP_ALIVE_TIMEOUT_S = 1.0


@dataclass
class Server:
    proc: Proc
    port: int
    predict_key: str
    train_key: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def healthy(self) -> None:
        assert self.proc.popen.poll() is None, self.proc.output()
        assert httpx.get(f"{self.base}/livez", timeout=5).status_code == 200

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.popen.pid}/status").read_text()
        (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1])


def create_key(env: dict[str, str], name: str, scope: str) -> str:
    import subprocess

    done = subprocess.run(
        [str(CLI), "keys", "create", name, "--scopes", scope],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1].strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``aiweb serve`` with short slow-client timeouts and a small train budget."""
    tmp = tmp_path_factory.mktemp("edge")
    env = base_env(
        tmp / "home",
        AIWEB_SERVING__HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        AIWEB_SERVING__BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        AIWEB_SERVING__KEEP_ALIVE_TIMEOUT_S=str(KEEP_ALIVE_TIMEOUT_S),
        AIWEB_RATE_LIMIT__TRAIN="4/minute",
    )
    predict_key = create_key(env, "edge-predict", "predict")
    train_key = create_key(env, "edge-train", "train")
    port = free_port()
    proc = start_server(env, tmp / "server.log", port)
    try:
        yield Server(proc, port, predict_key, train_key)
    finally:
        proc.stop()


def read_until_closed(sock: socket.socket, limit_s: float = 10) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds
    that took; a reset after the server's answer counts as the close."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def problem_of(response: bytes) -> dict[str, object]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head.lower(), head
    problem: dict[str, object] = json.loads(body)
    return problem


# -- request heads ------------------------------------------------------------------------


def test_a_head_over_64_kb_is_refused_with_431_and_closed(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        response, _ = read_until_closed(sock)
    assert status_of(response) == 431, response[:200]
    assert b"connection: close" in response.lower()
    problem = problem_of(response)
    assert problem["status"] == 431
    assert "AIWEB_SERVING__MAX_HEADER_BYTES" in str(problem["detail"])
    # just under the limit is served, headers split over several packets too
    with server.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        for _ in range(6):
            sock.sendall(b"X-Part: " + b"b" * 10_000 + b"\r\n")
        sock.sendall(b"Connection: close\r\n\r\n")
        response, _ = read_until_closed(sock)
    assert status_of(response) == 200, response[:200]
    server.healthy()


def test_a_64_mb_header_is_cut_off_without_growing_the_server(server: Server) -> None:
    before = server.rss_kb()
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:  # the event loop stays free for everyone else meanwhile
        with httpx.Client(base_url=server.base, timeout=10) as client:
            while not stop.is_set():
                started = time.monotonic()
                assert client.get("/livez").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    sent = 0
    chunk = b"a" * (1 << 20)
    try:
        with server.connect() as sock:
            try:
                sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(64):
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            response, _ = read_until_closed(sock)
    finally:
        time.sleep(0.3)
        stop.set()
        prober.join()
    # the server closed the connection long before 64 MB went in (what was sent sits in
    # the kernel's socket buffers, a few MB at most)
    assert sent < 32 << 20, sent
    if response:
        assert status_of(response) == 431
    assert server.rss_kb() - before < 32 * 1024  # KB: no copy of the header was kept
    assert latencies
    assert max(latencies) < 1.0, latencies
    server.healthy()


# -- slow clients -------------------------------------------------------------------------


def test_a_head_that_never_ends_gets_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        response, took = read_until_closed(sock)
    assert status_of(response) == 408, response[:200]
    assert "AIWEB_SERVING__HEADER_TIMEOUT_S" in str(problem_of(response)["detail"])
    assert HEADER_TIMEOUT_S - 0.2 < took < HEADER_TIMEOUT_S + 3


def test_a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_deadline(server: Server) -> None:
    """The header timeout is a total, not an idle gap: a slowloris sending a byte every
    0.2 s never pauses for long, and is cut off all the same."""
    started = time.monotonic()
    with server.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        try:
            while time.monotonic() - started < HEADER_TIMEOUT_S + 5:
                sock.sendall(b"X")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        took = time.monotonic() - started
        response, _ = read_until_closed(sock, limit_s=2)
    assert took < HEADER_TIMEOUT_S + 3
    assert status_of(response) == 408, response[:200]


def test_idle_connections_are_closed(server: Server) -> None:
    # a fresh connection that never sends anything
    with server.connect() as sock:
        response, took = read_until_closed(sock)
    assert response == b""
    assert took < HEADER_TIMEOUT_S + 3
    # a kept-alive connection after its response
    with server.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        response, took = read_until_closed(sock)
    assert status_of(response) == 200
    assert KEEP_ALIVE_TIMEOUT_S - 0.2 < took < KEEP_ALIVE_TIMEOUT_S + 3


def test_a_stalled_body_gets_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/models/nothing/predict HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + server.predict_key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"inputs": ['
        )
        response, took = read_until_closed(sock)
    assert status_of(response) == 408, response[:300]
    assert "AIWEB_SERVING__BODY_TIMEOUT_S" in str(problem_of(response)["detail"])
    assert BODY_TIMEOUT_S - 0.2 < took < BODY_TIMEOUT_S + 3
    server.healthy()


def test_a_slow_but_steady_body_is_served(server: Server) -> None:
    """Pauses shorter than the body timeout, longer than it in total: served."""
    body = b'{"inputs": ["a fine film"]}'
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/models/nothing/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + server.predict_key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        started = time.monotonic()
        for i in range(0, len(body), 9):
            sock.sendall(body[i : i + 9])
            time.sleep(BODY_TIMEOUT_S * 0.6)
        assert time.monotonic() - started > BODY_TIMEOUT_S
        response, _ = read_until_closed(sock)
    assert status_of(response) == 404, response[:300]  # no such model: the body arrived


# -- bodies of unauthenticated requests ----------------------------------------------------

UPLOAD_HEAD = (
    b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: multipart/form-data; boundary=edge\r\n"
    b"Content-Length: 62914560\r\n"  # 60 MB announced
)


def send_part_of_upload(server: Server, extra_headers: bytes) -> tuple[bytes, float]:
    """Announce a 60 MB upload, send its first 64 KB, and wait for the answer."""
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(UPLOAD_HEAD + extra_headers + b"\r\n")
        sock.sendall(
            b'--edge\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\ntext,label\r\n" + b"x,y\r\n" * 13_000
        )
        response, _ = read_until_closed(sock)
        return response, time.monotonic() - started


def test_an_upload_without_a_key_is_refused_before_its_body_is_read(server: Server) -> None:
    response, took = send_part_of_upload(server, b"")
    assert status_of(response) == 401, response[:300]
    assert b"www-authenticate: bearer" in response.lower()
    assert b"connection: close" in response.lower()
    assert took < 5  # the other 59.9 MB were never awaited
    response, _ = send_part_of_upload(server, b"X-API-Key: aiw_0123456789ab_not-a-real-secret\r\n")
    assert status_of(response) == 401, response[:300]
    server.healthy()


def test_an_upload_with_a_key_lacking_the_scope_is_refused_before_its_body(
    server: Server,
) -> None:
    key = server.predict_key.encode()
    response, took = send_part_of_upload(server, b"Authorization: Bearer " + key + b"\r\n")
    assert status_of(response) == 403, response[:300]
    assert "needs 'train'" in str(problem_of(response)["detail"])
    assert took < 5


def test_a_json_body_without_a_key_is_refused_before_it_is_read(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/models/sentiment/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n"
            b'{"inputs": ["'
        )
        response, took = read_until_closed(sock)
    assert status_of(response) == 401, response[:300]
    assert took < BODY_TIMEOUT_S  # answered, not timed out waiting for the body


def test_an_authorized_body_is_charged_to_the_rate_limit_once(server: Server) -> None:
    """Checked before the body and again by the route: still one charge per request, and
    the budget's headers on the answer; over budget, 429 before the body."""
    answers = []
    with httpx.Client(
        base_url=server.base, headers={"X-API-Key": server.train_key}, timeout=30
    ) as client:
        for i in range(5):
            r = client.post(
                "/v1/datasets",
                files={"file": (f"edge{i}.csv", labeled_csv(repeat=10 + i), "text/csv")},
            )
            answers.append((r.status_code, r.headers.get("ratelimit-remaining")))
    assert answers[:4] == [(201, "3"), (201, "2"), (201, "1"), (201, "0")], answers
    assert answers[4][0] == 429, answers
