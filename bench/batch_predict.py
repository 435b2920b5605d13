"""Rows per second of the ``batch-predict`` job against the model's own ``predict_proba``.

Run from the project root (``make bench-jobs``)::

    AIWEB_DATA_HOME=../shared/data .venv/bin/python -m bench.batch_predict [--rows N]

In a temporary ``AIWEB_HOME`` (SQLite, local artifacts) the demo ``sentiment`` model is
trained on SST-2 as ``aiweb demo`` trains it (or reused from ``--home``). An input CSV
``id,text`` of ``--rows`` rows is built by cycling the SST-2 sentences and uploaded as a
dataset. Then, interleaved and repeated ``--repeats`` times, best run kept:

* ``predict_proba (baseline)``: the loaded model's ``predict_proba`` over the same texts,
  already in memory, in chunks of ``--chunk-rows`` rows: the floor, no I/O at all;
* ``batch-predict job``: :func:`aiweb.jobs.runner.execute` in this process, end to end:
  claim, load the model, read the stored CSV, score, write and store the output CSV.

The job passes when its rows per second are at least ``--target`` (0.8) times the
baseline's, and its output has exactly one row per input row, in order, with the labels
the baseline predicts. Peak RSS is the process high-water mark during each scenario (reset
before it through ``/proc/self/clear_refs`` where Linux allows). Exit status 1 on FAIL.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from aiweb.jobs.env import JobEnv
    from aiweb.registry.entities import ModelVersion

MODEL = "sentiment"
DATASET = "sst2"
TARGET_RATIO = 0.8
MIB = 1024 * 1024

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


# --------------------------------------------------------------------------- memory


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or ``None``."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux ``clear_refs`` 5); whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    return (kib or 0) * 1024


def peak_rss_bytes() -> int:
    """The RSS high-water mark: ``VmHWM``, else ``ru_maxrss`` (KiB on Linux)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


# --------------------------------------------------------------------------- measuring


@dataclass
class Scenario:
    """Repeated runs of one scenario: seconds, peak RSS and RSS growth (bytes) per run."""

    name: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    rss_growth: list[int] = field(default_factory=list)

    @property
    def best_s(self) -> float:
        return min(self.seconds)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.best_s

    def run(self, fn: Callable[[], object]) -> float:
        """Time ``fn`` once and record it; returns the seconds."""
        gc.collect()
        reset_peak_rss()
        start_rss = current_rss_bytes()
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        peak = peak_rss_bytes()
        self.seconds.append(seconds)
        self.peak_rss.append(peak)
        self.rss_growth.append(max(0, peak - start_rss))
        return seconds


# --------------------------------------------------------------------------- set-up


@contextmanager
def aiweb_home(home: Path | None) -> Iterator[Path]:
    """``home`` as given, or a temporary directory removed afterwards."""
    if home is not None:
        yield home
        return
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-") as tmp:
        yield Path(tmp)


def open_env(home: Path, chunk_rows: int | None) -> JobEnv:
    """A job env on SQLite and local artifacts under ``home`` (whatever the environment
    says about databases and artifact stores), with ``chunk_rows`` per job chunk."""
    from aiweb.config import Settings
    from aiweb.jobs.env import build_job_env

    settings = Settings(home=home, database_url=None, artifacts_dir=None, artifacts_url=None)
    if chunk_rows is not None:
        jobs = settings.jobs.model_copy(update={"batch_chunk_rows": chunk_rows})
        settings = settings.model_copy(update={"jobs": jobs})
    return build_job_env(settings, migrate=True)


