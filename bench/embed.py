"""Sentence-embedding throughput: HTTP with micro-batching vs onnxruntime called directly.

Run from the project root (``make bench-embed``; needs ``wrk``)::

    .venv/bin/python -m bench.embed [--duration 10] [--model minilm] [--home DIR] [--workers 1]

In a fresh temporary ``AIWEB_HOME`` (``AIWEB_DATA_HOME``: ``--data-home``, else
``../shared/data``): ``aiweb embeddings install`` (the export and its check; ``--home DIR``
reuses a home where it ran) and ``aiweb keys create`` (scope predict). The texts are the
3,080 banking77 test queries. Then, in one run:

* ``direct`` (the baseline): the served version's ONNX model loaded in this process as
  the server loads it (``EmbedderPool``; onnxruntime on every core), embedding the texts
  in batches of 32 back to back for ``--duration`` seconds: sentences/s.
* ``HTTP``: ``aiweb serve`` (one worker, or ``--workers N``; rate limit lifted) on
  loopback, driven by wrk (1 thread, 32 connections, ``bench/wrk/requests.lua``): each request
  ``POST /v1/models/{model}/embed`` with one sentence, so 32 clients each send one
  sentence at a time and only micro-batching puts them into shared model calls.
  Sentences/s, p50/p99 and the largest worker's RSS (MB = 10^6 bytes) after the run.
  One worker is the like-for-like comparison (one process, every core to onnxruntime);
  ``--workers 2`` is what ``aiweb serve --workers auto`` runs on 2 cores (each worker one
  onnxruntime thread).

Bar (PASS/FAIL; exit status 1 on FAIL with ``--check``): HTTP sentences/s >= 70% of
direct, no errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.serving import (
    Server,
    base_env,
    create_key,
    default_data_home,
    free_port,
    run_wrk,
    server_rss,
    start_server,
    stop_server,
    wait_ready,
    work_dir,
    wrk_version,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RATIO_MIN = 0.70
CONNECTIONS = 32
BATCH = 32
MB = 1e6

err = Console(stderr=True)
out = Console()


def banking77_queries(data_home: Path | None) -> list[str]:
    """The banking77 test queries (3,080), from ``AIWEB_DATA_HOME``."""
    if data_home is None or not (data_home / "banking77" / "test.csv").is_file():
        raise SystemExit("bench.embed needs AIWEB_DATA_HOME with banking77/test.csv")
    with (data_home / "banking77" / "test.csv").open(newline="", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def install(aiweb: str, env: dict[str, str], home: Path) -> None:
    """``aiweb embeddings install`` in ``home`` (prints its check table)."""
    started = time.perf_counter()
    with err.status("aiweb embeddings install: export, int8 quantization and the check …"):
        proc = subprocess.run(
            [aiweb, "embeddings", "install"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"aiweb embeddings install failed:\n{proc.stderr[-3000:]}")
    err.print(proc.stdout, markup=False, highlight=False)
    err.print(f"installed in {time.perf_counter() - started:.1f} s")


def direct_rate(home: Path, model: str, texts: list[str], seconds: float) -> dict[str, Any]:
    """Sentences/s embedding ``texts`` in batches of 32 in this process, with
    onnxruntime's idle threads spinning (its default) and not (as the server runs it);
    the faster is the baseline."""
    from aiweb.config import Settings
    from aiweb.embeddings.runtime import EmbedderPool, load_embedder
    from aiweb.registry.factory import build_registry

    settings = Settings(home=home)
    registry, engine = build_registry(settings)
    rates: dict[str, float] = {}
    try:
        version = EmbedderPool(registry, settings.embeddings).resolve(model)
        for spin in (True, False):
            embedder = load_embedder(registry, version, spin=spin)
            embedder.embed(texts[:BATCH])  # warm
            done = 0
            offset = 0
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / 2:
                batch = texts[offset : offset + BATCH]
                if len(batch) < BATCH:
                    offset = 0
                    batch = texts[:BATCH]
                embedder.embed(batch)
                done += len(batch)
                offset += BATCH
            rates["spinning" if spin else "no spinning"] = done / (time.perf_counter() - started)
            del embedder
    finally:
        engine.dispose()
    best = max(rates, key=lambda k: rates[k])
    return {
        "version": f"{version.name}:{version.version} ({version.lineage.get('precision')})",
        "rates": rates,
        "best": best,
        "rate": rates[best],
    }


def http_rate(
    aiweb: str,
    env: dict[str, str],
    home: Path,
    model: str,
    texts: list[str],
    key: str,
    seconds: int,
    workers: int = 1,
) -> dict[str, Any]:
    """Sentences/s over HTTP with 32 connections, one sentence per request."""
    bodies = home / "embed-bodies.tsv"
    with bodies.open("w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(f"/v1/models/{model}/embed\t{json.dumps({'inputs': [text]})}\n")
    port = free_port()
    server: Server = start_server(
        "aiweb",
        [aiweb, "serve", "--port", str(port), "--workers", str(workers)],
        env | {"AIWEB_RATE_LIMIT__PREDICT": "1000000/second"},
        port,
        home,
    )
    try:
        with err.status("aiweb serve: starting …"):
            wait_ready(server, lambda c: c.get("/readyz").status_code == 200, 2 * workers)

            def probe(c: Any) -> bool:
                resp = c.post(
                    f"/v1/models/{model}/embed",
                    json={"inputs": ["warm-up"]},
                    headers={"Authorization": f"Bearer {key}"},
                )
                return bool(resp.status_code == 200)

            wait_ready(server, probe, 3 * workers)  # loads and warms the embedder
        with err.status(f"wrk: {CONNECTIONS} connections for {seconds} s …"):
            summary = run_wrk(
                shutil.which("wrk") or "wrk",
                server.url,
                bodies,
                key,
                CONNECTIONS,
                seconds,
            )
        rss = server_rss(server.proc.pid)
    finally:
        stop_server(server)
    elapsed = summary["duration_us"] / 1e6
    return {
        "requests": summary["requests"],
        "errors": summary["errors"],
        "seconds": elapsed,
        "rate": summary["requests"] / elapsed,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "rss_mb": rss.max_worker / MB,
        "first_error": summary.get("first_error", ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--model", default="minilm", help="model ref (default minilm@production)")
    parser.add_argument("--home", type=Path, help="reuse a home where the embedder is installed")
    parser.add_argument("--data-home", type=Path, help="AIWEB_DATA_HOME")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--workers", type=int, default=1, help="aiweb serve --workers of the HTTP run (default 1)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the bar fails")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.embed needs wrk (Debian's wrk package)")
    data_home = default_data_home(args.data_home)
    texts = banking77_queries(data_home)
    aiweb = str(BIN / "aiweb")
    with work_dir(args.keep) as tmp:
        home = args.home.resolve() if args.home else tmp
        env = base_env(home, data_home)
        env.pop("AIWEB_DATABASE_URL", None)
        if args.home is None:
            install(aiweb, env, home)
        key = create_key(aiweb, env, f"bench-embed-{int(time.time())}")  # --home may have one
        with err.status(f"direct: batches of {BATCH} for {args.duration} s …"):
            direct = direct_rate(home, args.model, texts, args.duration)
        http = http_rate(aiweb, env, home, args.model, texts, key, args.duration, args.workers)
    ratio = http["rate"] / direct["rate"]
    passed = ratio >= RATIO_MIN and http["errors"] == 0
    table = Table(
        "path",
        "sentences/s",
        "vs direct",
        "p50",
        "p99",
        "server RSS",
        "errors",
        title=f"embedding throughput, {direct['version']} ({wrk_version('wrk')})",
    )
    for label, rate in direct["rates"].items():
        table.add_row(
            f"direct onnxruntime, batches of {BATCH}, {label}",
            f"{rate:,.0f}",
            f"{rate / direct['rate']:.2f}",
            "",
            "",
            "",
            "",
        )
    plural = "s" if args.workers > 1 else ""
    path = f"HTTP ({args.workers} worker{plural}), {CONNECTIONS} clients x 1 sentence"
    table.add_row(
        path,
        f"{http['rate']:,.0f}",
        f"{ratio:.2f}",
        f"{http['p50_ms']:.1f} ms",
        f"{http['p99_ms']:.1f} ms",
        f"{http['rss_mb']:.0f} MB",
        str(http["errors"]),
    )
    out.print(table)
    verdict = "PASS" if passed else "FAIL"
    out.print(f"bar: HTTP >= {RATIO_MIN:.0%} of direct: {ratio:.0%} -> {verdict}")
    if http["errors"]:
        out.print(f"first error: {http['first_error']}")
    if args.markdown:
        args.markdown.write_text(
            "| path | sentences/s | vs direct | p50 | p99 | server RSS | errors |\n"
            "|---|---|---|---|---|---|---|\n"
            + "".join(
                f"| direct onnxruntime, batches of {BATCH}, {label} | {rate:,.0f} | "
                f"{rate / direct['rate']:.2f} | | | | |\n"
                for label, rate in direct["rates"].items()
            )
            + f"| {path} | {http['rate']:,.0f} | {ratio:.2f} | "
            f"{http['p50_ms']:.1f} ms | {http['p99_ms']:.1f} ms | {http['rss_mb']:.0f} MB | "
            f"{http['errors']} |\n"
        )
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
