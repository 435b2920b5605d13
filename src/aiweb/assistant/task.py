"""The assistant as an installed task (:mod:`aiweb.tasks`): its tables (migration 0019),
its routes (``/v1/assistants``, ``/v1/conversations``) and its service, built on the
services the text-classification, token-classification and search tasks provide; an
erasure (``POST /v1/privacy/erase``) deletes a visitor's conversations by ``user_id``;
retention (``AIWEB_RETENTION__CONVERSATIONS_DAYS``) deletes old ones."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from aiweb.assistant import routes
from aiweb.assistant.guard import in_use
from aiweb.assistant.live import Hub
from aiweb.assistant.orm import SqlAssistant, SqlConversation, SqlMessage
from aiweb.assistant.service import AssistantService
from aiweb.assistant.store import AssistantStore
from aiweb.classification.service import PredictionService
from aiweb.contract import Task, TaskContext, TaskRuntime, tables_of
from aiweb.db.base import utcnow
from aiweb.db.session import make_session_factory
from aiweb.entities.service import EntityService
from aiweb.jobs.env import JobEnv
from aiweb.search.service import SearchService

__all__ = ["TASK"]

T = TypeVar("T")


def _optional(ctx: TaskContext, kind: type[T]) -> T | None:
    try:
        return ctx.get(kind)
    except LookupError:
        return None


def erase_user(env: JobEnv, user_id: str) -> dict[str, int]:
    """Erase the conversations of the visitor the site knows as ``user_id`` (the
    ``user_id`` sent with their first message) and their messages.

    Returns:
        ``{"conversations": n, "messages": m}``.
    """
    return AssistantStore(make_session_factory(env.engine)).erase_user(user_id)


def prune(env: JobEnv) -> dict[str, int]:
    """Delete the conversations not written to for ``AIWEB_RETENTION__CONVERSATIONS_DAYS``
    (default 90) with their messages, in batches; ``{"conversations": n}``."""
    days = env.settings.retention.conversations_days
    if days is None:
        return {}
    cutoff = utcnow() - timedelta(days=days)
    store = AssistantStore(make_session_factory(env.engine))
    return {"conversations": store.prune(cutoff)}


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the assistant service (``app.state.assistants``) on the services the other
    tasks provide (those not installed answer 503 when a turn needs them)."""
    hub = Hub(ctx.settings.redis_url)  # live events across workers when Redis is set
    service = AssistantService(
        AssistantStore(make_session_factory(ctx.engine)),
        ctx.registry,
        predictions=_optional(ctx, PredictionService),
        entities=_optional(ctx, EntityService),
        search=_optional(ctx, SearchService),
        hub=hub,
    )
    return TaskRuntime(state={"assistants": service}, started=hub.start, close=hub.close)


TASK = Task(
    name="assistant",
    routers=(routes.router,),
    tables=tables_of(SqlAssistant, SqlConversation, SqlMessage),
    start=start,
    erase_user=erase_user,
    prune=prune,
    deletion_guard=in_use,
)
