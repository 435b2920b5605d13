"""Tables of the assistants, their conversations and the messages of each (migration 0019).

A conversation keeps the dialogue's :class:`~aiweb.assistant.dialogue.State` as JSON
(``state``) next to who answers it (``status``, the operator who took it); every message
is one row, numbered in the conversation (``seq``), with — for a bot turn — why it said
what it said (reply type, intent, confidence, slots, sources) and which model versions
answered, and the intents model's prediction id, which feedback on the turn goes to.
Deleting an assistant deletes its conversations, and a conversation its messages
(``ON DELETE CASCADE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aiweb.db.base import BIGINT_PK, Base, UTCDateTime, utcnow

__all__ = ["SqlAssistant", "SqlConversation", "SqlMessage"]


class SqlAssistant(Base):
    """An assistant: its name, its validated config and its webhook signing secret.

    ``revision`` grows by one with every change of the config, so a process that cached
    it knows when to read it again.
    """

    __tablename__ = "assistants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    #: HMAC-SHA256 key of the handoff webhook (shown once, when the assistant is created)
    secret: Mapped[str] = mapped_column(String(128), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SqlConversation(Base):
    """One conversation of a visitor with an assistant (and maybe an operator).

    ``status``: ``bot``, ``waiting_for_agent``, ``agent`` or ``closed``
    (:data:`aiweb.assistant.dialogue.STATUSES`); ``operator``: the dashboard user who
    took it; ``user_id``: the site's own id of the visitor, when the page gives one (the
    privacy erasure of a user deletes their conversations); ``messages``: how many
    messages it has (the last one's ``seq``; they count from 1); ``version``: grows with
    every write, so two writers (a visitor's turn and an operator's reply on other
    workers) never overwrite each other's state.
    """

    __tablename__ = "assistant_conversations"
    __table_args__ = (
        Index("ix_assistant_conversations_assistant_status", "assistant_id", "status"),
        Index("ix_assistant_conversations_updated_at", "updated_at"),
        Index("ix_assistant_conversations_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    assistant_id: Mapped[int] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="bot")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    operator: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(256))
    origin: Mapped[str | None] = mapped_column(String(256))
    messages: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SqlMessage(Base):
    """One message of a conversation: the visitor's, the bot's or an operator's.

    ``role``: ``visitor``, ``bot`` or ``agent``; for a bot or agent message ``type`` is
    the reply type (:data:`aiweb.assistant.dialogue.REPLY_TYPES`); ``versions`` the model
    versions that answered (``{"intents": "intents:3", "entities": "people:1"}``);
    ``prediction_id`` the intents model's logged prediction; ``author`` the operator;
    ``feedback`` the visitor's on a bot reply (``{"helpful", "intent", "at"}``).
    """

    __tablename__ = "assistant_messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_assistant_messages_conversation_seq"),
        Index("ix_assistant_messages_prediction_id", "prediction_id"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("assistant_conversations.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(8), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str | None] = mapped_column(String(16))
    intent: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    slots: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    versions: Mapped[dict[str, str] | None] = mapped_column(JSON)
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    feedback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
