"""Predict latency under a rollout (issue #21): p50, p99 and requests/s at concurrency 8
and 64 with no rollout, with a 50% canary and with a 100% shadow, in one run.

Run from the project root (``make bench-rollout``; needs Debian's ``wrk``)::

    .venv/bin/python -m bench.rollout [--duration 10] [--rounds 5] [--workers auto]
                                      [--home DIR] [--markdown PATH] [--no-check]

Set-up, in a fresh temporary ``AIWEB_HOME`` (or ``--home DIR``, trained once and reused;
``AIWEB_DATA_HOME``: ``--data-home``, else ``../shared/data``): ``aiweb demo --no-serve``
trains ``sentiment`` version 1 (SST-2, ``production``), then ``aiweb train
text-classification sentiment --dataset sst2 --param C=1.0`` trains the candidate (the same
pipeline, another regularisation: it costs the same per text and disagrees on a few).
``aiweb keys create`` makes a predict key (the load) and an admin key (the rollouts).

One ``aiweb serve --workers W`` (``auto``: one per core; the predict rate limit lifted and
the prediction cache off, so every request and every shadow copy runs a model) is driven
by wrk (one thread, ``bench/wrk/requests.lua``, as :mod:`bench.serving`) with the same file
of ``--requests`` prebuilt lines in every run: ``POST /v1/models/sentiment/predict``
``{"inputs": [one SST-2 sentence], "user_id": "bench-NNNNNN"}``, a distinct user per line,
so a sticky canary sends about half of the requests to each version. Scenarios:

* ``none``: no rollout;
* ``canary 50%``: ``PUT /v1/models/sentiment/rollout`` ``{"candidate": 2, "mode":
  "canary", "traffic": 0.5, "steps": [0.5, 1.0], "step_every": "1w", "sticky": true,
  "gates": {"min_samples": 1000000000}, "auto": false}``: it never moves by itself;
* ``shadow 100%``: ``{"candidate": 2, "mode": "shadow", "traffic": 1.0, "gates": {…},
  "auto": false}``: every request is answered by version 1 and copied, through the
  bounded queue, to version 2 (scored after the answer was sent, or dropped when the
  queue is full or the scoring budget, ``AIWEB_ROLLOUT__SHADOW_BUDGET``, is spent).

After each ``PUT`` and each ``POST …/rollout/abort`` the bench waits twice
``AIWEB_ROLLOUT__REFRESH_S`` (plus 0.5 s) so that every worker follows. After one
discarded ``--warmup`` run per scenario at c=8 (which also loads the candidate in every
worker; the canary's is followed by 100 requests on new connections counting the
``X-Model-Version`` answers), each of ``--rounds`` rounds runs none, canary, shadow in that
order (a rollout started for its scenario and aborted after it), each at every
``--concurrency`` for ``--duration`` seconds. Before every run the bench waits until the
server is idle (its processes below 25% of a core for 0.5 s twice in a row, at most
``--settle`` s), so no shadow copy of a run is scored during the next. After each rollout
run it waits for the copies to be scored and the counts to reach the database, then reads
``GET /v1/models/sentiment/rollout``: requests each variant answered (shadow: copies the
candidate scored), ``shadow_dropped``, and the agreement of the two versions.

The table gives the medians over the rounds; ``server CPU ms/req`` is the server's
process tree's user + system CPU (``/proc``) over the requests answered.

Bars (the issue's), at each concurrency: a rollout scenario's p50 <= 1.10x and its p99
<= 1.20x the no-rollout row's. Checks that the scenario took effect: the canary's
candidate answered 40-60% of the requests; the shadow's copies scored + dropped are
>= 99% of the requests version 1 answered; no errors. Exit status 1 when one fails (0 with
``--no-check``), 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.rounds import LoadSample, Rounds, parse_rounds_args, rounds_parser

if TYPE_CHECKING:  # the heavy imports wait until after --help
    import httpx

    from bench.serving import Server, Setup

MODEL = "sentiment"
CANDIDATE_PARAMS = ("C=1.0",)  # the demo's version 1 is trained with C=2.0
SCENARIOS = ("none", "canary 50%", "shadow 100%")
CONCURRENCIES = (8, 64)
P50_MARGIN = 0.10
P99_MARGIN = 0.20
CANARY_SHARE = (0.40, 0.60)
SHADOW_COPIED = 0.99
IDLE_CPU = 0.25  # of one core (an idle server's refreshes and polls take 0.02-0.2)
IDLE_WINDOW_S = 0.5
PREPARED = "bench-rollout.json"  # in a reused --home: the candidate version
GATES = {"min_samples": 1_000_000_000}

BODIES: dict[str, dict[str, Any]] = {
    "canary 50%": {
        "mode": "canary",
        "traffic": 0.5,
        "steps": [0.5, 1.0],
        "step_every": "1w",
        "sticky": True,
        "gates": GATES,
        "auto": False,
    },
    "shadow 100%": {"mode": "shadow", "traffic": 1.0, "gates": GATES, "auto": False},
}


# --------------------------------------------------------------------------- set-up


def prepare(aiweb: str, env: dict[str, str], home: Path) -> int:
    """Train ``sentiment`` version 1 (production) and a candidate in ``home`` (once);
    the candidate's version number."""
    from bench.serving import err, train_demo
    from bench.soak import aiweb as run_aiweb

    marker = home / PREPARED
    if marker.exists():
        candidate = int(json.loads(marker.read_text())["candidate"])
        err.print(f"{home} is prepared already: candidate {MODEL}:{candidate}")
        return candidate
    train_demo(aiweb, env, home)
    t0 = time.perf_counter()
    params = [arg for p in CANDIDATE_PARAMS for arg in ("--param", p)]
    with err.status(f"aiweb train text-classification {MODEL} (the candidate) …"):
        output = run_aiweb(
            aiweb, env, "train", "text-classification", MODEL, "--dataset", "sst2", *params
        )
    found = [w for w in output.split() if w.startswith(f"{MODEL}:")]
    if not found:
        raise RuntimeError(f"no version in the output of aiweb train:\n{output[-2000:]}")
    candidate = int(found[-1].split(":")[1])
    err.print(f"trained the candidate {MODEL}:{candidate} in {time.perf_counter() - t0:.1f} s")
    marker.write_text(json.dumps({"candidate": candidate}))
    return candidate


