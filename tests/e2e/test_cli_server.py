"""End to end: the real ``aiweb`` CLI and server as subprocesses, on a temporary home.

Train two versions of ``sentiment`` on a slice of SST-2 with the CLI, serve them with
``aiweb serve``, and move the ``production`` alias back and forth (CLI from another
process, and the HTTP API) while clients keep predicting: no request may fail, and
every prediction served must be in the prediction log once the server stopped.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = Path(sys.executable).parent / "aiweb"
TRAIN_ROWS = 2000
POSITIVE_TEXT = "a gorgeous, witty, seductive movie"
NEGATIVE_TEXT = "an utterly dreadful film"
CLEARLY_NEGATIVE_TEXT = "a dull, tedious and lifeless mess"
CLIENT_THREADS = 4


# -- helpers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment with aiweb pointed at ``home`` (SQLite, local artifacts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.pop("FORCE_COLOR", None)
    env.update(
        AIWEB_HOME=str(home),
        COLUMNS="200",  # rich tables: no truncated cells
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def aiweb(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the console script; never raises on a non-zero exit."""
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def read_sst2(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """GLUE SST-2 TSV: header ``sentence<TAB>label``, split on the last TAB."""
    names = {"0": "negative", "1": "positive"}
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        assert header == ["sentence", "label"], header
        for line in f:
            if not line.strip():
                continue
            text, _, label = line.rstrip("\r\n").rpartition("\t")
            rows.append((text.strip(), names[label.strip()]))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def cli_table_rows(stdout: str) -> list[list[str]]:
    """The body rows of a rich table printed by the CLI, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in stdout.splitlines()
        if line.strip().startswith("│")
    ]


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stdout, describe(proc)


@contextlib.contextmanager
def running_server(
    env: dict[str, str], port: int, log_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``aiweb serve`` on ``port``; output goes to files (a full pipe would block it).

    Always killed on the way out; a test that wants a clean stop stops it itself.
    """
    with (
        (log_dir / "server.out").open("wb") as out,
        (log_dir / "server.err").open("wb") as err,
    ):
        proc = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        try:
            yield proc
        except BaseException:
            print(server_output(log_dir))  # shown by pytest with the failure
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def server_output(log_dir: Path) -> str:
    out = (log_dir / "server.out").read_text(errors="replace")
    err = (log_dir / "server.err").read_text(errors="replace")
    return f"--- server stdout\n{out[-5000:]}\n--- server stderr\n{err[-10000:]}"


def wait_ready(
    client: httpx.Client, proc: subprocess.Popen[bytes], log_dir: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}\n{server_output(log_dir)}")
        try:
            r = client.get("/readyz", timeout=2)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text}"
        time.sleep(0.1)
    print(server_output(log_dir), file=sys.stderr)
    pytest.fail(f"/readyz not 200 within {timeout}s (last: {last})\n{server_output(log_dir)}")


@dataclass
class Traffic:
    """Predict requests sent continuously by a few client threads."""

    base_url: str
    headers: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    ids: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def add(self, body: dict[str, Any]) -> None:
        """Count a successful predict response: its version and every prediction id."""
        with self.lock:
            self.versions.append(body["version"])
            self.ids.extend(p["id"] for p in body["predictions"])

    def _client(self, i: int) -> None:
        texts = [POSITIVE_TEXT, NEGATIVE_TEXT, f"client {i} thinks it is fine"]
        with httpx.Client(base_url=self.base_url, timeout=10, headers=self.headers) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    r = client.post(
                        "/v1/models/sentiment/predict", json={"inputs": texts[: 1 + n % 3]}
                    )
                    if r.status_code != 200:
                        raise AssertionError(f"{r.status_code} {r.text}")
                    body = r.json()
                    if len(body["predictions"]) != 1 + n % 3:
                        raise AssertionError(f"wrong number of predictions: {body}")
                    self.add(body)
                except Exception as exc:  # a failed request, whatever the cause
                    with self.lock:
                        self.failures.append(f"client {i}: {exc!r}")

    def start(self) -> None:
        for i in range(CLIENT_THREADS):
            t = threading.Thread(target=self._client, args=(i,), name=f"client-{i}")
            t.start()
            self.threads.append(t)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads)

    def wait_for(self, version: int, timeout: float = 10) -> float:
        """Wait until a response *sent from now on* reports ``version``; seconds taken."""
        started = time.monotonic()
        with self.lock:
            seen = len(self.versions)
        # responses already in flight may be older: look at the ones that come next
        while time.monotonic() - started < timeout:
            with self.lock:
                recent = self.versions[seen:]
            if recent and recent[-1] == version:
                return time.monotonic() - started
            time.sleep(0.02)
        with self.lock:
            tail = self.versions[-10:]
        pytest.fail(f"no response with version {version} within {timeout}s (last: {tail})")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


