"""Requests per second and latency of ``aiweb serve`` against the tutorial pattern and the
model's own ``predict_proba``.

Run from the project root (``make bench``; needs Debian's ``wrk``: ``apt-get install wrk``)::

    .venv/bin/python -m bench.serving [--duration 10] [--workers auto] [--markdown PATH]

In a fresh temporary ``AIWEB_HOME`` (``AIWEB_DATA_HOME``: ``--data-home``, else
``../shared/data`` when it exists, else the environment's) ``aiweb demo --no-serve`` trains
``sentiment`` (SST-2) and ``spam`` (SMS Spam Collection) and ``aiweb keys create bench``
makes a predict key. Then, in one run:

* ``floor (in process)``: the production ``sentiment`` version's scikit-learn pipeline,
  ``pipeline.predict_proba`` on one text (``--floor-calls`` calls, a different text each)
  and on 32 texts (200 calls), measured before any server starts: no HTTP, no JSON;
* ``tutorial``: :mod:`bench.tutorial_app`, the pattern tutorials teach: FastAPI, the same
  pipeline ``joblib.load``-ed at import, ``predict`` per request in a plain ``def`` route,
  uvicorn defaults (one process);
* ``aiweb``: ``aiweb serve --workers auto`` (one worker per core), the predict rate limit
  lifted and the prediction cache off (``AIWEB_CACHE__ENABLED=false``); otherwise as
  ``aiweb serve`` runs, uvicorn's access log included (to a file in the work directory).

Each server is its own process on loopback, driven by wrk with one thread (enough for these
rates, and it leaves the cores to the server) and ``bench/wrk/requests.lua``, which cycles
through prebuilt ``PATH<TAB>JSON`` request lines and prints one JSON summary line. Every
text goes out once in the whole run (SST-2 training sentences and SMS messages,
deduplicated, shuffled with a fixed seed; once all are used they start over with `` (2)``
appended, and so on), so no cache could help even if one were on. Each server gets a
discarded ``--warmup`` run, then every scenario runs ``--duration`` seconds: one text at 1,
8 and 64 connections, 32 texts per request, and (aiweb) a mix of 70% one ``sentiment`` text,
20% one ``spam`` text and 10% 16 ``sentiment`` texts. ``errors`` counts connect/read/write
errors, timeouts (5 s) and HTTP statuses >= 400. ``RSS MB/worker`` is the VmRSS, read after
the scenario, of the largest worker process (with several workers uvicorn's supervisor is
not one); MB = 10^6 bytes.

Bars (PASS/FAIL; the exit status is 0 regardless unless ``--check``):

* one text at 64 connections: aiweb requests/s >= 5x the tutorial's, p99 <= 100 ms, no errors;
* one text at 1 connection: aiweb p50 <= the floor's one-text p50 + 1.5 ms;
* 32 texts per request: aiweb texts/s >= 0.7x the floor's 32-text ``predict_proba`` texts/s;
* server RSS per worker, both demo models loaded: <= 400 MB (largest over all scenarios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench.rounds import arg_parser

REPO = Path(__file__).resolve().parent.parent
LUA_SCRIPT = REPO / "bench" / "wrk" / "requests.lua"
KEY_RE = re.compile(r"aiw_[0-9a-f]{12}_[A-Za-z0-9_-]+")
MB = 1_000_000
BATCH = 32
MIXED_BATCH = 16
WRK_TIMEOUT_S = 5
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# aiweb serve for a load test: the predict rate limit lifted and the prediction cache off,
# so every request runs a model
UNLIMITED = {"AIWEB_RATE_LIMIT__PREDICT": "1000000/second", "AIWEB_CACHE__ENABLED": "false"}

# bars
TUTORIAL_RATIO = 5.0
P99_MAX_MS = 100.0
P50_OVERHEAD_MS = 1.5
BATCH_RATIO = 0.7
RSS_MAX_MB = 400.0

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


# --------------------------------------------------------------------------- texts


def unique_shuffled(texts: list[str], seed: int) -> list[str]:
    unique = list(dict.fromkeys(texts))
    random.Random(seed).shuffle(unique)
    return unique


@dataclass
class Pool:
    """Texts handed out in order, each once. When the pool runs out it starts over with
    `` (2)``, `` (3)``, … appended, so that no two requests of the run carry the same text."""

    name: str
    texts: list[str]
    pos: int = 0

    def at(self, offset: int) -> str:
        lap, i = divmod(self.pos + offset, len(self.texts))
        return self.texts[i] if lap == 0 else f"{self.texts[i]} ({lap + 1})"

    def take(self, n: int) -> list[str]:
        texts = [self.at(i) for i in range(n)]
        self.advance(n)
        return texts

    def advance(self, n: int) -> None:
        self.pos += n

    @property
    def laps(self) -> int:
        """Passes over the pool so far (1 until it wraps around)."""
        return max(1, -(-self.pos // len(self.texts)))


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Kind:
    """One kind of request: ``n_texts`` texts of ``pool`` POSTed to ``path``."""

    path: str
    pool: Pool
    n_texts: int
    tutorial: bool = False  # body {"text": t} (one text) instead of {"inputs": [...]}

    def body(self, texts: list[str]) -> str:
        payload: dict[str, Any] = {"text": texts[0]} if self.tutorial else {"inputs": texts}
        return json.dumps(payload, separators=(",", ":"))


@dataclass
class Scenario:
    """A wrk run: requests of ``kinds`` (one, or a weighted mix) at ``connections``."""

    name: str
    connections: int
    kinds: list[tuple[Kind, float]]
    max_lines: int = 120_000
    max_texts: int = 400_000

    def plan(self) -> list[Kind]:
        """The kind of each request line, deterministic: at most ``max_lines`` lines and
        ``max_texts`` texts (wrk cycles through the file if a run sends more)."""
        rng = random.Random(0)
        kinds = [k for k, _ in self.kinds]
        weights = [w for _, w in self.kinds]
        lines: list[Kind] = []
        texts = 0
        while len(lines) < self.max_lines and texts < self.max_texts:
            kind = kinds[0] if len(kinds) == 1 else rng.choices(kinds, weights)[0]
            lines.append(kind)
            texts += kind.n_texts
        return lines


@dataclass
class Bodies:
    """A written bodies file and, per line, the texts it takes from each pool."""

    path: Path
    kinds: list[Kind]

    def texts_sent(self, requests: int) -> int:
        """Texts in the first ``requests`` requests (wrk cycles through the file)."""
        cycles, rest = divmod(requests, len(self.kinds))
        per_cycle = sum(k.n_texts for k in self.kinds)
        return cycles * per_cycle + sum(k.n_texts for k in self.kinds[:rest])

    def advance_pools(self, requests: int) -> None:
        """Move each pool past the texts of the lines sent (the whole file at most)."""
        taken: dict[str, tuple[Pool, int]] = {}
        for kind in self.kinds[:requests]:
            pool, n = taken.get(kind.pool.name, (kind.pool, 0))
            taken[kind.pool.name] = (pool, n + kind.n_texts)
        for pool, n in taken.values():
            pool.advance(n)


def write_bodies(scenario: Scenario, path: Path) -> Bodies:
    """Write ``PATH<TAB>JSON`` lines for ``scenario``, reading each pool from its position
    (pools advance after the run, by what was really sent)."""
    kinds = scenario.plan()
    offsets: dict[str, int] = {}
    with path.open("w", encoding="utf-8") as fh:
        for kind in kinds:
            start = offsets.get(kind.pool.name, 0)
            texts = [kind.pool.at(start + i) for i in range(kind.n_texts)]
            offsets[kind.pool.name] = start + kind.n_texts
            fh.write(f"{kind.path}\t{kind.body(texts)}\n")
    return Bodies(path, kinds)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may hold spaces and parentheses
    return int(stat.rpartition(")")[2].split()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from ``/proc/*/stat``), root first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _ppid(int(entry.name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry.name))
    tree: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants (``/proc/<pid>/stat``)."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (0 when the process is gone)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Rss:
    """Memory of a server's process tree, bytes."""

    max_worker: int
    total: int
    workers: int
    max_worker_peak: int  # VmHWM


