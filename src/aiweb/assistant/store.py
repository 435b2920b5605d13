"""Assistants, conversations and messages in the database (tables: :mod:`.orm`).

:class:`AssistantStore` is what the assistant's service, routes, CLI and dashboard
read and write through. Two rules hold every write:

- **A turn is one transaction**: the visitor's message, the reply and the new dialogue
  state are written together, so a crash never keeps a reply without its message or a
  state without the messages that made it.
- **Writers never overwrite each other**: a conversation's ``version`` grows with every
  write; a turn or an operator's action that read version ``v`` writes only while it is
  still ``v`` (:class:`StaleConversation` otherwise, and the caller reads again and
  retries), so a visitor's turn on one worker and an operator's reply on another cannot
  lose either's change.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.dialogue import Reply, State
from aiweb.assistant.orm import SqlAssistant, SqlConversation, SqlMessage
from aiweb.db.base import utcnow
from aiweb.db.session import transaction
from aiweb.errors import (
    AssistantNotFound,
    ConflictError,
    ConversationNotFound,
    StaleConversation,
)

__all__ = [
    "MAX_PAGE",
    "AssistantRecord",
    "AssistantStore",
    "ConversationRecord",
    "agent_message",
    "reply_message",
    "visitor_message",
]

#: Most conversations per list page, most messages per conversation read.
MAX_PAGE = 200
MAX_MESSAGES = 1000


@dataclass(frozen=True)
class AssistantRecord:
    """A stored assistant (``secret``: its webhook signing key)."""

    id: int
    name: str
    config: AssistantConfig
    secret: str
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """The assistant as the API shows it (without the secret)."""
        return {
            "name": self.name,
            "config": self.config.public(),
            "revision": self.revision,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class ConversationRecord:
    """A stored conversation; ``messages`` holds its messages when they were asked for."""

    id: str
    assistant: str
    status: str
    state: State
    operator: str | None
    user_id: str | None
    origin: str | None
    message_count: int
    version: int
    created_at: datetime
    updated_at: datetime
    messages: tuple[dict[str, Any], ...] = ()

    def public(self) -> dict[str, Any]:
        """The conversation as the API shows it."""
        out: dict[str, Any] = {
            "id": self.id,
            "assistant": self.assistant,
            "status": self.status,
            "operator": self.operator,
            "user_id": self.user_id,
            "origin": self.origin,
            "slots": {name: filled["value"] for name, filled in self.state.slots.items()},
            "intent": self.state.intent,
            "message_count": self.message_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if self.messages:
            out["messages"] = list(self.messages)
        return out


def _message_out(row: SqlMessage) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "role": row.role,
        "text": row.text,
        "type": row.type,
        "intent": row.intent,
        "confidence": row.confidence,
        "slots": row.slots,
        "sources": row.sources or [],
        "versions": row.versions or {},
        "prediction_id": row.prediction_id,
        "author": row.author,
        "created_at": row.created_at.isoformat(),
        "feedback": row.feedback,
    }


class AssistantStore:
    """Reads and writes assistants and their conversations (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ---- assistants ------------------------------------------------------------------------

    def put(
        self, name: str, config: AssistantConfig, *, actor: str
    ) -> tuple[AssistantRecord, bool]:
        """Create the assistant ``name`` or replace its config.

        Returns:
            ``(the assistant, created)``; a new assistant gets a new webhook secret
            (:meth:`rotate_secret` gives another one later).
        """
        now = utcnow()
        for _ in range(2):  # a concurrent create of the same name: the second one updates
            try:
                with transaction(self._sessions) as s:
                    row = s.scalars(
                        select(SqlAssistant).where(SqlAssistant.name == name).with_for_update()
                    ).one_or_none()
                    created = row is None
                    if row is None:
                        row = SqlAssistant(
                            name=name,
                            config=config.public(),
                            secret=secrets.token_urlsafe(32),
                            revision=1,
                            created_by=actor,
                            created_at=now,
                            updated_at=now,
                        )
                        s.add(row)
                    else:
                        row.config = config.public()
                        row.revision += 1
                        row.updated_at = now
                    s.flush()
                    return self._assistant(row), created
            except IntegrityError:
                continue
        raise ConflictError(f"assistant {name!r} was created concurrently; try again")

    def get(self, name: str) -> AssistantRecord:
        """The assistant ``name``; raises :class:`AssistantNotFound`."""
        with self._sessions() as s:
            row = s.scalars(select(SqlAssistant).where(SqlAssistant.name == name)).one_or_none()
            if row is None:
                raise AssistantNotFound(f"no assistant is named {name!r}")
            return self._assistant(row)

    def assistants(self) -> list[AssistantRecord]:
        """Every assistant, by name."""
        with self._sessions() as s:
            rows = s.scalars(select(SqlAssistant).order_by(SqlAssistant.name)).all()
            return [self._assistant(r) for r in rows]

    def delete(self, name: str) -> dict[str, int]:
        """Delete the assistant ``name`` with its conversations and their messages.

        Returns:
            ``{"conversations": n, "messages": m}`` deleted.
        """
        with transaction(self._sessions) as s:
            row = s.scalars(
                select(SqlAssistant).where(SqlAssistant.name == name).with_for_update()
            ).one_or_none()
            if row is None:
                raise AssistantNotFound(f"no assistant is named {name!r}")
            counts = self._count(s, SqlConversation.assistant_id == row.id)
            s.delete(row)
            return counts

    def rotate_secret(self, name: str) -> str:
        """Give the assistant ``name`` a new webhook secret and return it."""
        secret = secrets.token_urlsafe(32)
        with transaction(self._sessions) as s:
            done = s.execute(
                update(SqlAssistant)
                .where(SqlAssistant.name == name)
                .values(secret=secret, updated_at=utcnow())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise AssistantNotFound(f"no assistant is named {name!r}")
        return secret

    @staticmethod
    def _assistant(row: SqlAssistant) -> AssistantRecord:
        return AssistantRecord(
            id=row.id,
            name=row.name,
            config=AssistantConfig.model_validate(row.config),
            secret=row.secret,
            revision=row.revision,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # ---- conversations ---------------------------------------------------------------------

    def start(
        self, assistant: str, *, origin: str | None = None, user_id: str | None = None
    ) -> ConversationRecord:
        """A new conversation with ``assistant`` (no message yet)."""
        now = utcnow()
        with transaction(self._sessions) as s:
            owner = s.scalars(
                select(SqlAssistant.id).where(SqlAssistant.name == assistant)
            ).one_or_none()
            if owner is None:
                raise AssistantNotFound(f"no assistant is named {assistant!r}")
            row = SqlConversation(
                id=uuid.uuid4().hex,
                assistant_id=owner,
                status="bot",
                state=State().to_json(),
                origin=origin,
                user_id=user_id,
                messages=0,
                version=1,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return self._conversation(row, assistant)

    def conversation(
        self, conversation_id: str, *, messages: bool = False, assistant: str | None = None
    ) -> ConversationRecord:
        """The conversation ``conversation_id`` (with its last :data:`MAX_MESSAGES`
        messages when ``messages``); with ``assistant``, only if it is that assistant's.

        Raises:
            ConversationNotFound: no such conversation (for that assistant).
        """
        with self._sessions() as s:
            found = s.execute(
                select(SqlConversation, SqlAssistant.name)
                .join(SqlAssistant, SqlAssistant.id == SqlConversation.assistant_id)
                .where(SqlConversation.id == conversation_id)
            ).one_or_none()
            if found is None or (assistant is not None and found[1] != assistant):
                raise ConversationNotFound(f"no conversation has the id {conversation_id!r}")
            row, name = found
            out: tuple[dict[str, Any], ...] = ()
            if messages:
                rows = s.scalars(
                    select(SqlMessage)
                    .where(SqlMessage.conversation_id == conversation_id)
                    .order_by(SqlMessage.seq.desc())
                    .limit(MAX_MESSAGES)
                ).all()
                out = tuple(_message_out(m) for m in reversed(rows))
            return self._conversation(row, name, out)

    def messages_after(
        self, conversation_id: str, after: int, *, assistant: str, limit: int = MAX_PAGE
    ) -> tuple[ConversationRecord, list[dict[str, Any]]]:
        """The conversation and its messages with ``seq > after`` (oldest first, at most
        ``limit``): what a visitor's page has not shown yet.

        Raises:
            ConversationNotFound: no such conversation of ``assistant``.
        """
        conversation = self.conversation(conversation_id, assistant=assistant)
        with self._sessions() as s:
            rows = s.scalars(
                select(SqlMessage)
                .where(SqlMessage.conversation_id == conversation_id, SqlMessage.seq > after)
                .order_by(SqlMessage.seq)
                .limit(max(1, min(limit, MAX_PAGE)))
            ).all()
            return conversation, [_message_out(m) for m in rows]

    def message(self, conversation_id: str, seq: int, *, assistant: str) -> dict[str, Any]:
        """One message of a conversation of ``assistant``.

        Raises:
            ConversationNotFound: no such conversation of ``assistant``, or no message
                ``seq`` in it.
        """
        self.conversation(conversation_id, assistant=assistant)
        with self._sessions() as s:
            row = s.scalar(
                select(SqlMessage).where(
                    SqlMessage.conversation_id == conversation_id, SqlMessage.seq == seq
                )
            )
            if row is None:
                raise ConversationNotFound(f"conversation {conversation_id} has no message {seq}")
            return _message_out(row)

    def set_feedback(self, conversation_id: str, seq: int, feedback: dict[str, Any]) -> None:
        """Store a visitor's ``feedback`` on message ``seq`` (replacing earlier feedback)."""
        with transaction(self._sessions) as s:
            s.execute(
                update(SqlMessage)
                .where(SqlMessage.conversation_id == conversation_id, SqlMessage.seq == seq)
                .values(feedback=feedback)
            )

    def conversations(
        self,
        *,
        assistant: str | None = None,
        status: str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[ConversationRecord]:
        """Conversations, the most recently updated first (``before``: older than that
        ``updated_at``, for the next page), at most ``limit`` (≤ :data:`MAX_PAGE`)."""
        query = select(SqlConversation, SqlAssistant.name).join(
            SqlAssistant, SqlAssistant.id == SqlConversation.assistant_id
        )
        if assistant is not None:
            query = query.where(SqlAssistant.name == assistant)
        if status is not None:
            query = query.where(SqlConversation.status == status)
        if before is not None:
            query = query.where(SqlConversation.updated_at < before)
        query = query.order_by(SqlConversation.updated_at.desc(), SqlConversation.id).limit(
            max(1, min(limit, MAX_PAGE))
        )
        with self._sessions() as s:
            return [self._conversation(row, name) for row, name in s.execute(query).all()]

    def record(
        self,
        conversation: ConversationRecord,
        state: State,
        messages: Sequence[dict[str, Any]],
        *,
        operator: str | None = None,
        set_operator: bool = False,
        also: Callable[[Session, ConversationRecord], object] | None = None,
    ) -> ConversationRecord:
        """Append ``messages`` to ``conversation`` and store ``state``, in one transaction,
        if the conversation is still at the version it was read at.

        Args:
            conversation: as read (its ``version`` is the one expected).
            state: the new dialogue state (its ``status`` becomes the conversation's).
            messages: ``{"role", "text", …}`` each (the columns of :class:`SqlMessage`;
                :func:`reply_message` builds a bot's from its :class:`Reply`).
            operator: with ``set_operator``, the new operator (``None`` clears it).
            also: ``also(session, conversation)`` runs in the same transaction after the
                messages are added (a webhook event queued with the turn).

        Raises:
            StaleConversation: it changed since it was read.
            ConversationNotFound: it was deleted.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "state": state.to_json(),
            "status": state.status,
            "messages": SqlConversation.messages + len(messages),
            "version": SqlConversation.version + 1,
            "updated_at": now,
        }
        if set_operator:
            values["operator"] = operator
        with transaction(self._sessions) as s:
            done = s.execute(
                update(SqlConversation)
                .where(
                    SqlConversation.id == conversation.id,
                    SqlConversation.version == conversation.version,
                )
                .values(**values)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                exists = s.scalar(
                    select(func.count())
                    .select_from(SqlConversation)
                    .where(SqlConversation.id == conversation.id)
                )
                if not exists:
                    raise ConversationNotFound(f"no conversation has the id {conversation.id!r}")
                raise StaleConversation(
                    f"conversation {conversation.id} changed since it was read; read it again"
                )
            first = s.scalar(
                select(SqlConversation.messages).where(SqlConversation.id == conversation.id)
            )
            seq = int(first or 0) - len(messages) + 1  # a conversation's messages: 1, 2, …
            for i, message in enumerate(messages):
                s.add(
                    SqlMessage(
                        conversation_id=conversation.id,
                        seq=seq + i,
                        created_at=now,
                        **message,
                    )
                )
            if also is not None:
                s.flush()
                also(s, conversation)
        return self.conversation(conversation.id)

    def recent_messages(self, s: Session, conversation_id: str, n: int) -> list[dict[str, Any]]:
        """The last ``n`` messages of a conversation in session ``s``, oldest first."""
        rows = s.scalars(
            select(SqlMessage)
            .where(SqlMessage.conversation_id == conversation_id)
            .order_by(SqlMessage.seq.desc())
            .limit(n)
        ).all()
        return [_message_out(m) for m in reversed(rows)]

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory (for writes that join the assistant's, e.g. webhooks)."""
        return self._sessions

    def erase(self, conversation_id: str) -> dict[str, int]:
        """Delete one conversation and its messages; ``{"conversations": 1, "messages": n}``."""
        with transaction(self._sessions) as s:
            counts = self._count(s, SqlConversation.id == conversation_id)
            if not counts["conversations"]:
                raise ConversationNotFound(f"no conversation has the id {conversation_id!r}")
            s.execute(delete(SqlConversation).where(SqlConversation.id == conversation_id))
            return counts

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Delete the conversations of the visitor the site knows as ``user_id``."""
        with transaction(self._sessions) as s:
            counts = self._count(s, SqlConversation.user_id == user_id)
            s.execute(delete(SqlConversation).where(SqlConversation.user_id == user_id))
            return counts

    def prune(self, cutoff: datetime, *, batch_rows: int = 500) -> int:
        """Delete the conversations not updated since ``cutoff`` (retention), in batches
        of ``batch_rows`` conversations, one transaction each; returns how many."""
        deleted = 0
        while True:
            with transaction(self._sessions) as s:
                ids = list(
                    s.scalars(
                        select(SqlConversation.id)
                        .where(SqlConversation.updated_at < cutoff)
                        .limit(batch_rows)
                    ).all()
                )
                if not ids:
                    return deleted
                done = s.execute(
                    delete(SqlConversation).where(
                        SqlConversation.id.in_(ids), SqlConversation.updated_at < cutoff
                    )
                )
                deleted += int(done.rowcount)  # type: ignore[attr-defined]
            if len(ids) < batch_rows:
                return deleted

    @staticmethod
    def _count(s: Session, where: Any) -> dict[str, int]:
        ids = select(SqlConversation.id).where(where).scalar_subquery()
        conversations = s.scalar(select(func.count()).select_from(SqlConversation).where(where))
        messages = s.scalar(
            select(func.count()).select_from(SqlMessage).where(SqlMessage.conversation_id.in_(ids))
        )
        return {"conversations": int(conversations or 0), "messages": int(messages or 0)}

    @staticmethod
    def _conversation(
        row: SqlConversation, assistant: str, messages: tuple[dict[str, Any], ...] = ()
    ) -> ConversationRecord:
        return ConversationRecord(
            id=row.id,
            assistant=assistant,
            status=row.status,
            state=State.from_json(row.state),
            operator=row.operator,
            user_id=row.user_id,
            origin=row.origin,
            message_count=row.messages,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            messages=messages,
        )


def visitor_message(text: str) -> dict[str, Any]:
    """The row values of a visitor's message."""
    return {"role": "visitor", "text": text}


def reply_message(reply: Reply, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """The row values of the bot's ``reply`` (``versions``: the model versions asked)."""
    return {
        "role": "bot",
        "text": reply.text,
        "type": reply.type,
        "intent": reply.intent,
        "confidence": reply.confidence,
        "slots": reply.slots or None,
        "sources": reply.sources or None,
        "versions": versions or None,
        "prediction_id": reply.prediction_id,
    }


def agent_message(text: str, operator: str) -> dict[str, Any]:
    """The row values of an operator's reply."""
    return {"role": "agent", "text": text, "type": "agent", "author": operator}