# -- tests -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sst2_csvs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2,000-row slice of SST-2 train and the 872-row dev set, as text,label CSVs."""
    folder = tmp_path_factory.mktemp("sst2")
    train = read_sst2(shared_data / "sst2" / "train.tsv", limit=TRAIN_ROWS)
    dev = read_sst2(shared_data / "sst2" / "dev.tsv")
    assert len(train) == TRAIN_ROWS
    assert len(dev) == 872
    assert {label for _, label in train} == {"negative", "positive"}
    return write_csv(folder / "train.csv", train), write_csv(folder / "dev.csv", dev)


@pytest.mark.e2e
def test_train_serve_promote_rollback_and_log(sst2_csvs: tuple[Path, Path], tmp_path: Path) -> None:
    train_csv, dev_csv = sst2_csvs
    home = tmp_path / "home"
    env = cli_env(home)

    # 2. two versions, trained with the CLI
    for version, extra in ((1, []), (2, ["--param", "C=1.0"])):
        proc = aiweb(
            env,
            "train",
            "text-classification",
            "sentiment",
            "--data",
            str(train_csv),
            "--eval-data",
            str(dev_csv),
            *extra,
        )
        assert proc.returncode == 0, describe(proc)
        assert_no_traceback(proc)
        assert f"sentiment:{version} on eval-data (n=872)" in proc.stdout, describe(proc)
        assert "accuracy" in proc.stdout, describe(proc)
        assert "macro-F1" in proc.stdout, describe(proc)
        assert f"registered sentiment:{version}" in proc.stderr, describe(proc)
    listing = aiweb(env, "models", "list")
    assert listing.returncode == 0, describe(listing)
    assert ["sentiment", "text-classification", "2", "production→1"] in cli_table_rows(
        listing.stdout
    ), describe(listing)

    # an admin key from the CLI: the secret alone on stdout, the rest on stderr
    created = aiweb(env, "keys", "create", "e2e", "--scopes", "admin")
    assert created.returncode == 0, describe(created)
    secret = created.stdout.strip()
    assert secret.startswith("aiw_"), describe(created)
    assert "\n" not in secret
    assert "shown only now" in created.stderr
    headers = {"Authorization": f"Bearer {secret}"}

    # 3. the server, in its own process
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server_env = cli_env(
        home, AIWEB_SERVING__ALIAS_REFRESH_S="0.2", AIWEB_RATE_LIMIT__PREDICT="100000/second"
    )
    traffic = Traffic(base_url, headers)
    with (
        running_server(server_env, port, tmp_path) as server,
        httpx.Client(base_url=base_url, timeout=10, headers=headers) as client,
    ):
        wait_ready(client, server, tmp_path)

        # 4. a first prediction: production is version 1
        r = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "sentiment"
        assert body["version"] == 1
        assert body["predictions"][0]["label"] == "positive"
        assert set(body["predictions"][0]["scores"]) == {"negative", "positive"}
        traffic.add(body)

        # 5. move production around while 4 clients keep predicting
        traffic.start()
        try:
            wait_until(lambda: len(traffic.versions) > 20, 10, "client traffic")

            promote = aiweb(env, "models", "promote", "sentiment", "2")
            assert promote.returncode == 0, describe(promote)
            assert "sentiment@production: 1 → 2" in promote.stderr, describe(promote)
            traffic.wait_for(2, timeout=10)

            rollback = aiweb(env, "models", "rollback", "sentiment")
            assert rollback.returncode == 0, describe(rollback)
            assert "sentiment@production: 2 → 1 (rolled back)" in rollback.stderr, describe(
                rollback
            )
            traffic.wait_for(1, timeout=10)

            r = client.put("/v1/models/sentiment/aliases/production", json={"version": 2})
            assert r.status_code == 200, r.text
            assert r.json()["to_version"] == 2, r.text
            r = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 2, "the promoting process serves the new version at once"
            traffic.add(r.json())
            wait_until(lambda: traffic.versions[-1] == 2, 5, "clients on version 2")
        finally:
            traffic.join()
        assert traffic.failures == [], traffic.failures[:10]
        assert {1, 2} <= set(traffic.versions)

        # 6. the CLI predicts in its own process, from the registry, as the server does.
        # A 2,000-row slice of SST-2 is too little to get "an utterly dreadful film" right
        # (both versions say positive, ~0.53), so the label is checked on a plainly
        # negative text, and the CLI must agree with the server on both.
        texts = [NEGATIVE_TEXT, CLEARLY_NEGATIVE_TEXT]
        r = client.post("/v1/models/sentiment/predict", json={"inputs": texts})
        assert r.status_code == 200, r.text
        served = r.json()
        traffic.add(served)
        assert served["version"] == 2
        assert served["predictions"][1]["label"] == "negative", served
        predicted = aiweb(env, "predict", "sentiment", *texts)
        assert predicted.returncode == 0, describe(predicted)
        assert_no_traceback(predicted)
        assert "sentiment:2" in predicted.stdout, describe(predicted)
        rows = cli_table_rows(predicted.stdout)
        assert [row[0] for row in rows] == texts, describe(predicted)
        for row, prediction in zip(rows, served["predictions"], strict=True):
            assert row[1] == prediction["label"], describe(predicted)
            assert row[2:] == [f"{prediction['scores'][k]:.3f}" for k in ("negative", "positive")]
        assert rows[1][1] == "negative", describe(predicted)

        # 7. a clean stop (Ctrl+C) exits 0 and flushes the prediction log
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running 30s after SIGINT\n{server_output(tmp_path)}")
        assert code == 0, server_output(tmp_path)
        assert "Application shutdown complete" in server_output(tmp_path)

    assert len(traffic.ids) == len(set(traffic.ids)), "prediction ids are unique"
    with contextlib.closing(sqlite3.connect(home / "aiweb.db")) as db:
        logged = [row[0] for row in db.execute("SELECT id FROM predictions")]
    assert len(logged) == len(traffic.ids), f"{len(logged)} logged, {len(traffic.ids)} served"
    assert set(logged) == set(traffic.ids)

    shown = aiweb(env, "models", "show", "sentiment")
    assert shown.returncode == 0, describe(shown)
    aliases = {row[0]: row[2] for row in cli_table_rows(shown.stdout)}
    assert aliases == {"1": "", "2": "production"}, describe(shown)


