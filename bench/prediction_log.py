"""Does the prediction log keep up with the served rate? Rows per second written by
:class:`~aiweb.monitoring.prediction_log.PredictionLogger` on SQLite and PostgreSQL.

Run from the project root (``make bench-prediction-log``; the served runs need ``wrk``)::

    .venv/bin/python -m bench.prediction_log [--rate 4000] [--duration 60] \\
        [--databases sqlite,postgresql] [--served sqlite,postgresql] [--markdown PATH]

Every database is a fresh one: a SQLite file in a temporary directory, or a new schema in
the PostgreSQL database of ``--pg-url`` (default ``$AIWEB_TEST_DATABASE_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), dropped afterwards; aiweb's
migrations create the tables. For each database, in one run:

* ``raw INSERT`` (the baseline): ``executemany`` of the driver (sqlite3, psycopg) on the
  ``predictions`` table, batches of ``max_batch_rows`` rows (1,000) as fast as one thread
  can, for ``--baseline-seconds``: what the database itself takes on this machine;
* ``loggers, fed directly``: ``--loggers`` processes (2, as ``aiweb serve --workers 2``:
  each worker has its own logger and connection pool), each with a ``PredictionLogger``
  built with the configured ``AIWEB_PREDICTION_LOG__*`` settings (defaults: flush every
  1 s, batches of 1,000, 200,000 rows queued at most) and fed ``--rate / --loggers`` rows
  per second (one ``record()`` per row, as one-text predict requests do; paced every
  5 ms) for ``--duration`` seconds from its main thread while its writer thread inserts.
  The default rate, 4,000 rows/s in all, is above the best ``make bench`` figure for one
  text at concurrency 64 (3,648 requests/s with two workers, docs/benchmarks.md), so the
  log sees at least the served rate whatever else loads the machine. The queue high-water
  mark is each logger's ``pending()`` read after every feed, summed over the loggers (an
  upper bound of the rows queued at once); ``drain`` is the longest ``close()`` after the
  feed stopped (writing what was still queued);
* ``served, wrk c=64`` (``--served``): ``aiweb serve --workers 2`` on that database
  (``aiweb demo --no-serve`` trains the models in it first; prediction cache off, rate
  limit lifted, as ``make bench``), driven by wrk for ``--served-duration`` seconds at 64
  connections with one unique SST-2 sentence per ``POST /v1/models/sentiment/predict``
  (``bench/wrk/requests.lua``), so the log is fed as in production, by two workers each
  with its own logger. ``offered`` is the sum of ``aiweb_predictions_total`` on
  ``/metrics`` (every row a worker queued, read until it no longer changes after the
  load: requests in flight when wrk stops are still answered); the backlog (offered minus
  rows in the table, read once a second) gives the queue high-water mark; ``drain`` is the
  time from the end of the load until every offered row is in the table (0.1 s
  resolution); ``written`` is counted after the server stopped. A "queue full" warning in
  the server's log is reported too.

Bars (exit status 1 when one fails): no row dropped and every offered row written, for
every run; the direct feed reached at least 98% of ``--rate``; the log drained within
``DRAIN_MAX_S`` after the load stopped (a log that falls behind would leave a backlog
growing with the duration).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.serving import (
    Kind,
    Pool,
    Scenario,
    base_env,
    create_key,
    dataset_texts,
    default_data_home,
    find_wrk,
    free_port,
    machine_line,
    markdown_table,
    run_wrk,
    start_server,
    stop_server,
    train_demo,
    unique_shuffled,
    wait_ready,
    write_bodies,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: one text per request at concurrency 64, best ``make bench`` run (docs/benchmarks.md)
SERVED_C64_RATE = 3648
DEFAULT_RATE = 4000
TICK_S = 0.005
DRAIN_MAX_S = 5.0
FEED_MIN_RATIO = 0.98
SERVED_CONNECTIONS = 64
SERVED_WORKERS = 2
LABELS = ("negative", "positive")

out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


# --------------------------------------------------------------------------- databases


@dataclass
class Database:
    """A fresh database: its kind (``sqlite``/``postgresql``), URL and clean-up."""

    kind: str
    url: str
    schema: str | None = None


@contextmanager
def fresh_database(kind: str, work: Path, pg_url: str) -> Iterator[Database]:
    """A SQLite file under ``work``, or a new schema in ``pg_url`` (dropped on exit)."""
    if kind == "sqlite":
        path = work / f"log-{uuid.uuid4().hex[:8]}.db"
        yield Database(kind, f"sqlite:///{path}")
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_pl_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg_url else "?"
        yield Database(kind, f"{pg_url}{sep}options=-csearch_path%3D{schema}", schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def count_rows(engine: Any, model: str | None = None) -> int:
    from sqlalchemy import func, select

    from aiweb.db.orm import SqlPrediction

    query = select(func.count()).select_from(SqlPrediction)
    if model is not None:
        query = query.where(SqlPrediction.model == model)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# --------------------------------------------------------------------------- rows


def make_record(i: int, model: str) -> Any:
    """A row as a one-text predict request logs it (input text not stored, its sha256 is)."""
    from aiweb.monitoring.prediction_log import PredictionRecord

    p = (i % 997) / 997
    return PredictionRecord(
        id=str(uuid.uuid4()),
        model=model,
        version=1,
        label=LABELS[i % 2],
        scores={"negative": 1 - p, "positive": p},
        latency_ms=1.0 + (i % 50) / 10,
        input_sha256=hashlib.sha256(f"text {i}".encode()).hexdigest(),
        input_text=None,
        created_at=datetime.now(UTC),
        input_chars=20 + i % 200,
        oov_rate=(i % 10) / 10,
    )


def raw_insert_rate(engine: Any, seconds: float, batch: int) -> tuple[int, float]:
    """Rows inserted by the DBAPI's ``executemany`` in batches of ``batch``, one commit
    per batch, for ``seconds``; (rows, rows/s)."""
    is_pg = engine.dialect.name == "postgresql"
    mark = "%s" if is_pg else "?"
    columns = (
        "id, model, version, label, scores, latency_ms, input_sha256, input_text, "
        "input_chars, oov_rate, created_at"
    )
    # fixed column names and placeholders, no input: not an injection vector
    sql = f"INSERT INTO predictions ({columns}) VALUES ({', '.join([mark] * 11)})"  # noqa: S608
    now = datetime.now(UTC)
    # SQLite stores aiweb's UTC datetimes as ISO text; psycopg takes the datetime
    created: Any = now if is_pg else now.replace(tzinfo=None).isoformat(sep=" ")
    rows = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            params = []
            for i in range(rows, rows + batch):
                p = (i % 997) / 997
                params.append(
                    (
                        str(uuid.uuid4()),
                        "bench-raw",
                        1,
                        LABELS[i % 2],
                        json.dumps({"negative": 1 - p, "positive": p}),
                        1.0,
                        hashlib.sha256(f"raw {i}".encode()).hexdigest(),
                        None,
                        20 + i % 200,
                        (i % 10) / 10,
                        created,
                    )
                )
            cur.executemany(sql, params)
            raw.commit()
            rows += batch
        elapsed = time.perf_counter() - t0
        cur.close()
    finally:
        raw.close()
    return rows, rows / elapsed


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    database: str
    feed: str
    seconds: float
    offered: int
    written: int
    dropped: int
    high_water: int
    drain_s: float
    baseline_rows_per_s: float
    written_in_window: int  # rows in the table when the load stopped
    note: str = ""
    rate: float | None = None  # offered rows/s when not offered / seconds (several feeders)

    @property
    def offered_per_s(self) -> float:
        return self.rate if self.rate is not None else self.offered / self.seconds

    @property
    def written_per_s(self) -> float:
        """Rows written per second, from the start of the load to the last row written."""
        return self.written / (self.seconds + self.drain_s)

    @property
    def lost(self) -> int:
        """Offered rows neither written nor counted as dropped."""
        return self.offered - self.written - self.dropped


@dataclass
class Feed:
    """What one feeding process measured."""

    offered: int
    dropped: int
    high_water: int
    window_s: float
    drain_s: float
    written_in_window: int


def feed_one(
    url: str, rate: float, seconds: float, settings: dict[str, Any], start_at: float, tag: int
) -> Feed:
    """In this process: a logger with ``settings`` fed ``rate`` rows/s for ``seconds``, from
    wall-clock time ``start_at`` (so several processes start together); ``close()`` after."""
    from aiweb.db.session import make_engine
    from aiweb.monitoring.prediction_log import PredictionLogger

    engine = make_engine(url)
    try:
        logger = PredictionLogger(engine, **settings)
        logger.start()
        offered = high = 0
        time.sleep(max(0.0, start_at - time.time()))
        t0 = time.perf_counter()
        total = int(rate * seconds)
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
            due = min(int(rate * elapsed), total)
            while offered < due:
                logger.record([make_record(tag * 10**9 + offered, "bench-log")])
                offered += 1
                high = max(high, logger.pending())
            time.sleep(max(0.0, TICK_S - (time.perf_counter() - t0 - elapsed)))
        window = time.perf_counter() - t0
        in_window = logger.written
        t1 = time.perf_counter()
        logger.close()
        drain = time.perf_counter() - t1
        return Feed(offered, logger.dropped, high, window, drain, in_window)
    finally:
        engine.dispose()


def feed_directly(
    db: Database,
    *,
    rate: float,
    seconds: float,
    baseline_s: float,
    settings: Any,
    loggers: int,
) -> Result:
    """The raw INSERT baseline, then ``loggers`` processes (one logger each, as many as
    ``aiweb serve --workers``) fed ``rate / loggers`` rows/s each for ``seconds``."""
    import multiprocessing

    from aiweb.db.migrate import upgrade
    from aiweb.db.session import make_engine

    engine = make_engine(db.url)
    try:
        upgrade(engine)
        batch = settings.max_batch_rows
        with err.status(f"{db.kind}: raw INSERT baseline, {baseline_s:g} s …"):
            raw_rows, raw_rate = raw_insert_rate(engine, baseline_s, batch)
        err.print(f"  {db.kind} · raw INSERT: {raw_rows:,} rows, {raw_rate:,.0f} rows/s")
        options = {
            "flush_interval_s": settings.flush_interval_s,
            "max_batch_rows": settings.max_batch_rows,
            "max_queue_rows": settings.max_queue_rows,
        }
        status = err.status(
            f"{db.kind}: feeding {loggers} logger(s) {rate:,.0f} rows/s in all for {seconds:g} s"
        )
        with status, multiprocessing.get_context("spawn").Pool(loggers) as pool:
            start_at = time.time() + 3.0  # after the processes have imported aiweb
            feeds = pool.starmap(
                feed_one,
                [(db.url, rate / loggers, seconds, options, start_at, i) for i in range(loggers)],
            )
        written = count_rows(engine, "bench-log")
    finally:
        engine.dispose()
    result = Result(
        database=db.kind,
        feed=f"{loggers} logger(s), fed directly {rate:,.0f} rows/s",
        seconds=max(f.window_s for f in feeds),
        offered=sum(f.offered for f in feeds),
        written=written,
        dropped=sum(f.dropped for f in feeds),
        high_water=sum(f.high_water for f in feeds),
        drain_s=max(f.drain_s for f in feeds),
        baseline_rows_per_s=raw_rate,
        written_in_window=sum(f.written_in_window for f in feeds),
        rate=sum(f.offered / f.window_s for f in feeds),
    )
    err.print(
        f"  {db.kind} · logger: offered {result.offered:,} ({result.offered_per_s:,.0f}/s), "
        f"written {result.written:,}, dropped {result.dropped:,}, "
        f"high water {result.high_water:,}, drain {result.drain_s:.2f} s",
        highlight=False,
    )
    return result


# --------------------------------------------------------------------------- served


PREDICTIONS_RE = re.compile(r"^aiweb_predictions_total\{[^}]*\} ([0-9.e+]+)$", re.M)


def predictions_total(url: str) -> int:
    """Sum of ``aiweb_predictions_total`` over every label and worker (multiprocess mode)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return int(sum(float(v) for v in PREDICTIONS_RE.findall(text)))


