"""Data in and recommendations out: the catalogue, the interaction log, models, the cache.

:class:`RecommendationService` is what the routes, the CLI and the tests call. Models
are resolved through the registry (aliases re-read every ``serving.alias_refresh_s``),
loaded once per version (artifact sha256 checked) and kept while an alias points at
them. The catalogue's availability and categories are kept in memory and re-read when
this process changes an item, or when another process did (checked every
``serving.alias_refresh_s`` with one ``count``/``max(updated_at)`` query).

Those periodic re-reads run in the background (stale-while-revalidate): a request never
waits for them, and a version an alias moved to is loaded before requests switch to it.
Awaiting them on the request path cost the unlucky request 100-400 ms under load, when
the database call's thread waited for the GIL behind a busy event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from aiweb.config import Settings
from aiweb.errors import InvalidInputError, ItemNotFound, ModelNotReadyError
from aiweb.recommendations.cache import Entry, RecommendationCache
from aiweb.recommendations.model import RecommenderModel
from aiweb.recommendations.store import (
    CatalogEntry,
    Interaction,
    Item,
    ItemSummary,
    RecommendationStore,
    StoredItem,
)
from aiweb.recommendations.training import TASK
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.background import BackgroundRefresh
from aiweb.serving.cache import version_key
from aiweb.serving.versions import VersionCache

log = logging.getLogger(__name__)

#: ranked items kept per cached list (enough for n <= MAX_N after filters, usually)
CACHE_DEPTH = 100
MAX_N = 100
#: most items per page of ``GET /v1/items``
MAX_PAGE = 500
#: most interactions since training read per request (the latest)
HISTORY_LIMIT = 1000


@dataclass
class _Catalog:
    entries: dict[str, CatalogEntry]
    stamp: tuple[int, datetime | None]
    checked_at: float
    #: per model version: bool (n_items,) available, and per category masks
    masks: dict[tuple[str, int], dict[str | None, npt.NDArray[np.bool_]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class _History:
    """A user's distinct item indices now (int32, oldest first) and whether any
    interaction came after the model's training."""

    items: npt.NDArray[np.int32]
    has_new: bool


@dataclass
class _Loaded:
    version: ModelVersion
    model: RecommenderModel
    #: names the version in cache keys (name, number, artifact digest)
    cache_key: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)


def _summary(summary: ItemSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "item_id": summary.item_id,
        "title": summary.title,
        "categories": list(summary.categories),
        "metadata": summary.metadata,
        "available": summary.available,
    }