def write_bodies(path: Path, texts: list[str], n: int) -> None:
    """``n`` ``PATH<TAB>JSON`` lines for ``requests.lua``: one text and a distinct user
    each (the texts cycle when there are fewer than ``n``)."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            body = {"inputs": [texts[i % len(texts)]], "user_id": f"bench-{i:06d}"}
            fh.write(f"/v1/models/{MODEL}/predict\t{json.dumps(body, separators=(',', ':'))}\n")


# --------------------------------------------------------------------------- rollouts


def rollout_url(action: str = "") -> str:
    return f"/v1/models/{MODEL}/rollout{action}"


def start_rollout(admin: httpx.Client, scenario: str, candidate: int) -> str:
    """``PUT`` the scenario's rollout; its id."""
    response = admin.put(rollout_url(), json={"candidate": candidate, **BODIES[scenario]})
    if response.status_code != 200:
        raise RuntimeError(f"PUT {rollout_url()}: {response.status_code} {response.text}")
    return str(response.json()["id"])


def abort_rollout(admin: httpx.Client) -> bool:
    """End a running rollout of the model (``False`` when none runs)."""
    response = admin.post(rollout_url("/abort"))
    if response.status_code in (404, 409):
        return False
    if response.status_code != 200:
        raise RuntimeError(f"POST {rollout_url('/abort')}: {response.status_code} {response.text}")
    return True


@dataclass(frozen=True)
class Counts:
    """What ``GET …/rollout`` reports of a rollout since it started."""

    baseline: int = 0  # requests version 1 answered
    candidate: int = 0  # canary: requests the candidate answered; shadow: copies scored
    dropped: int = 0  # shadow copies dropped (queue full)
    compared: int = 0
    agreed: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.baseline - other.baseline,
            self.candidate - other.candidate,
            self.dropped - other.dropped,
            self.compared - other.compared,
            self.agreed - other.agreed,
        )


