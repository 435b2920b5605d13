"""What ``aiweb models list`` no longer does at start-up (issue #19, under 0.5 s): build
Typer's pydantic adapters for options not given, configure the ORM mappers, look up
pydantic's plugins, or let the garbage collector scan the start-up objects; and that
options that are given are checked exactly as Typer checks them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aiweb.cli import app

PROBE = """
import gc, json, os, sys
from aiweb.cli import main
sys.argv = ["aiweb", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
from aiweb.db.orm import SqlRegisteredModel
print(json.dumps({
    "adapters": "typer._adapters" in sys.modules,
    "configured": SqlRegisteredModel.__mapper__.configured,
    "plugins_env": os.environ.get("PYDANTIC_DISABLE_PLUGINS"),
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
}))
"""


def run_probe(home: Path, *argv: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env["AIWEB_HOME"] = str(home)
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_models_list_starts_light(tmp_path: Path) -> None:
    run_probe(tmp_path / "home", "models", "list")  # creates and migrates the database
    for argv in (("models", "list"), ("models", "list", "--json")):
        found = run_probe(tmp_path / "home", *argv)
        assert found == {
            "adapters": False,  # no pydantic adapter for --help, --version, --json
            "configured": False,  # the models are read with Core statements
            "plugins_env": None,  # set only while the settings were built
            "gc_enabled": True,
            "frozen": found["frozen"],
        }
        assert isinstance(found["frozen"], int)
        assert found["frozen"] > 10_000


def test_the_pydantic_plugin_lookup_is_skipped_for_the_settings_only(tmp_path: Path) -> None:
    """Pydantic models built after the command's settings still look plugins up."""
    code = (
        "import sys\n"
        "from pydantic.plugin import _loader\n"
        "from aiweb.cli._common import load_settings\n"
        "load_settings()\n"
        "assert _loader._plugins is None, 'looked up while the settings were built'\n"
        "from pydantic import BaseModel\n"
        "class Later(BaseModel):\n"
        "    x: int = 0\n"
        "assert _loader._plugins is not None, 'not looked up afterwards'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env["AIWEB_HOME"] = str(tmp_path / "home")
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- Typer

DEMO = """
import json
from typing import Optional
import typer

demo = typer.Typer()

@demo.command()
def cmd(
    need: int = typer.Option(...),
    count: Optional[int] = typer.Option(None, min=1),
    tags: Optional[list[str]] = typer.Option(None, "--tag"),
    ratio: float = typer.Option(0.5),
    flag: bool = typer.Option(False, "--flag"),
) -> None:
    typer.echo(json.dumps([need, count, tags, ratio, flag]))
"""

DEMO_ARGVS: tuple[tuple[str, ...], ...] = (
    ("--need", "3"),
    ("--need", "3", "--count", "2", "--tag", "a", "--tag", "b", "--ratio", "2", "--flag"),
    ("--need", "x"),
    ("--need", "3", "--count", "0"),
    ("--count", "2"),  # --need missing
    ("--help",),
)


def _demo_results(patched: bool) -> list[list[object]]:
    code = (
        ("import aiweb.cli\n" if patched else "")
        + DEMO
        + "from typer.testing import CliRunner\n"
        + "runner = CliRunner()\n"
        + f"argvs = {DEMO_ARGVS!r}\n"
        + "print(json.dumps([[r.exit_code, r.output] for r in "
        + "(runner.invoke(demo, list(a)) for a in argvs)]))\n"
    )
    env = dict(os.environ, COLUMNS="100")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    results: list[list[object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_options_are_checked_as_typer_checks_them() -> None:
    """The same exit codes and output, parameter by parameter, with and without aiweb's
    change to Typer (:mod:`aiweb.cli._typer_params`)."""
    assert _demo_results(patched=True) == _demo_results(patched=False)


def test_given_values_are_still_coerced() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["models", "promote", "sentiment", "two"])
    assert result.exit_code == 2
    assert "Invalid value for 'version'" in result.output
    result = runner.invoke(app, ["models", "delete", "sentiment", "--version", "0", "--yes"])
    assert result.exit_code == 2