class Sampler(threading.Thread):
    """Once a second: offered (``/metrics``) minus rows in the table = the backlog."""

    def __init__(self, url: str, engine: Any, before: int) -> None:
        super().__init__(daemon=True)
        self.url, self.engine, self.before = url, engine, before
        self.high_water = 0
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.wait(1.0):
            with suppress(Exception):
                offered = predictions_total(self.url)
                written = count_rows(self.engine) - self.before
                self.samples.append((time.monotonic() - t0, offered, written))
                self.high_water = max(self.high_water, offered - written)


def served_run(
    db: Database,
    *,
    wrk: str,
    aiweb: str,
    work: Path,
    data_home: Path | None,
    seconds: int,
    baseline_rows_per_s: float,
) -> Result:
    """``aiweb serve --workers 2`` on ``db``, predict requests from wrk at c=64."""
    from aiweb.db.session import make_engine

    home = work / f"served-{db.kind}"
    home.mkdir()
    # PostgreSQL is production mode: a secret key is required
    env = base_env(home, data_home) | {
        "AIWEB_DATABASE_URL": db.url,
        "AIWEB_SECRET_KEY": os.environ.get("AIWEB_SECRET_KEY") or uuid.uuid4().hex * 2,
    }
    train_demo(aiweb, env, home)
    key = create_key(aiweb, env)
    sentiment = Pool("sst2", unique_shuffled(dataset_texts("sst2", home, data_home), 0))
    one = Kind("/v1/models/sentiment/predict", sentiment, 1)
    scenario = Scenario(f"1 text, c={SERVED_CONNECTIONS}", SERVED_CONNECTIONS, [(one, 1.0)])
    bodies = write_bodies(scenario, home / "bodies.txt")

    engine = make_engine(db.url)
    port = free_port()
    server = start_server(
        f"aiweb-{db.kind}",
        [aiweb, "serve", "--port", str(port), "--workers", str(SERVED_WORKERS)],
        env | {"AIWEB_RATE_LIMIT__PREDICT": "1000000/second", "AIWEB_CACHE__ENABLED": "false"},
        port,
        home,
    )
    try:
        with err.status(f"{db.kind}: aiweb serve --workers {SERVED_WORKERS} starting …"):
            wait_ready(
                server, lambda c: c.get("/readyz").status_code == 200, 2 * SERVED_WORKERS + 1
            )
        before = count_rows(engine)
        offered_before = predictions_total(server.url)
        sampler = Sampler(server.url, engine, before)
        sampler.start()
        with err.status(f"{db.kind}: wrk c={SERVED_CONNECTIONS} for {seconds} s …"):
            summary = run_wrk(wrk, server.url, bodies.path, key, SERVED_CONNECTIONS, seconds)
        t_end = time.monotonic()
        # requests in flight when wrk stopped are still answered (and logged): wait until
        # the count of every row a worker queued is stable and the table holds them all
        drain = float("nan")
        deadline = t_end + 60
        offered = -1
        while time.monotonic() < deadline:
            now = predictions_total(server.url) - offered_before
            if now == offered and count_rows(engine) - before >= offered:
                drain = time.monotonic() - t_end
                break
            offered = now
            time.sleep(0.1)
        sampler.stop.set()
        sampler.join(5)
        in_window = max((w for t, _, w in sampler.samples if t <= seconds), default=0)
        stop_server(server)
        written = count_rows(engine) - before
        log_text = server.log.read_text(errors="replace")
        full = re.findall(r"queue full; (\d+) rows dropped", log_text)
        # with several workers each logger counts its own drops: the log lines are per worker
        dropped = max(offered - written, 0) if full else 0
        non_2xx = int(summary["errors"])
        note = (
            f"wrk: {summary['requests']:,} requests "
            f"({summary['requests'] / (summary['duration_us'] / 1e6):,.0f}/s), "
            f"p99 {summary['p99_us'] / 1000:.1f} ms, {non_2xx} errors"
            + ("; server log: prediction log queue full" if full else "")
        )
    finally:
        stop_server(server)
        engine.dispose()
    result = Result(
        database=db.kind,
        feed=f"served: aiweb serve --workers {SERVED_WORKERS}, wrk c={SERVED_CONNECTIONS}",
        seconds=summary["duration_us"] / 1e6,
        offered=offered,
        written=written,
        dropped=dropped,
        high_water=sampler.high_water,
        drain_s=drain,
        baseline_rows_per_s=baseline_rows_per_s,
        written_in_window=in_window,
        note=note,
    )
    err.print(
        f"  {db.kind} · served: offered {offered:,} ({result.offered_per_s:,.0f}/s), "
        f"written {written:,}, high water {result.high_water:,}, drain {drain:.2f} s; {note}",
        highlight=False,
    )
    return result


