"""The "done when" of search collections: the 10,000 goodbooks-10k titles and authors as a
collection, and ``POST /v1/collections/books/search`` ``{"query": "detective stories in
Victorian London", "mode": "hybrid"}`` puts Sherlock Holmes books near the top.

Slow (embedding 10,000 titles takes about a minute on two cores): ``-m slow``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import standalone_settings
from test_search_api import install_minilm

from aiweb.app import create_app
from aiweb.config import Settings
from conftest import create_key

pytestmark = pytest.mark.slow


def goodbooks(shared_data: Path) -> list[dict[str, object]]:
    with (shared_data / "goodbooks10k_metadata" / "books.csv").open(encoding="utf-8") as fh:
        return [
            {
                "id": row["book_id"],
                "text": f"{row['title']} by {row['authors']}",
                "metadata": {"year": row["original_publication_year"] or None},
            }
            for row in csv.DictReader(fh)
        ]


@pytest.fixture(scope="module")
def books(
    shared_data: Path, minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("books-home")
    settings: Settings = standalone_settings(home)
    install_minilm(settings, minilm_dir)
    key = create_key(settings, ("admin",))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.put("/v1/collections/books", json={}).status_code == 201
        docs = goodbooks(shared_data)
        assert len(docs) == 10_000
        resp = c.post("/v1/collections/books/documents", json={"documents": docs})
        assert resp.status_code == 202, resp.text  # a large batch is a background job
        job = resp.json()
        deadline = time.monotonic() + 900
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
            job = c.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] == "succeeded", job
        assert c.get("/v1/collections/books").json()["documents"] == 10_000
        yield c


def test_detective_stories_in_victorian_london(books: TestClient) -> None:
    resp = books.post(
        "/v1/collections/books/search",
        json={"query": "detective stories in Victorian London", "mode": "hybrid"},
    )
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert len(hits) == 10
    sherlock = [i for i, h in enumerate(hits) if "Sherlock Holmes" in h["text"]]
    assert sherlock, [h["text"] for h in hits]
    assert sherlock[0] < 3  # one in the top 3
    assert len(sherlock) >= 2  # and another in the top 10


def test_author_and_title_words(books: TestClient) -> None:
    for mode in ("keyword", "hybrid"):
        hits = books.post(
            "/v1/collections/books/search",
            json={"query": "Conan Doyle hound", "mode": mode, "top_k": 3},
        ).json()["hits"]
        assert hits[0]["text"].startswith("The Hound of the Baskervilles"), (mode, hits)
