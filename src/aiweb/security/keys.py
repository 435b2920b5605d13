"""API keys: ``aiw_<prefix>_<secret>``, stored as a public prefix and a sha256.

A key is 12 hex characters of public prefix (indexed, for lookup) and 256 random bits of
secret (``secrets.token_urlsafe(32)``). Only the sha256 of the whole key is stored; with
that much entropy a fast hash is the standard choice (as GitHub and Stripe tokens do) —
slow password hashes guard low-entropy secrets. Comparison is constant-time
(:func:`hmac.compare_digest`).

Scopes: ``predict`` (predictions, feedback, searches, recommendation reads and registry
reads), ``train`` (training, jobs, data ingestion), ``admin`` (registry changes, keys,
audit), ``chat`` (:data:`PUBLISHABLE_SCOPE`: what a web page itself may call).
``admin`` grants every scope and ``predict`` grants ``chat``.

A key with scope ``chat`` is *publishable*: a web page embeds it, so anyone can read it.
It has that scope alone and two limits this layer checks without knowing what they
name: its *targets* (the names it may reach; the route says what a name is, e.g. an
assistant, :meth:`ApiKey.check_target`) and the *origins* (``https://shop.example``)
whose pages may use it (:meth:`ApiKey.check_origin`, for every request, in
:func:`aiweb.security.auth.authorize`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlApiKey, utcnow
from aiweb.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    KeyNotFound,
    UnauthorizedError,
)
from aiweb.names import check_name
from aiweb.security.audit import AuditLog

SCOPES = ("predict", "train", "admin", "chat")
#: The scope of a publishable key (a web page shows it): limited to targets and origins.
PUBLISHABLE_SCOPE = "chat"
#: An origin as browsers send it: scheme, host and an optional port, nothing after.
ORIGIN_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/?$"
_ORIGIN = re.compile(ORIGIN_PATTERN)
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
KEY_PATTERN = re.compile(r"^aiw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

#: Longest key lifetime ``expires_in`` may ask for (100 years).
MAX_KEY_LIFETIME = timedelta(days=36_525)


def _at_most(bound: int, digits: int) -> str:
    """A regex of the ``digits``-digit strings (leading zeros allowed) whose value is at
    most ``bound``."""
    if bound >= 10**digits - 1:
        return f"[0-9]{{{digits}}}"
    top = str(bound).zfill(digits)
    parts = [
        top[:i]
        + (f"[0-{int(d) - 1}]" if d != "1" else "0")
        + (f"[0-9]{{{digits - i - 1}}}" if digits - i - 1 else "")
        for i, d in enumerate(top)
        if d != "0"
    ]
    return "|".join([*parts, top])


def _duration_pattern(longest: timedelta) -> str:
    """The JSON Schema pattern of the durations :func:`parse_duration` reads that are at
    most ``longest``: 1 to 6 digits and a unit, each unit's number bounded."""
    seconds = int(longest.total_seconds())
    units = []
    for unit, size in _UNITS.items():
        bound = seconds // size
        alternatives = "|".join(_at_most(bound, n) for n in range(1, 7))
        units.append(f"(?:{alternatives}){unit}")
    return "^(?:" + "|".join(units) + ")$"