def ensure_model(env: JobEnv) -> tuple[ModelVersion, list[str], float, bool]:
    """Train ``sentiment`` on SST-2 as ``aiweb demo`` does, unless that version exists.

    Returns:
        ``(version, SST-2 texts (train then dev), seconds, reused)``.
    """
    from aiweb import datasets
    from aiweb.classification.training import TrainingData, train_text_classification

    splits = datasets.load(DATASET, env.settings, progress=False)
    data = TrainingData.from_splits(splits)
    t0 = time.perf_counter()
    result = train_text_classification(
        env.registry, MODEL, data, test_size=0.2, skip_if_same=True, actor="bench"
    )
    texts = list(splits.train.texts) + (list(splits.eval.texts) if splits.eval else [])
    return result.version, texts, time.perf_counter() - t0, result.skipped


def cycled(texts: list[str], n: int) -> list[str]:
    """``n`` texts: ``texts`` repeated in order."""
    return [texts[i % len(texts)] for i in range(n)]


def upload_input(env: JobEnv, texts: list[str], workdir: Path) -> str:
    """Write ``id,text`` (ids 1…n) to a CSV, upload it, return the dataset id."""
    path = workdir / "bench-input.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "text"])
        writer.writerows((i, text) for i, text in enumerate(texts, start=1))
    with path.open("rb") as fh:
        dataset = env.datasets.upload(fh, path.name, actor="bench")
    path.unlink()
    if dataset.rows != len(texts):
        raise SystemExit(f"uploaded {dataset.rows} rows, expected {len(texts)}")
    return dataset.id


def check_output(env: JobEnv, job_id: str, expected_labels: list[str]) -> str | None:
    """Compare a finished job's output CSV with the baseline; ``None`` when it matches,
    else what is wrong."""
    job = env.jobs.get(job_id)
    result: dict[str, Any] = job.result or {}
    if job.status != "succeeded":
        return f"job {job_id} is {job.status}: {job.error}"
    if result.get("rows") != len(expected_labels):
        return f"job reports {result.get('rows')} rows, expected {len(expected_labels)}"
    rows = wrong_id = wrong_label = 0
    with env.registry.artifacts.open_read(result["artifact_uri"]) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(reader)
        if header[:2] != ["id", "label"]:
            return f"output header is {header}"
        for i, row in enumerate(reader):
            rows += 1
            if i >= len(expected_labels):
                continue
            wrong_id += row[0] != str(i + 1)
            wrong_label += row[1] != expected_labels[i]
    if rows != len(expected_labels):
        return f"output has {rows:,} rows, expected {len(expected_labels):,}"
    if wrong_id or wrong_label:
        return f"output differs from the baseline: {wrong_id} ids, {wrong_label} labels"
    return None


# --------------------------------------------------------------------------- report


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f}"


