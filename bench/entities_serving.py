"""Entity extraction served through the API (issue #23): entities per second at
concurrency 8 — and 1 and 64, and 16 texts per request — against the model's own
in-process throughput, measured in the same run.

Run from the project root (``make bench-entities-serving``; needs Debian's ``wrk``)::

    .venv/bin/python -m bench.entities_serving [--duration 10] [--workers auto]
        [--home DIR] [--data-home DIR] [--full] [--markdown PATH]

Set-up, in a fresh temporary ``AIWEB_HOME`` (or ``--home DIR``: trained once and reused):
``aiweb train token-classification skills`` on SkillSpan's house dev file, 3 epochs (the
guide's model of docs/entities.md; ``--full``: ``--dataset skillspan``, the full training,
about 8 minutes), and ``aiweb keys create`` a predict key. The texts are SkillSpan's house
*test* sentences (job-ad sentences the model never saw), tokens joined by spaces,
deduplicated and shuffled with a fixed seed.

* ``floor (in process)``: the production version loaded as the server loads it
  (:meth:`aiweb.entities.model.EntityModel.from_bytes`), ``extract`` of one text per call
  over every text, then of 32 texts per call: spaCy's ``nlp.pipe``, no HTTP, no JSON, no
  prediction log. It also counts the entities of every text (the model is deterministic,
  so the server finds the same ones): ``entities/text``.
* ``aiweb``: ``aiweb serve --workers W`` (``auto``: one per core; the predict rate limit
  lifted, the prediction cache off), driven by wrk (one thread, ``bench/wrk/requests.lua``,
  as :mod:`bench.serving`) with ``POST /v1/models/skills/predict`` bodies of one text (16
  for the batch row), each text once per pass of the file.

``entities/s`` = texts/s x the mean entities per text of the texts file (wrk cycles through
the whole file, so the mean holds for what it sent). ``vs floor`` divides the API's texts/s
by the floor's one-text-per-call texts/s: above 1 the server's micro-batching and its
workers win back more than HTTP and logging cost.

There is no bar in the issue, only figures to report (docs/benchmarks.md); the checks are
that every request succeeded (no errors, exit status 1 otherwise) and, at concurrency 8,
that the API reached at least half the in-process floor's texts/s (``vs floor >= 0.5``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.rounds import arg_parser

if TYPE_CHECKING:  # the heavy imports wait until after --help
    from bench.serving import Setup

MODEL = "skills"
CONCURRENCIES = (1, 8, 64)
BATCH = 16
FLOOR_BATCH = 32
MIN_VS_FLOOR = 0.5
HOUSE_DEV = ("skillspan", "skillspan_house_dev.conll")
HOUSE_TEST = ("skillspan", "skillspan_house_test.conll")


@dataclass
class Floor:
    name: str
    texts: int
    seconds: float
    entities: int

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds


@dataclass
class ApiRun:
    scenario: str
    connections: int
    per_request: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    first_error: str

    @property
    def texts_per_s(self) -> float:
        return self.requests * self.per_request / self.seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arg_parser("bench.entities_serving", __doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded seconds (3)")
    parser.add_argument("--workers", default="auto", help="aiweb serve --workers (auto)")
    parser.add_argument("--home", type=Path, default=None, help="reuse this AIWEB_HOME")
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument("--full", action="store_true", help="train on all of SkillSpan")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    return parser.parse_args(argv)


def test_texts(data_home: Path) -> list[str]:
    """SkillSpan house test sentences, tokens joined by spaces, unique, shuffled (seed 0)."""
    from aiweb.entities.data import read_conll

    path = data_home.joinpath(*HOUSE_TEST)
    texts = sorted({" ".join(e.tokens()) for e in read_conll(path) if e.tokens()})
    random.Random(0).shuffle(texts)
    return texts


def train(setup: Setup, full: bool) -> None:
    """``aiweb train token-classification skills`` once per home (see the module docs)."""
    from bench.serving import err

    marker = setup.home / f".bench-entities-{'full' if full else 'dev'}"
    if marker.exists():
        err.print(f"reusing the model trained in {setup.home}")
        return
    assert setup.data_home is not None
    data = (
        ["--dataset", "skillspan"]
        if full
        else ["--data", str(setup.data_home.joinpath(*HOUSE_DEV)), "--param", "epochs=3"]
    )
    t0 = time.perf_counter()
    with err.status(f"aiweb train token-classification {MODEL} {' '.join(data)} …"):
        proc = subprocess.run(
            [setup.aiweb, "train", "token-classification", MODEL, *data],
            env=setup.env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    err.print(f"trained {MODEL} in {time.perf_counter() - t0:.0f} s")
    marker.touch()


def measure_floor(home: Path, texts: list[str]) -> tuple[list[Floor], str]:
    """In-process ``extract``: one text per call, then :data:`FLOOR_BATCH` per call."""
    from aiweb.config import Settings
    from aiweb.entities.model import EntityModel
    from aiweb.registry.entities import ModelRef
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(Settings(home=home))
    try:
        version = registry.resolve(ModelRef.parse(MODEL))
        assert version.artifact_uri is not None
        model = EntityModel.from_bytes(registry.artifacts.read_bytes(version.artifact_uri))
    finally:
        engine.dispose()
    model.extract(texts[:50])  # warm
    t0 = time.perf_counter()
    found = sum(len(model.extract([t])[0]) for t in texts)
    single = Floor("1 text/call", len(texts), time.perf_counter() - t0, found)
    t0 = time.perf_counter()
    batched = 0
    for i in range(0, len(texts), FLOOR_BATCH):
        batched += sum(len(e) for e in model.extract(texts[i : i + FLOOR_BATCH]))
    batch = Floor(f"{FLOOR_BATCH} texts/call", len(texts), time.perf_counter() - t0, batched)
    return [single, batch], f"{version.name}:{version.version}"


def write_bodies(texts: list[str], per_request: int, path: Path) -> Path:
    route = f"/v1/models/{MODEL}/predict"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(0, len(texts) - per_request + 1, per_request):
            body = json.dumps({"inputs": texts[i : i + per_request]}, ensure_ascii=False)
            fh.write(f"{route}\t{body}\n")
    return path


def run(args: argparse.Namespace, setup: Setup) -> int:
    from bench.serving import (
        Bars,
        Results,
        create_key,
        err,
        machine_line,
        out,
        report,
        run_wrk,
        serve_aiweb,
        under_load,
    )

    if setup.data_home is None:
        err.print("no AIWEB_DATA_HOME with skillspan: give --data-home")
        return 2
    train(setup, args.full)
    key = create_key(setup.aiweb, setup.env, "bench-entities")
    texts = test_texts(setup.data_home)
    floors, ref = measure_floor(setup.home, texts)
    per_text = floors[0].entities / len(texts)
    err.print(f"{ref}: {len(texts):,} texts, {per_text:.2f} entities/text")
    one = write_bodies(texts, 1, setup.home / "bodies-1.txt")
    many = write_bodies(texts, BATCH, setup.home / f"bodies-{BATCH}.txt")
    server = serve_aiweb(setup, workers=args.workers)
    url = server.url
    run_wrk(setup.wrk, url, one, key, 8, args.warmup)  # discarded
    scenarios = [(f"1 text, c={c}", c, 1, one) for c in CONCURRENCIES]
    scenarios.append((f"{BATCH} texts/request, c=8", 8, BATCH, many))
    runs: list[ApiRun] = []
    for label, connections, per_request, bodies in scenarios:
        summary, cpu = under_load(
            server,
            label,
            lambda b=bodies, c=connections: run_wrk(  # type: ignore[misc]
                setup.wrk, url, b, key, c, args.duration
            ),
        )
        runs.append(
            ApiRun(
                scenario=label,
                connections=connections,
                per_request=per_request,
                requests=summary["requests"],
                seconds=summary["duration_us"] / 1e6,
                errors=summary["errors"],
                p50_ms=summary["p50_us"] / 1000,
                p99_ms=summary["p99_us"] / 1000,
                server_cpu_s=cpu,
                first_error=summary.get("first_error", ""),
            )
        )
        err.print(f"  {label}: {runs[-1].texts_per_s:,.0f} texts/s, {runs[-1].errors} errors")
    single = floors[0].texts_per_s
    rows = [
        [
            "floor (in process)",
            f.name,
            "-",
            f"{f.texts_per_s:,.0f}",
            f"{f.texts_per_s * per_text:,.0f}",
            "-",
            "-",
            "-",
            f"{f.texts_per_s / single:.2f}x",
        ]
        for f in floors
    ]
    for r in runs:
        rows.append(
            [
                "aiweb",
                r.scenario,
                f"{r.requests / r.seconds:,.0f}",
                f"{r.texts_per_s:,.0f}",
                f"{r.texts_per_s * per_text:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{1000 * r.server_cpu_s / max(r.requests, 1):.2f}",
                f"{r.texts_per_s / single:.2f}x",
            ]
        )
    headers = [
        "server",
        "scenario",
        "requests/s",
        "texts/s",
        "entities/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms/req",
        "vs floor",
    ]
    c8 = next(r for r in runs if r.scenario == "1 text, c=8")
    checked = [
        (
            [
                "c=8: API texts/s vs in-process floor",
                f"{c8.texts_per_s / single:.2f}x",
                f">= {MIN_VS_FLOOR}x",
            ],
            c8.texts_per_s / single >= MIN_VS_FLOOR,
        ),
        (
            ["errors, all scenarios", f"{sum(r.errors for r in runs):,}", "0"],
            all(r.errors == 0 for r in runs),
        ),
    ]
    notes = [
        f"model {ref}; {len(texts):,} SkillSpan house test sentences, "
        f"{per_text:.2f} entities/text (median {statistics.median(len(t) for t in texts):.0f} "
        "characters)",
    ]
    notes += [f"first error ({r.scenario}): {r.first_error}" for r in runs if r.first_error]
    ok = report(
        out,
        machine_line(setup.wrk, args.workers),
        Results("entity extraction: in process and through the API", headers, rows),
        notes,
        Bars("checks", ["check", "measured", "target", "result"], checked),
        args.markdown,
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.serving import bench_main

    return bench_main("bench.entities_serving", args, run, home=args.home)


if __name__ == "__main__":
    sys.exit(main())
