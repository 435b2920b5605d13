"""``aiweb info``, ``aiweb --version`` and "not found" messages that say where the command
looked (issue #19: a wrong AIWEB_HOME silently made an empty database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import open_registry, register_tiny
from typer.testing import CliRunner

from aiweb import __version__
from aiweb.cli import app
from aiweb.cli._common import redact_url
from aiweb.config import Settings


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.delenv("AIWEB_ARTIFACTS_URL", raising=False)
    return settings


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_line(text: str) -> str:
    """Rich wraps long lines at the console width: compare without the line breaks."""
    return " ".join(text.split())


def test_info_json_reports_home_database_tasks_and_production_versions(
    cli_env: Settings, tiny_model_bytes: bytes
) -> None:
    registry, engine = open_registry(cli_env)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes, alias="production")
        register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    code, out, err = run("info", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["version"] == __version__
    assert data["home"] == str(cli_env.home)
    assert data["database"] == redact_url(cli_env.resolved_database_url)
    assert data["database_exists"] is True
    assert data["artifact_store"] == str(cli_env.resolved_artifacts_dir)
    assert data["broker"] is None
    assert {"text-classification", "feature-extraction"} <= set(data["tasks"])
    models = {m["name"]: m for m in data["models"]}
    assert models["sentiment"]["production_version"] == 1
    assert models["sentiment"]["latest_version"] == 2
    assert models["sentiment"]["aliases"] == {"production": 1}
    assert data["models_error"] is None
    code, out, err = run("info")
    assert code == 0, err
    text = one_line(out)
    assert str(cli_env.home) in text
    assert "installed tasks" in text
    assert "sentiment" in text


def test_info_on_a_home_without_a_database_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "nowhere"
    monkeypatch.setenv("AIWEB_HOME", str(home))
    monkeypatch.delenv("AIWEB_DATABASE_URL", raising=False)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    code, out, err = run("info", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["database"] == f"sqlite:///{home / 'aiweb.db'}"
    assert data["database_exists"] is False
    assert data["models"] == []
    assert "does not exist yet" in data["models_error"]
    assert not home.exists()
    monkeypatch.setenv("AIWEB_BROKER_URL", "redis://:hunter2@127.0.0.1:6379/0")
    code, out, _ = run("info", "--json")
    assert json.loads(out)["broker"] == "redis://:***@127.0.0.1:6379/0"
    assert "hunter2" not in out


def test_version_option() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"aiweb {__version__}"


def test_not_found_names_the_home_and_database(cli_env: Settings) -> None:
    _registry, engine = open_registry(cli_env)  # the database exists, migrated
    engine.dispose()
    code, _, err = run("models", "show", "nope")
    assert code == 1
    text = one_line(err)
    assert "no model named 'nope'" in text
    assert f"home {cli_env.home}" in text
    assert f"database {redact_url(cli_env.resolved_database_url)}" in text
    assert "created empty just now" not in text
    code, _, err = run("jobs", "show", "0000")
    assert code == 1
    assert f"home {cli_env.home}" in one_line(err)
    code, _, err = run("jobs", "submit", "train", "--set", "model=m", "--set", "dataset_id=nope")
    assert code == 1
    assert "does not exist" in one_line(err)
    assert f"home {cli_env.home}" in one_line(err)


def test_a_wrong_home_is_called_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "typo"
    monkeypatch.setenv("AIWEB_HOME", str(home))
    monkeypatch.delenv("AIWEB_DATABASE_URL", raising=False)
    code, _, err = run("models", "show", "sentiment")
    assert code == 1
    text = one_line(err)
    assert f"home {home}" in text
    assert f"database sqlite:///{home / 'aiweb.db'}" in text
    assert "did not exist and was created empty just now" in text
    assert "AIWEB_HOME" in text
    # the next command finds the database it left: no false alarm
    code, _, err = run("models", "show", "sentiment")
    assert code == 1
    assert "created empty just now" not in one_line(err)
    # an empty list says which registry it is
    other = tmp_path / "other"
    monkeypatch.setenv("AIWEB_HOME", str(other))
    code, _, err = run("models", "list")
    assert code == 0
    text = one_line(err)
    assert f"no models registered (home {other}" in text
    assert "created empty just now" in text
