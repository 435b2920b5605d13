"""Every benchmark answers ``--help`` with its usage and runs nothing (a benchmark takes
minutes and disturbs the machine; its options must be readable without starting it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(
    p.stem
    for p in (ROOT / "bench").glob("*.py")
    if p.stem != "__init__" and "__main__" in p.read_text(encoding="utf-8")
)


def test_the_benches_are_found() -> None:
    assert {"entities_quality", "rollout", "runtimes", "serving", "tabular"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_help_prints_the_usage_and_runs_nothing(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout[:200]
