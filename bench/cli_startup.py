"""Benchmark: how long the ``aiweb`` command line takes to start.

Times, as hyperfine would (a warm-up run, then ``--runs`` runs, median and maximum of the
wall time of the whole process):

- ``python -c pass``: the interpreter alone, the floor under every command
- ``aiweb --help``
- ``aiweb --version``
- ``aiweb models list`` and ``aiweb models list --json`` on a fresh ``AIWEB_HOME`` in
  which this benchmark first registers a few models (``--models``, each with three
  versions and a ``production`` and a ``staging`` alias), as a user's SQLite home has

and checks each aiweb median against the bar of issue #19: under 0.5 s. Exit status 1
when a command misses it. It also reports the CPU time (user + system) of each run: on a
busy machine (other jobs on the cores) the wall time grows with the load while the CPU
time stays close to what the wall time is on an idle one, and the load average is printed.

``--compare PATH`` times a second executable (an older aiweb, say) on the same home, its
runs interleaved with the first one's, so that both see the same load; its rows are
printed too (and not checked against the bar).

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

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("--version",),
    ("models", "list"),
    ("models", "list", "--json"),
)


def _default_aiweb() -> str:
    return str(Path(sys.executable).with_name("aiweb"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (seconds) of one run of ``argv``.

    Raises:
        RuntimeError: the command failed.
    """
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed, _children_cpu() - cpu


def time_commands(
    argvs: list[list[str]], env: dict[str, str], runs: int
) -> list[tuple[list[float], list[float]]]:
    """Wall times and CPU times (seconds) of ``runs`` runs of each of ``argvs`` after one
    warm-up each; the runs of the commands are interleaved (the same load for each).

    Raises:
        RuntimeError: a command failed.
    """
    for argv in argvs:  # warms the file cache and writes the bytecode
        run_once(argv, env)
    results: list[tuple[list[float], list[float]]] = [([], []) for _ in argvs]
    for _ in range(runs):
        for argv, (walls, cpus) in zip(argvs, results, strict=True):
            wall, cpu = run_once(argv, env)
            walls.append(wall)
            cpus.append(cpu)
    return results


def register_models(home: Path, count: int) -> None:
    """Register ``count`` models (three versions each, a ``production`` and a ``staging``
    alias) in the SQLite database of ``home``, through aiweb's registry."""
    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.registry.factory import build_registry

    # this shell's AIWEB_* settings do not apply: the home's own database and artifacts
    settings = Settings(home=home, database_url=None, artifacts_url=None, artifacts_dir=None)
    registry, engine = build_registry(settings)
    try:
        upgrade(engine)
        for i in range(count):
            name = f"model-{i + 1:02d}"
            for version in range(1, 4):
                registry.register_version(
                    name,
                    "text-classification",
                    artifact=f"{name}:{version}".encode(),  # never loaded by models list
                    artifact_format="skops",
                    labels=["negative", "positive"],
                    signature={"inputs": {"type": "array", "items": {"type": "string"}}},
                    lineage={"dataset": "bench"},
                    evaluation={"accuracy": 0.9},
                    description=f"benchmark model {i + 1}",
                    alias="staging" if version == 3 else None,
                    actor="bench",
                )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; 1 when a median misses :data:`BAR_S`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per command.")
    parser.add_argument("--aiweb", default=_default_aiweb(), help="The aiweb executable.")
    parser.add_argument(
        "--compare", metavar="PATH", help="Another aiweb executable, timed alongside."
    )
    parser.add_argument("--models", type=int, default=5, help="Models registered first.")
    args = parser.parse_args(argv)
    executables = [("", args.aiweb)]
    if args.compare:
        executables.append((" [compare]", args.compare))
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-cli-") as home:
        register_models(Path(home), args.models)
        # no setting of this shell applies: the home and its SQLite database only
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
        env["AIWEB_HOME"] = home
        # as installed: the warm-up run leaves compiled bytecode that the timed runs use
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["COLUMNS"] = "120"
        names = ["python -c pass"]
        argvs = [[sys.executable, "-c", "pass"]]
        for command in COMMANDS:
            for label, executable in executables:
                names.append(" ".join(("aiweb", *command)) + label)
                argvs.append([executable, *command])
        results = time_commands(argvs, env, args.runs)
    width = max(len(name) for name in names)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.runs} runs each after a warm-up; {os.cpu_count()} cores, load average {load}")
    print(f"{'command':<{width}}  {'median':>8}  {'max':>8}  {'CPU':>8}  bar {BAR_S:.1f} s")
    failed = False
    for name, (walls, cpus) in zip(names, results, strict=True):
        median = statistics.median(walls)
        verdict = ""
        if name.startswith("aiweb") and not name.endswith("[compare]"):
            ok = median < BAR_S
            failed |= not ok
            verdict = "ok" if ok else "SLOWER"
        print(
            f"{name:<{width}}  {median:>7.3f}s  {max(walls):>7.3f}s  "
            f"{statistics.median(cpus):>7.3f}s  {verdict}".rstrip()
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