def report(
    scenarios: list[Scenario], baseline: Scenario, *, chunk_rows: int, hwm_reset: bool
) -> Table:
    table = Table(
        title=f"batch prediction, {baseline.rows:,} rows, chunks of {chunk_rows:,} rows "
        f"(best of {len(baseline.seconds)})",
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_column("peak RSS MiB" if hwm_reset else "peak RSS MiB (process)", justify="right")
    table.add_column("RSS growth MiB", justify="right")
    table.add_column("all runs, s", justify="right")
    for s in scenarios:
        table.add_row(
            s.name,
            f"{s.rows:,}",
            f"{s.best_s:.2f}",
            f"{s.rows_per_s:,.0f}",
            f"{s.rows_per_s / baseline.rows_per_s:.2f}",
            _mib(max(s.peak_rss)),
            _mib(max(s.rss_growth)),
            " / ".join(f"{x:.2f}" for x in s.seconds),
        )
    return table


def environment_line(rows: int, chunk_rows: int) -> str:
    import sklearn

    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · "
        f"numpy {np.__version__} · scikit-learn {sklearn.__version__} · "
        f"{rows:,} rows · chunk_rows {chunk_rows:,}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=200_000, help="input rows (default 200000)")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="rows per chunk, job and baseline (default: jobs.batch_chunk_rows, 4096)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario; best kept")
    parser.add_argument(
        "--target", type=float, default=TARGET_RATIO, help="job/baseline rows-per-s to pass"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="an AIWEB_HOME to use (and keep); its sentiment model is reused when it was "
        "trained on the same data and parameters. Default: a temporary one.",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1 or (args.chunk_rows is not None and args.chunk_rows < 1):
        parser.error("--rows, --repeats and --chunk-rows must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from aiweb.classification.loader import load_runtime
    from aiweb.classification.schemas import BatchPredictJobSpec
    from aiweb.jobs.runner import execute
    from aiweb.jobs.service import EmbeddedDispatcher, JobService
    from aiweb.jobs.store import runner_name
    from aiweb.jobs.types import JobTypes
    from aiweb.tasks import job_types

    args = parse_args(argv)
    hwm_reset = reset_peak_rss()
    with aiweb_home(args.home) as home:
        env = open_env(home, args.chunk_rows)
        try:
            chunk_rows = env.settings.jobs.batch_chunk_rows
            err.print(f"AIWEB_HOME {home}; training {MODEL} on {DATASET} (as `aiweb demo`) …")
            version, sst2_texts, train_s, reused = ensure_model(env)
            err.print(
                f"{MODEL}:{version.version} "
                + ("reused" if reused else f"trained in {train_s:.1f} s")
                + f"; building and uploading {args.rows:,} rows …"
            )
            texts = cycled(sst2_texts, args.rows)
            dataset_id = upload_input(env, texts, home)
            types = JobTypes(job_types())
            jobs = JobService(
                env.jobs, EmbeddedDispatcher(), env.registry, env.datasets, env.settings, types
            )
            params = jobs.check(
                BatchPredictJobSpec(
                    type="batch-predict",
                    model=f"{MODEL}:{version.version}",
                    dataset_id=dataset_id,
                    text_column="text",
                    id_column="id",
                )
            )
            runtime = load_runtime(env.registry, version)
            labels = list(runtime.labels)
            runner = runner_name("bench")

            baseline = Scenario("predict_proba (baseline)", args.rows)
            job = Scenario("batch-predict job", args.rows)
            expected: list[str] = []
            problems: list[str] = []

            def score_in_memory() -> None:
                best = [
                    np.argmax(runtime.predict_proba(texts[i : i + chunk_rows]), axis=1)
                    for i in range(0, len(texts), chunk_rows)
                ]
                if not expected:
                    expected.extend(labels[b] for b in np.concatenate(best).tolist())

            for rep in range(1, args.repeats + 1):
                s = baseline.run(score_in_memory)
                err.print(f"run {rep}/{args.repeats}: baseline {s:.2f} s", end="; ")
                job_id = env.jobs.create(
                    "batch-predict", params, submitted_by="bench", max_attempts=1
                ).id
                s = job.run(partial(execute, env, job_id, runner, types))
                err.print(f"job {s:.2f} s")
                problem = check_output(env, job_id, expected)
                if problem is not None:
                    problems.append(f"run {rep}: {problem}")

            out.print(environment_line(args.rows, chunk_rows))
            out.print(report([baseline, job], baseline, chunk_rows=chunk_rows, hwm_reset=hwm_reset))
            ratio = job.rows_per_s / baseline.rows_per_s
            passed = ratio >= args.target and not problems
            for problem in problems:
                out.print(f"[red]output check failed[/red]: {problem}")
            if not problems:
                out.print(
                    f"output check: {args.rows:,} rows, ids in order, labels equal to the "
                    f"baseline's, in every run ({args.repeats})"
                )
            verdict = "[green]PASS[/green]" if passed else "[red]FAIL[/red]"
            out.print(
                f"{verdict}: job {job.rows_per_s:,.0f} rows/s = {ratio:.3f} x baseline "
                f"{baseline.rows_per_s:,.0f} rows/s (target >= {args.target:.2f})"
            )
            return 0 if passed else 1
        finally:
            env.close()


if __name__ == "__main__":
    sys.exit(main())