def rollout_counts(admin: httpx.Client, rollout_id: str) -> Counts:
    response = admin.get(rollout_url())
    response.raise_for_status()
    report = response.json()
    if report["id"] != rollout_id or report["state"] not in ("running", "held"):
        raise RuntimeError(f"the rollout is not the bench's running one: {report}")
    variants = report["variants"]
    return Counts(
        baseline=int(variants["baseline"]["requests"]),
        candidate=int(variants["candidate"]["requests"]),
        dropped=int(report["shadow_dropped"]),
        compared=int(report["agreement"]["compared"]),
        agreed=int(report["agreement"]["agreed"]),
    )


def version_split(url: str, key: str, n: int = 100) -> Counter[str]:
    """``X-Model-Version`` of ``n`` requests from distinct users, each on a new
    connection (so every worker answers some)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    seen: Counter[str] = Counter()
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=10, limits=no_keepalive, headers=headers) as client:
        for i in range(n):
            body = {"inputs": ["a check of the split"], "user_id": f"split-{i}"}
            response = client.post(f"/v1/models/{MODEL}/predict", json=body)
            response.raise_for_status()
            seen[response.headers.get("x-model-version", "?")] += 1
    return seen


# --------------------------------------------------------------------------- measuring


def wait_idle(server: Server, settle_s: float) -> float:
    """Wait until the server's processes use under ``IDLE_CPU`` of a core over
    ``IDLE_WINDOW_S`` twice in a row (shadow copies scored, batches flushed), at most
    ``settle_s``; the seconds waited."""
    from bench.serving import tree_cpu_s

    t0 = time.monotonic()
    quiet = 0
    last = tree_cpu_s(server.proc.pid)
    while quiet < 2 and time.monotonic() - t0 < settle_s:
        time.sleep(IDLE_WINDOW_S)
        now = tree_cpu_s(server.proc.pid)
        quiet = quiet + 1 if now - last < IDLE_CPU * IDLE_WINDOW_S else 0
        last = now
    return time.monotonic() - t0


@dataclass
class Sample(LoadSample):
    """One wrk run of one scenario at one concurrency."""

    counts: Counts = field(default_factory=Counts)


class Result(Rounds[Sample]):
    """A scenario's samples over the rounds, at one concurrency."""

    @property
    def counts(self) -> Counts:
        total = Counts()
        for s in self.samples:
            c = s.counts
            total = Counts(
                total.baseline + c.baseline,
                total.candidate + c.candidate,
                total.dropped + c.dropped,
                total.compared + c.compared,
                total.agreed + c.agreed,
            )
        return total


def measure(
    server: Server, wrk: str, bodies: Path, key: str, concurrency: int, seconds: int, label: str
) -> Sample:
    """One wrk run; the server's CPU over it."""
    from bench.serving import err, run_wrk, under_load

    s, server_cpu = under_load(
        server, label, lambda: run_wrk(wrk, server.url, bodies, key, concurrency, seconds)
    )
    sample = Sample.from_summary(s, server_cpu)
    err.print(f"  {label}: {sample.line()}", highlight=False)
    return sample


# --------------------------------------------------------------------------- report


HEADERS = [
    "scenario",
    "concurrency",
    "requests/s",
    "req/s range",
    "p50 ms",
    "p99 ms",
    "p50 / none",
    "p99 / none",
    "errors",
    "server CPU ms/req",
    "candidate",
    "shadow dropped",
]


def candidate_cell(r: Result) -> str:
    c = r.counts
    if r.scenario.startswith("canary"):
        share = c.candidate / max(c.baseline + c.candidate, 1)
        return f"answered {share:.1%} ({c.candidate:,})"
    if r.scenario.startswith("shadow"):
        return f"scored {c.candidate / max(c.baseline, 1):.1%} ({c.candidate:,})"
    return "-"


def table_rows(results: list[Result]) -> list[list[str]]:
    by = {(r.scenario, r.concurrency): r for r in results}
    rows = []
    for r in results:
        none = by["none", r.concurrency]
        rates = [s.requests_per_s for s in r.samples]
        c = r.counts
        rows.append(
            [
                r.scenario,
                str(r.concurrency),
                f"{r.median('requests_per_s'):,.0f}",
                f"{min(rates):,.0f} to {max(rates):,.0f}",
                f"{r.median('p50_ms'):.2f}",
                f"{r.median('p99_ms'):.2f}",
                f"{r.median('p50_ms') / none.median('p50_ms'):.2f}x",
                f"{r.median('p99_ms') / none.median('p99_ms'):.2f}x",
                f"{r.errors:,}",
                f"{r.cpu_ms_per_request():.3f}",
                candidate_cell(r),
                f"{c.dropped / max(c.baseline, 1):.1%} ({c.dropped:,})"
                if r.scenario.startswith("shadow")
                else "-",
            ]
        )
    return rows


