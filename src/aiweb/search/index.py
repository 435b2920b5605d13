"""Vector indexes over L2-normalised float32 embeddings, all behind :class:`VectorIndex`.

* :class:`ExactIndex`: brute force, one matrix-vector product (numpy) per query; the
  scores are cosine similarities, exact. Readers never lock: a writer appends rows past
  the end readers see, marks removed rows dead in place, and publishes a new snapshot.
* :class:`HnswIndex`: approximate nearest neighbours with usearch's HNSW graph (Malkov &
  Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
  Navigable Small World graphs", 2016/2018), cosine metric, saved to and restored from a
  file.
* :class:`aiweb.search.pgvector.PgVectorIndex`: pgvector's HNSW inside PostgreSQL.

Keys are the documents' integer ids (``search_documents.id``). Every ``search`` returns
``(keys, scores)``: int64 and float32 arrays of at most ``k`` entries, best first, scores
being cosine similarities in [-1, 1]. ``allowed`` restricts the candidates to those keys
(an exact pre-filter: the result is the best ``k`` among them).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Keys = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]

_EMPTY_KEYS: Keys = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES: Scores = np.zeros(0, dtype=np.float32)


class VectorIndex(Protocol):
    """What every vector index offers (see the module docs for shapes and semantics)."""

    @property
    def kind(self) -> str:
        """``exact``, ``hnsw`` or ``pgvector``."""
        ...

    def __len__(self) -> int:
        """Vectors held."""
        ...

    def add(self, keys: Keys, vectors: Vectors) -> None:
        """Insert or replace ``keys`` (int64, shape (n,)) with ``vectors`` (float32,
        shape (n, dim), rows L2-normalised)."""
        ...

    def remove(self, keys: Keys) -> None:
        """Remove ``keys``; keys not held are ignored."""
        ...

    def search(self, query: Vectors, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        """The ``k`` keys most similar to ``query`` (float32, shape (dim,),
        L2-normalised), best first, among ``allowed`` when given."""
        ...


def top_k(scores: Scores, k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` highest finite ``scores``, highest first (ties: lower
    position first). ``-inf`` marks excluded rows."""
    n = scores.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.intp)
    part = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    order = np.lexsort((part, -scores[part]))
    picked = part[order]
    return picked[np.isfinite(scores[picked])]


@dataclass(frozen=True)
class _Snapshot:
    """What readers of an :class:`ExactIndex` see. ``vectors`` and ``keys`` are buffers
    of which the first ``n`` rows are in use; a dead row's key is -1."""

    vectors: Vectors
    keys: Keys
    n: int
    row_of: dict[int, int]


