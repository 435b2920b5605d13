"""Search collections: latency over HTTP, ANN recall against exact search, and retrieval
quality, on the shared data.

Run from the project root (``make bench-search``; needs ``wrk``)::

    .venv/bin/python -m bench.search [--duration 15] [--workers 1] [--home DIR] [--check]

The home (``--home``; default ``$AIWEB_HOME/bench/search``) is an aiweb home of its own,
built once and reused by later runs: ``aiweb embeddings install`` there, then two
collections, embedded with ``minilm@production`` (``--model``) through
:class:`~aiweb.search.service.SearchService` (the code ``POST …/documents`` runs):

* ``bench50k``: 50,000 documents from ``AIWEB_DATA_HOME`` (``--data-home``, else
  ``../shared/data``): the 10,000 goodbooks-10k titles and authors ("Title by Authors"),
  the 9,742 MovieLens titles, the 13,083 banking77 queries (train and test) and the 18,200
  clinc150 queries (train, validation, out-of-scope) — 51,025 texts, of which 1,025 chosen
  at random (seed 0) among the banking77 test and clinc150 validation queries are held out
  as the search queries, so no query is a document. Metadata: ``source``. Past the
  20,000-document threshold the embedded index builds its HNSW graph (usearch; M 16,
  efConstruction 128, ef 64 — the defaults), saved in the home and loaded by the servers.
* ``banking77``: the 10,003 banking77 training queries, ``intent`` in metadata.

Then, in one run:

1. **ANN recall@10**: for every held-out query, the HNSW index's top 10 (the served code
   path, :meth:`EmbeddedIndex.search`) against exact search's top 10 (the baseline: the
   same vectors, one matrix product) in this process; the mean fraction found, and each
   path's in-process latency.
2. **Latency over HTTP**: ``aiweb serve --workers N`` (default one per core) on loopback
   (rate limit lifted), driven by wrk (1 thread, 4 connections,
   ``bench/wrk/requests.lua``), each request
   ``POST /v1/collections/bench50k/search`` with one held-out query (cycled), ``top_k`` 10,
   for ``--duration`` seconds per mode after a discarded warm-up: ``vector``, ``keyword``
   and ``hybrid`` on the default server (HNSW), then ``vector`` and ``hybrid`` on a second
   server whose threshold is above 50,000 (``AIWEB_SEARCH__ANN_THRESHOLD``), so exact
   search: the baseline in the same run. Each query embeds anew (there is no cache).
   Besides latency: the servers' CPU time per request (user + system, all processes),
   which other load on the machine does not inflate as much as it does latency.
3. **Retrieval quality**: each of the 3,080 banking77 test queries searched in
   ``banking77`` (``top_k`` 1); the share whose top hit has the query's intent, per mode.

Bars (PASS/FAIL; exit status 1 on FAIL with ``--check``): p99 <= 25 ms at concurrency 4
for vector, keyword and hybrid on the HNSW server, with no errors; recall@10 >= 0.95;
banking77 top-1 intent >= 0.80 (vector mode).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.serving import (
    Server,
    cpu_model,
    default_data_home,
    free_port,
    rebalanced,
    run_wrk,
    server_rss,
    start_server,
    stop_server,
    tree_cpu_s,
    wait_ready,
    wrk_version,
)

if TYPE_CHECKING:
    from aiweb.search.service import SearchService

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CORPUS = "bench50k"
INTENTS = "banking77"
N_DOCS = 50_000
HELD_OUT = 1_025
CONNECTIONS = 4
TOP_K = 10
P99_MAX_MS = 25.0
RECALL_MIN = 0.95
INTENT_MIN = 0.80
EXACT_THRESHOLD = 1_000_000
MB = 1e6
BUILD_CHUNK = 512

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Text:
    id: str
    text: str
    metadata: dict[str, str]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def shared_texts(data: Path) -> tuple[list[Text], list[Text], list[Text]]:
    """``(corpus candidates in order, banking77 train, banking77 test)``; the candidates
    are every text of the four sources (51,025)."""
    books = [
        Text(f"goodbooks-{r['book_id']}", f"{r['title']} by {r['authors']}", {"source": "books"})
        for r in _csv(data / "goodbooks10k_metadata" / "books.csv")
    ]
    movies = [
        Text(f"movielens-{r['movieId']}", r["title"], {"source": "movielens"})
        for r in _csv(data / "movielens_latest_small" / "movies.csv")
    ]
    train = [
        Text(f"banking77-train-{i}", r["text"], {"source": "banking77", "intent": r["category"]})
        for i, r in enumerate(_csv(data / "banking77" / "train.csv"))
    ]
    test = [
        Text(f"banking77-test-{i}", r["text"], {"source": "banking77", "intent": r["category"]})
        for i, r in enumerate(_csv(data / "banking77" / "test.csv"))
    ]
    clinc = json.loads((data / "clinc150" / "data_full_train_val.json").read_text())
    queries = [
        Text(f"clinc150-{split}-{i}", text, {"source": "clinc150", "intent": intent})
        for split in ("train", "val", "oos_train", "oos_val")
        for i, (text, intent) in enumerate(clinc[split])
    ]
    return books + movies + train + test + queries, train, test


def corpus_and_queries(candidates: list[Text]) -> tuple[list[Text], list[str]]:
    """The 50,000 documents and the 1,025 held-out queries (see the module docs)."""
    pool = [t.id for t in candidates if t.id.startswith(("banking77-test-", "clinc150-val-"))]
    held = set(random.Random(0).sample(pool, len(candidates) - N_DOCS))
    corpus = [t for t in candidates if t.id not in held]
    queries = [t.text for t in candidates if t.id in held]
    random.Random(1).shuffle(queries)
    return corpus, queries


def fingerprint(texts: list[Text], model: str) -> str:
    digest = hashlib.sha256(model.encode())
    for t in texts:
        digest.update(f"{t.id}\t{t.text}\t{sorted(t.metadata.items())}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the home


def default_home() -> Path:
    from aiweb.config import Settings

    return Settings().home / "bench" / "search"


def base_env(home: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.update(AIWEB_HOME=str(home), AIWEB_DATA_HOME=str(data))
    return env


def ensure_embedder(home: Path, data: Path, model: str) -> None:
    """``aiweb embeddings install`` in ``home`` unless ``model`` resolves there."""
    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.errors import NotFoundError
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(Settings(home=home))
    try:
        upgrade(engine)
        EmbedderPool(registry).resolve(model)
        return
    except NotFoundError:
        pass
    finally:
        engine.dispose()
    with err.status("aiweb embeddings install (once per bench home) …"):
        proc = subprocess.run(
            [str(BIN / "aiweb"), "embeddings", "install"],
            env=base_env(home, data),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"aiweb embeddings install failed:\n{proc.stderr[-3000:]}")


@contextmanager
def open_service(home: Path) -> Iterator[SearchService]:
    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.registry.factory import build_registry
    from aiweb.search.service import SearchService
    from aiweb.search.store import SearchStore

    settings = Settings(home=home)
    registry, engine = build_registry(settings)
    upgrade(engine)
    try:
        yield SearchService(
            SearchStore(engine), EmbedderPool(registry, settings.embeddings), registry, settings
        )
    finally:
        engine.dispose()


def build_collection(service: SearchService, name: str, texts: list[Text], model: str) -> float:
    """Create ``name`` from ``texts`` unless the home holds it built from the same texts
    with the same model. Returns the seconds spent (0 when reused)."""
    from aiweb.errors import CollectionNotFound
    from aiweb.search.entities import Document

    stamp = service.root / f"{name}.fingerprint"
    want = fingerprint(texts, model)
    try:
        collection = service.get_collection(name)
        if stamp.is_file() and stamp.read_text() == want and collection.documents == len(texts):
            return 0.0
        service.delete_collection(name, actor="bench")
    except CollectionNotFound:
        pass
    service.put_collection(
        name, embedding_model=model, metadata_fields=None, fields_given=False, actor="bench"
    )
    started = time.perf_counter()
    progress = Progress(
        TextColumn(f"embedding {name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    with progress:
        task = progress.add_task(name, total=len(texts))
        for lo in range(0, len(texts), BUILD_CHUNK):
            chunk = texts[lo : lo + BUILD_CHUNK]
            service.upsert_sync(name, [Document(t.id, t.text, dict(t.metadata)) for t in chunk])
            progress.update(task, advance=len(chunk))
    index = service.embedded_index(name)
    if len(index) >= service.params.threshold:
        with err.status(f"building the HNSW graph of {name} …"):
            done = index.upkeep(service.store.get_collection(name).revision)
        err.print(f"{name}: HNSW graph {done}")
    service.root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(want)
    return time.perf_counter() - started


def create_key(home: Path, scopes: tuple[str, ...] = ("predict",)) -> str:
    """A new key with ``scopes`` in ``home``'s database; its secret."""
    from aiweb.config import Settings
    from aiweb.db.session import make_engine, make_session_factory
    from aiweb.security.keys import KeyService

    engine = make_engine(Settings(home=home).resolved_database_url)
    try:
        _, secret = KeyService(make_session_factory(engine)).create(
            f"bench-{int(time.time() * 1000)}", list(scopes)
        )
    finally:
        engine.dispose()
    return secret


