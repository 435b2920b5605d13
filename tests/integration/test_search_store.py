"""The search store and the embedded index on real databases (SQLite, and PostgreSQL when
``AIWEB_TEST_DATABASE_URL`` is set), with fixed synthetic vectors (no embedding model):
metadata filters in SQL agree with the reference semantics, keyword ranking, deletion,
change feeds, and the embedded index's files across restarts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, inspect

from aiweb.db.migrate import upgrade
from aiweb.db.session import make_engine
from aiweb.errors import CollectionNotFound, ConflictError, DocumentNotFound
from aiweb.recommendations import orm as _rec_orm  # noqa: F401  (the schema test: all tables)
from aiweb.search.embedded import AnnParams, EmbeddedIndex
from aiweb.search.entities import Collection, Document
from aiweb.search.filters import Filter
from aiweb.search.store import SearchStore, is_derived_table

DIM = 8


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SearchStore:
    return SearchStore(engine)


def new_collection(store: SearchStore, name: str = "docs", **kw: Any) -> Collection:
    return store.create_collection(
        name,
        embedding_model="minilm",
        embedding_version=1,
        dim=DIM,
        metadata_fields=kw.get("metadata_fields"),
        vector_index="embedded",
        actor="tests",
    )


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store: SearchStore, collection: Collection, docs: list[Document], seed: int = 0) -> int:
    return store.upsert_documents(collection, docs, vectors(len(docs), seed), [False] * len(docs))


METADATA: list[dict[str, Any]] = [
    {"genre": "crime", "year": 1892, "classic": True},
    {"genre": "crime", "year": 1892.0, "classic": False},
    {"genre": "Crime", "year": "1892"},
    {"genre": ["crime", "horror"], "year": 1990},
    {"genre": None, "year": 1},
    {"genre": "horror", "year": True},
    {"genre": "horror", "year": 2001, "nested": {"a": 1}},
    {},
    {"genre": "crime", "year": 1, "classic": 1},
    {"genre": "sci-fi", "year": 1.5, "classic": True},
]
FILTERS: list[dict[str, Any]] = [
    {"genre": "crime"},
    {"genre": "Crime"},
    {"year": 1892},
    {"year": 1892.0},
    {"year": 1},
    {"year": True},
    {"classic": True},
    {"classic": 1},
    {"classic": False},
    {"year": 1.5},
    {"genre": {"in": ["crime", "horror"]}},
    {"year": {"in": [1, "1892", True]}},
    {"genre": "crime", "classic": True},
    {"genre": "nothing"},
    {"nested": 1},
]


def test_filters_in_sql_match_the_reference_semantics(store: SearchStore) -> None:
    collection = new_collection(store)
    docs = [Document(id=f"d{i}", text=f"doc {i}", metadata=m) for i, m in enumerate(METADATA)]
    put(store, collection, docs)
    key_of = {doc_id: key for key, (doc_id, _, _) in store.fetch(collection, range(1, 100)).items()}
    assert len(key_of) == len(docs)
    for raw in FILTERS:
        where = Filter.parse(raw, None)
        assert where is not None
        expected = {key_of[d.id] for d in docs if where.matches(d.metadata)}
        got = set(store.filter_keys(collection, where).tolist())
        assert got == expected, raw
        # the keyword search applies the same filter inside its ranking
        keys, _ = store.keyword_search(collection, "doc", 100, where)
        assert set(keys.tolist()) == expected, raw


def test_keyword_search_ranks_and_forgets_deleted(store: SearchStore) -> None:
    collection = new_collection(store)
    docs = [
        Document("holmes", "The Adventures of Sherlock Holmes: detective stories in London"),
        Document("poirot", "Murder on the Orient Express, a detective story by Agatha Christie"),
        Document("cook", "The Joy of Cooking"),
        Document("london", "London: The Biography, the story of a city"),
        Document("walk", "Detective walks in London: a detective guide to London's streets"),
    ]
    put(store, collection, docs)

    def found(query: str) -> list[str]:
        keys, scores = store.keyword_search(collection, query, 10, None)
        assert np.all(np.diff(scores) <= 0)
        docs = store.fetch(collection, keys.tolist())
        return [docs[k][0] for k in keys.tolist()]

    # every word must appear (stemmed: "stories" finds "story"); stop words are ignored
    assert set(found("detective story")) == {"holmes", "poirot"}
    assert set(found("the story of London")) == {"holmes", "london"}
    # BM25: more occurrences in a short text rank higher
    assert found("detective London") == ["walk", "holmes"]
    assert found('"Orient Express"') == ["poirot"]
    assert found('"Express Orient"') == []
    assert set(found("sherlock or christie")) == {"holmes", "poirot"}
    assert found("detective -christie -walks") == ["holmes"]
    assert found("detective stories in Victorian London") == []  # no text has "Victorian"
    store.delete_document(collection, "holmes")
    assert found("Sherlock") == []
    # a replaced text is re-indexed
    put(store, collection, [Document("cook", "Sherlock cooks")])
    assert found("sherlock") == ["cook"]
    # query syntax is never an error
    for query in ['"', "AND OR NOT", "the", "*", "a:b", "(((", "''", "-x", "NEAR(a b)", "^"]:
        store.keyword_search(collection, query, 10, None)


def test_a_search_leaves_no_reference_cycles(store: SearchStore) -> None:
    """Searching creates no cyclic garbage: with the serving GC tuning (a young-generation
    threshold of 50,000), garbage in reference cycles piles up and one collection frees
    it all at once, stalling the server (a fresh SQL table object per keyword search
    stalled it 30-170 ms at a time; docs/benchmarks.md)."""
    import gc

    collection = new_collection(store, metadata_fields=["genre"])
    put(store, collection, [Document(f"d{i}", f"detective story {i}") for i in range(20)])
    where = Filter.parse({"genre": "crime"}, ["genre"])
    store.keyword_search(collection, "detective", 10, None)  # compiled and cached once
    store.keyword_search(collection, "detective", 10, where)
    gc.collect()
    gc.disable()
    try:
        for i in range(200):
            keys, _ = store.keyword_search(collection, f"detective {i % 7}", 10, None)
            store.fetch(collection, keys.tolist())
            store.get_collection(collection.name)
        cycles = gc.collect()
    finally:
        gc.enable()
    assert cycles < 200  # a few per search would be >= 200 (it was ~30 per search)


def test_changes_feed_revisions_and_tombstones(store: SearchStore) -> None:
    collection = new_collection(store)
    r1 = put(store, collection, [Document("a", "a"), Document("b", "b"), Document("a", "a2")])
    assert r1 == 1
    first = store.changes(collection, 0)
    assert first.revision == 1
    assert first.keys.shape == (2,)
    assert store.get_document(collection, "a").text == "a2"
    r2 = store.delete_document(collection, "b")
    with pytest.raises(DocumentNotFound):
        store.delete_document(collection, "b")
    assert store.get_collection("docs").revision == r2 == 2  # the failed delete bumped nothing
    delta = store.changes(collection, r1)
    assert delta.revision == 2
    assert delta.deleted.tolist() == [True]
    assert delta.vectors.shape == (0, DIM)
    live = store.changes(collection, 0, deleted=False)
    assert live.keys.shape == (1,)
    assert live.vectors.shape == (1, DIM)
    # an upsert revives the tombstone under the same key
    put(store, collection, [Document("b", "back")])
    again = store.changes(collection, r2)
    assert again.keys.tolist() == delta.keys.tolist()
    assert store.get_document(collection, "b").text == "back"


def test_collections_create_update_delete(store: SearchStore, engine: Engine) -> None:
    collection = new_collection(store, metadata_fields=["genre"])
    with pytest.raises(ConflictError):
        new_collection(store)
    put(store, collection, [Document("a", "text")])
    with pytest.raises(ConflictError, match="delete the collection"):
        store.update_collection(collection, metadata_fields=None, embedding=("other", 1, DIM))
    updated = store.update_collection(collection, metadata_fields=["genre", "year"])
    assert updated.metadata_fields == ("genre", "year")
    listed = store.list_collections()
    assert [(c.name, c.documents) for c in listed] == [("docs", 1)]
    derived = {t for t in inspect(engine).get_table_names() if is_derived_table(t)}
    assert derived  # the keyword table (and FTS5's shadow tables)
    store.delete_collection(collection)
    with pytest.raises(CollectionNotFound):
        store.get_collection("docs")
    assert not {t for t in inspect(engine).get_table_names() if is_derived_table(t)}
    with pytest.raises(CollectionNotFound):
        put(store, collection, [Document("a", "text")])


def test_embedded_index_files_survive_a_restart(store: SearchStore, tmp_path: Path) -> None:
    """A second process (a new EmbeddedIndex on the same directory) loads the saved HNSW
    graph and catches up with what was written after it; a stale or broken file is
    rebuilt from the stored vectors."""
    collection = new_collection(store)
    rng = random.Random(0)
    docs = [Document(f"d{i}", f"text {i}") for i in range(300)]
    put(store, collection, docs)
    params = AnnParams(threshold=100, expansion_search=200, refresh_dirty=50)
    directory = tmp_path / "search" / collection.uid

    def fresh() -> EmbeddedIndex:
        current = store.get_collection("docs")
        index = EmbeddedIndex(current, directory, params)
        index.apply(store.changes(current, 0))
        return index

    first = fresh()
    assert first.upkeep() == "built"
    assert [r for r, _ in first.files()] == [1]
    # more writes after the graph was saved
    put(store, collection, [Document(f"d{i}", "changed") for i in rng.sample(range(300), 10)], 9)
    store.delete_document(collection, "d0")

    second = fresh()
    assert second.ann_revision is None
    assert second.upkeep(store.get_collection("docs").revision) == "loaded"
    assert second.ann_revision == 1
    assert second.dirty == 11
    query = vectors(1, 42)[0]
    exact_keys, exact_scores = second.exact.search(query, 10)
    keys, scores = second.search(query, 10)
    assert keys.tolist() == exact_keys.tolist()
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-6)

    # the graph is refreshed once enough was written; the file moves on with it
    put(store, collection, [Document(f"n{i}", "new") for i in range(60)], 3)
    second.apply(store.changes(second.collection, second.revision))
    assert second.upkeep() == "refreshed"
    assert second.dirty == 0
    assert [r for r, _ in second.files()] == [second.revision]

    # a file from the future (a database restored from a backup) is discarded, rebuilt
    newest = second.files()[0][1]
    future = directory / "ann-999.usearch"
    newest.rename(future)
    newest.with_suffix(".json").rename(future.with_suffix(".json"))
    meta = (
        future.with_suffix(".json")
        .read_text()
        .replace(f'"revision": {second.revision}', '"revision": 999')
    )
    future.with_suffix(".json").write_text(meta)
    third = fresh()
    assert third.upkeep(store.get_collection("docs").revision) == "built"
    assert [r for r, _ in third.files()] == [third.revision]

    # a corrupt file is ignored and rebuilt
    path = third.files()[0][1]
    path.write_bytes(b"not an index")
    fourth = fresh()
    assert fourth.upkeep(third.revision) == "built"
    keys, _ = fourth.search(query, 10)
    assert keys.tolist() == fourth.exact.search(query, 10)[0].tolist()


def test_schema_matches_the_orm_with_collections(store: SearchStore, engine: Engine) -> None:
    """With collections (and so their derived keyword/FTS5 tables) in the database, the
    schema still matches the ORM once those tables are left out, as env.py does."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from aiweb.db.base import Base

    put(store, new_collection(store), [Document("a", "text", {"k": 1})])

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return not (type_ == "table" and name is not None and is_derived_table(name))

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        assert compare_metadata(context, Base.metadata) == []


def test_upkeep_forgets_deleted_collections_and_their_files(
    store: SearchStore, tmp_path: Path
) -> None:
    from aiweb.config import Settings
    from aiweb.search.service import SearchService

    settings = Settings(home=tmp_path / "home", search={"ann_threshold": 50})
    service = SearchService(store, None, None, settings)  # type: ignore[arg-type]  # unused
    collection = new_collection(store)
    put(store, collection, [Document(f"d{i}", f"text {i}") for i in range(60)])
    service.embedded_index("docs")
    assert service.upkeep() == {"docs": "built"}
    directory = service.root / collection.uid
    assert [p.name for p in sorted(directory.glob("ann-*"))] == ["ann-1.json", "ann-1.usearch"]
    store.delete_collection(store.get_collection("docs"))  # by another process
    assert service.upkeep() == {}
    assert not directory.exists()
    # the files of a collection deleted while no server ran go at the next start
    orphan = service.root / ("f" * 32)
    orphan.mkdir(parents=True)
    kept = new_collection(store, "kept")
    (service.root / kept.uid).mkdir()
    service.upkeep(load_all=True)
    assert not orphan.exists()
    assert (service.root / kept.uid).is_dir()
