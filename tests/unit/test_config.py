from __future__ import annotations

from pathlib import Path

import pytest

from aiweb.config import Settings


def test_zero_config_puts_everything_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AIWEB_HOME", "AIWEB_DATABASE_URL", "AIWEB_ARTIFACTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.home == Path.home() / ".local" / "share" / "aiweb"
    assert s.resolved_database_url == f"sqlite:///{s.home / 'aiweb.db'}"
    assert s.resolved_artifacts_dir == s.home / "artifacts"
    assert s.serving.max_inputs == 256
    assert s.serving.max_text_chars == 10_000
    assert s.log_inputs is False


def test_environment_and_nested_groups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIWEB_HOME", str(tmp_path))
    monkeypatch.setenv("AIWEB_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("AIWEB_SERVING__MAX_INPUTS", "8")
    monkeypatch.setenv("AIWEB_LOG_INPUTS", "true")
    s = Settings()
    assert s.home == tmp_path
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.serving.max_inputs == 8
    assert s.log_inputs is True


def test_invalid_values_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWEB_SERVING__MAX_INPUTS", "0")
    with pytest.raises(ValueError, match="max_inputs"):
        Settings()
