"""``AIWEB_SECRET_KEY``: generated and kept in ``AIWEB_HOME`` for the embedded default;
required, and checked for strength, in production mode (PostgreSQL configured)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from aiweb.config import Settings
from aiweb.errors import InsecureConfigurationError

MIN_LENGTH = 32
#: Values seen in tutorials and templates; refused whatever their length.
WEAK_VALUES = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "secret-key",
        "secretkey",
        "your-secret-key",
        "supersecret",
        "password",
        "development",
        "dev",
        "test",
        "insecure",
        "default",
    }
)


def is_production(settings: Settings) -> bool:
    """Production mode = a PostgreSQL database is configured."""
    return settings.resolved_database_url.startswith(("postgresql", "postgres"))


def check_strength(value: str) -> None:
    """Raise :class:`InsecureConfigurationError` for a short or well-known secret."""
    lowered = value.strip().lower()
    if lowered in WEAK_VALUES or any(lowered.startswith(w + "-") for w in ("changeme",)):
        raise InsecureConfigurationError(
            "AIWEB_SECRET_KEY is a well-known placeholder; set a random value"
        )
    if len(value) < MIN_LENGTH or len(set(value)) < 8:
        raise InsecureConfigurationError(
            f"AIWEB_SECRET_KEY must be at least {MIN_LENGTH} random characters; generate one "
            'with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )


def resolve_secret_key(settings: Settings) -> str:
    """The secret key in force.

    Raises:
        InsecureConfigurationError: production mode without a key, or a weak key.
    """
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        check_strength(value)
        return value
    if is_production(settings):
        raise InsecureConfigurationError(
            "AIWEB_SECRET_KEY must be set when AIWEB_DATABASE_URL points at PostgreSQL "
            "(production mode); every replica needs the same value"
        )
    path = Path(settings.home) / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    settings.home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


LOOPBACK_HOSTS = frozenset({"::1", "localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a client address) is on loopback only."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_auth_binding(settings: Settings, host: str) -> None:
    """Refuse ``AIWEB_AUTH__ENABLED=false`` unless the server binds to loopback only."""
    if not settings.auth.enabled and not is_loopback(host):
        raise InsecureConfigurationError(
            f"AIWEB_AUTH__ENABLED=false is only allowed when binding to loopback, not {host!r}; "
            "create API keys with `aiweb keys create` instead"
        )