def error_lines(stderr: str) -> list[str]:
    """What a CLI error says, without click's usage lines and rich's panel borders."""
    lines = []
    for line in stderr.splitlines():
        text = line.strip().strip("│╭╮╰╯─").strip()
        if text and not text.startswith(("Usage:", "Try '", "Error")):
            lines.append(text)
    return lines


@pytest.mark.e2e
def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    missing_csv = tmp_path / "missing.csv"

    missing = aiweb(env, "train", "text-classification", "x", "--data", str(missing_csv))
    assert missing.returncode != 0, describe(missing)
    assert_no_traceback(missing)
    lines = error_lines(missing.stderr)
    assert len(lines) == 1, describe(missing)
    assert str(missing_csv) in lines[0], describe(missing)
    assert "does not exist" in lines[0], describe(missing)
    assert missing.stdout == "", describe(missing)

    show = aiweb(env, "models", "show", "nope")
    assert show.returncode == 1, describe(show)
    assert_no_traceback(show)
    (line,) = show.stderr.strip().splitlines()  # one line, not wrapped at 80 columns
    # which home and database the command used (a wrong AIWEB_HOME is the usual cause)
    assert line.startswith("error: no model named 'nope'; `aiweb models list` shows them (home "), (
        describe(show)
    )
    assert "database sqlite:///" in line, describe(show)
    assert show.stdout == "", describe(show)