# --------------------------------------------------------------------------- report

HEADERS = [
    "database",
    "feed",
    "s",
    "offered rows",
    "offered rows/s",
    "written rows",
    "written by the end of the load",
    "dropped",
    "written rows/s",
    "queue high water",
    "drain s",
    "raw INSERT rows/s (baseline)",
    "offered / baseline",
]


def rows(results: list[Result]) -> list[list[str]]:
    return [
        [
            r.database,
            r.feed,
            f"{r.seconds:.1f}",
            f"{r.offered:,}",
            f"{r.offered_per_s:,.0f}",
            f"{r.written:,}",
            f"{r.written_in_window:,}",
            f"{r.dropped:,}" + (f" ({r.lost:+,} unaccounted)" if r.lost else ""),
            f"{r.written_per_s:,.0f}",
            f"{r.high_water:,}",
            f"{r.drain_s:.2f}",
            f"{r.baseline_rows_per_s:,.0f}",
            f"{r.offered_per_s / r.baseline_rows_per_s:.0%}",
        ]
        for r in results
    ]


@dataclass
class Bar:
    name: str
    measured: str
    target: str
    passed: bool


def bars(results: list[Result], rate: float) -> list[Bar]:
    found: list[Bar] = []
    for r in results:
        tag = f"{r.database} · {r.feed}"
        found.append(
            Bar(
                f"{tag}: dropped / unwritten rows",
                f"{r.dropped:,} dropped, {r.offered - r.written:,} not written",
                "0",
                r.dropped == 0 and r.written == r.offered,
            )
        )
        found.append(
            Bar(
                f"{tag}: drain after the load",
                f"{r.drain_s:.2f} s",
                f"<= {DRAIN_MAX_S:g} s",
                r.drain_s <= DRAIN_MAX_S,  # NaN (never drained) fails
            )
        )
        if "fed directly" in r.feed:
            found.append(
                Bar(
                    f"{tag}: feed rate reached",
                    f"{r.offered_per_s:,.0f} rows/s",
                    f">= {FEED_MIN_RATIO:.0%} of {rate:,.0f}",
                    r.offered_per_s >= FEED_MIN_RATIO * rate,
                )
            )
    return found


