"""The embedded vector index of one collection, in a server process: exact search for
small collections, usearch's HNSW past a size threshold, persisted under ``AIWEB_HOME``.

:class:`EmbeddedIndex` holds every live vector in an :class:`~aiweb.search.index.ExactIndex`
(the truth in memory: rebuilt from the database's stored vectors, updated from
:meth:`SearchStore.changes <aiweb.search.store.SearchStore.changes>`), and, once the
collection has ``ann_threshold`` documents, an :class:`~aiweb.search.index.HnswIndex`
built from it in the background. The HNSW graph reflects the collection at some revision
``R``; documents written after ``R`` are *dirty*: the graph's answers for them are
ignored and they are scored exactly instead, and every candidate is re-scored from the
exact vectors, so a hit's score is its exact cosine similarity whichever index found it.
When the dirty set grows past ``ann_refresh_dirty`` the graph is copied, brought up to
date and swapped in (searches never wait for it).

On disk, under ``<home>/search/<collection uid>/``: ``ann-<R>.usearch`` (usearch's format)
and ``ann-<R>.json`` (what it was built from). A server that starts loads the newest file
whose revision is not beyond the database's and catches up from there; a missing,
unreadable or stale file (a database restored from an older backup) is rebuilt from the
stored vectors. One process at a time builds or writes the files (``flock`` on
``build.lock``); the others load what it saved.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiweb.search.entities import Changes, Collection
from aiweb.search.index import ExactIndex, HnswIndex, Keys, Scores, Vectors, top_k

log = logging.getLogger("aiweb.search")

_FILE = re.compile(r"^ann-(\d+)\.usearch$")
FORMAT = 1
#: vectors added to a graph being built between checks for shutdown
BUILD_CHUNK = 2000


@dataclass(frozen=True)
class AnnParams:
    """HNSW parameters and when to use and refresh the graph.

    Attributes:
        threshold: live documents from which a collection gets an HNSW graph (it is
            dropped again below half of it).
        connectivity: HNSW ``M``.
        expansion_add: ``efConstruction``.
        expansion_search: ``ef`` at search time (at least ``k``).
        refresh_dirty: documents written since the graph's revision that trigger a
            refresh (the exact part of each search grows with them).
        build_threads: threads usearch uses to build or refresh a graph.
    """

    threshold: int = 20_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    refresh_dirty: int = 2_000
    build_threads: int = 1


@dataclass(frozen=True)
class _Ann:
    hnsw: HnswIndex
    revision: int
    dirty: Keys  # sorted keys written after ``revision``


class EmbeddedIndex:
    """One collection's in-process vector index (see the module docs).

    Args:
        collection: the collection (its ``uid`` and ``dim``).
        directory: where its files live (``<home>/search/<uid>``).
        params: HNSW parameters and thresholds.
    """

    kind = "embedded"

    def __init__(self, collection: Collection, directory: Path, params: AnnParams) -> None:
        self.collection = collection
        self.directory = directory
        self.params = params
        self.exact = ExactIndex(collection.dim)
        self.revision = 0
        self._seq_of: dict[int, int] = {}  # every key ever seen -> revision of its last write
        self._ann: _Ann | None = None
        self._lock = threading.Lock()  # applying changes
        self._upkeep_lock = threading.Lock()  # building / refreshing the graph
        self._file_lock_failures = 0

    def __len__(self) -> int:
        return len(self.exact)

    @property
    def ann_revision(self) -> int | None:
        """The revision the HNSW graph reflects, or ``None`` when there is none."""
        ann = self._ann
        return ann.revision if ann is not None else None

    @property
    def dirty(self) -> int:
        """Documents written since the graph's revision (0 without a graph)."""
        ann = self._ann
        return int(ann.dirty.shape[0]) if ann is not None else 0

    # ------------------------------------------------------------------ changes

    def apply(self, changes: Changes) -> None:
        """Bring the index up to ``changes.revision`` (changes at or below the current
        revision are skipped, so applying twice is harmless)."""
        with self._lock:
            if changes.revision <= self.revision:
                return
            fresh = changes.seqs > self.revision
            keys, seqs, deleted = changes.keys[fresh], changes.seqs[fresh], changes.deleted[fresh]
            live_rows = np.flatnonzero(~changes.deleted)
            vectors = changes.vectors[np.flatnonzero(fresh[live_rows])]
            self.exact.remove(keys[deleted])
            self.exact.add(keys[~deleted], vectors)
            self._seq_of.update(zip(keys.tolist(), seqs.tolist(), strict=True))
            ann = self._ann
            if ann is not None and keys.shape[0]:
                self._ann = _Ann(ann.hnsw, ann.revision, np.union1d(ann.dirty, keys))
            self.revision = changes.revision

    # ------------------------------------------------------------------ search

    def search(self, query: Vectors, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        """The ``k`` live keys most similar to ``query`` (float32 (dim,), L2-normalised),
        among ``allowed`` when given: exact below the threshold, with a selective filter
        (fewer allowed keys than the threshold) or while the graph is far behind; the
        HNSW graph plus the dirty keys otherwise. Scores are exact cosine similarities.
        """
        ann = self._ann
        if (
            ann is None
            or ann.dirty.shape[0] > 4 * self.params.refresh_dirty
            or (allowed is not None and allowed.shape[0] < self.params.threshold)
        ):
            return self.exact.search(query, k, allowed)
        want = k
        total = len(ann.hnsw)
        while True:
            found, _ = ann.hnsw.search(query, want, allowed)
            clean = found[~np.isin(found, ann.dirty)] if ann.dirty.shape[0] else found
            if clean.shape[0] >= k or want >= total:
                break
            want = min(total, want + 2 * (want - clean.shape[0]) + k)
        dirty = ann.dirty
        if allowed is not None and dirty.shape[0]:
            dirty = dirty[np.isin(dirty, allowed)]
        keys, vectors = self.exact.vectors_of(np.concatenate([clean, dirty]))
        scores = vectors @ query
        best = top_k(scores, k)
        return keys[best], scores[best].astype(np.float32)

    # ------------------------------------------------------------------ upkeep

    def upkeep(self, db_revision: int | None = None, stop: threading.Event | None = None) -> str:
        """Load, build, refresh or drop the HNSW graph as the collection's size asks.

        Call it after :meth:`apply` (a background thread of the search service does, and
        tests do). Slow when it builds: never on a request path.

        Args:
            db_revision: the collection's revision in the database, to tell a file saved
                by a process that is ahead of this one from a stale file.
            stop: set when the process shuts down: a build stops between chunks.

        Returns:
            What it did: ``none``, ``dropped``, ``loaded``, ``built``, ``refreshed``,
            ``busy`` (another process holds the build lock), ``stopped``.
        """
        if not self._upkeep_lock.acquire(blocking=False):
            return "busy"
        try:
            n = len(self.exact)
            ann = self._ann
            if ann is None:
                if n < self.params.threshold:
                    return "none"
                if self._load(db_revision):
                    return "loaded"
                return self._build(stop or threading.Event())
            if n < self.params.threshold // 2:
                self._ann = None
                return "dropped"
            if ann.dirty.shape[0] >= self.params.refresh_dirty:
                return self._refresh(ann)
            return "none"
        finally:
            self._upkeep_lock.release()

    def _install(self, hnsw: HnswIndex, revision: int) -> None:
        with self._lock:
            dirty = [k for k, s in self._seq_of.items() if s > revision]
            self._ann = _Ann(hnsw, revision, np.unique(np.asarray(dirty, dtype=np.int64)))

    def _snapshot(self) -> tuple[int, Keys, Vectors]:
        with self._lock:
            keys = self.exact.keys()
            found, vectors = self.exact.vectors_of(keys)
            return self.revision, found, vectors

    def _build(self, stop: threading.Event) -> str:
        with self._file_lock() as locked:
            if not locked:
                return "busy"
            if self._load(None):  # another process saved one while we waited
                return "loaded"
            revision, keys, vectors = self._snapshot()
            started = time.perf_counter()
            hnsw = HnswIndex(
                self.collection.dim,
                connectivity=self.params.connectivity,
                expansion_add=self.params.expansion_add,
                expansion_search=self.params.expansion_search,
            )
            for lo in range(0, keys.shape[0], BUILD_CHUNK):
                if stop.is_set():
                    return "stopped"
                hnsw.index.add(
                    keys[lo : lo + BUILD_CHUNK].astype(np.uint64),
                    vectors[lo : lo + BUILD_CHUNK],
                    threads=self.params.build_threads,
                )
            log.info(
                "collection %s: HNSW graph of %d vectors built in %.1f s (revision %d)",
                self.collection.name,
                keys.shape[0],
                time.perf_counter() - started,
                revision,
            )
            self._install(hnsw, revision)
            self._save(hnsw, revision, keys.shape[0])
        return "built"

    def _refresh(self, ann: _Ann) -> str:
        with self._lock:  # the dirty set as of now (apply() may have grown it since)
            revision = self.revision
            dirty = (self._ann or ann).dirty
            keys, vectors = self.exact.vectors_of(dirty)
        hnsw = ann.hnsw.copy()  # searches keep using the graph in place meanwhile
        hnsw.remove(dirty)
        hnsw.add(keys, vectors, threads=self.params.build_threads)
        self._install(hnsw, revision)
        with self._file_lock() as locked:
            if locked:
                self._save(hnsw, revision, len(hnsw))
        return "refreshed"

    # ------------------------------------------------------------------ files

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[bool]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "build.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def files(self) -> list[tuple[int, Path]]:
        """``(revision, path)`` of the saved graphs, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _FILE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def _meta(self, revision: int, count: int) -> dict[str, object]:
        return {
            "format": FORMAT,
            "collection_uid": self.collection.uid,
            "dim": self.collection.dim,
            "metric": "cos",
            "revision": revision,
            "count": count,
            "connectivity": self.params.connectivity,
        }

    def _save(self, hnsw: HnswIndex, revision: int, count: int) -> None:
        """Write ``ann-<revision>.usearch`` and its ``.json`` (atomically, the JSON last),
        then remove older graphs. Needs the file lock."""
        path = self.directory / f"ann-{revision}.usearch"
        tmp = path.with_suffix(".usearch.tmp")
        hnsw.save(tmp)
        os.replace(tmp, path)
        meta = path.with_suffix(".json")
        tmp_meta = meta.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(self._meta(revision, count)))
        os.replace(tmp_meta, meta)
        for older, old_path in self.files():
            if older < revision:
                old_path.unlink(missing_ok=True)
                old_path.with_suffix(".json").unlink(missing_ok=True)

    def _load(self, db_revision: int | None) -> bool:
        """Install the newest usable saved graph; delete stale ones."""
        for revision, path in self.files():
            if revision > self.revision:
                if db_revision is not None and revision > db_revision:
                    log.warning(
                        "collection %s: index file %s is ahead of the database (revision %d); "
                        "removing it",
                        self.collection.name,
                        path.name,
                        db_revision,
                    )
                    self._discard(path)
                continue  # saved by a process ahead of this one: catch up first
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
                if meta != self._meta(revision, meta.get("count", -1)):
                    raise ValueError(f"{path.name} was built for another collection or format")
                hnsw = HnswIndex.restore(
                    path, self.collection.dim, expansion_search=self.params.expansion_search
                )
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("collection %s: ignoring %s (%s)", self.collection.name, path, exc)
                self._discard(path)
                continue
            self._install(hnsw, revision)
            log.info(
                "collection %s: HNSW graph loaded from %s (%d documents written since)",
                self.collection.name,
                path.name,
                self.dirty,
            )
            return True
        return False

    def _discard(self, path: Path) -> None:
        with self._file_lock() as locked:
            if locked:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)

    def remove_files(self) -> None:
        """Delete the collection's directory (the collection was deleted)."""
        shutil.rmtree(self.directory, ignore_errors=True)
