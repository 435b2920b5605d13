"""Benchmark: how long the ``aiweb`` command line takes to start.

Times, as hyperfine would (a warm-up run, then ``--runs`` runs, median and maximum of the
wall time of the whole process):

- ``aiweb --help``
- ``aiweb --version``
- ``aiweb models list`` on a fresh ``AIWEB_HOME`` (the first run creates and migrates
  its SQLite database, as a new user's first command does; the warm-up absorbs that)

and checks each median against the bar of issue #19: under 0.5 s. Exit status 1 when a
command misses it. It also reports the CPU time (user + system) of each run: on a busy
machine (other jobs on the cores) the wall time grows with the load while the CPU time
stays close to what the wall time is on an idle one, and the load average is printed.

Run: ``python -m bench.cli_startup`` (``make bench-cli``); ``--runs N`` to change the
number of runs, ``--aiweb PATH`` for another executable (default: the ``aiweb`` beside
this Python).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The start-up bar (seconds, median) of issue #19.
BAR_S = 0.5

COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("--version",), ("models", "list"))


def _default_aiweb() -> str:
    return str(Path(sys.executable).with_name("aiweb"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    argv: list[str], env: dict[str, str], runs: int
) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (seconds) of ``runs`` runs of ``argv`` after one warm-up.

    Raises:
        RuntimeError: the command failed.
    """
    walls, cpus = [], []
    for i in range(runs + 1):
        cpu = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
        if i:  # the first run warms the file cache (and creates the database)
            walls.append(elapsed)
            cpus.append(_children_cpu() - cpu)
    return walls, cpus


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; 1 when a median misses :data:`BAR_S`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per command.")
    parser.add_argument("--aiweb", default=_default_aiweb(), help="The aiweb executable.")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-cli-") as home:
        # a fresh home and its SQLite database: no setting of this shell applies
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
        env["AIWEB_HOME"] = home
        # as installed: the warm-up run leaves compiled bytecode that the timed runs use
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["COLUMNS"] = "120"
        for command in COMMANDS:
            walls, cpus = time_command([args.aiweb, *command], env, args.runs)
            name = " ".join(("aiweb", *command))
            rows.append((name, statistics.median(walls), max(walls), statistics.median(cpus)))
    width = max(len(row[0]) for row in rows)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.runs} runs each after a warm-up; {os.cpu_count()} cores, load average {load}")
    print(f"{'command':<{width}}  {'median':>8}  {'max':>8}  {'CPU':>8}  bar {BAR_S:.1f} s")
    failed = False
    for name, median, worst, cpu in rows:
        ok = median < BAR_S
        failed |= not ok
        verdict = "ok" if ok else "SLOWER"
        print(f"{name:<{width}}  {median:>7.3f}s  {worst:>7.3f}s  {cpu:>7.3f}s  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