#: The pattern of ``expires_in`` in the API's schema: what :func:`parse_duration` reads, at
#: most :data:`MAX_KEY_LIFETIME` (so the schema states the limit the route holds it to).
KEY_LIFETIME_PATTERN = _duration_pattern(MAX_KEY_LIFETIME)


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` as a :class:`~datetime.timedelta`.

    Raises:
        InvalidInputError: another format.
    """
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidInputError(f"invalid duration {text[:40]!r}: use e.g. 90d, 12h, 30m, 2w")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def parse_scopes(scopes: list[str] | str) -> list[str]:
    """Validate scopes (a list, or a comma-separated string); returns them sorted.

    Raises:
        InvalidInputError: empty, or a scope outside predict/train/admin.
    """
    cleaned = _items(scopes)
    unknown = [s for s in cleaned if s not in SCOPES]
    if not cleaned or unknown:
        raise InvalidInputError(
            f"invalid scopes {', '.join(unknown) or '(none)'}: choose from {', '.join(SCOPES)}"
        )
    return cleaned


def _items(values: list[str] | str) -> list[str]:
    items = values.split(",") if isinstance(values, str) else list(values)
    return sorted({s.strip() for s in items if s.strip()})


def parse_origin(text: str) -> str:
    """An origin as a browser's ``Origin`` header states it: lower case, no trailing
    slash, no default port (``HTTPS://Shop.example:443/`` → ``https://shop.example``).

    Raises:
        InvalidInputError: not ``http(s)://host[:port]``.
    """
    if not _ORIGIN.fullmatch(text.strip()):
        raise InvalidInputError(
            f"invalid origin {text[:80]!r}: use scheme://host[:port], "
            "e.g. https://shop.example (no path)"
        )
    origin = text.strip().lower().rstrip("/")
    scheme = origin.split("://", 1)[0]
    default = _DEFAULT_PORTS[scheme]
    return origin.removesuffix(default) if origin.endswith(default) else origin


def publishable_limits(
    scopes: list[str], targets: list[str] | str | None, origins: list[str] | str | None
) -> tuple[list[str] | None, list[str] | None]:
    """The targets and origins of a key with ``scopes``, checked: a publishable key
    (:data:`PUBLISHABLE_SCOPE`) has that scope alone and names at least one of each; any
    other key names neither.

    Returns:
        The target names and :func:`parse_origin` origins, sorted (``None, None`` for a
        key that is not publishable).

    Raises:
        InvalidInputError: the rules above broken, or a bad name or origin.
    """
    names = _items(targets or [])
    allowed = _items(origins or [])
    scope = PUBLISHABLE_SCOPE
    if scope not in scopes:
        if names or allowed:
            raise InvalidInputError(
                f"assistants and origins limit a publishable key: give them with scope {scope}"
            )
        return None, None
    if scopes != [scope]:
        raise InvalidInputError(
            f"a {scope} key is publishable (a web page shows it), so it has scope {scope} "
            "alone; make a separate key for " + ", ".join(s for s in scopes if s != scope)
        )
    if not names or not allowed:
        raise InvalidInputError(
            f"a {scope} key names the assistants it may talk to and the origins of the pages "
            "that may use it (--assistants helpdesk --origins https://shop.example)"
        )
    for name in names:
        check_name(name, "assistant name")
    return names, sorted({parse_origin(o) for o in allowed})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """An API key's public record (never the secret)."""

    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    targets: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()

    def allows(self, scope: str) -> bool:
        """Whether this key may use a route that needs ``scope`` (admin may use all,
        predict may also do what a publishable key does)."""
        return (
            "admin" in self.scopes
            or scope in self.scopes
            or (scope == PUBLISHABLE_SCOPE and "predict" in self.scopes)
        )

    @property
    def publishable(self) -> bool:
        """A key a web page shows, limited to its targets and origins."""
        return self.scopes == (PUBLISHABLE_SCOPE,)

    def check_origin(self, origin: str | None) -> None:
        """Whether a request with this ``Origin`` header may use this key: a key that
        lists origins works only from pages on them; any other key from anywhere.

        Raises:
            ForbiddenError: no ``Origin`` header, or one the key does not list.
        """
        if not self.origins:
            return
        if origin is None:
            raise ForbiddenError(
                f"API key {self.name!r} is a publishable key: it works only from a web "
                "page (with an Origin header) on the origins it lists"
            )
        try:
            allowed = parse_origin(origin) in self.origins
        except InvalidInputError:
            allowed = False
        if not allowed:
            raise ForbiddenError(
                f"API key {self.name!r} does not allow pages on {origin[:100]!r}; "
                f"it allows {', '.join(self.origins)}"
            )

    def check_target(self, name: str) -> None:
        """Whether this key may reach ``name`` (what the name is, the route knows: an
        assistant's, for scope chat): a publishable key only the targets it lists.

        Raises:
            ForbiddenError: a publishable key that does not list ``name``.
        """
        if self.publishable and name not in self.targets:
            raise ForbiddenError(
                f"API key {self.name!r} is for {', '.join(self.targets)}, not {name!r}"
            )

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _entity(row: SqlApiKey) -> ApiKey:
    return ApiKey(
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        created_by=row.created_by,
        created_at=row.created_at,  # UTCDateTime: always timezone-aware UTC
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        targets=tuple(row.targets or ()),
        origins=tuple(row.origins or ()),
    )


class KeyService:
    """Create, list, revoke and check API keys.

    Checks are cached in memory for ``cache_ttl_s`` seconds so the predict path does not
    query the database per request; a revocation made in this process applies at once,
    one made elsewhere within ``cache_ttl_s``.

    Args:
        session_factory: sessions on the migrated database.
        audit: where key creation and revocation are recorded.
        cache_ttl_s: how long a looked-up key is trusted without re-reading it.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        audit: AuditLog | None = None,
        *,
        cache_ttl_s: float = 5.0,
    ) -> None:
        self._sessions = session_factory
        self._audit = audit
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, ApiKey, str]] = {}

    def create(
        self,
        name: str,
        scopes: list[str] | str,
        *,
        expires_in: timedelta | None = None,
        targets: list[str] | str | None = None,
        origins: list[str] | str | None = None,
        actor: str = "",
        request_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key. Returns its record and the secret, which is never shown again.

        Args:
            targets, origins: what a publishable key is limited to
                (:func:`publishable_limits`; a list, or a comma-separated string).

        Raises:
            InvalidInputError: bad name, scopes, targets or origins; ConflictError: the
                name is taken.
        """
        check_name(name, "key name")
        scope_list = parse_scopes(scopes)
        target_list, origin_list = publishable_limits(scope_list, targets, origins)
        prefix = secrets.token_hex(6)
        secret = f"aiw_{prefix}_{secrets.token_urlsafe(32)}"
        expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
        try:
            with self._sessions() as session, session.begin():
                row = SqlApiKey(
                    name=name,
                    prefix=prefix,
                    secret_sha256=_sha256(secret),
                    scopes=scope_list,
                    created_by=actor,
                    expires_at=expires_at,
                    targets=target_list,
                    origins=origin_list,
                )
                session.add(row)
                session.flush()
                key = _entity(row)
        except IntegrityError:
            raise ConflictError(
                f"an API key named {name!r} exists; revoke it or pick another name"
            ) from None
        if self._audit:
            self._audit.record(
                actor,
                "key.create",
                f"key:{name}",
                after={
                    "scopes": scope_list,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    **({"targets": target_list, "origins": origin_list} if target_list else {}),
                },
                request_id=request_id,
            )
        return key, secret

    def list(self) -> list[ApiKey]:
        """Every key, oldest first (revoked and expired included)."""
        with self._sessions() as session:
            rows = session.scalars(select(SqlApiKey).order_by(SqlApiKey.id)).all()
            return [_entity(r) for r in rows]

    def get(self, name: str) -> ApiKey:
        """The key ``name`` (any state). Raises: KeyNotFound."""
        with self._sessions() as session:
            return _entity(self._row(session, name))

    @staticmethod
    def _row(session: Session, name: str) -> SqlApiKey:
        row = session.scalar(select(SqlApiKey).where(SqlApiKey.name == name))
        if row is None:
            raise KeyNotFound(f"no API key named {name[:80]!r}; `aiweb keys list` shows them")
        return row

    def revoke(self, name: str, *, actor: str = "", request_id: str | None = None) -> ApiKey:
        """Revoke the key ``name`` (idempotent).

        Raises:
            KeyNotFound: no key with that name.
        """
        with self._sessions() as session, session.begin():
            row = self._row(session, name)
            before = row.revoked_at
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            key = _entity(row)
        self._cache.pop(key.prefix, None)
        if self._audit and before is None:
            self._audit.record(
                actor,
                "key.revoke",
                f"key:{name}",
                before={"revoked": False},
                after={"revoked": True},
                request_id=request_id,
            )
        return key

    def delete(self, name: str, *, actor: str = "") -> None:
        """Remove the key ``name`` entirely (the demo replaces its own key this way).

        Raises:
            KeyNotFound: no key with that name.
        """
        with self._sessions() as session, session.begin():
            row = self._row(session, name)
            prefix = row.prefix
            session.delete(row)
        self._cache.pop(prefix, None)
        if self._audit:
            self._audit.record(actor, "key.delete", f"key:{name}", before={"exists": True})

    def is_cached(self, token: str) -> bool:
        """Whether :meth:`authenticate` can answer for ``token`` without the database."""
        match = KEY_PATTERN.fullmatch(token)
        if not match:
            return True  # refused without a lookup
        cached = self._cache.get(match[1])
        return cached is not None and time.monotonic() - cached[0] <= self._ttl

    def authenticate(self, token: str) -> ApiKey:
        """The active key ``token`` is.

        Raises:
            UnauthorizedError: malformed, unknown, revoked or expired.
        """
        match = KEY_PATTERN.fullmatch(token)
        if not match:
            raise UnauthorizedError("malformed API key: expected aiw_<prefix>_<secret>")
        prefix = match[1]
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is None or now - cached[0] > self._ttl:
            with self._sessions() as session:
                row = session.scalar(select(SqlApiKey).where(SqlApiKey.prefix == prefix))
                if row is None:
                    raise UnauthorizedError("unknown API key")
                cached = (now, _entity(row), row.secret_sha256)
            self._cache[prefix] = cached
        _, key, digest = cached
        if not hmac.compare_digest(digest, _sha256(token)):
            raise UnauthorizedError("unknown API key")
        state = key.state()
        if state != "active":
            raise UnauthorizedError(f"API key {key.name!r} is {state}")
        return key

    def ensure_admin_key(self, name: str = "admin") -> str | None:
        """On first start (no active key at all), create an admin key and return its
        secret; otherwise return ``None``."""
        keys = self.list()
        now = datetime.now(UTC)
        if any(k.state(now) == "active" for k in keys):
            return None
        taken = {k.name for k in keys}
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}-{n}"
        _, secret = self.create(candidate, ["admin"], actor="first-start")
        return secret