def table(title: str, headers: list[str], body: list[list[str]], numeric: int) -> Table:
    t = Table(title=title)
    for i, h in enumerate(headers):
        t.add_column(h, justify="right" if i >= numeric else "left")
    for row in body:
        t.add_row(*row)
    return t


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prediction_log", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"rows/s fed to the logger directly ({DEFAULT_RATE}; make bench c=64 reached "
        f"{SERVED_C64_RATE}/s)",
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of feed (60)")
    parser.add_argument(
        "--loggers",
        type=int,
        default=SERVED_WORKERS,
        help=f"feeding processes, one logger each, sharing --rate ({SERVED_WORKERS}, as "
        "aiweb serve --workers 2)",
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=10, help="seconds of raw INSERTs (10)"
    )
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="direct feeds: sqlite,postgresql"
    )
    parser.add_argument(
        "--served",
        default="sqlite,postgresql",
        help="served runs (aiweb serve + wrk): sqlite,postgresql, or none",
    )
    parser.add_argument(
        "--served-duration", type=int, default=60, help="seconds of wrk per served run (60)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("AIWEB_TEST_DATABASE_URL") or DEFAULT_PG_URL,
        help="PostgreSQL database to create a fresh schema in",
    )
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)
    kinds = {"sqlite", "postgresql"}
    args.databases = [d for d in args.databases.split(",") if d]
    args.served = [d for d in args.served.split(",") if d and d != "none"]
    if not set(args.databases) <= kinds or not set(args.served) <= kinds:
        parser.error("--databases / --served: a comma-separated list of sqlite, postgresql")
    if args.rate <= 0 or args.duration <= 0 or args.baseline_seconds <= 0 or args.loggers < 1:
        parser.error("--rate, --duration, --baseline-seconds and --loggers must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from aiweb.config import Settings

    settings = Settings().prediction_log
    wrk = find_wrk()
    if args.served and wrk is None:
        err.print("the served runs need wrk (Debian's wrk package): apt-get install wrk")
        return 2
    aiweb = str(Path(sys.executable).parent / "aiweb")
    data_home = default_data_home(args.data_home)
    work = Path(tempfile.mkdtemp(prefix="aiweb-bench-plog-"))
    results: list[Result] = []
    baselines: dict[str, float] = {}
    try:
        for kind in dict.fromkeys(args.databases + args.served):
            with fresh_database(kind, work, args.pg_url) as db:
                if kind in args.databases:
                    r = feed_directly(
                        db,
                        rate=args.rate,
                        seconds=args.duration,
                        baseline_s=args.baseline_seconds,
                        settings=settings,
                        loggers=args.loggers,
                    )
                    results.append(r)
                    baselines[kind] = r.baseline_rows_per_s
            if kind in args.served:
                assert wrk is not None
                with fresh_database(kind, work, args.pg_url) as db:
                    if kind not in baselines:
                        from aiweb.db.migrate import upgrade
                        from aiweb.db.session import make_engine

                        engine = make_engine(db.url)
                        upgrade(engine)
                        baselines[kind] = raw_insert_rate(
                            engine, args.baseline_seconds, settings.max_batch_rows
                        )[1]
                        engine.dispose()
                    results.append(
                        served_run(
                            db,
                            wrk=wrk,
                            aiweb=aiweb,
                            work=work,
                            data_home=data_home,
                            seconds=args.served_duration,
                            baseline_rows_per_s=baselines[kind],
                        )
                    )
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)

    found = bars(results, args.rate)
    machine = machine_line(wrk or "no wrk", str(SERVED_WORKERS))
    title = (
        f"prediction log: {args.duration:g} s direct feeds, {args.served_duration} s served runs; "
        f"logger flush {settings.flush_interval_s:g} s, batches {settings.max_batch_rows:,}, "
        f"queue {settings.max_queue_rows:,} rows"
    )
    body = rows(results)
    bar_body = [[b.name, b.measured, b.target, "PASS" if b.passed else "FAIL"] for b in found]
    notes = [f"{r.database} · served: {r.note}" for r in results if r.note]
    out.print(machine, highlight=False, markup=False)
    out.print(table(title, HEADERS, body, numeric=2))
    for note in notes:
        out.print(note, highlight=False, markup=False)
    out.print(table("bars", ["bar", "measured", "target", "result"], bar_body, numeric=1))
    failed = [b for b in found if not b.passed]
    out.print(
        f"[bold red]{len(failed)} of {len(found)} bars FAILED[/bold red]"
        if failed
        else f"[green]all {len(found)} bars PASS[/green]"
    )
    if args.markdown is not None:
        parts = [
            machine,
            f"**{title}**",
            markdown_table(HEADERS, body, numeric=2),
            *notes,
            "**bars**",
            markdown_table(["bar", "measured", "target", "result"], bar_body, numeric=1),
        ]
        args.markdown.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
        err.print(f"wrote {args.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
