"""The README runs top to bottom against a live server (after what `make demo` does): see
``guides.py``. Apart from ``test_guides.py`` so that pytest-xdist runs the two on
different workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from guides import ROOT, run_guide

pytestmark = [pytest.mark.e2e, pytest.mark.guides]


@pytest.mark.timeout(1200)
def test_readme_runs_top_to_bottom(
    shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run_guide(ROOT / "README.md", shared_data, tmp_path, request)
