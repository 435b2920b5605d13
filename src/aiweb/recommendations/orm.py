"""Tables of the recommendation data: the item catalogue and the interaction log.

They live on the project's declarative base (:mod:`aiweb.db.base`), so Alembic and the
migration test see them once :mod:`aiweb.recommendations.orm` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aiweb.db.base import BIGINT_PK, Base, UTCDateTime, utcnow


class SqlItem(Base):
    """One item of the catalogue. Deleting an item keeps the row (``deleted``), so every
    process sees that it must no longer be recommended; upserting it again revives it."""

    __tablename__ = "rec_items"

    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    title: Mapped[str] = mapped_column(Text, nullable=False, default="")
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    #: ``metadata`` is reserved by SQLAlchemy's declarative classes
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    available: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SqlInteraction(Base):
    """One event: a user viewed, clicked, liked, rated or bought an item (or a custom type).

    ``id`` increases with every insert: a model records the highest id it was trained on,
    so serving knows which interactions came after training. ``event_id`` (optional,
    from the client) makes a retried POST idempotent.
    """

    __tablename__ = "rec_interactions"
    __table_args__ = (
        Index("ix_rec_interactions_user_id", "user_id", "id"),
        Index("ix_rec_interactions_event_id", "event_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    event_id: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    item_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SqlServedList(Base):
    """A recommendation list served to a user while a rollout of its model ran: the
    evidence of the click-through rate a rollout judges (:func:`aiweb.recommendations.
    rollout.ctr`). Erased with the user's interactions."""

    __tablename__ = "rec_served_lists"
    __table_args__ = (
        Index("ix_rec_served_lists_model_version_served_at", "model", "version", "served_at"),
        Index("ix_rec_served_lists_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(63), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    items: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    served_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
