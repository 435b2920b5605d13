"""``AIWEB_DATABASE__POOL_SIZE``, ``…MAX_OVERFLOW``, ``…POOL_TIMEOUT_S`` reach the engine's
pool on PostgreSQL (a real pool that runs out and times out as set); SQLite keeps its own
pool; the nested settings do not clash with ``AIWEB_DATABASE_URL``."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from aiweb.config import DatabaseSettings, Settings
from aiweb.db.session import engine_for
from aiweb.registry.factory import build_registry


def test_environment_names_do_not_clash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWEB_DATABASE_URL", "postgresql://db.example/aiweb")
    monkeypatch.setenv("AIWEB_DATABASE__POOL_SIZE", "7")
    monkeypatch.setenv("AIWEB_DATABASE__MAX_OVERFLOW", "0")
    monkeypatch.setenv("AIWEB_DATABASE__POOL_TIMEOUT_S", "2.5")
    settings = Settings()
    assert settings.database_url == "postgresql://db.example/aiweb"
    assert settings.database == DatabaseSettings(pool_size=7, max_overflow=0, pool_timeout_s=2.5)
    monkeypatch.setenv("AIWEB_DATABASE__POOL_SIZE", "0")
    with pytest.raises(ValueError, match="pool_size"):
        Settings()


def test_pool_settings_reach_the_engine(settings: Settings) -> None:
    pool = DatabaseSettings(pool_size=2, max_overflow=1, pool_timeout_s=0.5)
    settings = settings.model_copy(update={"database": pool})
    engine = engine_for(settings)
    try:
        if engine.dialect.name != "postgresql":
            # SQLite: SQLAlchemy's own pool for it, unchanged by the settings
            assert engine.pool.size() == 5  # type: ignore[attr-defined]
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            return
        assert engine.pool.size() == 2  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 1  # type: ignore[attr-defined]
        assert engine.pool.timeout() == 0.5  # type: ignore[attr-defined]
        with ExitStack() as stack:
            for _ in range(3):  # pool_size + max_overflow connections open at once
                conn = stack.enter_context(engine.connect())
                assert conn.execute(text("SELECT 1")).scalar() == 1
            started = time.monotonic()
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                engine.connect()
            assert 0.4 <= time.monotonic() - started < 5
        with engine.connect() as conn:  # returned connections serve again
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_the_registry_engine_uses_them(settings: Settings) -> None:
    pool = DatabaseSettings(pool_size=3, max_overflow=4, pool_timeout_s=1.5)
    settings = settings.model_copy(update={"database": pool})
    _, engine = build_registry(settings)
    try:
        if engine.dialect.name == "postgresql":
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
            assert engine.pool._max_overflow == 4  # type: ignore[attr-defined]
            assert engine.pool.timeout() == 1.5  # type: ignore[attr-defined]
    finally:
        engine.dispose()
