"""Storage of items and interactions (SQLite or PostgreSQL), behind plain dataclasses.

Writes commit before they return, so an API answer of 2xx means the data is durable.
Upserts use the dialect's ``INSERT … ON CONFLICT`` (SQLite ≥ 3.24 and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Engine,
    bindparam,
    cast,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import utcnow
from aiweb.db.session import make_session_factory, transaction
from aiweb.errors import InvalidInputError, ItemNotFound
from aiweb.recommendations.orm import SqlInteraction, SqlItem, SqlServedList

#: rows per INSERT statement (SQLite allows 32,766 bound variables)
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class Item:
    """A catalogue item, as the API takes it.

    Attributes:
        item_id: the application's id.
        title, text: shown and used by content-based recommendations.
        categories: filterable categories (``?category=``).
        tags: free-text tags (content-based).
        metadata: anything the application wants back; not interpreted.
        available: ``False`` hides the item from recommendations.
    """

    item_id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    available: bool = True


@dataclass(frozen=True)
class Interaction:
    """One event.

    Attributes:
        user_id, item_id: who and what.
        type: ``view``, ``click``, ``like``, ``rating``, ``purchase`` or a custom name.
        value: e.g. the stars of a rating; ``None`` when the type has none.
        occurred_at: when it happened (timezone-aware UTC).
        event_id: the client's id of the event, for idempotent retries.
    """

    user_id: str
    item_id: str
    type: str
    occurred_at: datetime
    value: float | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class UserEvent:
    """An interaction as serving reads it: the item, the time and the log id."""

    id: int
    item_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class CatalogEntry:
    """What serving needs to filter an item: availability and categories."""

    available: bool
    categories: frozenset[str]


@dataclass(frozen=True)
class StoredItem:
    """A catalogue item as it is read back, and when it was last written.

    Attributes:
        item: the item, as it was last upserted (``available`` as given then).
        updated_at: when it was last written (timezone-aware UTC).
    """

    item: Item
    updated_at: datetime


@dataclass(frozen=True)
class ItemSummary:
    """What an application shows of a recommended item (``?include=item``).

    Attributes:
        item_id, title, categories, metadata: as upserted.
        available: ``False`` when the item is hidden from recommendations.
    """

    item_id: str
    title: str
    categories: tuple[str, ...]
    metadata: dict[str, Any]
    available: bool


@dataclass(frozen=True)
class TrainingRows:
    """Everything training reads, columnar.

    Attributes:
        user_ids, item_ids: ``n`` interactions' user and item ids, in log order.
        times: ``n`` Unix seconds.
        last_id: the highest interaction id read (0 when none).
        items: the catalogue (deleted items excluded).
    """

    user_ids: list[str]
    item_ids: list[str]
    times: list[float]
    last_id: int
    items: list[Item]


_EVENTS_SINCE = (
    select(SqlInteraction.id, SqlInteraction.item_id, SqlInteraction.occurred_at)
    .where(
        SqlInteraction.user_id == bindparam("user_id"),
        SqlInteraction.id > bindparam("after_id"),
    )
    .order_by(SqlInteraction.id.desc())
    .limit(bindparam("limit"))
)


def _insert(session: Session, table: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for lo in range(0, len(rows), CHUNK_ROWS):
        yield rows[lo : lo + CHUNK_ROWS]


class RecommendationStore:
    """Items and interactions on a database.

    Args:
        engine: a migrated database (revision 0006 or later).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)

    # ------------------------------------------------------------------ items

    def upsert_items(self, items: Sequence[Item]) -> int:
        """Insert or replace ``items`` (a later duplicate id in the list wins).

        Returns:
            The number of distinct items written.
        """
        for item in items:
            _no_nul(f"item {item.item_id!r}", item.item_id, item.title, item.text)
            _no_nul(f"item {item.item_id!r}", *item.categories, *item.tags)
        now = utcnow()
        latest = {item.item_id: item for item in items}
        rows = [
            {
                "item_id": i.item_id,
                "title": i.title,
                "text": i.text,
                "categories": list(i.categories),
                "tags": list(i.tags),
                "metadata": i.metadata,
                "available": i.available,
                "deleted": False,
                "updated_at": now,
            }
            for i in latest.values()
        ]
        with transaction(self.sessions) as session:
            for chunk in _chunks(rows):
                stmt = _insert(session, SqlItem.__table__)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["item_id"],
                    set_={
                        c: getattr(stmt.excluded, c)
                        for c in (
                            "title",
                            "text",
                            "categories",
                            "tags",
                            "metadata",
                            "available",
                            "deleted",
                            "updated_at",
                        )
                    },
                )
                session.execute(stmt, list(chunk))
        return len(rows)

    def delete_item(self, item_id: str) -> None:
        """Remove an item from the catalogue (its interactions are kept).

        Raises:
            ItemNotFound: no such item (or deleted already).
        """
        with transaction(self.sessions) as session:
            result = session.execute(
                update(SqlItem)
                .where(SqlItem.item_id == item_id, SqlItem.deleted.is_(False))
                .values(deleted=True, available=False, updated_at=utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise ItemNotFound(f"no item {item_id!r} in the catalogue")

    def get_item(self, item_id: str) -> Item:
        """Raises ItemNotFound when absent or deleted."""
        with self.sessions() as session:
            row = session.get(SqlItem, item_id)
            if row is None or row.deleted:
                raise ItemNotFound(f"no item {item_id!r} in the catalogue")
            return _item(row)

    def read_item(self, item_id: str) -> StoredItem:
        """One item and when it was last written, by primary key.

        Raises:
            ItemNotFound: absent, or deleted.
        """
        with self.sessions() as session:
            row = session.get(SqlItem, item_id)
            if row is None or row.deleted:
                raise ItemNotFound(f"no item {item_id!r} in the catalogue")
            return StoredItem(_item(row), row.updated_at)

    def list_items(
        self, *, after: str | None = None, limit: int = 50, category: str | None = None
    ) -> list[StoredItem]:
        """The catalogue in ``item_id`` order (keyset pagination), deleted items left out,
        unavailable ones included.

        One range scan of the primary key from ``after``; a ``category`` is tested row by
        row on that scan (JSONB containment on PostgreSQL, ``json_each`` on SQLite).

        Args:
            after: list the ids after this one (the last id of the previous page).
            limit: at most this many items.
            category: only items with this category.
        """
        query = select(SqlItem).where(SqlItem.deleted.is_(False))
        if after is not None:
            query = query.where(SqlItem.item_id > after)
        with self.sessions() as session:
            if category is not None:
                query = query.where(_has_category(session.get_bind().dialect.name, category))
            rows = session.execute(query.order_by(SqlItem.item_id).limit(limit)).scalars()
            return [StoredItem(_item(row), row.updated_at) for row in rows]

    def item_summaries(self, item_ids: Sequence[str]) -> dict[str, ItemSummary]:
        """``{item_id: summary}`` of the live catalogue items among ``item_ids``, in one
        primary-key query (ids not in the catalogue, or deleted, are left out)."""
        if not item_ids:
            return {}
        query = select(
            SqlItem.item_id, SqlItem.title, SqlItem.categories, SqlItem.meta, SqlItem.available
        ).where(SqlItem.item_id.in_(list(item_ids)), SqlItem.deleted.is_(False))
        with self.sessions() as session:
            return {
                item_id: ItemSummary(
                    item_id=item_id,
                    title=title,
                    categories=tuple(categories or ()),
                    metadata=dict(meta or {}),
                    available=bool(available),
                )
                for item_id, title, categories, meta, available in session.execute(query)
            }

    def item_titles(self, item_ids: Sequence[str]) -> dict[str, str]:
        """``{item_id: title}`` of the catalogue rows among ``item_ids``, in one query
        (ids not in the catalogue are left out)."""
        if not item_ids:
            return {}
        query = select(SqlItem.item_id, SqlItem.title).where(SqlItem.item_id.in_(item_ids))
        with self.sessions() as session:
            return {row.item_id: row.title for row in session.execute(query)}

    def catalog(self) -> dict[str, CatalogEntry]:
        """Availability and categories of every item row (deleted items: unavailable)."""
        with self.sessions() as session:
            rows = session.execute(
                select(SqlItem.item_id, SqlItem.available, SqlItem.deleted, SqlItem.categories)
            ).all()
        return {
            item_id: CatalogEntry(available and not deleted, frozenset(categories or ()))
            for item_id, available, deleted, categories in rows
        }

    def catalog_stamp(self) -> tuple[int, datetime | None]:
        """``(rows, newest updated_at)`` of the catalogue: changes when any item does."""
        with self.sessions() as session:
            count, newest = session.execute(
                select(func.count(), func.max(SqlItem.updated_at))
            ).one()
        if isinstance(newest, str):  # SQLite returns aggregates unconverted
            newest = datetime.fromisoformat(newest)
        return int(count), newest

    # ------------------------------------------------------------------ interactions

    def add_interactions(self, events: Sequence[Interaction]) -> tuple[int, int]:
        """Append events; one whose ``event_id`` is already stored is skipped.

        Returns:
            ``(stored, duplicates)``.
        """
        for e in events:
            _no_nul("an interaction", e.user_id, e.item_id, e.type, e.event_id or "")
        now = utcnow()
        rows = [
            {
                "event_id": e.event_id,
                "user_id": e.user_id,
                "item_id": e.item_id,
                "type": e.type,
                "value": e.value,
                "occurred_at": e.occurred_at,
                "created_at": now,
            }
            for e in events
        ]
        stored = 0
        with transaction(self.sessions) as session:
            for chunk in _chunks(rows):
                keyed = [r for r in chunk if r["event_id"] is not None]
                plain = [r for r in chunk if r["event_id"] is None]
                if plain:
                    session.execute(_insert(session, SqlInteraction.__table__), plain)
                    stored += len(plain)
                if keyed:
                    # a duplicate inside the batch counts once, like one already stored
                    unique = {r["event_id"]: r for r in keyed}
                    known = set(
                        session.execute(
                            select(SqlInteraction.event_id).where(
                                SqlInteraction.event_id.in_(list(unique))
                            )
                        ).scalars()
                    )
                    fresh = [r for e, r in unique.items() if e not in known]
                    if fresh:
                        # ON CONFLICT covers a concurrent writer of the same event ids
                        stmt = _insert(session, SqlInteraction.__table__).on_conflict_do_nothing(
                            index_elements=["event_id"]
                        )
                        session.execute(stmt, fresh)
                        stored += len(fresh)
        return stored, len(rows) - stored

    def user_events(self, user_id: str, limit: int = 1000) -> list[UserEvent]:
        """The user's latest ``limit`` interactions, oldest first."""
        return self.user_events_since(user_id, 0, limit)

    def user_events_since(self, user_id: str, after_id: int, limit: int = 1000) -> list[UserEvent]:
        """The user's latest ``limit`` interactions with a log id above ``after_id``
        (those a model trained up to ``after_id`` has not seen), oldest first.

        One range scan of the ``(user_id, id)`` index; the statement is built once (building
        a SQLAlchemy ``select`` costs more than running this query on SQLite).
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                _EVENTS_SINCE, {"user_id": user_id, "after_id": after_id, "limit": limit}
            ).all()
        events = [UserEvent(id=r[0], item_id=r[1], occurred_at=r[2]) for r in rows]
        events.sort(key=lambda e: (e.occurred_at, e.id))
        return events

    def delete_served_lists(self, user_id: str) -> int:
        """Delete the lists served to ``user_id`` under rollouts (an erasure).

        Returns:
            How many were deleted.
        """
        with transaction(self.sessions) as session:
            result = session.execute(delete(SqlServedList).where(SqlServedList.user_id == user_id))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def delete_user(self, user_id: str, *, batch_rows: int = 1000) -> int:
        """Delete every interaction of ``user_id`` (an erasure), ``batch_rows`` per
        transaction (ranges of the ``(user_id, id)`` index), so no transaction is long.

        Returns:
            How many interactions were deleted.
        """
        deleted = 0
        while True:
            with transaction(self.sessions) as session:
                ids = list(
                    session.scalars(
                        select(SqlInteraction.id)
                        .where(SqlInteraction.user_id == user_id)
                        .order_by(SqlInteraction.id)
                        .limit(batch_rows)
                    )
                )
                if not ids:
                    return deleted
                result = session.execute(
                    delete(SqlInteraction).where(
                        SqlInteraction.user_id == user_id,
                        SqlInteraction.id.in_(ids),
                    )
                )
                deleted += int(result.rowcount)  # type: ignore[attr-defined]
            if len(ids) < batch_rows:
                return deleted

    def count_interactions(self) -> int:
        with self.sessions() as session:
            return int(session.execute(select(func.count()).select_from(SqlInteraction)).one()[0])

    def training_rows(self) -> TrainingRows:
        """Every interaction (columnar) and the catalogue, for training."""
        with self.sessions() as session:
            rows = session.execute(
                select(
                    SqlInteraction.id,
                    SqlInteraction.user_id,
                    SqlInteraction.item_id,
                    SqlInteraction.occurred_at,
                ).order_by(SqlInteraction.id)
            ).all()
            items = [
                _item(r)
                for r in session.execute(
                    select(SqlItem).where(SqlItem.deleted.is_(False)).order_by(SqlItem.item_id)
                ).scalars()
            ]
        return TrainingRows(
            user_ids=[r[1] for r in rows],
            item_ids=[r[2] for r in rows],
            times=[_seconds(r[3]) for r in rows],
            last_id=int(rows[-1][0]) if rows else 0,
            items=items,
        )


def _seconds(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _no_nul(what: str, *values: str) -> None:
    """Raises InvalidInputError when a value holds NUL (PostgreSQL text cannot; refused on
    SQLite too, so a catalogue moves between the two)."""
    if any("\x00" in v for v in values):
        raise InvalidInputError(
            f"{what[:300]}: ids, titles, texts, categories and tags cannot hold NUL (\\x00)"
        )


def _has_category(dialect: str, category: str) -> ColumnElement[bool]:
    """``category`` is one of the row's ``categories`` (a JSON array of strings)."""
    if dialect == "postgresql":
        contains = cast(SqlItem.categories, JSONB).op("@>", return_type=Boolean())
        return contains(bindparam(None, [category], type_=JSONB()))
    each = func.json_each(SqlItem.categories).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == category))


def _item(row: SqlItem) -> Item:
    return Item(
        item_id=row.item_id,
        title=row.title,
        text=row.text,
        categories=tuple(row.categories or ()),
        tags=tuple(row.tags or ()),
        metadata=dict(row.meta or {}),
        available=row.available,
    )
