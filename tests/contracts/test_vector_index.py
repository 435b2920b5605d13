"""Contract of every vector index backend: on one fixed corpus, each returns the same
top-10 as exact search (with and without an allowed-key filter), and handles replaced and
removed keys.

The corpus: 3,000 unit vectors in 384 dimensions drawn around 60 cluster centres (seeded,
so every run sees the same vectors; cosine similarity within a cluster about 0.6, like
sentence embeddings of one topic), and 40 queries near corpus points. The approximate
backends are run with a wide search (HNSW ``ef`` = 256; pgvector ``hnsw.ef_search`` = 256):
on a corpus this small that makes them exact in practice, which is what this contract
checks (the recall of the default settings on 50,000 real documents is measured by
``bench/search.py``). Ranks whose exact scores differ by less than 1e-5 may swap (float32
sums in another order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from aiweb.db.migrate import upgrade
from aiweb.db.session import make_engine
from aiweb.search.embedded import AnnParams, EmbeddedIndex
from aiweb.search.entities import Changes, Collection, Document
from aiweb.search.index import ExactIndex, HnswIndex, Keys, Scores, VectorIndex
from aiweb.search.pgvector import PgVectorIndex
from aiweb.search.store import SearchStore

DIM = 384
N = 3000
K = 10
WIDE_EF = 256
TIE = 1e-5


def corpus() -> tuple[Keys, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240611)
    centres = rng.standard_normal((60, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, 60, N)
    # noise of norm ~0.8 around unit centres, queries ~0.4 away from a corpus point
    vectors = centres[labels] + 0.04 * rng.standard_normal((N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(N, 40, replace=False)] + 0.02 * rng.standard_normal(
        (40, DIM)
    ).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    keys = np.arange(1, N + 1, dtype=np.int64) * 7  # not positions: keys are document ids
    return keys, vectors.astype(np.float32), queries.astype(np.float32)


KEYS, VECTORS, QUERIES = corpus()


def reference(query: np.ndarray, allowed: Keys | None = None) -> tuple[Keys, Scores]:
    scores = VECTORS @ query
    keys = KEYS
    if allowed is not None:
        mask = np.isin(KEYS, allowed)
        scores, keys = scores[mask], keys[mask]
    order = np.argsort(-scores, kind="stable")
    return keys[order], scores[order]


def assert_same_top(got: Keys, query: np.ndarray, allowed: Keys | None = None) -> None:
    ref_keys, ref_scores = reference(query, allowed)
    assert len(got) == min(K, len(ref_keys))
    score_of = dict(zip(ref_keys.tolist(), ref_scores.tolist(), strict=True))
    kth = ref_scores[K - 1]
    expected = set(ref_keys[:K].tolist())
    for key in set(got.tolist()) ^ expected:  # only near-ties may differ
        assert abs(score_of[key] - kth) < TIE, f"key {key}: {score_of[key]} vs 10th {kth}"


class _Embedded:
    """An EmbeddedIndex fed through Changes, its HNSW graph built (threshold 1)."""

    kind = "embedded"

    def __init__(self, directory: Path) -> None:
        collection = Collection(
            id=1,
            uid="c" * 32,
            name="contract",
            embedding_model="minilm",
            embedding_version=1,
            dim=DIM,
            metadata_fields=None,
            vector_index="embedded",
            revision=0,
            created_by="",
            created_at=None,  # type: ignore[arg-type]
            updated_at=None,  # type: ignore[arg-type]
        )
        self.index = EmbeddedIndex(
            collection,
            directory,
            AnnParams(threshold=1, expansion_search=WIDE_EF, refresh_dirty=10**9),
        )
        self.revision = 0

    def __len__(self) -> int:
        return len(self.index)

    def _apply(self, keys: Keys, vectors: np.ndarray, deleted: bool) -> None:
        self.revision += 1
        self.index.apply(
            Changes(
                revision=self.revision,
                keys=keys,
                seqs=np.full(len(keys), self.revision, np.int64),
                deleted=np.full(len(keys), deleted),
                vectors=vectors if not deleted else np.zeros((0, DIM), np.float32),
            )
        )

    def add(self, keys: Keys, vectors: np.ndarray) -> None:
        self._apply(keys, vectors, False)
        if self.index.ann_revision is None:
            assert self.index.upkeep() == "built"

    def remove(self, keys: Keys) -> None:
        self._apply(keys, np.zeros((0, DIM), np.float32), True)

    def search(self, query: np.ndarray, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        return self.index.search(query, k, allowed)


class _PgVector:
    """The pgvector table of a collection, its rows written by the store."""

    kind = "pgvector"

    def __init__(self, engine: Engine) -> None:
        self.store = SearchStore(engine)
        self.collection = self.store.create_collection(
            "contract",
            embedding_model="minilm",
            embedding_version=1,
            dim=DIM,
            metadata_fields=None,
            vector_index="pgvector",
            actor="tests",
        )
        self.index = PgVectorIndex(engine, self.collection.id, DIM, ef_search=WIDE_EF)
        self.key_of: dict[int, int] = {}  # corpus key -> document key

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: Keys, vectors: np.ndarray) -> None:
        docs = [Document(id=str(k), text=f"doc {k}") for k in keys.tolist()]
        self.store.upsert_documents(self.collection, docs, vectors, [False] * len(docs))
        with self.store.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, doc_id FROM search_documents")).all()
        self.key_of = {int(doc_id): int(key) for key, doc_id in rows}

    def remove(self, keys: Keys) -> None:
        for k in keys.tolist():
            self.store.delete_document(self.collection, str(k))

    def search(self, query: np.ndarray, k: int, allowed: Keys | None = None) -> tuple[Keys, Scores]:
        corpus_of = {v: c for c, v in self.key_of.items()}
        mapped = None
        if allowed is not None:
            mapped = np.asarray([self.key_of[a] for a in allowed.tolist()], np.int64)
        keys, scores = self.index.search(query, k, mapped)
        return np.asarray([corpus_of[x] for x in keys.tolist()], np.int64), scores


BACKENDS = ["exact", "hnsw", "embedded", "pgvector"]


@pytest.fixture(params=BACKENDS)
def make_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], VectorIndex]]:
    engines: list[Engine] = []

    def make() -> VectorIndex:
        if request.param == "exact":
            return ExactIndex(DIM)
        if request.param == "hnsw":
            return HnswIndex(DIM, expansion_search=WIDE_EF)
        if request.param == "embedded":
            return _Embedded(tmp_path / "index")  # type: ignore[return-value]
        url = request.getfixturevalue("pgvector_database_url")
        engine = make_engine(url)
        engines.append(engine)
        upgrade(engine)
        return _PgVector(engine)  # type: ignore[return-value]

    yield make
    for engine in engines:
        engine.dispose()


def test_top10_equals_exact_search(make_index: Callable[[], VectorIndex]) -> None:
    index = make_index()
    index.add(KEYS, VECTORS)
    assert len(index) == N
    for query in QUERIES:
        keys, scores = index.search(query, K)
        assert_same_top(keys, query)
        assert np.all(np.diff(scores) <= 1e-6), "scores are best first"
        ref_keys, ref_scores = reference(query)
        score_of = dict(zip(ref_keys.tolist(), ref_scores.tolist(), strict=True))
        np.testing.assert_allclose(scores, [score_of[k] for k in keys.tolist()], atol=1e-5)


def test_allowed_keys_are_a_prefilter(make_index: Callable[[], VectorIndex]) -> None:
    index = make_index()
    index.add(KEYS, VECTORS)
    rng = np.random.default_rng(5)
    for fraction in (0.02, 0.3):
        allowed = np.sort(rng.choice(KEYS, int(N * fraction), replace=False))
        for query in QUERIES[:10]:
            keys, _ = index.search(query, K, allowed)
            assert set(keys.tolist()) <= set(allowed.tolist())
            assert_same_top(keys, query, allowed)


def test_replaced_and_removed_keys(make_index: Callable[[], VectorIndex]) -> None:
    index = make_index()
    index.add(KEYS, VECTORS)
    query = QUERIES[0]
    top, _ = index.search(query, K)
    gone = top[:3]
    index.remove(gone)
    # move the 4th hit far away: it must drop out, with its new score
    moved = top[3:4]
    index.add(moved, -query[None, :])
    assert len(index) == N - 3
    keys, _ = index.search(query, K)
    assert not set(keys.tolist()) & set(gone.tolist())
    assert moved[0] not in keys
    mask = ~np.isin(KEYS, np.concatenate([gone, moved]))
    scores = VECTORS[mask] @ query
    expected = KEYS[mask][np.argsort(-scores, kind="stable")[:K]]
    assert set(keys.tolist()) == set(expected.tolist())
    # and a query right at the moved vector finds it, scored as its new vector
    keys, scores = index.search(-query, 1)
    assert keys.tolist() == moved.tolist()
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
