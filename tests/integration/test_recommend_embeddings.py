"""Content-based recommendations on sentence embeddings (``content-minilm``) with the real
all-MiniLM-L6-v2 export: training embeds the items' documents with the installed
embedding model, ``auto`` compares it, the artifact serves without the embedder, and
without an installed embedder the algorithm says how to install one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, standalone_settings
from test_jobs_api import wait_job

from aiweb.app import create_app
from aiweb.embeddings.install import register_exported
from aiweb.errors import EmbeddingModelNotInstalled
from aiweb.recommendations.model import RecommenderModel
from aiweb.recommendations.store import Item, TrainingRows
from aiweb.recommendations.training import RecommendationData, train_recommendation
from aiweb.registry.artifacts import read_verified
from aiweb.registry.service import RegistryService
from conftest import create_key

SPACE = [
    "Robots invade a distant planet",
    "Starship crew lost in a black hole",
    "Alien war over the rings of Saturn",
    "Astronauts stranded on Mars",
    "An android learns to dream among the stars",
    "Galactic empire against rebel pilots",
    "First contact with an alien fleet",
    "Time travel on a space station",
    "Cyborg soldiers of the future",
    "A rocket mission to Jupiter's moons",
    "Laser battles in a far galaxy",
    "The last colony ship leaves Earth",
    "Martian robots wake up",
    "Wormhole explorers of deep space",
    "Invaders from another solar system",
]
FAMILY = [
    "A mother and daughter reconcile",
    "Brothers grieve their father's death",
    "A wedding brings a divided family together",
    "Grandparents raise three orphans",
    "A divorce tears a small family apart",
    "Sisters reunite at their childhood home",
    "A father learns to love his estranged son",
    "Siblings care for their ailing mother",
    "A family farm and its last summer",
    "Two cousins fall out over an inheritance",
    "A widow rebuilds her life with her children",
    "Holidays with a quarrelling family",
    "A son returns home after twenty years",
    "A marriage tested by illness",
    "A teenage daughter runs away from home",
]


def rows() -> TrainingRows:
    """40 users in two tastes (space films, family dramas), 12 films each, one per hour;
    items carry only a title, so only content (TF-IDF or embeddings) tells them apart."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(40):
        pool = range(15) if u < 20 else range(15, 30)
        for t, i in enumerate(rng.permutation(list(pool))[:12]):
            users.append(f"u{u}")
            items.append(f"m{i}")
            times.append(1_600_000_000.0 + 3600 * t + u)
    catalogue = [Item(f"m{i}", title=title) for i, title in enumerate(SPACE + FAMILY)]
    return TrainingRows(users, items, times, last_id=len(users), items=catalogue)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryService]:
    registry, engine = open_registry(standalone_settings(tmp_path))
    yield registry
    engine.dispose()


def test_content_minilm_trains_on_the_installed_embedder_and_serves_without_it(
    registry: RegistryService, minilm_dir: Path
) -> None:
    register_exported(registry, minilm_dir, actor="tests")
    data = RecommendationData.from_rows(rows())
    result = train_recommendation(registry, "films", data, algorithm="content-minilm")
    version = result.version
    assert version.lineage["embedding_model"]["name"] == "minilm"
    assert version.lineage["embedding_model"]["dim"] == 384
    assert [c["algorithm"] for c in version.lineage["components"]] == ["content-minilm"]
    assert "content-minilm" in result.report["algorithms"]
    assert version.artifact_uri is not None
    artifact = read_verified(
        registry.artifacts, version.artifact_uri, version.artifact_sha256, "artifact"
    )
    model = RecommenderModel.from_bytes(artifact)
    ids = model.item_ids
    # the nearest films of a space film are space films, by their titles' meaning
    component = model.components[0].algorithm
    nearest = np.argsort(-component.similar(ids.index("m3")))[1:6]
    assert all(int(ids[i][1:]) < 15 for i in nearest), [ids[i] for i in nearest]
    # a new user who liked two family dramas gets family dramas
    family = np.asarray([ids.index("m16"), ids.index("m20")], dtype=np.int32)
    scores = component.score_user(-1, family, np.ones(2, np.float32))
    scores[family] = -np.inf
    top = np.argsort(-scores)[:5]
    assert all(int(ids[i][1:]) >= 15 for i in top), [ids[i] for i in top]


def test_auto_compares_content_minilm_when_an_embedder_is_installed(
    registry: RegistryService, minilm_dir: Path
) -> None:
    data = RecommendationData.from_rows(rows())
    without = train_recommendation(registry, "films", data, algorithm="auto")
    assert "content-minilm" not in without.report["algorithms"]
    assert "embedding_model" not in without.version.lineage
    register_exported(registry, minilm_dir, actor="tests")
    with_it = train_recommendation(registry, "films", data, algorithm="auto")
    compared = with_it.report["algorithms"]
    assert "content-minilm" in compared
    assert compared["content-minilm"]["test"]["ndcg"] > compared["popularity"]["test"]["ndcg"]
    assert with_it.version.lineage["embedding_model"]["name"] == "minilm"


def test_content_minilm_without_an_embedder_says_how_to_install_one(
    registry: RegistryService,
) -> None:
    data = RecommendationData.from_rows(rows())
    with pytest.raises(EmbeddingModelNotInstalled, match="aiweb embeddings install"):
        train_recommendation(registry, "films", data, algorithm="content-minilm")
    assert registry.list_models() == []


def test_content_minilm_over_the_api_serves_and_is_refitted_for_promotion(
    tmp_path: Path, minilm_dir: Path
) -> None:
    """Trained by a job, served with reasons from the user's own items, and, as the
    production recipe, refitted on the items' embeddings when a scheduled retrain
    compares a new version with it."""
    settings = standalone_settings(tmp_path)
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, actor="tests")
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {create_key(settings)}"}
    data = rows()
    items = [{"item_id": i.item_id, "title": i.title} for i in data.items]
    events = [
        {"user_id": u, "item_id": i, "type": "view", "timestamp": t}
        for u, i, t in zip(data.user_ids, data.item_ids, data.times, strict=True)
    ]
    with TestClient(create_app(settings), headers=headers) as client:
        assert client.post("/v1/items", json={"items": items}).status_code == 200
        assert client.post("/v1/interactions", json={"interactions": events}).status_code == 200
        body = {"type": "train", "task": "recommendation", "model": "films"}
        r = client.post("/v1/jobs", json={**body, "algorithm": "content-minilm"})
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], timeout=120)
        assert job["status"] == "succeeded", job
        # u30 saw 12 of the 15 family dramas: the other 3 come first
        r = client.get("/v1/users/u30/recommendations", params={"model": "films", "n": 3})
        assert r.status_code == 200, r.text
        recs = r.json()
        assert len(recs) == 3
        assert all(int(rec["item_id"][1:]) >= 15 for rec in recs), recs
        assert all(rec["reason"].startswith("similar-to:m") for rec in recs), recs
        r = client.put(
            "/v1/models/films/schedule",
            json={
                "task": "recommendation",
                "cron": "0 3 * * *",
                "algorithm": "ease",
                "promotion": {"metric": "ndcg", "beat_popularity": False},
            },
        )
        assert r.status_code == 200, r.text
        r = client.post("/v1/models/films/schedule/run")
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], timeout=120)
        assert job["status"] == "succeeded", job
        decision = job["result"]["promotion"]
        assert decision["production_version"] == 1
        assert decision["production"] is not None  # content-minilm refitted on the split
