"""The command line starts fast (issue #19: under 0.5 s for ``aiweb --help`` and ``aiweb
models list``, timed by ``bench/cli_startup.py``): heavy libraries are imported only by the
commands that use them. Checked here by what a fresh interpreter has imported, which does
not depend on the machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aiweb.config import Settings

#: Libraries that take 0.04-10 s to import and that neither `--help` nor `models list` uses
#: (httpx, for webhook deliveries, brings its command line with rich and pygments: 40 ms).
HEAVY = (
    "celery",
    "fastapi",
    "httpx",
    "implicit",
    "numpy",
    "onnxruntime",
    "pandas",
    "scipy",
    "skl2onnx",
    "sklearn",
    "skops",
    "starlette",
    "torch",
    "transformers",
    "uvicorn",
)


def imported_heavy(code: str, tmp_path: Path) -> list[str]:
    """The :data:`HEAVY` top-level packages a fresh interpreter imported running ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env["AIWEB_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_cli_module_imports_nothing_heavy(tmp_path: Path) -> None:
    assert imported_heavy("import aiweb.cli", tmp_path) == []


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "from aiweb.cli import app\n"
        "try:\n"
        "    app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert imported_heavy(code, tmp_path) == []


def test_models_list_needs_only_the_registry(tmp_path: Path) -> None:
    assert imported_heavy("import aiweb.registry.factory", tmp_path) == []
    code = "from aiweb.cli import app\napp(['models', 'list'], standalone_mode=False)\n"
    assert imported_heavy(code, tmp_path) == []


def test_a_current_database_is_not_migrated_again(tmp_path: Path) -> None:
    """Alembic (a third of `models list`'s start-up) is imported only when there is a
    migration to run: the first command migrates, the next ones do not need it."""
    code = "from aiweb.cli import app\napp(['models', 'list'], standalone_mode=False)\n"
    probe = code + "import sys\nassert 'alembic' not in sys.modules, 'alembic imported'\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env["AIWEB_HOME"] = str(tmp_path / "home")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr


def test_head_revision_read_from_the_scripts_is_alembics(settings: Settings) -> None:
    from aiweb.db.migrate import head_revision as alembic_head
    from aiweb.db.migrate import upgrade
    from aiweb.db.revisions import head_revision, is_current
    from aiweb.db.session import make_engine

    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    try:
        assert head_revision() == alembic_head(engine)
        assert not is_current(engine)  # never migrated
        upgrade(engine)
        assert is_current(engine)
    finally:
        engine.dispose()


def test_head_revision_is_none_when_unsure(tmp_path: Path) -> None:
    from aiweb.db.revisions import head_revision

    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    assert head_revision(tmp_path) == "b"
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')  # two heads
    assert head_revision(tmp_path) is None
