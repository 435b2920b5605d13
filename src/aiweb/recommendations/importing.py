"""Import items and interactions from CSV / JSONL files, and MovieLens into the store.

Columns are named like the API fields (``item_id``, ``title``, ``text``, ``categories``,
``tags``; ``user_id``, ``item_id``, ``type``, ``value``, ``timestamp``, ``event_id``);
a mapping renames them. List-valued columns are split on ``|`` (a JSON array is read as
one). Timestamps are Unix seconds or ISO 8601 (UTC when no offset is given); an
interaction without one (no ``timestamp`` column, or an empty value) happened at the time
of the import, as over HTTP.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from aiweb.datasets.movielens import load_directory
from aiweb.datasets.tables import iter_table, table_format
from aiweb.db.orm import utcnow
from aiweb.errors import DataFormatError
from aiweb.recommendations.schemas import TYPE_PATTERN
from aiweb.recommendations.store import Interaction, Item, RecommendationStore

ITEM_FIELDS = ("item_id", "title", "text", "categories", "tags", "available")
INTERACTION_FIELDS = ("user_id", "item_id", "type", "value", "timestamp", "event_id")
CHUNK_ROWS = 5000
_TYPE = re.compile(TYPE_PATTERN)

#: ``progress(rows_done)``
RowProgress = Callable[[int], None]


def split_list(value: str | None) -> tuple[str, ...]:
    """``"a|b| c"`` -> ``("a", "b", "c")``; a JSON (or Python literal) array is read as a
    list; empty parts are dropped."""
    if value is None:
        return ()
    text = value.strip()
    if text.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                return tuple(str(p).strip() for p in parsed if str(p).strip())
    return tuple(part.strip() for part in text.split("|") if part.strip())


def parse_timestamp(value: str | None, *, where: str) -> datetime:
    """Unix seconds (int or float) or ISO 8601; naive times are UTC.

    Raises:
        DataFormatError: empty or unreadable (``where`` names file and row).
    """
    if value is None or not value.strip():
        raise DataFormatError(f"{where}: timestamp is empty")
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    except (OverflowError, OSError):
        raise DataFormatError(f"{where}: timestamp {text[:40]!r} is out of range") from None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataFormatError(
            f"{where}: timestamp {text[:40]!r} is neither Unix seconds nor ISO 8601"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _chunks(
    path: Path, columns: dict[str, str], required: list[str]
) -> Iterator[tuple[int, dict[str, list[str | None]], int]]:
    """``(first row number, {field: values}, rows)`` per chunk, renamed to API fields
    (every field of ``columns`` has one value per row, ``None`` where the file has no such
    column: :class:`~aiweb.datasets.tables.TableChunk`)."""
    fmt = table_format(path.name)
    with path.open("rb") as fh:
        for chunk in iter_table(
            fh,
            fmt,
            name=path.name,
            columns=list(columns.values()),
            required=[columns[f] for f in required],
            chunk_rows=CHUNK_ROWS,
        ):
            values = {f: chunk.columns[c] for f, c in columns.items()}
            yield chunk.start, values, len(next(iter(values.values())))


def import_items(
    store: RecommendationStore,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    progress: RowProgress | None = None,
) -> int:
    """Upsert the items of a CSV/JSONL file.

    Args:
        store: where they go.
        path: the file.
        columns: API field -> column name in the file, for the columns named otherwise.
        progress: called with the rows read so far.

    Returns:
        Rows imported.

    Raises:
        DataFormatError: unknown file type, missing ``item_id`` column, an empty id.
    """
    mapping = {f: f for f in ITEM_FIELDS} | (columns or {})
    total = 0
    for start, values, n in _chunks(path, mapping, ["item_id"]):
        items = []
        for j in range(n):
            item_id = (values["item_id"][j] or "").strip()
            if not item_id:
                raise DataFormatError(f"{path.name}: row {start + j + 1}: item_id is empty")
            available = (values["available"][j] or "true").strip().lower()
            items.append(
                Item(
                    item_id=item_id,
                    title=values["title"][j] or "",
                    text=values["text"][j] or "",
                    categories=split_list(values["categories"][j]),
                    tags=split_list(values["tags"][j]),
                    available=available not in ("false", "0", "no"),
                )
            )
        store.upsert_items(items)
        total += n
        if progress is not None:
            progress(total)
    return total


def import_interactions(
    store: RecommendationStore,
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    default_type: str | None = None,
    progress: RowProgress | None = None,
) -> tuple[int, int]:
    """Append the interactions of a CSV/JSONL file.

    Args:
        store: where they go.
        path: the file.
        columns: API field -> column name in the file.
        default_type: the type of rows without a ``type`` column or value
            (``--type rating``).
        progress: called with the rows read so far.

    Rows without a timestamp (no ``timestamp`` column, or an empty value) get the time
    of the import, as ``POST /v1/interactions`` gives events without one; a column
    ``columns`` names for ``timestamp`` must exist.

    Returns:
        ``(stored, duplicates)``.

    Raises:
        DataFormatError: missing columns, an empty id, a bad type, value or timestamp.
    """
    mapping = {f: f for f in INTERACTION_FIELDS} | (columns or {})
    required = ["user_id", "item_id", *(["timestamp"] if "timestamp" in (columns or {}) else [])]
    now = utcnow()
    stored = duplicates = total = 0
    for start, values, n in _chunks(path, mapping, required):
        events = []
        for j in range(n):
            where = f"{path.name}: row {start + j + 1}"
            user_id = (values["user_id"][j] or "").strip()
            item_id = (values["item_id"][j] or "").strip()
            if not user_id or not item_id:
                raise DataFormatError(f"{where}: user_id and item_id must not be empty")
            kind = (values["type"][j] or default_type or "").strip()
            if not _TYPE.match(kind):
                raise DataFormatError(
                    f"{where}: type {kind[:40]!r} is not a lower-case name (give --type when "
                    "the file has no type column)"
                )
            raw_value = values["value"][j]
            try:
                value = float(raw_value) if raw_value not in (None, "") else None
            except ValueError:
                raise DataFormatError(
                    f"{where}: value {(raw_value or '')[:40]!r} is not a number"
                ) from None
            event_id = values["event_id"][j]
            raw_time = values["timestamp"][j]
            when = (
                parse_timestamp(raw_time, where=where)
                if raw_time is not None and raw_time.strip()
                else now
            )
            events.append(
                Interaction(
                    user_id=user_id,
                    item_id=item_id,
                    type=kind,
                    value=value,
                    occurred_at=when,
                    event_id=event_id or None,
                )
            )
        s, d = store.add_interactions(events)
        stored, duplicates, total = stored + s, duplicates + d, total + n
        if progress is not None:
            progress(total)
    return stored, duplicates


def import_movielens(
    store: RecommendationStore,
    directory: Path,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[int, int]:
    """Load MovieLens (``aiweb.datasets.movielens``) as items and rating interactions.

    Items: ``item_id`` = movieId, ``title``, genres as ``categories``, users' tags as
    ``tags``. Interactions: type ``rating``, ``value`` = stars, the rating's timestamp, and
    ``event_id`` ``ml:<userId>:<movieId>`` so importing twice stores every rating once.

    Args:
        progress: ``(stage, done, total)``.

    Returns:
        ``(items, ratings stored)``.
    """
    report = progress or (lambda _s, _d, _t: None)
    data = load_directory(directory)
    items = [Item(m.movie_id, m.title, "", m.genres, m.tags) for m in data.movies]
    for lo in range(0, len(items), CHUNK_ROWS):
        store.upsert_items(items[lo : lo + CHUNK_ROWS])
        report("items", min(lo + CHUNK_ROWS, len(items)), len(items))
    stored = 0
    ratings = data.ratings
    for lo in range(0, len(ratings), CHUNK_ROWS):
        chunk = ratings[lo : lo + CHUNK_ROWS]
        s, _ = store.add_interactions(
            [
                Interaction(
                    user_id=r.user_id,
                    item_id=r.movie_id,
                    type="rating",
                    value=r.rating,
                    occurred_at=datetime.fromtimestamp(r.timestamp, UTC),
                    event_id=f"ml:{r.user_id}:{r.movie_id}",
                )
                for r in chunk
            ]
        )
        stored += s
        report("ratings", min(lo + CHUNK_ROWS, len(ratings)), len(ratings))
    return len(items), stored