class ExactIndex:
    """Exact cosine search: ``vectors @ query`` over every live row.

    Thread-safe: any number of concurrent searches with one writer at a time (writers
    serialise on an internal lock). Rows are appended into spare capacity past the rows
    readers use; a replaced or removed row is marked dead (key -1) in place; the buffer
    is compacted (copied) when a quarter of it is dead or it is full.

    Args:
        dim: vector dimension.
    """

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._dead = 0
        self._snap = _Snapshot(
            np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64), 0, {}
        )

    def __len__(self) -> int:
        return len(self._snap.row_of)

    def keys(self) -> Keys:
        """The live keys, in row order (int64)."""
        snap = self._snap
        keys = snap.keys[: snap.n]
        return keys[keys >= 0].copy()

    def vectors_of(self, keys: Keys) -> tuple[Keys, Vectors]:
        """The vectors of those ``keys`` that are held: ``(found_keys, vectors)``."""
        snap = self._snap
        found = [(int(k), snap.row_of.get(int(k), -1)) for k in keys]
        found = [(k, r) for k, r in found if 0 <= r < snap.n]
        if not found:
            return _EMPTY_KEYS, np.zeros((0, self.dim), dtype=np.float32)
        ks, rows = zip(*found, strict=True)
        return np.asarray(ks, dtype=np.int64), snap.vectors[list(rows)]

    def add(self, keys: Keys, vectors: Vectors) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (keys.shape[0], self.dim):
            raise ValueError(f"expected vectors of shape ({keys.shape[0]}, {self.dim})")
        if keys.shape[0] == 0:
            return
        # a key repeated in one call: the last vector wins
        _, last = np.unique(keys[::-1], return_index=True)
        pick = np.sort(keys.shape[0] - 1 - last)
        keys, vectors = keys[pick], vectors[pick]
        with self._lock:
            self._mark_dead(keys)
            snap = self._snap
            need = snap.n + keys.shape[0]
            if need > snap.keys.shape[0] or self._dead * 4 > max(snap.n, 64):
                snap = self._compacted(extra=keys.shape[0])
            n = snap.n
            snap.vectors[n : n + keys.shape[0]] = vectors
            snap.keys[n : n + keys.shape[0]] = keys
            row_of = dict(snap.row_of)
            row_of.update(zip(keys.tolist(), range(n, n + keys.shape[0]), strict=True))
            self._snap = _Snapshot(snap.vectors, snap.keys, n + keys.shape[0], row_of)

    def remove(self, keys: Keys) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if keys.shape[0] == 0:
            return
        with self._lock:
            if self._mark_dead(keys):
                snap = self._snap
                row_of = {k: r for k, r in snap.row_of.items() if snap.keys[r] >= 0}
                self._snap = _Snapshot(snap.vectors, snap.keys, snap.n, row_of)

    def _mark_dead(self, keys: Keys) -> bool:
        snap = self._snap
        rows = [snap.row_of[k] for k in keys.tolist() if k in snap.row_of]
        if rows:
            snap.keys[rows] = -1  # readers skip dead rows; their vectors stay as they were
            self._dead += len(rows)
        return bool(rows)

    def _compacted(self, extra: int) -> _Snapshot:
        snap = self._snap
        live = np.flatnonzero(snap.keys[: snap.n] >= 0)
        n = live.shape[0]
        capacity = max(64, math.ceil((n + extra) * 1.5))
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        keys = np.full(capacity, -1, dtype=np.int64)
        vectors[:n] = snap.vectors[live]
        keys[:n] = snap.keys[live]
        self._dead = 0
        return _Snapshot(vectors, keys, n, dict(zip(keys[:n].tolist(), range(n), strict=True)))

    def search(self, query: Vectors, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        snap = self._snap
        if snap.n == 0 or k <= 0:
            return _EMPTY_KEYS, _EMPTY_SCORES
        keys = snap.keys[: snap.n]
        if allowed is not None and allowed.shape[0] * 8 < snap.n:
            # a selective filter: score only the allowed rows
            rows = np.fromiter((snap.row_of.get(k, -1) for k in allowed.tolist()), dtype=np.intp)
            rows = rows[(rows >= 0) & (rows < snap.n)]
            rows = rows[keys[rows] >= 0]
            scores = snap.vectors[rows] @ query
            best = top_k(scores, k)
            return keys[rows[best]].copy(), scores[best].astype(np.float32)
        scores = snap.vectors[: snap.n] @ query
        dead = keys < 0
        if allowed is not None:
            dead |= ~np.isin(keys, allowed)
        scores[dead] = -np.inf
        best = top_k(scores, k)
        return keys[best].copy(), scores[best].astype(np.float32)


class HnswIndex:
    """Approximate search with usearch's HNSW graph, cosine metric.

    Search is thread-safe; ``add``/``remove`` must not run during searches (the
    embedded collection index mutates a copy and swaps it in, see
    :class:`aiweb.search.embedded.EmbeddedIndex`).

    Args:
        dim: vector dimension.
        connectivity: HNSW ``M``, edges per node (usearch default 16).
        expansion_add: candidate list size while inserting (``efConstruction``).
        expansion_search: candidate list size while searching (``ef``); a search for more
            than ``expansion_search`` results widens it to ``k``.
        dtype: how usearch stores vectors: ``f32``, ``f16`` or ``i8``.
    """

    kind = "hnsw"

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        dtype: str = "f32",
        _index: object | None = None,
    ) -> None:
        from usearch.index import Index

        self.dim = dim
        self.index: Index = (
            _index  # type: ignore[assignment]
            if _index is not None
            else Index(
                ndim=dim,
                metric="cos",
                dtype=dtype,
                connectivity=connectivity,
                expansion_add=expansion_add,
                expansion_search=expansion_search,
            )
        )

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: Keys, vectors: Vectors, *, threads: int = 1) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if keys.shape[0] == 0:
            return
        self.remove(keys)
        self.index.add(keys.astype(np.uint64), np.asarray(vectors, np.float32), threads=threads)

    def remove(self, keys: Keys) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if keys.shape[0] == 0:
            return
        present = np.asarray(self.index.contains(keys.astype(np.uint64)), dtype=bool)
        if present.any():
            self.index.remove(keys[present].astype(np.uint64))

    def copy(self) -> HnswIndex:
        """An independent copy (to mutate while this one keeps serving)."""
        return HnswIndex(self.dim, _index=self.index.copy())

    def search(self, query: Vectors, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        n = len(self)
        if n == 0 or k <= 0:
            return _EMPTY_KEYS, _EMPTY_SCORES
        if allowed is None:
            return self._ann(query, k)
        # widen the search in proportion to how much the filter leaves out, until k
        # allowed keys are found or the whole index was searched
        want = min(n, max(k, math.ceil(k * n / max(1, allowed.shape[0]) * 2)))
        while True:
            keys, scores = self._ann(query, want)
            ok = np.isin(keys, allowed)
            if ok.sum() >= k or want >= n:
                return keys[ok][:k], scores[ok][:k]
            want = min(n, want * 4)

    def _ann(self, query: Vectors, count: int) -> tuple[Keys, Scores]:
        matches = self.index.search(np.asarray(query, np.float32), count)
        keys = np.asarray(matches.keys, dtype=np.int64)
        scores = (1.0 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)
        return keys, scores

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (usearch's own format)."""
        self.index.save(str(path))

    @classmethod
    def restore(cls, path: Path, dim: int, *, expansion_search: int = 64) -> HnswIndex:
        """Load an index saved by :meth:`save`.

        Raises:
            ValueError: the file is not a usearch index of ``dim`` dimensions with the
                cosine metric.
        """
        from usearch.index import Index

        index = Index.restore(str(path))
        if index is None or index.ndim != dim or getattr(index.metric_kind, "name", "") != "Cos":
            raise ValueError(f"{path} is not a cosine usearch index of {dim} dimensions")
        index.expansion_search = expansion_search  # type: ignore[misc]  # usearch has a setter
        return cls(dim, _index=index)