def server_rss(root: int) -> Rss:
    """RSS of the workers of the server rooted at ``root``: the ``multiprocessing`` children
    uvicorn spawns for ``--workers N > 1``, else the root process itself."""
    tree = process_tree(root)
    workers = [p for p in tree[1:] if "multiprocessing.spawn" in cmdline(p)] or [root]
    rss = [status_kib(p, "VmRSS") * 1024 for p in workers]
    hwm = [status_kib(p, "VmHWM") * 1024 for p in workers]
    total = sum(status_kib(p, "VmRSS") * 1024 for p in tree)
    return Rss(max(rss), total, len(workers), max(hwm))


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass(frozen=True)
class Setup:
    """What :func:`bench_main` hands a bench's ``run``."""

    wrk: str
    aiweb: str  # the aiweb command of this Python's environment
    home: Path  # AIWEB_HOME
    data_home: Path | None  # AIWEB_DATA_HOME
    env: dict[str, str]  # for aiweb commands and servers (base_env)
    servers: list[Server]  # every server run starts: stopped at the end


def start_server(
    name: str, cmd: list[str], env: dict[str, str], port: int, work_dir: Path
) -> Server:
    """Start ``cmd`` in its own session (so Ctrl-C reaches only us), output to a log file."""
    log = work_dir / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, proc, port, log)


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL to the whole process group after ``STOP_GRACE_S``."""
    if server.proc.poll() is None:
        with suppress(ProcessLookupError):
            server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            err.print(f"{server.name} did not stop in {STOP_GRACE_S:.0f} s; killing it")
    # the server started its own session: its group id is its pid; kill any leftovers
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        server.proc.wait(5)


def wait_ready(server: Server, probe: Callable[[httpx.Client], bool], in_a_row: int) -> None:
    """Poll until ``probe`` holds ``in_a_row`` times in a row, a new connection each time
    (a kept-alive one would stay with one worker; new ones spread over the workers)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    ok = 0
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=server.url, timeout=5.0, limits=no_keepalive) as client:
        while ok < in_a_row:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}"
                )
            try:
                ok = ok + 1 if probe(client) else 0
            except httpx.HTTPError:
                ok = 0
            if ok < in_a_row:
                time.sleep(0.05 if ok else 0.25)


