"""Running the README and the guides in ``docs/`` as their reader runs them: the harness
of ``test_guides.py`` and ``test_guides_readme.py``.

The ```` ```bash ```` blocks of a guide are joined, in order, into one bash script (``set
-Eeuo pipefail``: a failing command stops it, and variables set in one block are there in
the next) and run in a scratch directory against a live ``aiweb serve`` on a temporary
``AIWEB_HOME`` (SQLite), with ``aiweb`` on ``PATH`` and ``AIWEB_DATA_HOME`` pointing at the
shared datasets. ``curl`` fails on an HTTP error (``--fail-with-body``), so a guide whose
commands stop working fails its test. Each run's output is kept in
``test-artifacts/guides/<guide>.log`` (the server's in ``<guide>.server.log``).

A guide marks a block on the line before its fence:

- ``<!-- guide: skip (why) -->``: not run. For what cannot run here (installing packages,
  production hosts, systemd, backups) and for the truly long steps listed below; the
  reason is required.
- ``<!-- guide: expect 4xx -->``: the block shows error answers on purpose; each ``curl``
  in it must answer 4xx (not 2xx, not 5xx).

What the test does differently from a reader, and why:

- ``127.0.0.1:8000`` in the guides becomes the test server's free port.
- README: ``make demo`` (skipped: it builds a virtualenv) is replaced by what it runs,
  ``aiweb demo --no-serve`` before the server starts, then ``aiweb serve``.
- A guide that runs ``aiweb embeddings install`` gets a home holding this session's real
  install (the ``minilm_install`` fixture, made once per test run), so the command finds
  the model installed instead of exporting it again (about a minute of PyTorch).
- A guide without ``curl`` (docs/security.md: keys from the CLI) gets no server.

Long steps skipped on purpose (a ``guide: skip`` marker saying so):

- README: training ``intents`` on CLINC150 with MiniLM features and predicting with it
  (embeds 18,000 texts and fits 151 intents: 56 s on this project's 2-core machine while
  other tests ran, 2026-12-02).
- docs/recommendations.md: ``aiweb import movielens`` (every later training of the guide,
  such as the scheduled retraining it starts, would then fit 100,836 ratings).

Measured on the 2-core machine with other tests running (2026-12-02): README 4.5 min (the
demo's training included), docs/search.md 2.5 min (importing the 10,000 books: 114 s),
docs/recommendations.md 25 s, docs/security.md 5 s.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from stack import Proc, base_env, free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The guides with shell blocks (the others hold none to run).
SHELL_GUIDES = [g for g in GUIDES if "```bash" in g.read_text(encoding="utf-8")]
BIN = Path(sys.executable).parent
GUIDE_ADDRESS = "127.0.0.1:8000"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<lang>[\w+-]*)[ \t]*$")
MARKER = re.compile(r"^\s*<!--\s*guide:\s*(?P<what>.*?)\s*-->\s*$")
SKIP = re.compile(r"skip\b\s*(?P<why>.*)")
EXPECT_4XX = "expect 4xx"

#: What the reader ran before a guide's first block that the test cannot run as written.
PRELUDES: dict[str, list[list[str]]] = {
    "README.md": [["demo", "--no-serve"]],  # `make demo`: train sentiment and spam
}

PREAMBLE = r"""
set -Eeuo pipefail
trap 'echo "guide: failed (exit $?) at: $BASH_COMMAND" >&2' ERR
__guide_curl_fails() { command curl --fail-with-body --show-error "$@"; }
__guide_curl_4xx() {
    local out code
    out=$(command curl --show-error --write-out '\n%{http_code}' "$@") || return
    code=${out##*$'\n'}
    printf '%s\n' "${out%$'\n'*}"
    case $code in
        4??) ;;
        *) echo "guide: expected a 4xx answer, got $code" >&2; return 1 ;;
    esac
}
curl() { __guide_curl_fails "$@"; }
"""


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a guide."""

    guide: str
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None  # the reason, when marked skip
    expect_4xx: bool