class RecommendationService:
    """Serves ``/v1/items``, ``/v1/interactions`` and the recommendation routes.

    Args:
        store: items and interactions.
        registry: model versions and their artifacts.
        settings: ``serving.alias_refresh_s`` (how stale aliases and the catalogue may be).
        cache: the per-user cache, or ``None``.
    """

    def __init__(
        self,
        store: RecommendationStore,
        registry: RegistryService,
        settings: Settings,
        cache: RecommendationCache | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.cache = cache
        self._versions: VersionCache[_Loaded] = VersionCache(
            "recommendations",
            resolve=self._resolve_version,
            load=self._load_version,
            refresh_s=settings.serving.alias_refresh_s,
        )
        self._catalog: _Catalog | None = None
        #: bumped by this process's own catalogue writes: a background re-read that
        #: started before one does not install what it read
        self._catalog_generation = 0
        self._background = BackgroundRefresh("recommendations")

    # ------------------------------------------------------------------ data in

    async def upsert_items(self, items: Sequence[Item]) -> int:
        """Insert or replace items; the catalogue in memory is re-read next request."""
        count = await anyio.to_thread.run_sync(self.store.upsert_items, items)
        self._catalog, self._catalog_generation = None, self._catalog_generation + 1
        return count

    async def delete_item(self, item_id: str) -> None:
        """Raises ItemNotFound."""
        await anyio.to_thread.run_sync(self.store.delete_item, item_id)
        self._catalog, self._catalog_generation = None, self._catalog_generation + 1

    async def add_interactions(self, events: Sequence[Interaction]) -> tuple[int, int]:
        """Store events (committed before this returns), then drop the users' cached lists.

        Returns:
            ``(stored, duplicates)``: duplicates are events whose ``event_id`` was stored.
        """
        result = await anyio.to_thread.run_sync(self.store.add_interactions, events)
        if self.cache is not None:
            await self.cache.invalidate(sorted({e.user_id for e in events}))
        return result

    # ------------------------------------------------------------------ items out

    async def item(self, item_id: str) -> StoredItem:
        """One catalogue item, read from the store (one primary-key lookup).

        Raises:
            ItemNotFound: no such item, or deleted.
        """
        return await anyio.to_thread.run_sync(self.store.read_item, item_id)

    async def list_items(
        self, *, after: str | None = None, limit: int = 50, category: str | None = None
    ) -> tuple[list[StoredItem], str | None]:
        """A page of the catalogue in ``item_id`` order: deleted items left out,
        unavailable ones listed (their ``available`` says so).

        Args:
            after: start after this item id (the ``next`` of the previous page).
            limit: 1 to :data:`MAX_PAGE` items.
            category: only items with this category.

        Returns:
            ``(items, next)``: ``next`` is the last id of this page when more follow,
            else ``None``.

        Raises:
            InvalidInputError: ``limit`` out of range.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        rows = await anyio.to_thread.run_sync(
            lambda: self.store.list_items(after=after, limit=limit + 1, category=category)
        )
        if len(rows) > limit:
            return rows[:limit], rows[limit - 1].item.item_id
        return rows, None

    async def with_items(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` (an answer of :meth:`recommend` or :meth:`similar`) with an ``item``
        per entry: ``{"item_id", "title", "categories", "metadata", "available"}``, or
        ``None`` for an id the catalogue does not hold (seen only in interactions, or
        deleted since). One primary-key query for the answered ids; the recommendation
        cache is neither read nor changed (it keeps ids and scores only).
        """
        entries: list[dict[str, Any]] = body["items"]
        summaries: dict[str, ItemSummary] = {}
        if entries:
            ids = [e["item_id"] for e in entries]
            summaries = await anyio.to_thread.run_sync(self.store.item_summaries, ids)
        return {
            **body,
            "items": [{**e, "item": _summary(summaries.get(e["item_id"]))} for e in entries],
        }

    # ------------------------------------------------------------------ models

    async def model(self, ref: str) -> _Loaded:
        """The loaded version ``ref`` names (``movies``, ``movies@staging``, ``movies:2``),
        from the version cache (:class:`~aiweb.serving.versions.VersionCache`: resolved
        once, renewed in the background every ``serving.alias_refresh_s``, loaded once).

        Raises:
            InvalidInputError: malformed reference, or a model of another task.
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference.
            ModelNotReadyError, CorruptArtifactError: the version cannot be loaded.
        """
        return (await self._versions.get(ref)).value

    def _resolve_version(self, ref: ModelRef) -> ModelVersion:
        version = self.registry.resolve(ref)
        if version.task != TASK:
            raise InvalidInputError(
                f"model {version.name!r} has task {version.task!r}, not {TASK!r}"
            )
        return version

    async def alias_moved(self, name: str) -> None:
        """Follow an alias of ``name`` moved in this process at once (the registry tells)."""
        await self._versions.alias_moved(name)

    async def warm(self) -> list[str]:
        """Load the production version of every recommendation model, and the catalogue
        (at start, so the first requests do not pay for it). A model that cannot be
        loaded is logged and left to the first request that asks for it.

        Returns:
            ``name:version`` of the models loaded.
        """
        models = await anyio.to_thread.run_sync(self.registry.list_models)
        warmed = []
        for m in models:
            if m.task != TASK or PRODUCTION not in m.aliases:
                continue
            try:
                loaded = await self.model(m.name)
                self._mask(await self._fresh_catalog(), loaded, None)
            except Exception:  # serving must start even when a version cannot be loaded
                log.exception("could not load recommendation model %s at start", m.name)
                continue
            warmed.append(f"{loaded.version.name}:{loaded.version.version}")
        return warmed

    def _load_version(self, version: ModelVersion) -> _Loaded:
        return _Loaded(version, self._load(version), version_key(version, prefix="rec"))

    def _load(self, version: ModelVersion) -> RecommenderModel:
        if version.status != "ready" or not version.artifact_uri:
            raise ModelNotReadyError(f"{version.name}:{version.version} is {version.status!r}")
        data = read_verified(
            self.registry.artifacts,
            version.artifact_uri,
            version.artifact_sha256,
            f"artifact of {version.name}:{version.version}",
        )
        return RecommenderModel.from_bytes(data)

    # ------------------------------------------------------------------ catalogue

    async def _fresh_catalog(self) -> _Catalog:
        catalog = self._catalog
        if catalog is None:
            return await self._read_catalog(None)
        if time.monotonic() - catalog.checked_at >= self.settings.serving.alias_refresh_s:

            async def recheck() -> None:
                await self._read_catalog(catalog)

            self._background.start("catalog", recheck)
        return catalog

    async def _read_catalog(self, current: _Catalog | None) -> _Catalog:
        """Re-read the catalogue when its stamp moved (or there is none in memory)."""
        now, generation = time.monotonic(), self._catalog_generation
        stamp = await anyio.to_thread.run_sync(self.store.catalog_stamp)
        if current is not None and stamp == current.stamp:
            current.checked_at = now
            return current
        entries = await anyio.to_thread.run_sync(self.store.catalog)
        catalog = _Catalog(entries=entries, stamp=stamp, checked_at=now)
        if generation == self._catalog_generation:  # no write of ours since it began
            self._catalog = catalog
        return catalog

    @staticmethod
    def _mask(catalog: _Catalog, loaded: _Loaded, category: str | None) -> npt.NDArray[np.bool_]:
        """bool ``(n_items,)``: items that may be shown (available, in ``category``).
        An item the catalogue does not hold (only seen in interactions) counts as
        available and in no category."""
        masks = catalog.masks.setdefault(loaded.key, {})
        mask = masks.get(category)
        if mask is not None:
            return mask
        entries = catalog.entries
        item_ids = loaded.model.item_ids
        if category is None:
            mask = np.fromiter(
                (entries[i].available if i in entries else True for i in item_ids),
                dtype=bool,
                count=len(item_ids),
            )
        else:
            in_category = np.fromiter(
                (i in entries and category in entries[i].categories for i in item_ids),
                dtype=bool,
                count=len(item_ids),
            )
            mask = RecommendationService._mask(catalog, loaded, None) & in_category
        masks[category] = mask
        return mask

    # ------------------------------------------------------------------ serving

    async def recommend(
        self,
        ref: str,
        user_id: str,
        *,
        n: int = 10,
        exclude_seen: bool = True,
        exclude: Sequence[str] = (),
        category: str | None = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """Top ``n`` items for ``user_id`` with reasons.

        Args:
            ref: model reference.
            user_id: the application's user id (unknown users get trending items).
            n: 1 to 100 items.
            exclude_seen: leave out items the user interacted with.
            exclude: item ids to leave out.
            category: only items in this category.
            explain: add ``because`` and ``explanation`` to each item (:meth:`_explain`);
                computed for the answered items after the (cached) list is filtered, never
                stored in the cache, so explained and plain answers share its entries.

        Returns:
            ``{"model", "version", "user_id", "items": [{"item_id", "score", "reason"}]}``
            (with ``explain``, each item also has ``"because": [{"item_id", "weight"}]``
            and ``"explanation": {"method", "exact", "base", "rest", "parts"}``).

        Raises:
            InvalidInputError: ``n`` out of range; see :meth:`model` for the rest.
        """
        if not 1 <= n <= MAX_N:
            raise InvalidInputError(f"n must be between 1 and {MAX_N}, not {n}")
        loaded = await self.model(ref)
        catalog = await self._fresh_catalog()
        key = f"{loaded.cache_key}:{int(exclude_seen)}"
        excluded = set(exclude)
        history: _History | None = None
        if self.cache is None:  # no list to keep: rank just n, the filters applied
            entry, history = await anyio.to_thread.run_sync(
                self._rank, loaded, catalog, user_id, None, exclude_seen, category, exclude, n
            )
            items = self._filter(entry, catalog, loaded, set(), None, n)
            if explain:
                await self._explain(loaded, user_id, history, items)
            return self._answer(loaded, user_id, items)
        cached = await self.cache.get(user_id, key)
        if cached is not None:
            entry = cached
        else:
            entry, history = await anyio.to_thread.run_sync(
                self._rank, loaded, catalog, user_id, None, exclude_seen, None, (), CACHE_DEPTH
            )
            await self.cache.set(user_id, key, entry)
        items = self._filter(entry, catalog, loaded, excluded, category, n)
        if len(items) < n and len(entry) >= CACHE_DEPTH and (exclude or category):
            # the filters emptied the cached list: rank again with them applied
            entry, history = await anyio.to_thread.run_sync(
                self._rank, loaded, catalog, user_id, history, exclude_seen, category, exclude, n
            )
            items = self._filter(entry, catalog, loaded, excluded, category, n)
        if explain:
            await self._explain(loaded, user_id, history, items)
        return self._answer(loaded, user_id, items)

    async def _explain(
        self,
        loaded: _Loaded,
        user_id: str,
        history: _History | None,
        items: list[dict[str, Any]],
    ) -> None:
        """Add to each of ``items`` (fresh dicts, not the cache's) why it was recommended
        (:meth:`~aiweb.recommendations.model.RecommenderModel.explain`):
        ``"because": [{"item_id", "weight"}]``, the user's history items adding most to its
        score (at most :data:`~aiweb.recommendations.explain.BECAUSE_TOP`), and
        ``"explanation": {"method", "exact", "base", "rest", "parts": [{"source",
        "weight", "score"}]}`` with ``score = base + rest + Σ because weights`` (each
        rounded to 6 decimals). The history is read when ``history`` is ``None`` (a cached
        list).
        """
        model = loaded.model

        def work() -> None:
            found = history if history is not None else self.history(model, user_id)
            targets = [model.item_index[i["item_id"]] for i in items]
            explained = model.explain(user_id, found.items, has_new=found.has_new, targets=targets)
            for item, why in zip(items, explained, strict=True):
                item["because"] = [
                    {"item_id": model.item_ids[j], "weight": round(w, 6)} for j, w in why.because
                ]
                item["explanation"] = {
                    "method": why.method,
                    "exact": why.exact,
                    "base": round(why.base, 6),
                    "rest": round(why.rest, 6),
                    "parts": [
                        {"source": source, "weight": weight, "score": round(share, 6)}
                        for source, weight, share in why.parts
                    ],
                }

        if items:
            await anyio.to_thread.run_sync(work)

    @staticmethod
    def _answer(loaded: _Loaded, user_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": loaded.version.name,
            "version": loaded.version.version,
            "user_id": user_id,
            "items": items,
        }

    def _filter(
        self,
        entry: Entry,
        catalog: _Catalog,
        loaded: _Loaded,
        exclude: set[str],
        category: str | None,
        n: int,
    ) -> list[dict[str, Any]]:
        mask = self._mask(catalog, loaded, category)
        index = loaded.model.item_index
        out = []
        for item_id, score, reason in entry:
            if item_id in exclude or not mask[index[item_id]]:
                continue
            out.append({"item_id": item_id, "score": score, "reason": reason})
            if len(out) == n:
                break
        return out

    def history(self, model: RecommenderModel, user_id: str) -> _History:
        """A user's distinct items now, oldest first, and whether any came after training.

        The items the user had at training come from the model; only the interactions
        logged since (log id above ``model.last_interaction_id``, at most
        :data:`HISTORY_LIMIT`) are read from the store, in one indexed query, and appended
        (an item the user had already keeps its place). A version 1 artifact holds no
        histories: then the latest :data:`HISTORY_LIMIT` interactions are read.
        """
        user = model.user_index.get(user_id, -1)
        trained = model.training_history(user)
        after = model.last_interaction_id if model.histories is not None else 0
        events = self.store.user_events_since(user_id, after, HISTORY_LIMIT)
        has_new = any(e.id > model.last_interaction_id for e in events)
        index = model.item_index
        new = np.fromiter(
            (i for i in (index.get(e.item_id) for e in events) if i is not None), dtype=np.int32
        )
        if not len(new):
            return _History(trained, has_new)
        _, first = np.unique(new, return_index=True)
        new = new[np.sort(first)]
        if len(trained):
            new = new[~np.isin(new, trained)]
        return _History(np.concatenate((trained, new)) if len(trained) else new, has_new)

    def _rank(
        self,
        loaded: _Loaded,
        catalog: _Catalog,
        user_id: str,
        history: _History | None,
        exclude_seen: bool,
        category: str | None,
        exclude: Sequence[str],
        depth: int,
    ) -> tuple[Entry, _History]:
        """The user's ``depth`` best items as a cache entry, and their history (read when
        ``history`` is ``None``)."""
        model = loaded.model
        if history is None:
            history = self.history(model, user_id)
        allowed = self._mask(catalog, loaded, category).copy()
        if exclude_seen and len(history.items):
            allowed[history.items] = False
        for item_id in exclude:
            i = model.item_index.get(item_id)
            if i is not None:
                allowed[i] = False
        ranked = model.rank(
            user_id, history.items, has_new=history.has_new, allowed=allowed, n=depth
        )
        item_ids = model.item_ids
        entry = [
            [item_ids[i], round(score, 6), reason]
            for i, score, reason in zip(
                ranked.items.tolist(), ranked.scores.tolist(), ranked.reasons, strict=True
            )
        ]
        return entry, history

    async def similar(
        self,
        ref: str,
        item_id: str,
        *,
        n: int = 10,
        category: str | None = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """Items most like ``item_id`` (collaborative and content similarity).

        With ``explain``, each item also has ``"because": {"source", "parts": [{"source",
        "similarity", "weight"}], "shared_categories"}``
        (:meth:`~aiweb.recommendations.model.RecommenderModel.explain_similar`; the parts'
        weights sum to the score; ``shared_categories``: the catalogue categories both
        items have, sorted).

        Returns:
            ``{"model", "version", "item_id", "items": [{"item_id", "score", "reason"}]}``.

        Raises:
            InvalidInputError: ``n`` out of range.
            ItemNotFound: the model does not know the item.
        """
        if not 1 <= n <= MAX_N:
            raise InvalidInputError(f"n must be between 1 and {MAX_N}, not {n}")
        loaded = await self.model(ref)
        catalog = await self._fresh_catalog()
        index = loaded.model.item_index.get(item_id)
        if index is None:
            raise ItemNotFound(
                f"item {item_id!r} is not known to {loaded.version.name}:"
                f"{loaded.version.version} (items added after training are known once it is "
                "retrained)"
            )
        mask = self._mask(catalog, loaded, category)
        recs = await anyio.to_thread.run_sync(
            lambda: loaded.model.similar(index, allowed=mask, n=n)
        )
        items = [
            {
                "item_id": loaded.model.item_ids[r.item],
                "score": round(r.score, 6),
                "reason": r.reason,
            }
            for r in recs
        ]
        if explain and recs:
            reasons = await anyio.to_thread.run_sync(
                lambda: loaded.model.explain_similar(index, [r.item for r in recs])
            )
            entries = catalog.entries
            mine = entries[item_id].categories if item_id in entries else frozenset()
            for out, because in zip(items, reasons, strict=True):
                other = entries.get(str(out["item_id"]))
                shared = sorted(mine & other.categories) if other is not None else []
                out["because"] = {**because, "shared_categories": shared}
        return {
            "model": loaded.version.name,
            "version": loaded.version.version,
            "item_id": item_id,
            "items": items,
        }

    async def aclose(self) -> None:
        await self._versions.aclose()
        await self._background.aclose()
        if self.cache is not None:
            await self.cache.aclose()