def serve_aiweb(
    setup: Setup,
    *,
    workers: str,
    port: int | None = None,
    extra: Sequence[str] = (),
    in_a_row: int | None = None,
) -> Server:
    """Start ``aiweb serve --port PORT --workers W [extra]`` (:data:`UNLIMITED`) on ``port``
    (a free one by default), add it to ``setup.servers`` (to be stopped) and wait until it
    is ready: ``/readyz`` answers 200 ``in_a_row`` times in a row on new connections (by
    default twice per worker, plus one, so every worker has loaded its models)."""
    port = free_port() if port is None else port
    cmd = [setup.aiweb, "serve", "--port", str(port), "--workers", workers, *extra]
    server = start_server("aiweb", cmd, setup.env | UNLIMITED, port, setup.home)
    setup.servers.append(server)
    if in_a_row is None:
        n_workers = len(os.sched_getaffinity(0)) if workers == "auto" else int(workers)
        in_a_row = 2 * n_workers + 1
    flags = " ".join(["--workers", workers, *extra])
    with err.status(f"aiweb serve {flags}: loading and warming the models …"):
        wait_ready(server, lambda c: c.get("/readyz").status_code == 200, in_a_row)
    return server


# --------------------------------------------------------------------------- wrk


@dataclass
class Run:
    """One scenario's wrk summary and the server's memory after it."""

    server: str
    scenario: str
    connections: int
    requests: int
    seconds: float
    texts: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    first_error: str
    socket_errors: dict[str, int]
    rss: Rss | None
    repeated: bool  # the run went past the end of its bodies file: texts were sent again

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def rebalanced(url: str) -> int:
    """Connections the server's workers have closed to even out their share
    (``aiweb_http_connections_rebalanced_total`` on ``/metrics``, open on loopback)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("aiweb_http_connections_rebalanced_total "):
            return int(float(line.split()[1]))
    return 0


def run_wrk(wrk: str, url: str, bodies: Path, key: str, connections: int, seconds: int) -> Any:
    """One wrk run with ``requests.lua``; its JSON summary."""
    cmd = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        f"{WRK_TIMEOUT_S}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(bodies),
        key,
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"wrk gave no summary (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")


T = TypeVar("T")


def under_load(server: Server, label: str, load: Callable[[], T]) -> tuple[T, float]:
    """What ``load()`` (a load client's run) returns, and the CPU seconds the server's
    process tree spent meanwhile; raises when the server died during it (``label``)."""
    cpu0 = tree_cpu_s(server.proc.pid)
    result = load()
    server_cpu = tree_cpu_s(server.proc.pid) - cpu0
    if server.proc.poll() is not None:
        raise RuntimeError(f"the server died during {label}:\n{server.log_tail()}")
    return result, server_cpu


def run_scenario(
    server: Server,
    scenario: Scenario,
    *,
    wrk: str,
    key: str,
    seconds: int,
    work_dir: Path,
    record: bool = True,
) -> Run:
    """Write the bodies, run wrk, advance the pools by what was sent, read the RSS."""
    bodies = write_bodies(scenario, work_dir / "bodies.txt")
    summary = run_wrk(wrk, server.url, bodies.path, key, scenario.connections, seconds)
    # requests still in flight at the end were sent too: the next scenario starts after them
    bodies.advance_pools(summary["requests"] + scenario.connections)
    if server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} died during {scenario.name}:\n{server.log_tail()}")
    run = Run(
        server=server.name,
        scenario=scenario.name,
        connections=scenario.connections,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        texts=bodies.texts_sent(summary["requests"]),
        errors=summary["errors"],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        statuses={str(k): int(v) for k, v in summary["statuses"].items()},
        first_error=summary["first_error"],
        socket_errors={
            k: summary[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        },
        rss=server_rss(server.proc.pid) if record else None,
        repeated=summary["requests"] + scenario.connections > len(bodies.kinds),
    )
    rss = f", RSS {run.rss.max_worker / MB:,.0f} MB/worker" if run.rss else ""
    err.print(
        f"  {server.name} · {scenario.name}: {run.requests_per_s:,.0f} req/s, "
        f"{run.texts_per_s:,.0f} texts/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
        f"{run.errors} errors{rss}" + ("" if record else " (warm-up, discarded)"),
        highlight=False,
    )
    return run


# --------------------------------------------------------------------------- floor


@dataclass
class Floor:
    """In-process ``predict_proba`` calls: seconds per call."""

    name: str
    texts_per_call: int
    seconds: list[float] = field(default_factory=list)

    @property
    def calls_per_s(self) -> float:
        return 1.0 / float(np.mean(self.seconds))

    @property
    def texts_per_s(self) -> float:
        return self.texts_per_call * self.calls_per_s

    def pct_ms(self, q: float) -> float:
        return float(np.percentile(self.seconds, q)) * 1000


def measure_floor(pipeline: Any, texts: Pool, calls: int, batch_calls: int) -> list[Floor]:
    """``pipeline.predict_proba`` on one text ``calls`` times and on ``BATCH`` texts
    ``batch_calls`` times, a different text each time, after a few warm-up calls."""
    for _ in range(20):
        pipeline.predict_proba(texts.take(1))
    for _ in range(3):
        pipeline.predict_proba(texts.take(BATCH))
    single = Floor("predict_proba 1 text", 1)
    batch = Floor(f"predict_proba {BATCH} texts", BATCH)
    for floor, n_calls in ((single, calls), (batch, batch_calls)):
        for _ in range(n_calls):
            chunk = texts.take(floor.texts_per_call)
            t0 = time.perf_counter()
            pipeline.predict_proba(chunk)
            floor.seconds.append(time.perf_counter() - t0)
    return [single, batch]


# --------------------------------------------------------------------------- set-up


@contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aiweb-bench-"))
    try:
        yield path
    finally:
        if keep:
            err.print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def default_data_home(given: Path | None) -> Path | None:
    if given is not None:
        return given.resolve()
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        return shared.resolve()
    env = os.environ.get("AIWEB_DATA_HOME")
    return Path(env) if env else None


def base_env(home: Path, data_home: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["AIWEB_HOME"] = str(home)
    if data_home is not None:
        env["AIWEB_DATA_HOME"] = str(data_home)
    elif not env.get("AIWEB_DATA_HOME"):
        env.pop("AIWEB_DATA_HOME", None)
    return env


def train_demo(aiweb: str, env: dict[str, str], home: Path) -> None:
    log = home / "demo.log"
    t0 = time.perf_counter()
    status = err.status("aiweb demo --no-serve: training sentiment (SST-2) and spam (SMS) …")
    with status, log.open("wb") as fh:
        proc = subprocess.run(
            [aiweb, "demo", "--no-serve"],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        err.print(log.read_text(errors="replace"), markup=False, highlight=False)
        raise RuntimeError(f"aiweb demo --no-serve failed with exit status {proc.returncode}")
    err.print(f"trained the demo models in {time.perf_counter() - t0:.1f} s")


def create_key(
    aiweb: str, env: dict[str, str], name: str = "bench", scopes: str = "predict"
) -> str:
    proc = subprocess.run(
        [aiweb, "keys", "create", name, "--scopes", scopes],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    found = KEY_RE.search(proc.stdout) or KEY_RE.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"aiweb keys create failed ({proc.returncode}):\n{proc.stderr}")
    return found.group(0)


def dataset_texts(name: str, home: Path, data_home: Path | None) -> list[str]:
    """The training texts of a known dataset, loaded as aiweb loads it (``AIWEB_DATA_HOME``
    or the download cache)."""
    from aiweb import datasets
    from aiweb.config import Settings

    settings = Settings(home=home, data_home=data_home)
    return [t.strip() for t in datasets.load(name, settings, progress=False).train.texts]


def load_pipeline(home: Path) -> tuple[Any, str]:
    """The production ``sentiment`` version's scikit-learn pipeline and its ``name:version``."""
    from aiweb.classification.loader import load_runtime
    from aiweb.classification.model import TextClassifier
    from aiweb.config import Settings
    from aiweb.registry.entities import ModelRef
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(Settings(home=home))
    try:
        version = registry.resolve(ModelRef.parse("sentiment"))
        runtime = load_runtime(registry, version)
    finally:
        engine.dispose()
    if not isinstance(runtime, TextClassifier):
        raise RuntimeError(f"sentiment is served by {type(runtime).__name__}, not a pipeline")
    return runtime.pipeline, f"{version.name}:{version.version}"


# --------------------------------------------------------------------------- report


@dataclass
class Bar:
    name: str
    measured: str
    target: str
    passed: bool


def _ms(x: float) -> str:
    return f"{x:,.2f}"


def result_rows(floors: list[Floor], runs: list[Run]) -> list[list[str]]:
    rows = [
        [
            "floor (in process)",
            f.name,
            f"{f.calls_per_s:,.0f}",
            f"{f.texts_per_s:,.0f}",
            _ms(f.pct_ms(50)),
            _ms(f.pct_ms(99)),
            "-",
            "-",
        ]
        for f in floors
    ]
    for r in runs:
        rows.append(
            [
                r.server,
                r.scenario,
                f"{r.requests_per_s:,.0f}",
                f"{r.texts_per_s:,.0f}",
                _ms(r.p50_ms),
                _ms(r.p99_ms),
                f"{r.errors:,}",
                f"{r.rss.max_worker / MB:,.0f}" if r.rss else "-",
            ]
        )
    return rows


RESULT_HEADERS = [
    "server",
    "scenario",
    "requests/s",
    "texts/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "RSS MB/worker",
]
BAR_HEADERS = ["bar", "measured", "target", "result"]


def evaluate(floors: list[Floor], aiweb: dict[str, Run], tutorial: dict[str, Run]) -> list[Bar]:
    single, batch = floors
    a64, t64 = aiweb["1 text, c=64"], tutorial["1 text, c=64"]
    a1 = aiweb["1 text, c=1"]
    a32 = aiweb[f"{BATCH} texts/request, c=8"]
    ratio = a64.requests_per_s / max(t64.requests_per_s, 1e-9)
    p50_limit = single.pct_ms(50) + P50_OVERHEAD_MS
    batch_ratio = a32.texts_per_s / batch.texts_per_s
    rss = [r.rss for r in aiweb.values() if r.rss is not None]
    rss_max = max(r.max_worker for r in rss)
    peak = max(r.max_worker_peak for r in rss)
    workers = rss[-1].workers
    return [
        Bar(
            "1 text, c=64: aiweb requests/s vs tutorial",
            f"{ratio:.1f}x ({a64.requests_per_s:,.0f} vs {t64.requests_per_s:,.0f})",
            f">= {TUTORIAL_RATIO:g}x",
            ratio >= TUTORIAL_RATIO,
        ),
        Bar(
            "1 text, c=64: aiweb p99",
            f"{a64.p99_ms:.1f} ms",
            f"<= {P99_MAX_MS:g} ms",
            a64.p99_ms <= P99_MAX_MS,
        ),
        Bar("1 text, c=64: aiweb errors", f"{a64.errors:,}", "0", a64.errors == 0),
        Bar(
            "1 text, c=1: aiweb p50 vs floor p50",
            f"{a1.p50_ms:.2f} ms (floor {single.pct_ms(50):.2f} ms "
            f"+ {a1.p50_ms - single.pct_ms(50):.2f})",
            f"<= {p50_limit:.2f} ms (floor + {P50_OVERHEAD_MS:g})",
            a1.p50_ms <= p50_limit,
        ),
        Bar(
            f"{BATCH} texts/request: aiweb texts/s vs floor batch-{BATCH}",
            f"{batch_ratio:.2f}x ({a32.texts_per_s:,.0f} vs {batch.texts_per_s:,.0f})",
            f">= {BATCH_RATIO:g}x",
            batch_ratio >= BATCH_RATIO,
        ),
        Bar(
            "server RSS per worker, both models loaded",
            f"{rss_max / MB:,.0f} MB ({workers} worker{'s' if workers > 1 else ''}; "
            f"peak VmHWM {peak / MB:,.0f} MB)",
            f"<= {RSS_MAX_MB:g} MB",
            rss_max / MB <= RSS_MAX_MB,
        ),
    ]


def bar_rows(checked: list[tuple[list[str], bool]], markup: bool) -> list[list[str]]:
    """The bars table's rows: a bar's cells (``checked``: each with whether it passed) and
    PASS or FAIL, in rich markup when ``markup``."""

    def verdict(ok: bool) -> str:
        word = "PASS" if ok else "FAIL"
        if not markup:
            return word
        return f"[green]{word}[/green]" if ok else f"[bold red]{word}[/bold red]"

    return [[*row, verdict(ok)] for row, ok in checked]


def rich_table(title: str, headers: list[str], rows: list[list[str]], numeric: int) -> Table:
    """Columns from index ``numeric`` on are right-aligned."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i >= numeric else "left")
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(headers: list[str], rows: list[list[str]], numeric: int) -> str:
    aligns = ["---:" if i >= numeric else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``unknown CPU`` elsewhere)."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine_line(wrk: str, workers: str) -> str:
    import sklearn

    cpu = cpu_model()
    usable = len(os.sched_getaffinity(0))
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {cpu} · {os.cpu_count()} cores "
        f"({usable} usable) · {platform.machine()} · Python {platform.python_version()} · "
        f"scikit-learn {sklearn.__version__} · {wrk_version(wrk)} · aiweb --workers {workers}"
        + (f" · git {commit}" if commit else "")
    )


class Results(NamedTuple):
    """A bench's results table; columns from index ``numeric`` on are right-aligned."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric: int = 1


class Bars(NamedTuple):
    """A bench's bars table: each bar's cells (all but the verdict's, the last header) and
    whether it passed."""

    title: str
    headers: list[str]
    checked: list[tuple[list[str], bool]]


def report(
    out: Console, machine: str, results: Results, notes: list[str], bars: Bars, md: Path | None
) -> bool:
    """Print the machine line, the results, the notes, the bars and a PASS/FAIL summary to
    ``out``; with ``md``, write the same there as Markdown. Whether every bar passed."""
    out.print(machine, highlight=False, markup=False)
    out.print(rich_table(results.title, results.headers, results.rows, results.numeric))
    for note in notes:
        out.print(note, highlight=False, markup=False)
    out.print(rich_table(bars.title, bars.headers, bar_rows(bars.checked, markup=True), 1))
    failed = [row for row, ok in bars.checked if not ok]
    if failed:
        out.print(f"[bold red]{len(failed)} of {len(bars.checked)} bars FAILED[/bold red]")
    else:
        out.print(f"[green]all {len(bars.checked)} bars PASS[/green]")
    if md is not None:
        parts = [
            machine,
            f"**{results.title}**",
            markdown_table(results.headers, results.rows, results.numeric),
            *notes,
            f"**{bars.title}**",
            markdown_table(bars.headers, bar_rows(bars.checked, markup=False), numeric=1),
        ]
        md.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        err.print(f"wrote {md}")
    return not failed


def problems(runs: list[Run]) -> list[str]:
    """A line per run with errors: statuses, socket errors and the first error body."""
    lines = []
    for r in runs:
        if not r.errors:
            continue
        bad = {k: v for k, v in sorted(r.statuses.items()) if not k.startswith(("2", "3"))}
        sock = {k: v for k, v in r.socket_errors.items() if v}
        first = " ".join(r.first_error.split())
        lines.append(
            f"{r.server} · {r.scenario}: {r.errors:,} errors; statuses {bad or '-'}; "
            f"socket {sock or '-'}" + (f"; first: {first}" if first else "")
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arg_parser("bench.serving", __doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds per server (2)")
    parser.add_argument(
        "--workers", default="auto", help="aiweb serve --workers: N or auto (default auto)"
    )
    parser.add_argument(
        "--floor-calls", type=int, default=1000, help="one-text predict_proba calls (1000)"
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        default=None,
        help="AIWEB_DATA_HOME (default: ../shared/data if it exists, else the environment's)",
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--check", action="store_true", help="exit status 1 when a bar fails")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIWEB_HOME")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.floor_calls < 10:
        parser.error("--duration >= 1, --warmup >= 0, --floor-calls >= 10")
    return args


def find_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    return "/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None


def bench_main(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Setup], int],
    *,
    home: Path | None = None,
    keep: bool = False,
) -> int:
    """A wrk bench's ``main`` around its ``run(args, setup)``: exit status 2 without wrk;
    ``home`` (created, kept) or a temporary ``AIWEB_HOME`` (kept with ``keep``);
    ``AIWEB_DATA_HOME`` from ``args.data_home`` (:func:`default_data_home`); every server
    ``run`` adds to ``setup.servers`` stopped at the end; exit status 130 on Ctrl-C."""
    wrk = find_wrk()
    if wrk is None:
        err.print(f"{name} needs wrk: install Debian's wrk: apt-get install wrk")
        return 2
    aiweb = str(Path(sys.executable).parent / "aiweb")
    data_home = default_data_home(args.data_home)
    servers: list[Server] = []
    try:
        with ExitStack() as stack:
            if home is not None:  # a reused home keeps its trained models
                home.mkdir(parents=True, exist_ok=True)
                home = home.resolve()
            else:
                home = stack.enter_context(work_dir(keep))
            env = base_env(home, data_home)
            aiweb_data_home = env.get("AIWEB_DATA_HOME", "(unset)")
            err.print(f"AIWEB_HOME {home}; AIWEB_DATA_HOME {aiweb_data_home}")
            try:
                return run(args, Setup(wrk, aiweb, home, data_home, env, servers))
            finally:
                for server in servers:
                    stop_server(server)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


def aiweb_scenarios(sentiment: Pool, spam: Pool) -> list[Scenario]:
    one = Kind("/v1/models/sentiment/predict", sentiment, 1)
    return [
        Scenario("1 text, c=1", 1, [(one, 1.0)]),
        Scenario("1 text, c=8", 8, [(one, 1.0)]),
        Scenario("1 text, c=64", 64, [(one, 1.0)]),
        Scenario(
            f"{BATCH} texts/request, c=8",
            8,
            [(Kind("/v1/models/sentiment/predict", sentiment, BATCH), 1.0)],
        ),
        Scenario(
            "mixed, c=32",
            32,
            [
                (one, 0.7),
                (Kind("/v1/models/spam/predict", spam, 1), 0.2),
                (Kind("/v1/models/sentiment/predict", sentiment, MIXED_BATCH), 0.1),
            ],
        ),
    ]


def tutorial_scenarios(sentiment: Pool) -> list[Scenario]:
    one = Kind("/predict", sentiment, 1, tutorial=True)
    return [Scenario(f"1 text, c={c}", c, [(one, 1.0)]) for c in (1, 8, 64)]


def drive(
    server: Server,
    scenarios: list[Scenario],
    *,
    wrk: str,
    key: str,
    args: argparse.Namespace,
    home: Path,
) -> list[Run]:
    if args.warmup:
        warm = Scenario("warm-up, c=8", 8, scenarios[1].kinds)
        run_scenario(
            server, warm, wrk=wrk, key=key, seconds=args.warmup, work_dir=home, record=False
        )
    return [
        run_scenario(server, s, wrk=wrk, key=key, seconds=args.duration, work_dir=home)
        for s in scenarios
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main("bench.serving", args, run, keep=args.keep)


def run(args: argparse.Namespace, setup: Setup) -> int:
    import joblib

    wrk, home, data_home, env = setup.wrk, setup.home, setup.data_home, setup.env
    train_demo(setup.aiweb, env, home)
    key = create_key(setup.aiweb, env)

    sentiment = Pool("sst2", unique_shuffled(dataset_texts("sst2", home, data_home), 0))
    spam = Pool("sms", unique_shuffled(dataset_texts("sms_spam", home, data_home), 0))
    err.print(f"{len(sentiment.texts):,} unique SST-2 sentences, {len(spam.texts):,} SMS texts")

    # floor: in process, before any server runs; its own texts (a separate shuffle)
    pipeline, model = load_pipeline(home)
    floor_texts = Pool("floor", unique_shuffled(sentiment.texts, 1))
    with err.status(f"floor: {model} predict_proba in process …"):
        floors = measure_floor(pipeline, floor_texts, args.floor_calls, 200)
    for f in floors:
        err.print(
            f"  floor · {f.name}: {f.calls_per_s:,.0f} calls/s, {f.texts_per_s:,.0f} texts/s, "
            f"p50 {f.pct_ms(50):.3f} ms, p99 {f.pct_ms(99):.3f} ms",
            highlight=False,
        )
    model_path = home / "tutorial.joblib"
    joblib.dump(pipeline, model_path)
    del pipeline

    # aiweb
    server = serve_aiweb(setup, workers=args.workers)
    err.print(f"aiweb ready on {server.url}")
    aiweb_runs = drive(
        server, aiweb_scenarios(sentiment, spam), wrk=wrk, key=key, args=args, home=home
    )
    stop_server(server)

    # tutorial
    port = free_port()
    server = start_server(
        "tutorial",
        [
            *(sys.executable, "-m", "uvicorn", "bench.tutorial_app:app"),
            *("--port", str(port), "--log-level", "warning"),
        ],
        env | {"TUTORIAL_MODEL_PATH": str(model_path)},
        port,
        home,
    )
    setup.servers.append(server)
    with err.status("tutorial app: starting …"):
        wait_ready(server, lambda c: c.get("/docs").status_code == 200, 1)
    tutorial_runs = drive(
        server, tutorial_scenarios(sentiment), wrk=wrk, key="", args=args, home=home
    )
    stop_server(server)

    # report
    runs = aiweb_runs + tutorial_runs
    bars = evaluate(
        floors,
        {r.scenario: r for r in aiweb_runs},
        {r.scenario: r for r in tutorial_runs},
    )
    machine = machine_line(wrk, args.workers)
    title = (
        f"serving {model}: {args.duration} s per scenario, wrk -t1, "
        f"unique texts, prediction cache off"
    )
    results = result_rows(floors, runs)
    last = aiweb_runs[-1].rss
    notes = [
        f"aiweb: {last.workers} worker process(es); whole process tree "
        f"{last.total / MB:,.0f} MB RSS after the last scenario"
        if last
        else "",
        *(f"errors: {line}" for line in problems(runs)),
        *(
            f"note: {r.server} · {r.scenario} sent more requests than its bodies file holds: "
            "wrk cycled it, texts were repeated"
            for r in runs
            if r.repeated
        ),
        *(
            f"note: {p.name} texts ran out: {p.laps} passes, texts of pass k end in ' (k)'"
            for p in (sentiment, spam)
            if p.laps > 1
        ),
    ]
    notes = [n for n in notes if n]
    checked = [([b.name, b.measured, b.target], b.passed) for b in bars]
    table = Results(title, RESULT_HEADERS, results, numeric=2)
    passed = report(out, machine, table, notes, Bars("bars", BAR_HEADERS, checked), args.markdown)
    return 1 if not passed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
