from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aiweb.config import Settings
from aiweb.errors import InsecureConfigurationError
from aiweb.security.secrets import check_auth_binding, resolve_secret_key

PG = "postgresql+psycopg://u@db/aiweb"


def test_embedded_default_generates_and_keeps_a_private_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = resolve_secret_key(settings)
    assert len(first) >= 32
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_secret_key(settings) == first


def test_production_requires_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfigurationError, match="must be set"):
        resolve_secret_key(Settings(home=tmp_path, database_url=PG))
    strong = "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz"
    assert resolve_secret_key(Settings(home=tmp_path, database_url=PG, secret_key=strong)) == strong


@pytest.mark.parametrize("weak", ["changeme", "secret", "short-but-random-1", "a" * 64])
def test_weak_secret_keys_are_refused(tmp_path: Path, weak: str) -> None:
    with pytest.raises(InsecureConfigurationError):
        resolve_secret_key(Settings(home=tmp_path, database_url=PG, secret_key=weak))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_auth_may_be_disabled_on_loopback(host: str) -> None:
    check_auth_binding(Settings(auth={"enabled": False}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::", "example.com"])
def test_auth_may_not_be_disabled_elsewhere(host: str) -> None:
    with pytest.raises(InsecureConfigurationError, match="loopback"):
        check_auth_binding(Settings(auth={"enabled": False}), host)
    check_auth_binding(Settings(), host)  # enabled: any address is fine