# --------------------------------------------------------------------------- measurements


def recall(service: SearchService, queries: list[str]) -> dict[str, Any]:
    """Recall@10 of the served HNSW path against exact search, and both latencies."""
    collection = service.store.get_collection(CORPUS)
    index = service.embedded_index(CORPUS)
    state = index.upkeep(collection.revision)
    if index.ann_revision is None:
        raise SystemExit(f"{CORPUS} has no HNSW graph ({state})")
    embedder = service.embedders.get(service.model_version(collection))
    vectors = embedder.embed(queries).vectors
    found = 0
    ann_s: list[float] = []
    exact_s: list[float] = []
    for q in vectors:
        t0 = time.perf_counter()
        exact, _ = index.exact.search(q, TOP_K)
        t1 = time.perf_counter()
        ann, _ = index.search(q, TOP_K)
        t2 = time.perf_counter()
        exact_s.append(t1 - t0)
        ann_s.append(t2 - t1)
        found += len(set(exact.tolist()) & set(ann.tolist()))
    return {
        "queries": len(queries),
        "recall": found / (TOP_K * len(queries)),
        "exact_p50_ms": float(np.percentile(exact_s, 50) * 1000),
        "ann_p50_ms": float(np.percentile(ann_s, 50) * 1000),
        "exact_p99_ms": float(np.percentile(exact_s, 99) * 1000),
        "ann_p99_ms": float(np.percentile(ann_s, 99) * 1000),
        "documents": len(index),
        "params": service.params,
    }


