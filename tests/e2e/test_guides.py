"""The guides in ``docs/`` run top to bottom against a live server, and the guide markers
parse (the harness, its markers and what it skips: ``guides.py``; the README:
``test_guides_readme.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from guides import GUIDES, ROOT, SHELL_GUIDES, guide_script, parse_blocks, run_guide, shell_blocks

pytestmark = pytest.mark.e2e

DOCS_GUIDES = [g for g in SHELL_GUIDES if g.parent.name == "docs"]


def test_every_guide_block_is_well_marked() -> None:
    """Markers parse, every skip says why, and skips stay few (illustrative fragments and
    what cannot run on a test machine)."""
    blocks = [b for guide in GUIDES for b in shell_blocks(guide)]
    assert blocks
    skipped = [b for b in blocks if b.skip is not None]
    assert len(skipped) <= len(blocks) // 2, [f"{b.guide}:{b.line} {b.skip}" for b in skipped]


def test_markers_are_read() -> None:
    text = (
        "intro\n<!-- guide: skip (needs root) -->\n```bash\nsudo x\n```\n"
        "```bash\nA=1\n```\n<!-- guide: expect 4xx -->\n```bash\ncurl x\n```\n"
        "```python\nprint(1)\n```\n  ```bash\n  echo $A\n  ```\n"
    )
    blocks = parse_blocks(text, "t.md")
    with pytest.raises(ValueError, match="needs a reason"):
        parse_blocks("<!-- guide: skip -->\n```bash\nx\n```\n", "t.md")
    with pytest.raises(ValueError, match="unknown guide marker"):
        parse_blocks("<!-- guide: maybe -->\n```bash\nx\n```\n", "t.md")
    assert [(b.line, b.skip, b.expect_4xx, b.text) for b in blocks] == [
        (3, "needs root", False, "sudo x"),
        (6, None, False, "A=1"),
        (10, None, True, "curl x"),
        (16, None, False, "echo $A"),
    ]
    script = guide_script(blocks, "127.0.0.1:9")
    assert "sudo x" not in script
    assert script.index("A=1") < script.index('__guide_curl_4xx "$@"; }\ncurl x')


@pytest.mark.guides
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("guide", DOCS_GUIDES, ids=lambda p: str(p.relative_to(ROOT)))
def test_guide_runs_top_to_bottom(
    guide: Path, shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run_guide(guide, shared_data, tmp_path, request)