def shell_blocks(path: Path) -> list[Block]:
    """The ```` ```bash ```` blocks of a guide (see :func:`parse_blocks`)."""
    return parse_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def parse_blocks(markdown: str, name: str) -> list[Block]:
    """The ```` ```bash ```` blocks of a markdown text, in order, with their markers.

    Raises:
        ValueError: an unclosed fence, a marker that is not ``skip (why)`` or
            ``expect 4xx``, a skip without a reason, or a marker before no bash block.
    """
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        if not opening or not opening["lang"]:
            if MARKER.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                raise ValueError(f"{name}:{i + 1}: a guide marker must precede a fence")
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not (
            lines[end].strip() == opening["fence"] and lines[end].startswith(opening["indent"])
        ):
            end += 1
        if end == len(lines):
            raise ValueError(f"{name}:{i + 1}: unclosed fence")
        if opening["lang"] == "bash":
            skip: str | None = None
            expect_4xx = False
            if marker:
                what = marker["what"]
                skipped = SKIP.fullmatch(what)
                if skipped:
                    skip = skipped["why"].strip(" ()—-:")
                    if not skip:
                        raise ValueError(f"{name}:{i}: `guide: skip` needs a reason")
                elif what == EXPECT_4XX:
                    expect_4xx = True
                else:
                    raise ValueError(f"{name}:{i}: unknown guide marker {what!r}")
            indent = len(opening["indent"])
            body = "\n".join(line[indent:] for line in lines[i + 1 : end])
            blocks.append(Block(name, i + 1, body, skip, expect_4xx))
        elif marker:
            raise ValueError(f"{name}:{i}: a guide marker before a {opening['lang']} block")
        i = end + 1
    return blocks


def guide_script(blocks: list[Block], address: str) -> str:
    """The runnable blocks as one bash script talking to ``address``."""
    parts = [PREAMBLE]
    for block in blocks:
        if block.skip is not None:
            continue
        parts.append(f'\necho "### guide block {block.guide}:{block.line} (at $SECONDS s)" >&2')
        if block.expect_4xx:
            parts.append('curl() { __guide_curl_4xx "$@"; }')
        parts.append(block.text.replace(GUIDE_ADDRESS, address))
        if block.expect_4xx:
            parts.append('curl() { __guide_curl_fails "$@"; }')
    parts.append('\necho "### guide: done (at $SECONDS s)" >&2\n')
    return "\n".join(parts)


def _link_or_copy(src: str, dst: str) -> object:
    """Artifacts are only read: hard-link them; copy what is written (the database)."""
    if "artifacts" in Path(src).parts:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


def seed_embedding_model(home: Path, request: pytest.FixtureRequest) -> None:
    """Give ``home`` what ``aiweb embeddings install`` made in this session's install."""
    install = request.getfixturevalue("minilm_install")
    shutil.copytree(
        install.home,
        home,
        ignore=shutil.ignore_patterns("export", "*.lock"),
        copy_function=_link_or_copy,
        dirs_exist_ok=True,
    )


def run_script(script: Path, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> int:
    """Run ``bash script`` in its own process group, output to ``log``; its exit status
    (the whole group is killed after ``timeout`` seconds: -9)."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            fh.write(f"\nguide: killed after {timeout:.0f} s\n".encode())
            return -9


def tail(path: Path, chars: int = 8000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


def run_guide(
    guide: Path, shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Run ``guide``'s runnable blocks as one script (see the module docstring); fail
    with the script's output when it stops."""
    blocks = shell_blocks(guide)
    runnable = [b for b in blocks if b.skip is None]
    if not runnable:
        pytest.skip(f"{guide.name}: no shell block to run (all marked skip)")
    if shutil.which("jq") is None and any(re.search(r"\bjq\b", b.text) for b in runnable):
        pytest.skip("the guide uses jq, which is not installed (.ci/run installs it)")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    if any("aiweb embeddings install" in b.text for b in runnable):
        seed_embedding_model(home, request)
    env = base_env(home, AIWEB_DATA_HOME=str(shared_data))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    name = str(guide.relative_to(ROOT))
    for args in PRELUDES.get(name, []):
        done = subprocess.run(
            [str(BIN / "aiweb"), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"aiweb {' '.join(args)}:\n{done.stderr[-5000:]}"
    port = free_port()
    script = tmp_path / "guide.sh"
    script.write_text(guide_script(blocks, f"127.0.0.1:{port}"))
    logs = ROOT / "test-artifacts" / "guides"  # kept for a look after a CI run
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{guide.stem}.log"
    server_log = logs / f"{guide.stem}.server.log"
    server_log.unlink(missing_ok=True)
    server: Proc | None = None
    if any(re.search(r"\bcurl\b", b.text) for b in runnable):
        server = start_server(env, server_log, port)
    try:
        returncode = run_script(script, work, env, log, timeout=1100)
    finally:
        if server is not None:
            server.stop()
    output = tail(log)
    assert returncode == 0, (
        f"{name} stopped working (exit {returncode}); the last block run is the last "
        f"'### guide block' line:\n{output}\n--- server\n{tail(server_log, 4000)}"
    )
    assert "### guide: done" in output
    assert "Traceback" not in tail(server_log, 10**9), tail(server_log)