def intent_accuracy(service: SearchService, test: list[Text]) -> dict[str, float]:
    """Share of banking77 test queries whose top hit in ``banking77`` has their intent."""

    async def run(mode: str) -> float:
        hits = 0
        for t in test:
            result = await service.search(INTENTS, t.text, top_k=1, mode=mode)  # type: ignore[arg-type]
            if result.hits and result.hits[0].metadata.get("intent") == t.metadata["intent"]:
                hits += 1
        return hits / len(test)

    return {mode: asyncio.run(run(mode)) for mode in ("vector", "hybrid", "keyword")}


@dataclass
class HttpRun:
    mode: str
    index: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    rss_mb: float
    cpu_ms: float  # server CPU time per request
    first_error: str
    rebalanced: int  # connections closed by a worker over its share (new in the run)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def http_runs(
    home: Path,
    data: Path,
    queries: list[str],
    key: str,
    *,
    exact: bool,
    modes: list[str],
    seconds: int,
    warmup: int,
    workers: int,
    work: Path,
    server_env: dict[str, str],
) -> list[HttpRun]:
    """One server (HNSW, or exact when ``exact``), every mode in ``modes`` through wrk."""
    env = (
        base_env(home, data)
        | {"AIWEB_RATE_LIMIT__ENABLED": "false", "AIWEB_LOG_LEVEL": "info"}
        | server_env
    )
    if exact:
        env["AIWEB_SEARCH__ANN_THRESHOLD"] = str(EXACT_THRESHOLD)
    port = free_port()
    label = "exact" if exact else "hnsw"
    server: Server = start_server(
        f"aiweb-{label}",
        [str(BIN / "aiweb"), "serve", "--port", str(port), "--workers", str(workers)],
        env,
        port,
        work,
    )
    runs = []
    try:
        with err.status(f"aiweb serve ({label}): starting, loading the index …"):

            def probe(client: Any) -> bool:
                resp = client.post(
                    f"/v1/collections/{CORPUS}/search",
                    json={"query": "warm-up", "mode": "hybrid"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                return bool(resp.status_code == 200)

            wait_ready(server, probe, 2 * workers)
            deadline = time.monotonic() + 300
            while (
                not exact
                and server.log.read_text(errors="replace").count(
                    f"collection {CORPUS}: HNSW graph loaded"
                )
                < workers
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the HNSW graph was not loaded:\n{server.log_tail()}")
                time.sleep(0.2)
        wrk = shutil.which("wrk") or "wrk"
        for mode in modes:
            bodies = work / f"bodies-{mode}.tsv"
            bodies.write_text(
                "".join(
                    f"/v1/collections/{CORPUS}/search\t"
                    + json.dumps({"query": q, "mode": mode, "top_k": TOP_K})
                    + "\n"
                    for q in queries
                )
            )
            with err.status(f"{label} {mode}: warm-up {warmup} s, then {seconds} s …"):
                run_wrk(wrk, server.url, bodies, key, CONNECTIONS, warmup)
                closed_before = rebalanced(server.url)
                cpu_before = tree_cpu_s(server.proc.pid)
                summary = run_wrk(wrk, server.url, bodies, key, CONNECTIONS, seconds)
                cpu = tree_cpu_s(server.proc.pid) - cpu_before
                closed = rebalanced(server.url) - closed_before
            rss = server_rss(server.proc.pid)
            runs.append(
                HttpRun(
                    mode=mode,
                    index=label,
                    requests=summary["requests"],
                    seconds=summary["duration_us"] / 1e6,
                    errors=summary["errors"],
                    p50_ms=summary["p50_us"] / 1000,
                    p90_ms=summary["p90_us"] / 1000,
                    p99_ms=summary["p99_us"] / 1000,
                    max_ms=summary["max_us"] / 1000,
                    rss_mb=rss.max_worker / MB,
                    cpu_ms=1000 * cpu / max(1, summary["requests"]),
                    first_error=summary.get("first_error", ""),
                    rebalanced=closed,
                )
            )
    finally:
        stop_server(server)
    return runs


# --------------------------------------------------------------------------- report


def report(
    runs: list[HttpRun], rec: dict[str, Any], quality: dict[str, float], machine: str
) -> tuple[str, bool]:
    """Print the tables; return the Markdown and whether every bar passed."""
    hnsw = {r.mode: r for r in runs if r.index == "hnsw"}
    lines = [
        f"{machine}",
        "",
        "| mode | index | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | "
        "server CPU ms/request | worker RSS MB | connections rebalanced |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = Table(
        "mode", "index", "requests/s", "p50", "p90", "p99", "max", "errors", "CPU/req", "RSS",
        "rebalanced",
        title=f"search at concurrency {CONNECTIONS}, {rec['documents']:,} documents, top_k {TOP_K}",
    )  # fmt: skip
    for r in runs:
        row = [
            r.mode,
            r.index,
            f"{r.rate:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p90_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.max_ms:.1f}",
            str(r.errors),
            f"{r.cpu_ms:.1f}",
            f"{r.rss_mb:.0f}",
            str(r.rebalanced),
        ]
        table.add_row(
            *row[:3],
            *(f"{v} ms" for v in row[3:7]),
            row[7],
            f"{row[8]} ms",
            f"{row[9]} MB",
            row[10],
        )
        lines.append("| " + " | ".join(row) + " |")
    out.print(table)
    p = rec["params"]
    rec_table = Table(
        "index", "recall@10", "p50", "p99",
        title=f"in process, {rec['queries']} held-out queries (HNSW M {p.connectivity}, "
        f"efConstruction {p.expansion_add}, ef {p.expansion_search})",
    )  # fmt: skip
    rec_table.add_row(
        "exact (baseline)",
        "1.000",
        f"{rec['exact_p50_ms']:.2f} ms",
        f"{rec['exact_p99_ms']:.2f} ms",
    )
    rec_table.add_row(
        "HNSW", f"{rec['recall']:.3f}", f"{rec['ann_p50_ms']:.2f} ms", f"{rec['ann_p99_ms']:.2f} ms"
    )
    out.print(rec_table)
    lines += [
        "",
        f"In process, {rec['queries']} held-out queries, top 10 (HNSW M {p.connectivity}, "
        f"efConstruction {p.expansion_add}, ef {p.expansion_search}):",
        "",
        "| index | recall@10 vs exact | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| exact (baseline) | 1.000 | {rec['exact_p50_ms']:.2f} | {rec['exact_p99_ms']:.2f} |",
        f"| HNSW | {rec['recall']:.3f} | {rec['ann_p50_ms']:.2f} | {rec['ann_p99_ms']:.2f} |",
        "",
        "banking77 test queries (3,080) in a collection of the training queries, top-1 intent:",
        "",
        "| mode | top-1 intent accuracy |",
        "|---|---|",
        *(f"| {mode} | {acc:.4f} |" for mode, acc in quality.items()),
        "",
    ]
    out.print(
        "banking77 top-1 intent: " + ", ".join(f"{mode} {acc:.4f}" for mode, acc in quality.items())
    )
    bars = [
        (
            f"{mode} p99 <= {P99_MAX_MS:.0f} ms at concurrency {CONNECTIONS}, no errors",
            f"{hnsw[mode].p99_ms:.1f} ms, {hnsw[mode].errors} errors",
            hnsw[mode].p99_ms <= P99_MAX_MS and hnsw[mode].errors == 0,
        )
        for mode in ("vector", "keyword", "hybrid")
        if mode in hnsw
    ]
    bars.append((f"recall@10 >= {RECALL_MIN}", f"{rec['recall']:.3f}", rec["recall"] >= RECALL_MIN))
    bars.append(
        (f"banking77 top-1 intent >= {INTENT_MIN} (vector)", f"{quality['vector']:.4f}",
         quality["vector"] >= INTENT_MIN)
    )  # fmt: skip
    lines += ["| bar | measured | |", "|---|---|---|"]
    for name, value, ok in bars:
        verdict = "PASS" if ok else "FAIL"
        out.print(f"{verdict}  {name}: {value}")
        lines.append(f"| {name} | {value} | {verdict} |")
    for r in runs:
        if r.errors:
            out.print(f"{r.index} {r.mode}: first error: {r.first_error}")
    return "\n".join(lines) + "\n", all(ok for _, _, ok in bars)


def machine_line(workers: int) -> str:
    import platform

    cpu = cpu_model()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{wrk_version('wrk')}, aiweb serve --workers {workers}, SQLite; load average at the "
        f"end {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="discarded seconds before each")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="aiweb serve --workers (default: one per core, as --workers auto)",
    )
    parser.add_argument("--model", default="minilm@production", help="embedding model")
    parser.add_argument("--home", type=Path, help="bench home (default $AIWEB_HOME/bench/search)")
    parser.add_argument("--data-home", type=Path, help="AIWEB_DATA_HOME")
    parser.add_argument("--skip-http", action="store_true", help="only recall and quality")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable of the servers, e.g. AIWEB_EMBEDDINGS__THREADS=1",
    )
    parser.add_argument(
        "--modes", default="vector,keyword,hybrid", help="HTTP modes on the HNSW server"
    )
    parser.add_argument(
        "--exact-modes", default="vector,hybrid", help="HTTP modes on the exact server ('' none)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown")
    args = parser.parse_args(argv)
    if not args.skip_http and shutil.which("wrk") is None:
        raise SystemExit("bench.search needs wrk (Debian's wrk package)")
    data = default_data_home(args.data_home)
    if data is None or not (data / "banking77" / "test.csv").is_file():
        raise SystemExit("bench.search needs the shared data (--data-home or AIWEB_DATA_HOME)")
    home = (args.home or default_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    err.print(f"bench home: {home}")
    candidates, train, test = shared_texts(data)
    corpus, queries = corpus_and_queries(candidates)
    ensure_embedder(home, data, args.model)
    with open_service(home) as service:
        for name, texts in ((CORPUS, corpus), (INTENTS, train)):
            seconds = build_collection(service, name, texts, args.model)
            if seconds:
                err.print(f"built {name} ({len(texts):,} documents) in {seconds:.0f} s")
        with err.status("recall@10 of HNSW against exact search …"):
            rec = recall(service, queries)
        with err.status("banking77 top-1 intent of 3,080 test queries …"):
            quality = intent_accuracy(service, test)
    runs: list[HttpRun] = []
    if not args.skip_http:
        key = create_key(home)
        work = home / "runs"
        work.mkdir(exist_ok=True)
        common: dict[str, Any] = {
            "seconds": args.duration,
            "warmup": args.warmup,
            "workers": args.workers,
            "work": work,
            "server_env": dict(pair.split("=", 1) for pair in args.server_env),
        }
        for exact, modes in ((False, args.modes), (True, args.exact_modes)):
            if modes:
                runs += http_runs(
                    home, data, queries, key, exact=exact, modes=modes.split(","), **common
                )
    machine = machine_line(args.workers)
    if args.server_env:
        machine += "; servers with " + " ".join(args.server_env)
    markdown, passed = report(runs, rec, quality, machine)
    if args.markdown:
        args.markdown.write_text(markdown)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
