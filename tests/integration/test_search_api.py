"""``/v1/collections`` over HTTP with API keys, on SQLite and (when configured) PostgreSQL,
and on a PostgreSQL with pgvector (``pgserver``): collections, documents, the three search
modes, filters, deletion, truncation, large batches as jobs, restarts, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from aiweb.app import create_app
from aiweb.config import SearchSettings, Settings
from aiweb.embeddings.install import register_exported
from conftest import create_key

LONG = "a long document " + " ".join(["padding"] * 400)

DOCS: list[dict[str, Any]] = [
    {"id": "card-1", "text": "My card has not arrived yet", "metadata": {"intent": "card_arrival"}},
    {
        "id": "card-2",
        "text": "When will my new card be delivered?",
        "metadata": {"intent": "card_arrival"},
    },
    {
        "id": "lost-1",
        "text": "I lost my credit card yesterday",
        "metadata": {"intent": "lost_card"},
    },
    {
        "id": "lost-2",
        "text": "Someone stole my wallet with my cards",
        "metadata": {"intent": "lost_card"},
    },
    {"id": "pin-1", "text": "How do I change my PIN?", "metadata": {"intent": "change_pin"}},
    {"id": "pin-2", "text": "I want a new PIN number", "metadata": {"intent": "change_pin"}},
    {
        "id": "rate-1",
        "text": "What is the exchange rate for euros?",
        "metadata": {"intent": "exchange_rate", "fee": 0},
    },
    {
        "id": "top-1",
        "text": "My top up failed",
        "metadata": {"intent": "top_up_failed", "fee": 1.5},
    },
    {
        "id": "weather",
        "text": "It is sunny in London today",
        "metadata": {"intent": "other", "ok": True},
    },
    {"id": "long", "text": LONG, "metadata": {"intent": "other", "ok": False}},
]


def with_search(settings: Settings, **search: Any) -> Settings:
    return settings.model_copy(update={"search": SearchSettings(**search)})


def install_minilm(settings: Settings, minilm_dir: Path) -> None:
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
    finally:
        engine.dispose()


@pytest.fixture
def search_settings(settings: Settings, minilm_dir: Path) -> Settings:
    settings = with_search(settings, sync_max_documents=16)
    install_minilm(settings, minilm_dir)
    return settings


@pytest.fixture
def client(search_settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(search_settings), headers=auth_headers) as c:
        yield c


def ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["id"] for h in resp.json()["hits"]]


def search(client: TestClient, name: str = "faq", **body: Any) -> Any:
    return client.post(f"/v1/collections/{name}/search", json=body)


def test_collection_lifecycle(client: TestClient) -> None:
    resp = client.put("/v1/collections/faq", json={})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["embedding_model"] == "minilm:1"  # minilm@production, pinned at creation
    assert created["dim"] == 384
    assert created["metadata_fields"] is None
    assert created["vector_index"] == "embedded"
    again = client.put("/v1/collections/faq", json={"metadata_fields": ["intent", "fee", "ok"]})
    assert again.status_code == 200
    assert again.json()["metadata_fields"] == ["intent", "fee", "ok"]

    resp = client.post("/v1/collections/faq/documents", json={"documents": DOCS})
    assert resp.status_code == 200, resp.text
    assert resp.json()["upserted"] == len(DOCS)
    assert resp.json()["truncated"] == ["long"]  # over 256 word pieces: the response says so
    doc = client.get("/v1/collections/faq/documents/long").json()
    assert doc["truncated"] is True
    assert doc["text"] == LONG
    assert client.get("/v1/collections/faq").json()["documents"] == len(DOCS)
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["faq"]

    hits = ids(search(client, query="my card got stolen", mode="vector", top_k=3))
    assert hits[0] in {"lost-1", "lost-2"}
    body = search(client, query="my card got stolen", mode="vector", top_k=3).json()
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[0] <= 1.0
    assert body["hits"][0]["metadata"]["intent"] == "lost_card"
    assert body["query_truncated"] is False

    # deletion: the document is gone from every mode at once
    assert client.delete("/v1/collections/faq/documents/lost-1").status_code == 204
    assert client.delete("/v1/collections/faq/documents/lost-1").status_code == 404
    for mode in ("vector", "keyword", "hybrid"):
        assert "lost-1" not in ids(search(client, query="lost credit card", mode=mode, top_k=10))
    assert client.get("/v1/collections/faq/documents/lost-1").status_code == 404

    # an upsert replaces by id
    client.post(
        "/v1/collections/faq/documents",
        json={"documents": [{"id": "weather", "text": "How do I reset my PIN code?"}]},
    )
    assert "weather" in ids(search(client, query="reset PIN", mode="vector", top_k=3))

    assert client.delete("/v1/collections/faq").status_code == 204
    assert client.get("/v1/collections/faq").status_code == 404
    missing = search(client, query="x")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"].endswith("/collection-not-found")


def test_modes_and_filters(client: TestClient) -> None:
    client.put("/v1/collections/faq", json={})
    client.post("/v1/collections/faq/documents", json={"documents": DOCS})
    # keyword: words, not meaning (BM25); nothing shares a word with "xylophone"
    assert ids(search(client, query="exchange rate euros", mode="keyword"))[0] == "rate-1"
    assert ids(search(client, query="xylophone", mode="keyword")) == []
    # hybrid fuses both lists: a keyword-only miss is still found by meaning
    assert ids(search(client, query="xylophone", mode="hybrid", top_k=3)) != []
    assert set(ids(search(client, query="PIN", mode="hybrid", top_k=2))) == {"pin-1", "pin-2"}

    for mode in ("vector", "keyword", "hybrid"):
        got = ids(
            search(client, query="card", mode=mode, top_k=10, filter={"intent": "change_pin"})
        )
        if mode != "keyword":  # no PIN document has the word "card"
            assert set(got) == {"pin-1", "pin-2"}  # a pre-filter: every match is found
        else:
            assert got == []
        got = ids(
            search(
                client,
                query="card",
                mode=mode,
                top_k=10,
                filter={"intent": {"in": ["card_arrival", "lost_card"]}},
            )
        )
        assert set(got) <= {"card-1", "card-2", "lost-1", "lost-2"}
        assert got
        by_fee = ids(search(client, query="x", mode=mode, filter={"fee": 1.5}))
        assert by_fee == ([] if mode == "keyword" else ["top-1"])  # "x" is in no text
        assert ids(search(client, query="sunny", mode=mode, filter={"ok": True})) == ["weather"]
    # numbers are equal by value; a boolean is not a number
    assert ids(search(client, query="top up", mode="vector", filter={"fee": 0.0})) == ["rate-1"]
    assert ids(search(client, query="anything", mode="vector", filter={"ok": 1})) == []

    # once metadata_fields are declared, a filter on another field is a 422
    client.put("/v1/collections/faq", json={"metadata_fields": ["intent"]})
    resp = search(client, query="card", filter={"fee": 0})
    assert resp.status_code == 422
    assert "not a filterable metadata field" in resp.json()["detail"]


def test_long_query_is_truncated_and_said_so(client: TestClient) -> None:
    client.put("/v1/collections/faq", json={})
    client.post("/v1/collections/faq/documents", json={"documents": DOCS[:3]})
    body = search(client, query="card " + " ".join(["word"] * 300), mode="vector").json()
    assert body["query_truncated"] is True
    assert search(client, query="card", mode="keyword").json()["query_truncated"] is False


def test_large_batch_becomes_a_job(client: TestClient, search_settings: Settings) -> None:
    client.put("/v1/collections/books", json={})
    docs = [{"id": f"b{i}", "text": f"book number {i} about topic {i % 7}"} for i in range(40)]
    docs.append({"id": "big", "text": LONG})
    resp = client.post("/v1/collections/books/documents", json={"documents": docs})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["type"] == "index-documents"
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    deadline = time.monotonic() + 120
    while job["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job
    assert job["result"]["upserted"] == 41
    assert job["result"]["truncated"] == ["big"]
    # the batch file stays while the job may be retried and is removed once it succeeded
    assert not (search_settings.resolved_artifacts_dir / job["params"]["batch_uri"]).exists()
    assert client.get("/v1/collections/books").json()["documents"] == 41
    assert ids(search(client, "books", query="book number 17", mode="keyword", top_k=1)) == ["b17"]


def test_scopes(search_settings: Settings, admin_key: str) -> None:
    predict = create_key(search_settings, ("predict",), name="reader")
    train = create_key(search_settings, ("train",), name="writer")
    with TestClient(create_app(search_settings)) as c:
        assert c.put("/v1/collections/faq", json={}).status_code == 401
        as_reader = {"Authorization": f"Bearer {predict}"}
        as_writer = {"Authorization": f"Bearer {train}"}
        assert c.put("/v1/collections/faq", json={}, headers=as_reader).status_code == 403
        assert c.put("/v1/collections/faq", json={}, headers=as_writer).status_code == 201
        docs = {"documents": DOCS[:2]}
        assert (
            c.post("/v1/collections/faq/documents", json=docs, headers=as_reader).status_code == 403
        )
        assert (
            c.post("/v1/collections/faq/documents", json=docs, headers=as_writer).status_code == 200
        )
        body = {"query": "card"}
        assert c.post("/v1/collections/faq/search", json=body).status_code == 401
        assert c.post("/v1/collections/faq/search", json=body, headers=as_reader).status_code == 200
        assert c.get("/v1/collections", headers=as_reader).status_code == 200
        assert c.delete("/v1/collections/faq", headers=as_reader).status_code == 403
        assert c.delete("/v1/collections/faq", headers=as_writer).status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("put", "/v1/collections/Bad Name", {}, 422),
        ("put", "/v1/collections/faq2", {"embedding_model": "nosuch"}, 404),
        ("put", "/v1/collections/faq2", {"embedding_model": "Bad Ref!"}, 422),
        ("put", "/v1/collections/faq2", {"metadata_fields": ["bad field"]}, 422),
        ("put", "/v1/collections/faq2", {"unknown": 1}, 422),
        ("put", "/v1/collections/faq", {"embedding_model": "minilm:7"}, 404),
        ("post", "/v1/collections/faq/documents", {"documents": []}, 422),
        ("post", "/v1/collections/faq/documents", {"documents": [{"id": "", "text": "x"}]}, 422),
        ("post", "/v1/collections/faq/documents", {"documents": [{"id": "a"}]}, 422),
        ("post", "/v1/collections/faq/documents", {"documents": [{"id": "a", "text": 3}]}, 422),
        (
            "post",
            "/v1/collections/faq/documents",
            {"documents": [{"id": "a", "text": "x", "metadata": []}]},
            422,
        ),
        (
            "post",
            "/v1/collections/faq/documents",
            {"documents": [{"id": "a", "text": "x" * 100_001}]},
            422,
        ),
        (
            "post",
            "/v1/collections/nosuch/documents",
            {"documents": [{"id": "a", "text": "x"}]},
            404,
        ),
        ("post", "/v1/collections/faq/search", {"query": ""}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "top_k": 0}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "top_k": 101}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "mode": "fuzzy"}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "filter": {"a": [1]}}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "filter": {"a": {"in": []}}}, 422),
        ("post", "/v1/collections/faq/search", {"query": "x", "filter": "intent"}, 422),
        ("delete", "/v1/collections/faq/documents/nosuch", None, 404),
        ("delete", "/v1/collections/nosuch", None, 404),
    ],
)
def test_bad_input_is_a_problem(
    client: TestClient, method: str, path: str, body: Any, status: int
) -> None:
    client.put("/v1/collections/faq", json={})
    resp = client.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == status


def test_too_many_documents_is_413(search_settings: Settings, auth_headers: dict[str, str]) -> None:
    settings = with_search(search_settings, max_documents=5)
    with TestClient(create_app(settings), headers=auth_headers) as c:
        c.put("/v1/collections/faq", json={})
        docs = [{"id": str(i), "text": "x"} for i in range(6)]
        resp = c.post("/v1/collections/faq/documents", json={"documents": docs})
        assert resp.status_code == 413
        assert "AIWEB_SEARCH__MAX_DOCUMENTS" in resp.json()["detail"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@hsettings(
    database=None,  # no .hypothesis/ directory in the project
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "query": json_values,
            "top_k": json_values,
            "filter": json_values,
            "mode": st.sampled_from(["vector", "keyword", "hybrid", "x"]) | json_values,
        },
    )
)
def test_any_search_body_is_answered_without_a_server_error(
    client: TestClient, body: dict[str, Any]
) -> None:
    client.put("/v1/collections/faq", json={})
    resp = search(client, **body)
    assert resp.status_code in (200, 404, 422), resp.text
    if resp.status_code != 200:
        assert resp.headers["content-type"] == "application/problem+json"


def test_index_persists_across_restart(
    search_settings: Settings, auth_headers: dict[str, str]
) -> None:
    """A new app on the same AIWEB_HOME (and database) loads the HNSW graph the first one
    saved, answers the same, and catches up with writes made while it was down."""
    settings = with_search(
        search_settings,
        ann_threshold=50,
        ann_expansion_search=200,
        sync_max_documents=1000,
        upkeep_interval_s=3600,  # one round at start; this test calls upkeep() itself
    )
    docs = [
        {"id": f"q{i}", "text": t, "metadata": {"n": i}}
        for i, t in enumerate(
            f"{verb} my {thing}"
            for verb in ("cancel", "renew", "lose", "find", "pay", "order", "block", "track")
            for thing in (
                "card",
                "account",
                "loan",
                "mortgage",
                "phone",
                "package",
                "ticket",
                "pin",
            )
        )
    ]
    queries = ["I need to block my card", "where is my parcel", "pay back the mortgage"]
    with TestClient(create_app(settings), headers=auth_headers) as c:
        c.put("/v1/collections/faq", json={})
        assert c.post("/v1/collections/faq/documents", json={"documents": docs}).status_code == 200
        service = c.app.state.search  # type: ignore[attr-defined]
        service.embedded_index("faq")  # loaded by the first search, here without one
        assert service.upkeep() == {"faq": "built"}
        index = service.embedded_index("faq")
        built_at = index.ann_revision
        assert built_at is not None
        assert index.files()
        before = [ids(search(c, query=q, mode="vector", top_k=5)) for q in queries]
    # written while no server runs: only the database knows
    with TestClient(
        create_app(with_search(settings, ann_threshold=10_000)), headers=auth_headers
    ) as c:
        c.delete("/v1/collections/faq/documents/q0")
    with TestClient(create_app(settings), headers=auth_headers) as c:
        service = c.app.state.search  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while service.embedded_index("faq").ann_revision is None:  # loaded at start
            assert time.monotonic() < deadline
            time.sleep(0.05)
        index = service.embedded_index("faq")
        assert index.ann_revision == built_at
        assert index.dirty == 1
        for query, hits in zip(queries, before, strict=True):
            kept = [i for i in hits if i != "q0"]
            assert ids(search(c, query=query, mode="vector", top_k=5))[: len(kept)] == kept
        assert "q0" not in ids(search(c, query="cancel my card", mode="vector", top_k=64))


# -- pgvector on pgserver ----------------------------------------------------------------
@pytest.fixture
def pg_client(pgvector_database_url: str, tmp_path: Path, minilm_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path / "pg-home",
        database_url=pgvector_database_url,
        rate_limit={"enabled": False},
        secret_key="tests-pgvector-" + "x" * 40,
        search={"sync_max_documents": 1000},
    )
    install_minilm(settings, minilm_dir)
    key = create_key(settings)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


def test_pgvector_collections(pg_client: TestClient) -> None:
    c = pg_client
    resp = c.put("/v1/collections/faq", json={"metadata_fields": ["intent", "fee", "ok"]})
    assert resp.status_code == 201
    assert resp.json()["vector_index"] == "pgvector"
    assert c.post("/v1/collections/faq/documents", json={"documents": DOCS}).json()[
        "truncated"
    ] == ["long"]
    # the same answers as exact search over the same embeddings
    embedder = c.app.state.embedders  # type: ignore[attr-defined]
    service = c.app.state.search  # type: ignore[attr-defined]
    collection = service.store.get_collection("faq")
    model = embedder.get(service.model_version(collection))
    doc_vectors = model.embed([d["text"] for d in DOCS]).vectors
    for query in ("my card got stolen", "change PIN", "euro exchange rate", "weather"):
        q = model.embed([query]).vectors[0]
        expected = [DOCS[i]["id"] for i in np.argsort(-(doc_vectors @ q), kind="stable")[:5]]
        got = search(c, query=query, mode="vector", top_k=5).json()["hits"]
        assert [h["id"] for h in got] == expected
        np.testing.assert_allclose(
            [h["score"] for h in got], np.sort(doc_vectors @ q)[::-1][:5], atol=1e-5
        )
    # filters: an exact scan over the admitted documents
    got = ids(search(c, query="card", mode="vector", top_k=10, filter={"intent": "change_pin"}))
    assert set(got) == {"pin-1", "pin-2"}
    assert ids(search(c, query="x", mode="vector", filter={"fee": 0.0})) == ["rate-1"]
    assert ids(search(c, query="x", mode="vector", filter={"ok": 1})) == []
    assert ids(search(c, query="exchange rate euros", mode="keyword"))[0] == "rate-1"
    assert "pin-1" in ids(search(c, query="PIN", mode="hybrid", top_k=3))
    assert c.delete("/v1/collections/faq/documents/pin-1").status_code == 204
    for mode in ("vector", "keyword", "hybrid"):
        assert "pin-1" not in ids(search(c, query="PIN", mode=mode, top_k=10))
    assert c.delete("/v1/collections/faq").status_code == 204
