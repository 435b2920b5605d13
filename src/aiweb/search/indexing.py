"""This process's embedded vector indexes, kept caught up with the database.

:class:`IndexKeeper` holds one :class:`~aiweb.search.embedded.EmbeddedIndex` per
collection with ``vector_index = "embedded"`` that this process has searched (and, after
the first upkeep round at start, per such collection in the database). It

* creates a collection's index on first use and catches it up with the collection's
  revision by applying :meth:`SearchStore.changes <aiweb.search.store.SearchStore.changes>`
  (the documents written since, deletions as tombstones); a search asks for it with
  :meth:`IndexKeeper.index`, which costs a dictionary look-up when the index is caught up;
* in a background thread, every ``search.upkeep_interval_s``: catches every loaded index
  up, builds, loads, refreshes, saves or drops its HNSW graph
  (:meth:`EmbeddedIndex.upkeep <aiweb.search.embedded.EmbeddedIndex.upkeep>`), forgets the
  collections deleted (perhaps by another process) and removes their files; the first
  round also loads every collection's index and removes the files of collections deleted
  while the server was down;
* removes a collection's index and files when it is deleted.

Collections on pgvector have no embedded index: the database keeps their vectors.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from aiweb.config import SearchSettings
from aiweb.search.embedded import AnnParams, EmbeddedIndex
from aiweb.search.entities import Collection
from aiweb.search.store import SearchStore

log = logging.getLogger("aiweb.search")


def ann_params(config: SearchSettings) -> AnnParams:
    """The HNSW parameters and thresholds ``search`` settings ask for.

    Args:
        config: the ``search`` settings.

    Returns:
        Their ``ann_*`` values as :class:`~aiweb.search.embedded.AnnParams`.
    """
    return AnnParams(
        threshold=config.ann_threshold,
        connectivity=config.ann_connectivity,
        expansion_add=config.ann_expansion_add,
        expansion_search=config.ann_expansion_search,
        refresh_dirty=config.ann_refresh_dirty,
        build_threads=config.ann_build_threads,
    )


class IndexKeeper:
    """The embedded indexes of the collections on one database, in this process.

    Args:
        store: collections, documents and their changes.
        root: where index files live (``<home>/search``; one directory per collection
            uid).
        params: HNSW parameters and thresholds.
        interval_s: seconds between two upkeep rounds of the background thread.
        on_loaded: called after the upkeep thread loaded the indexes of every collection
            at start.

    Attributes:
        store: as given.
        root: as given.
        params: as given.
    """

    def __init__(
        self,
        store: SearchStore,
        root: Path,
        params: AnnParams,
        *,
        interval_s: float,
        on_loaded: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.root = root
        self.params = params
        self._interval_s = interval_s
        self._on_loaded = on_loaded
        self._indexes: dict[int, EmbeddedIndex] = {}
        self._indexes_lock = threading.Lock()
        self._sync_locks: dict[int, threading.Lock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background upkeep thread (catch-up and HNSW builds)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._upkeep_forever, name="aiweb-search-upkeep", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the upkeep thread (a graph being built is abandoned)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _upkeep_forever(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self.upkeep(load_all=first)
                if first and self._on_loaded is not None:
                    self._on_loaded()
                first = False
            except Exception:  # the database away for a moment: try again next round
                log.warning("search index upkeep failed", exc_info=True)
            self._stop.wait(self._interval_s)

    # ------------------------------------------------------------------ upkeep

    def upkeep(self, *, load_all: bool = False) -> dict[str, str]:
        """Catch every loaded embedded index up with the database, build, load, refresh or
        drop HNSW graphs, forget deleted collections.

        Args:
            load_all: also load the indexes of collections this process has not searched
                yet, and remove the files of collections that no longer exist (done once
                at start).

        Returns:
            ``{collection name: what upkeep did}`` (see :meth:`EmbeddedIndex.upkeep`).
        """
        revisions = self.store.revisions()
        done: dict[str, str] = {}
        gone = []
        with self._indexes_lock:
            for cid, index in list(self._indexes.items()):
                if revisions.get(cid, ("", 0))[0] != index.collection.uid:
                    gone.append(self._indexes.pop(cid))
        for index in gone:  # deleted (perhaps by another process): its files too
            index.remove_files()
        if load_all:
            self._remove_orphan_files()
            for collection in self.store.list_collections():
                if collection.vector_index == "embedded" and not self._stop.is_set():
                    self.index(collection)
        for cid, index in list(self._indexes.items()):
            if self._stop.is_set():
                break
            uid, revision = revisions.get(cid, ("", 0))
            if uid != index.collection.uid:
                continue
            if index.revision < revision:
                self._sync(index, revision)
            done[index.collection.name] = index.upkeep(revision, self._stop)
        return done

    def _remove_orphan_files(self) -> None:
        """Delete index directories of collections that no longer exist (deleted while
        this server was down)."""
        if not self.root.is_dir():
            return
        candidates = [d for d in self.root.iterdir() if d.is_dir()]
        if not candidates:
            return
        live = {uid for uid, _ in self.store.revisions().values()}
        for directory in candidates:
            if directory.name not in live:
                log.info("removing the index files of a deleted collection: %s", directory)
                shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ indexes

    def index(self, collection: Collection) -> EmbeddedIndex:
        """This process's embedded index of ``collection``, caught up with
        ``collection.revision`` (created on first use).

        Args:
            collection: a collection with ``vector_index = "embedded"``, as just read.

        Returns:
            Its index.

        Raises:
            CollectionNotFound: the collection was deleted (or recreated) while its
                changes were read.
        """
        index = self._indexes.get(collection.id)
        if index is None or index.collection.uid != collection.uid:
            with self._indexes_lock:
                index = self._indexes.get(collection.id)
                if index is None or index.collection.uid != collection.uid:
                    index = EmbeddedIndex(collection, self.root / collection.uid, self.params)
                    self._indexes[collection.id] = index
                    self._sync_locks[collection.id] = threading.Lock()
        if index.revision < collection.revision:
            self._sync(index, collection.revision)
        return index

    def _sync(self, index: EmbeddedIndex, revision: int) -> None:
        lock = self._sync_locks.setdefault(index.collection.id, threading.Lock())
        with lock:
            if index.revision < revision:
                index.apply(self.store.changes(index.collection, index.revision))

    def remove(self, collection: Collection) -> None:
        """Forget a deleted collection's index and delete its files (also when this
        process never loaded it).

        Args:
            collection: the collection, as read before it was deleted.
        """
        with self._indexes_lock:
            index = self._indexes.pop(collection.id, None)
        if index is None:
            index = EmbeddedIndex(collection, self.root / collection.uid, self.params)
        index.remove_files()
