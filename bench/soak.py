"""Soak: ``aiweb serve --workers 2`` under a mixed load at concurrency 64 for ten minutes;
zero errors and flat worker memory once the caches have filled.

Run from the project root (``make bench-soak``; needs Debian's ``wrk``)::

    .venv/bin/python -m bench.soak [--duration 600] [--out DIR] [--home DIR] [--no-embeddings]

Set-up, in a fresh temporary ``AIWEB_HOME`` (or ``--home DIR``, prepared there once and
reused by later runs; ``AIWEB_DATA_HOME``: ``--data-home``, else ``../shared/data``):
``aiweb demo --no-serve`` (text classifiers ``sentiment`` and ``spam``), ``aiweb import
movielens`` and ``aiweb train recommendation movies --algorithm als --alias production``,
``aiweb embeddings install`` (``minilm``) and a collection ``soak`` of 2,000 banking77
queries (unless ``--no-embeddings``), and a key with scope ``predict``.

The server runs as in production (prediction cache on, micro-batching, connection
balancing), except that the per-key rate limit is lifted so that load is not answered 429.
wrk (one thread, ``--connections`` 64, 5 s timeout, ``bench/wrk/requests.lua``) cycles
through ``--requests`` (5,000) prebuilt requests, drawn by share with a fixed seed, for
``--duration`` seconds:

====================================================  ======  ==============================
request                                               share   varies
====================================================  ======  ==============================
``POST /v1/models/sentiment/predict`` (1 text)        45%     SST-2 sentences
``POST /v1/models/sentiment/predict`` (8 texts)       5%      SST-2 sentences
``POST /v1/models/spam/predict`` (1 text)             5%      SMS messages
``GET /v1/users/{id}/recommendations?model=movies``   15%     610 users + 10% unknown
``GET /v1/items/{id}/similar?model=movies``           5%      MovieLens movies
``POST /v1/models/minilm/embed`` (1 text)             10%     banking77 test queries
``POST /v1/collections/soak/search`` (hybrid, top 10) 10%     banking77 test queries
``GET /livez``                                        5%      -
====================================================  ======  ==============================

(Without embeddings the embed and search shares go to the one-text ``sentiment`` predict.)
wrk cycles the file, so texts and users repeat and the caches reach their steady state:
each worker answers about half of each pass, a different half each time, so its caches
hold nearly every distinct input only after several passes (at 300 requests/s, the
default warm-up of 120 s is 7 passes; the report says how many there were). A larger
``--requests`` sends more distinct inputs than the caches hold (the prediction cache
keeps 100,000 texts per worker), which exercises their eviction instead. Every
``--sample-every`` seconds (5) the ``VmRSS`` of each worker process (the
``multiprocessing`` children of ``aiweb serve``; MB = 10^6 bytes) is read from ``/proc``.

Bars (exit status 1 when one fails):

* no errors: no connect/read/write error, no timeout, every status 2xx;
* the same worker processes at the end as at the start (none died or was replaced), and
  the server still answers ``/readyz`` 200;
* no ``Traceback`` in the server's log;
* flat memory: for every worker, RSS at the end minus RSS at the end of the warm-up (the
  first ``--warmup-fraction``, 20%) at most ``max(--max-growth-mb, --max-growth-pct of
  the warm RSS)`` (20 MB, 5%). The least-squares slope after the warm-up (MB/min) is
  reported too: a leak shows as a steady slope.

Written under ``--out`` (a directory): ``soak.md`` (the tables), ``rss.csv`` (every
sample), ``rss.png`` (when matplotlib is installed) and ``rss.txt`` (an ASCII chart, always).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.serving import (
    KEY_RE,
    base_env,
    cmdline,
    create_key,
    dataset_texts,
    default_data_home,
    find_wrk,
    free_port,
    machine_line,
    markdown_table,
    process_tree,
    start_server,
    status_kib,
    stop_server,
    train_demo,
    unique_shuffled,
    wait_ready,
)

REPO = Path(__file__).resolve().parent.parent
LUA_SCRIPT = REPO / "bench" / "wrk" / "requests.lua"
MB = 1_000_000
WORKERS = 2
REQUEST_LINES = 5_000
WRK_TIMEOUT_S = 5
COLLECTION = "soak"
COLLECTION_DOCS = 2_000
RECOMMENDER = "movies"
PREPARED = ".soak-prepared"  # marker file in a prepared --home

out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


# --------------------------------------------------------------------------- set-up


def aiweb(bin_: str, env: dict[str, str], *args: str, timeout: float = 1800) -> str:
    """Run ``aiweb ARGS``; its stdout (raises with the output on failure)."""
    proc = subprocess.run(
        [bin_, *args],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"aiweb {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def prepare(bin_: str, env: dict[str, str], home: Path, data_home: Path, embeddings: bool) -> None:
    """Train and install what the load needs in ``home`` (skipped when prepared already)."""
    marker = home / PREPARED
    wanted = {"embeddings": embeddings}
    if marker.exists() and json.loads(marker.read_text()).get("embeddings", False) >= embeddings:
        err.print(f"{home} is prepared already")
        return
    t0 = time.perf_counter()
    train_demo(bin_, env, home)
    with err.status("aiweb import movielens; train recommendation movies (als) …"):
        aiweb(bin_, env, "import", "movielens")
        aiweb(
            bin_,
            env,
            *("train", "recommendation", RECOMMENDER, "--algorithm", "als"),
            *("--alias", "production"),
        )
    err.print(f"recommender trained ({time.perf_counter() - t0:.0f} s so far)")
    if embeddings:
        with err.status("aiweb embeddings install (export, quantize, check) …"):
            aiweb(bin_, env, "embeddings", "install")
        docs = home / "soak-docs.csv"
        with (data_home / "banking77" / "train.csv").open(encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [r for _, r in zip(range(COLLECTION_DOCS), reader, strict=False)]
        with docs.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text", "intent"])
            for i, r in enumerate(rows):
                writer.writerow([f"b{i}", r["text"], r["category"]])
        with err.status(f"collection {COLLECTION}: embedding {len(rows):,} documents …"):
            aiweb(bin_, env, "collections", "create", COLLECTION, "--model", "minilm")
            aiweb(
                bin_,
                env,
                *("collections", "import", COLLECTION, str(docs)),
                *("--metadata-column", "intent"),
            )
    marker.write_text(json.dumps(wanted))
    err.print(f"prepared {home} in {time.perf_counter() - t0:.0f} s")


# --------------------------------------------------------------------------- requests


def csv_column(path: Path, column: str) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [row[column] for row in csv.DictReader(fh)]


@dataclass(frozen=True)
class Route:
    name: str
    share: float
    make: Any  # (rng, i) -> "PATH\tBODY" (empty BODY: GET)


def routes(home: Path, data_home: Path, embeddings: bool) -> list[Route]:
    sst2 = unique_shuffled(dataset_texts("sst2", home, data_home), 0)
    sms = unique_shuffled(dataset_texts("sms_spam", home, data_home), 0)
    queries = unique_shuffled(csv_column(data_home / "banking77" / "test.csv", "text"), 0)
    movies = csv_column(data_home / "movielens_latest_small" / "movies.csv", "movieId")
    users = sorted(
        set(csv_column(data_home / "movielens_latest_small" / "ratings.csv", "userId")), key=int
    )

    def body(payload: dict[str, Any]) -> str:
        return json.dumps(payload, separators=(",", ":"))

    def predict(model: str, texts: list[str], n: int) -> Any:
        def make(rng: random.Random, i: int) -> str:
            picked = [texts[(i * n + k) % len(texts)] for k in range(n)]
            return f"/v1/models/{model}/predict\t{body({'inputs': picked})}"

        return make

    def recommend(rng: random.Random, i: int) -> str:
        user = rng.choice(users) if rng.random() >= 0.1 else f"soak-new-{rng.randrange(10**6)}"
        return f"/v1/users/{user}/recommendations?model={RECOMMENDER}&n=10\t"

    def similar(rng: random.Random, i: int) -> str:
        return f"/v1/items/{rng.choice(movies)}/similar?model={RECOMMENDER}&n=10\t"

    def embed(rng: random.Random, i: int) -> str:
        return f"/v1/models/minilm/embed\t{body({'inputs': [queries[i % len(queries)]]})}"

    def search(rng: random.Random, i: int) -> str:
        query = {"query": queries[(i * 7) % len(queries)], "mode": "hybrid", "top_k": 10}
        return f"/v1/collections/{COLLECTION}/search\t{body(query)}"

    one_text = 0.45 if embeddings else 0.65
    found = [
        Route("predict sentiment, 1 text", one_text, predict("sentiment", sst2, 1)),
        Route("predict sentiment, 8 texts", 0.05, predict("sentiment", sst2, 8)),
        Route("predict spam, 1 text", 0.05, predict("spam", sms, 1)),
        Route("recommendations", 0.15, recommend),
        Route("similar items", 0.05, similar),
        Route("health (/livez)", 0.05, lambda rng, i: "/livez\t"),
    ]
    if embeddings:
        found += [Route("embed, 1 text", 0.10, embed), Route("search (hybrid)", 0.10, search)]
    return found


def write_requests(found: list[Route], path: Path, lines: int) -> dict[str, int]:
    """``lines`` request lines drawn by share (seed 0); the count of each route."""
    rng = random.Random(0)
    counts = dict.fromkeys((r.name for r in found), 0)
    weights = [r.share for r in found]
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(lines):
            route = rng.choices(found, weights)[0]
            fh.write(route.make(rng, counts[route.name]) + "\n")
            counts[route.name] += 1
    return counts


# --------------------------------------------------------------------------- memory


def worker_pids(root: int) -> list[int]:
    """The ``multiprocessing`` children uvicorn spawns for ``--workers N``."""
    return [p for p in process_tree(root)[1:] if "multiprocessing.spawn" in cmdline(p)]


@dataclass
class Samples:
    """RSS samples: seconds since the load started, and MB per worker pid."""

    pids: list[int]
    t: list[float] = field(default_factory=list)
    rss: dict[int, list[float]] = field(default_factory=dict)
    replaced: set[int] = field(default_factory=set)

    def take(self, t: float, root: int) -> None:
        now = worker_pids(root)
        self.replaced |= set(now) ^ set(self.pids)
        self.t.append(t)
        for pid in self.pids:
            self.rss.setdefault(pid, []).append(status_kib(pid, "VmRSS") * 1024 / MB)


@dataclass
class Growth:
    pid: int
    start: float
    warm: float
    end: float
    peak: float
    slope_mb_min: float
    limit: float

    @property
    def growth(self) -> float:
        return self.end - self.warm

    @property
    def passed(self) -> bool:
        return self.growth <= self.limit


def slope(t: list[float], y: list[float]) -> float:
    """Least-squares slope of ``y`` over ``t`` (per second); 0 with fewer than 2 points."""
    if len(t) < 2:
        return 0.0
    mt, my = sum(t) / len(t), sum(y) / len(y)
    var = sum((a - mt) ** 2 for a in t)
    return sum((a - mt) * (b - my) for a, b in zip(t, y, strict=True)) / var if var else 0.0


def growths(samples: Samples, warm_s: float, max_mb: float, max_pct: float) -> list[Growth]:
    found = []
    warm_i = max((i for i, t in enumerate(samples.t) if t <= warm_s), default=0)
    for pid in samples.pids:
        rss = samples.rss[pid]
        warm = rss[warm_i]
        after_t, after_y = samples.t[warm_i:], rss[warm_i:]
        found.append(
            Growth(
                pid=pid,
                start=rss[0],
                warm=warm,
                end=rss[-1],
                peak=max(rss),
                slope_mb_min=slope(after_t, after_y) * 60,
                limit=max(max_mb, warm * max_pct / 100),
            )
        )
    return found


def ascii_chart(samples: Samples, warm_s: float, width: int = 72, height: int = 14) -> str:
    """RSS per worker over time, one mark per worker (``1``, ``2``, …; ``*`` both)."""
    if not samples.t:
        return "(no samples)"
    values = [v for pid in samples.pids for v in samples.rss[pid]]
    lo, hi = min(values), max(values)
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5
    span = samples.t[-1] or 1.0
    grid = [[" "] * width for _ in range(height)]
    warm_col = min(width - 1, int(warm_s / span * (width - 1)))
    for row in grid:
        row[warm_col] = "|"
    for w, pid in enumerate(samples.pids):
        mark = str(w + 1)
        for t, v in zip(samples.t, samples.rss[pid], strict=True):
            col = min(width - 1, int(t / span * (width - 1)))
            row_i = height - 1 - round((v - lo) / (hi - lo) * (height - 1))
            cell = grid[row_i][col]
            grid[row_i][col] = mark if cell in (" ", "|", mark) else "*"
    lines = []
    for i, row in enumerate(grid):
        label = hi - (hi - lo) * i / (height - 1)
        lines.append(f"{label:8.1f} MB |" + "".join(row))
    lines.append(" " * 12 + "+" + "-" * width)
    lines.append(" " * 12 + f"0 s{f'{span:,.0f} s':>{width - 3}}")
    legend = ", ".join(f"{w + 1} = worker pid {pid}" for w, pid in enumerate(samples.pids))
    lines.append(f"RSS per worker ({legend}; * = both); '|' = end of the warm-up ({warm_s:.0f} s)")
    return "\n".join(lines)


def png_chart(samples: Samples, warm_s: float, path: Path) -> bool:
    """Write a PNG when matplotlib is installed; whether it was written."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    for w, pid in enumerate(samples.pids):
        ax.plot(samples.t, samples.rss[pid], label=f"worker {w + 1} (pid {pid})")
    ax.axvline(warm_s, linestyle="--", color="grey", label="end of warm-up")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS, MB")
    ax.set_title("aiweb serve --workers 2: RSS per worker under load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- run


@dataclass
class Bar:
    name: str
    measured: str
    target: str
    passed: bool


def run_soak(args: argparse.Namespace, wrk: str, bin_: str, home: Path, data_home: Path) -> int:
    env = base_env(home, data_home)
    args.out.mkdir(parents=True, exist_ok=True)
    prepare(bin_, env, home, data_home, args.embeddings)
    key = create_key(bin_, env, name=f"soak-{int(time.time())}")
    assert KEY_RE.fullmatch(key)
    found = routes(home, data_home, args.embeddings)
    requests_file = home / "soak-requests.txt"
    counts = write_requests(found, requests_file, args.requests)

    port = free_port()
    server_env = env | {
        "AIWEB_RATE_LIMIT__PREDICT": "1000000/second",
        "AIWEB_RATE_LIMIT__ANONYMOUS": "1000000/second",
    }
    server = start_server(
        "soak",
        [bin_, "serve", "--port", str(port), "--workers", str(WORKERS)],
        server_env,
        port,
        args.out,
    )
    try:
        with err.status(f"aiweb serve --workers {WORKERS}: loading the models …"):
            wait_ready(server, lambda c: c.get("/readyz").status_code == 200, 2 * WORKERS + 1)
        pids = worker_pids(server.proc.pid)
        samples = Samples(pids)
        cmd = [
            wrk,
            "-t1",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "--timeout",
            f"{WRK_TIMEOUT_S}s",
            "-s",
            str(LUA_SCRIPT),
            server.url,
            "--",
            str(requests_file),
            key,
            "1",
        ]
        started = datetime.now(UTC)
        err.print(
            f"soak: {args.duration} s at c={args.connections}, workers {pids}, "
            f"sampling RSS every {args.sample_every:g} s",
            highlight=False,
        )
        t0 = time.monotonic()
        with (args.out / "wrk.out").open("w") as wrk_out:
            proc = subprocess.Popen(
                cmd, stdout=wrk_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            next_sample = 0.0
            while proc.poll() is None:
                now = time.monotonic() - t0
                if now >= next_sample:
                    samples.take(now, server.proc.pid)
                    next_sample += args.sample_every
                    if len(samples.t) % max(1, int(60 / args.sample_every)) == 0:
                        rss = ", ".join(f"{samples.rss[p][-1]:,.0f}" for p in pids)
                        err.print(f"  {now:5.0f} s: RSS MB per worker {rss}", highlight=False)
                if time.monotonic() - t0 > args.duration + 120:
                    proc.kill()
                    raise RuntimeError("wrk did not finish")
                time.sleep(0.2)
            if not samples.t or time.monotonic() - t0 - samples.t[-1] >= 1.0:
                samples.take(time.monotonic() - t0, server.proc.pid)
        lines = (args.out / "wrk.out").read_text().strip().splitlines()
        summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
        if summary is None:
            raise RuntimeError("wrk printed no summary:\n" + "\n".join(lines[-20:]))
        alive = server.proc.poll() is None
        ready = False
        if alive:
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
            except httpx.HTTPError:
                ready = False
    finally:
        stop_server(server)
    log_text = server.log.read_text(errors="replace")
    tracebacks = log_text.count("Traceback")

    warm_s = args.duration * args.warmup_fraction
    grow = growths(samples, warm_s, args.max_growth_mb, args.max_growth_pct)
    statuses = {str(k): int(v) for k, v in summary["statuses"].items()}
    non_2xx = sum(v for k, v in statuses.items() if not k.startswith("2"))
    sock = {k: summary[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")}
    errors = non_2xx + sum(sock.values())
    seconds = summary["duration_us"] / 1e6

    bars = [
        Bar(
            "errors (non-2xx, socket errors, timeouts)",
            f"{errors:,} of {summary['requests']:,}",
            "0",
            errors == 0,
        ),
        Bar(
            "workers alive and unchanged; /readyz afterwards",
            f"{len(pids)} workers, {len(samples.replaced)} changed; readyz "
            f"{'200' if ready else 'failed'}",
            f"{WORKERS} unchanged, 200",
            len(pids) == WORKERS and not samples.replaced and ready,
        ),
        Bar("tracebacks in the server log", f"{tracebacks}", "0", tracebacks == 0),
        *(
            Bar(
                f"worker {i + 1} RSS growth after the warm-up",
                f"{g.growth:+,.1f} MB ({g.warm:,.0f} -> {g.end:,.0f} MB; "
                f"{g.slope_mb_min:+.2f} MB/min)",
                f"<= {g.limit:,.1f} MB",
                g.passed,
            )
            for i, g in enumerate(grow)
        ),
    ]

    # report
    machine = machine_line(wrk, str(WORKERS))
    title = (
        f"soak: aiweb serve --workers {WORKERS}, wrk -t1 -c{args.connections}, "
        f"{args.duration} s from {started:%H:%M:%S} UTC"
        + (f", MALLOC_ARENA_MAX={env['MALLOC_ARENA_MAX']}" if env.get("MALLOC_ARENA_MAX") else "")
    )
    load_headers = ["requests", "requests/s", "non-2xx", "socket errors", "timeouts"]
    load_headers += ["p50 ms", "p90 ms", "p99 ms", "max ms"]
    load_rows = [
        [
            f"{summary['requests']:,}",
            f"{summary['requests'] / seconds:,.0f}",
            f"{non_2xx:,}",
            f"{sock['connect_errors'] + sock['read_errors'] + sock['write_errors']:,}",
            f"{sock['timeouts']:,}",
            *(f"{summary[k] / 1000:,.1f}" for k in ("p50_us", "p90_us", "p99_us", "max_us")),
        ]
    ]
    mix_headers = ["route", "share of the requests file"]
    mix_rows = [[name, f"{n / args.requests:.1%}"] for name, n in counts.items()]
    passes = summary["requests"] / args.requests
    cycle_note = (
        f"wrk went through the {args.requests:,} requests {passes:.1f} times "
        f"(about {passes * args.warmup_fraction:.1f} times by the end of the warm-up)"
    )
    rss_headers = ["worker", "pid", "start MB", "end of warm-up MB", "end MB", "peak MB"]
    rss_headers += ["growth MB", "slope MB/min", "limit MB", "result"]
    rss_rows = [
        [
            str(i + 1),
            str(g.pid),
            f"{g.start:,.1f}",
            f"{g.warm:,.1f}",
            f"{g.end:,.1f}",
            f"{g.peak:,.1f}",
            f"{g.growth:+,.1f}",
            f"{g.slope_mb_min:+.2f}",
            f"{g.limit:,.1f}",
            "PASS" if g.passed else "FAIL",
        ]
        for i, g in enumerate(grow)
    ]
    # RSS over time: about ten rows
    step = max(1, len(samples.t) // 10)
    idx = sorted(set(range(0, len(samples.t), step)) | {len(samples.t) - 1})
    time_headers = ["t s", *(f"worker {i + 1} MB" for i in range(len(pids)))]
    time_rows = [
        [f"{samples.t[i]:,.0f}", *(f"{samples.rss[p][i]:,.1f}" for p in pids)] for i in idx
    ]
    bar_rows = [[b.name, b.measured, b.target, "PASS" if b.passed else "FAIL"] for b in bars]
    chart = ascii_chart(samples, warm_s)
    first = " ".join(summary.get("first_error", "").split())

    out.print(machine, highlight=False, markup=False)
    out.print(simple_table(title, load_headers, load_rows, 0))
    out.print(simple_table("request mix", mix_headers, mix_rows, 1))
    out.print(cycle_note, highlight=False, markup=False)
    out.print(simple_table("RSS over time", time_headers, time_rows, 0))
    out.print(simple_table("RSS per worker", rss_headers, rss_rows, 2))
    out.print(chart, highlight=False, markup=False)
    if first:
        out.print(f"first error: {first}", highlight=False, markup=False)
    out.print(f"statuses: {statuses}", highlight=False, markup=False)
    out.print(simple_table("bars", ["bar", "measured", "target", "result"], bar_rows, 1))

    with (args.out / "rss.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["t_s", *(f"worker_{p}_rss_mb" for p in pids)])
        for i, t in enumerate(samples.t):
            writer.writerow([f"{t:.1f}", *(f"{samples.rss[p][i]:.2f}" for p in pids)])
    (args.out / "rss.txt").write_text(chart + "\n", encoding="utf-8")
    png = png_chart(samples, warm_s, args.out / "rss.png")
    parts = [
        machine,
        f"**{title}**",
        markdown_table(load_headers, load_rows, 0),
        f"statuses: {statuses}" + (f"; first error: {first}" if first else ""),
        "**request mix**",
        markdown_table(mix_headers, mix_rows, 1),
        cycle_note,
        "**RSS over time**",
        markdown_table(time_headers, time_rows, 0),
        "**RSS per worker**",
        markdown_table(rss_headers, rss_rows, 2),
        "```\n" + chart + "\n```",
        "**bars**",
        markdown_table(["bar", "measured", "target", "result"], bar_rows, 1),
    ]
    (args.out / "soak.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    err.print(
        f"wrote {args.out}/soak.md, rss.csv, rss.txt" + (", rss.png" if png else ""),
        highlight=False,
    )
    failed = [b for b in bars if not b.passed]
    out.print(
        f"{len(failed)} of {len(bars)} bars FAILED" if failed else f"all {len(bars)} bars PASS",
        highlight=False,
    )
    return 1 if failed else 0


def simple_table(title: str, headers: list[str], body: list[list[str]], numeric: int) -> Table:
    t = Table(title=title)
    for i, h in enumerate(headers):
        t.add_column(h, justify="right" if i >= numeric else "left")
    for row in body:
        t.add_row(*row)
    return t


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (600)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument(
        "--requests",
        type=int,
        default=REQUEST_LINES,
        help=f"prebuilt requests wrk cycles through ({REQUEST_LINES:,})",
    )
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="seconds between RSS samples (5)"
    )
    parser.add_argument(
        "--warmup-fraction",
        type=float,
        default=0.2,
        help="share of the run before memory must be flat (0.2)",
    )
    parser.add_argument("--max-growth-mb", type=float, default=20.0, help="(20)")
    parser.add_argument("--max-growth-pct", type=float, default=5.0, help="(5)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aiweb-soak",
        help="directory for soak.md, rss.csv, rss.txt, rss.png, the server log",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="prepared AIWEB_HOME to reuse (or prepare)"
    )
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument(
        "--no-embeddings",
        dest="embeddings",
        action="store_false",
        help="no embed or search requests (skips aiweb embeddings install)",
    )
    args = parser.parse_args(argv)
    if args.duration < 5 or args.connections < 1 or args.sample_every <= 0 or args.requests < 100:
        parser.error("--duration >= 5, --connections >= 1, --sample-every > 0, --requests >= 100")
    if not 0 <= args.warmup_fraction < 1:
        parser.error("--warmup-fraction in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        err.print("bench.soak needs wrk: install Debian's wrk: apt-get install wrk")
        return 2
    data_home = default_data_home(args.data_home)
    if data_home is None:
        err.print("bench.soak needs the shared data: --data-home or AIWEB_DATA_HOME")
        return 2
    bin_ = str(Path(sys.executable).parent / "aiweb")
    temporary = args.home is None
    home = Path(tempfile.mkdtemp(prefix="aiweb-soak-")) if temporary else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    try:
        return run_soak(args, wrk, bin_, home, data_home)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
