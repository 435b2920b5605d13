"""Open the registry named by the settings (no web app, no model runtimes imported)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

from aiweb.db.session import engine_for, make_session_factory
from aiweb.registry.artifacts import open_artifact_store
from aiweb.registry.entities import PRODUCTION, AliasEvent
from aiweb.registry.service import RegistryService
from aiweb.registry.sql_store import SqlRegistryStore
from aiweb.security.audit import AuditLog
from aiweb.webhooks.service import emit

if TYPE_CHECKING:  # the caller has built the settings
    from aiweb.config import Settings


def build_registry(settings: Settings) -> tuple[RegistryService, Engine]:
    """Open the database and artifact store named by ``settings``.

    Returns:
        ``(registry, engine)``; the caller disposes the engine.
    """
    settings.ensure_dirs()
    engine = engine_for(settings)
    sessions = make_session_factory(engine)
    registry = RegistryService(
        SqlRegistryStore(sessions),
        open_artifact_store(settings),
        AuditLog(sessions),
    )

    def promoted(event: AliasEvent) -> None:  # webhooks' model.promoted (docs/webhooks.md)
        if event.alias == PRODUCTION and event.to_version is not None:
            emit(
                sessions,
                "model.promoted",
                {
                    "model": event.name,
                    "alias": event.alias,
                    "version": event.to_version,
                    "from_version": event.from_version,
                    "action": event.action,
                    "actor": event.actor,
                    "moved_at": event.created_at.isoformat(),
                },
            )

    registry.on_alias_event(promoted)
    return registry, engine