BAR_HEADERS = ["bar", "measured", "none", "ratio", "per round", "target", "result"]


def bars(results: list[Result], concurrencies: list[int]) -> list[tuple[list[str], bool]]:
    by = {(r.scenario, r.concurrency): r for r in results}
    rows: list[tuple[list[str], bool]] = []
    for c in concurrencies:
        none = by["none", c]
        for scenario in SCENARIOS[1:]:
            r = by[scenario, c]
            for attr, margin in (("p50_ms", P50_MARGIN), ("p99_ms", P99_MARGIN)):
                ratio = r.median(attr) / none.median(attr)
                per_round = ", ".join(
                    f"{getattr(s, attr) / getattr(n, attr):.2f}"
                    for s, n in zip(r.samples, none.samples, strict=True)
                )
                rows.append(
                    (
                        [
                            f"c={c}, {scenario}: {attr[:3]}",
                            f"{r.median(attr):.2f} ms",
                            f"{none.median(attr):.2f} ms",
                            f"{ratio:.2f}x",
                            per_round,
                            f"<= {1 + margin:.2f}x",
                        ],
                        ratio <= 1 + margin,
                    )
                )
    for r in results:
        counts = r.counts
        if r.scenario.startswith("canary"):
            share = counts.candidate / max(counts.baseline + counts.candidate, 1)
            low, high = CANARY_SHARE
            rows.append(
                (
                    [
                        f"c={r.concurrency}, canary took effect: candidate's share",
                        f"{share:.1%}",
                        "",
                        "",
                        "",
                        f"{low:.0%} to {high:.0%}",
                    ],
                    low <= share <= high,
                )
            )
        elif r.scenario.startswith("shadow"):
            copied = (counts.candidate + counts.dropped) / max(counts.baseline, 1)
            rows.append(
                (
                    [
                        f"c={r.concurrency}, shadow took effect: copies scored + dropped",
                        f"{copied:.1%}",
                        "",
                        "",
                        "",
                        f">= {SHADOW_COPIED:.0%}",
                    ],
                    copied >= SHADOW_COPIED,
                )
            )
        if r.errors:
            name = f"c={r.concurrency}, {r.scenario}: errors"
            rows.append(([name, f"{r.errors:,}", "", "", "", "0"], False))
    return rows


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rounds_parser("bench.rollout", __doc__, CONCURRENCIES, rounds=5, warmup=3)
    parser.add_argument(
        "--workers", default="auto", help="aiweb serve --workers: N or auto (default auto)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=30_000,
        help="request lines (distinct users) wrk cycles through (30000)",
    )
    parser.add_argument(
        "--settle", type=float, default=30.0, help="most seconds to wait for an idle server (30)"
    )
    args = parse_rounds_args(parser, argv)
    if args.requests < 100 or args.settle < 0:
        parser.error("--requests >= 100; --settle >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.serving import bench_main

    return bench_main("bench.rollout", args, run, home=args.home)


def run(args: argparse.Namespace, setup: Setup) -> int:
    import httpx
    from rich.console import Console

    from aiweb.config import Settings
    from bench.serving import (
        Bars,
        Results,
        create_key,
        dataset_texts,
        err,
        machine_line,
        report,
        serve_aiweb,
        stop_server,
        unique_shuffled,
    )

    out = Console(width=None if sys.stdout.isatty() else 150)
    wrk, aiweb, home, env = setup.wrk, setup.aiweb, setup.home, setup.env
    candidate = prepare(aiweb, env, home)
    stamp = time.time_ns()  # --home may be reused: new key names
    key = create_key(aiweb, env, f"bench-rollout-{stamp}")
    admin_key = create_key(aiweb, env, f"bench-rollout-admin-{stamp}", scopes="admin")
    texts = unique_shuffled(dataset_texts("sst2", home, setup.data_home), 0)
    bodies = home / "bodies-rollout.txt"
    write_bodies(bodies, texts, args.requests)
    follow_s = 2 * Settings(home=home).rollout.refresh_s + 0.5

    server = serve_aiweb(setup, workers=args.workers)
    err.print(f"aiweb ready on {server.url}; candidate {MODEL}:{candidate}")

    admin = httpx.Client(
        base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {admin_key}"}
    )
    notes: list[str] = []
    with admin:
        if abort_rollout(admin):  # left running by an interrupted run on this --home
            err.print("aborted a rollout left running")
            time.sleep(follow_s)

        def begin(scenario: str) -> str | None:
            if scenario == "none":
                return None
            rollout_id = start_rollout(admin, scenario, candidate)
            time.sleep(follow_s)  # every worker follows
            return rollout_id

        def end(rollout_id: str | None) -> None:
            if rollout_id is not None:
                abort_rollout(admin)
                time.sleep(follow_s)

        if args.warmup:
            err.print("warm-up (discarded):")
            for scenario in SCENARIOS:
                rollout_id = begin(scenario)
                wait_idle(server, args.settle)
                measure(server, wrk, bodies, key, 8, args.warmup, f"{scenario}, c=8 (warm-up)")
                if scenario.startswith("canary"):
                    split = version_split(server.url, key)
                    line = ", ".join(f"version {v}: {n}" for v, n in sorted(split.items()))
                    notes.append(f"canary check, 100 users on new connections: {line}")
                    err.print(f"  {notes[-1]}")
                wait_idle(server, args.settle)
                end(rollout_id)

        results = {(s, c): Result(s, c) for c in args.concurrency for s in SCENARIOS}
        loads: list[str] = []
        waits: list[float] = []
        for i in range(args.rounds):
            load = os.getloadavg()[0]
            loads.append(f"{load:.2f}")
            err.print(f"round {i + 1} of {args.rounds} (load average {load:.2f}):")
            for scenario in SCENARIOS:
                rollout_id = begin(scenario)
                before = rollout_counts(admin, rollout_id) if rollout_id else Counts()
                for c in args.concurrency:
                    waits.append(wait_idle(server, args.settle))
                    sample = measure(
                        server, wrk, bodies, key, c, args.duration, f"{scenario}, c={c}"
                    )
                    if rollout_id is not None:
                        wait_idle(server, args.settle)  # the copies are scored
                        time.sleep(follow_s)  # and every worker's counts are in
                        after = rollout_counts(admin, rollout_id)
                        sample.counts, before = after - before, after
                        err.print(
                            f"    baseline {sample.counts.baseline:,}, candidate "
                            f"{sample.counts.candidate:,}, dropped {sample.counts.dropped:,}",
                            highlight=False,
                        )
                    results[scenario, c].samples.append(sample)
                end(rollout_id)
        loads.append(f"{os.getloadavg()[0]:.2f}")
    stop_server(server)

    ordered = list(results.values())
    checked = bars(ordered, args.concurrency)
    machine = machine_line(wrk, args.workers)
    title = (
        f"{MODEL}: one sentence and a distinct user_id per request (wrk -t1), prediction "
        f"cache off; median of {args.rounds} rounds of {args.duration} s per row"
    )
    rows = table_rows(ordered)
    compared = sum(r.counts.compared for r in ordered if r.scenario.startswith("shadow"))
    agreed = sum(r.counts.agreed for r in ordered if r.scenario.startswith("shadow"))
    notes += [
        f"load average (1 min) at the start of each round and at the end: {', '.join(loads)}",
        f"waited for an idle server before each run: median {statistics.median(waits):.1f} s, "
        f"max {max(waits):.1f} s",
        f"shadow: the two versions agreed on {agreed:,} of {compared:,} scored copies "
        f"({agreed / max(compared, 1):.1%})",
        *(
            f"errors: {r.scenario}, c={r.concurrency}: {r.errors}; first: {r.first_error}"
            for r in ordered
            if r.errors
        ),
    ]
    margin = (
        f"rollout vs none at the same concurrency (p50 <= {1 + P50_MARGIN:.2f}x, "
        f"p99 <= {1 + P99_MARGIN:.2f}x)"
    )
    bars_table = Bars(margin, BAR_HEADERS, checked)
    passed = report(out, machine, Results(title, HEADERS, rows), notes, bars_table, args.markdown)
    return 1 if not passed and not args.no_check else 0


if __name__ == "__main__":
    sys.exit(main())
