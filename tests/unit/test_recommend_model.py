"""Algorithms, the served model (cold start, exclusion, reasons, artifact) and the cache."""

from __future__ import annotations

import asyncio
import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from aiweb.errors import DataFormatError, InvalidInputError
from aiweb.recommendations import algorithms as algos
from aiweb.recommendations.cache import MemoryRecommendationCache
from aiweb.recommendations.data import Interactions, ItemText
from aiweb.recommendations.importing import parse_timestamp, split_list
from aiweb.recommendations.model import RecommenderModel, UnsafeArtifactError
from aiweb.recommendations.store import Item, TrainingRows
from aiweb.recommendations.training import RecommendationData, build_model, compare, compared

N_USERS, N_ITEMS = 40, 30


def synthetic_rows() -> TrainingRows:
    """Two taste groups: users < 20 like items 0-14 ("sci-fi"), the rest items 15-29
    ("drama"); each user has 14 interactions, one per hour."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(N_USERS):
        pool = range(0, 15) if u < 20 else range(15, 30)
        for t, i in enumerate(rng.permutation(list(pool))[:14]):
            users.append(f"u{u}")
            items.append(f"m{i}")
            times.append(1_600_000_000.0 + 3600 * t + u)
    catalogue = [
        Item(
            f"m{i}",
            title=f"{'space robots' if i < 15 else 'family love'} story {i}",
            categories=("sci-fi",) if i < 15 else ("drama",),
            tags=("future",) if i < 15 else ("tears",),
        )
        for i in range(N_ITEMS)
    ]
    return TrainingRows(users, items, times, last_id=len(users), items=catalogue)


def with_topic_embeddings(data: RecommendationData) -> RecommendationData:
    """``data`` with 8-dimensional item embeddings standing in for a sentence embedder's
    (training attaches the real ones, see tests/integration/test_recommend_embeddings.py):
    sci-fi items near one axis, drama near another, an item-specific part, L2-normalised."""
    rng = np.random.default_rng(1)
    texts = []
    for t in data.texts:
        v = rng.normal(0, 0.15, 8).astype(np.float32)
        v[0 if "sci-fi" in t.categories else 1] += 1.0
        texts.append(replace(t, embedding=v / np.linalg.norm(v)))
    return replace(data, texts=texts, embedding_model={"name": "fake", "version": 1})


def fitted_data(name: str) -> RecommendationData:
    data = RecommendationData.from_rows(synthetic_rows())
    return with_topic_embeddings(data) if name == "content-minilm" else data


@pytest.fixture(scope="module")
def trained() -> tuple[RecommendationData, RecommenderModel]:
    data = RecommendationData.from_rows(synthetic_rows())
    comparison = compare(data, ("ease", "als", "content"), hybrid=True)
    return data, build_model(data, comparison)


ALL = ["als", "bpr", "ease", "content", "content-minilm", "popularity", "trending"]


@pytest.mark.parametrize("name", ALL)
def test_every_algorithm_scores_all_items_and_round_trips(name: str) -> None:
    data = fitted_data(name)
    algo = algos.make(name).fit(data.interactions, data.texts)
    users = np.arange(3, dtype=np.int32)
    rows = algos.recency_rows(data.interactions, users, 10.0)
    scores = algo.score(users, rows)
    assert scores.shape == (3, data.interactions.n_items)
    assert scores.dtype == np.float32
    again = algos.from_state(name, algo.params(), algo.state())
    np.testing.assert_allclose(again.score(users, rows), scores, rtol=1e-5)


def test_unfitted_algorithm_raises() -> None:
    with pytest.raises(algos.NotFittedError):
        algos.make("ease").score(np.zeros(1, np.int32), None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        algos.make("nope")


def test_collaborative_results_stay_in_the_users_taste(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    _data, model = trained
    history = [model.item_index[f"m{i}"] for i in range(5)]
    allowed = np.ones(model.n_items, dtype=bool)
    allowed[history] = False
    recs = model.recommend("u0", history, has_new=False, allowed=allowed, n=5)
    assert [r.reason for r in recs] == ["collaborative"] * 5
    assert all(int(model.item_ids[r.item][1:]) < 15 for r in recs)
    assert not {r.item for r in recs} & set(history)


def test_cold_start_unknown_user_gets_trending(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    _, model = trained
    recs = model.recommend("stranger", [], has_new=False, allowed=np.ones(model.n_items, bool), n=3)
    assert [r.reason for r in recs] == ["popular"] * 3
    expected = np.argsort(-model.trending.trending_)[:3]  # type: ignore[index]
    assert [r.item for r in recs] == expected.tolist()


def test_new_user_with_interactions_gets_similar_items_at_once(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    _, model = trained
    drama = model.item_index["m20"]
    allowed = np.ones(model.n_items, bool)
    allowed[drama] = False
    recs = model.recommend("newcomer", [drama], has_new=True, allowed=allowed, n=3)
    assert all(r.reason == "similar-to:m20" for r in recs)
    assert all(int(model.item_ids[r.item][1:]) >= 15 for r in recs)


def test_allowed_mask_is_respected(trained: tuple[RecommendationData, RecommenderModel]) -> None:
    _, model = trained
    allowed = np.zeros(model.n_items, bool)
    allowed[[3, 7]] = True
    recs = model.recommend("u0", [0, 1], has_new=False, allowed=allowed, n=10)
    assert sorted(r.item for r in recs) == [3, 7]
    assert (
        model.recommend("u0", [0], has_new=False, allowed=np.zeros(model.n_items, bool), n=5) == []
    )


def test_similar_items(trained: tuple[RecommendationData, RecommenderModel]) -> None:
    _, model = trained
    item = model.item_index["m2"]
    recs = model.similar(item, allowed=np.ones(model.n_items, bool), n=4)
    assert item not in {r.item for r in recs}
    assert all(int(model.item_ids[r.item][1:]) < 15 for r in recs)


def test_artifact_round_trip_and_refusal(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    _, model = trained
    again = RecommenderModel.from_bytes(model.to_bytes())
    assert again.item_ids == model.item_ids
    assert again.user_ids == model.user_ids
    history = [0, 1, 2]
    allowed = np.ones(model.n_items, bool)
    a = model.recommend("u1", history, has_new=False, allowed=allowed, n=5)
    b = again.recommend("u1", history, has_new=False, allowed=allowed, n=5)
    assert [r.item for r in a] == [r.item for r in b]
    with pytest.raises(UnsafeArtifactError):
        RecommenderModel.from_bytes(b"not an archive")


def test_too_little_data_is_a_clear_error() -> None:
    rows = TrainingRows(["u"] * 3, ["a", "b", "c"], [1.0, 2.0, 3.0], 3, [])
    with pytest.raises(InvalidInputError, match="too few interactions"):
        compare(RecommendationData.from_rows(rows), ("ease",), hybrid=False)
    with pytest.raises(InvalidInputError, match="no interactions"):
        RecommendationData.from_rows(TrainingRows([], [], [], 0, []))


def test_memory_cache_invalidation_and_ttl() -> None:
    now = [0.0]
    cache = MemoryRecommendationCache(ttl_s=10, max_users=2, clock=lambda: now[0])

    async def run() -> None:
        await cache.set("alice", "movies:1", [["m1", 1.0, "popular"]])
        await cache.set("alice", "movies:2", [["m2", 1.0, "popular"]])
        await cache.set("bob", "movies:1", [["m3", 1.0, "popular"]])
        assert await cache.get("alice", "movies:1") == [["m1", 1.0, "popular"]]
        await cache.invalidate(["alice"])
        assert await cache.get("alice", "movies:1") is None
        assert await cache.get("alice", "movies:2") is None
        assert await cache.get("bob", "movies:1") is not None
        now[0] = 11.0
        assert await cache.get("bob", "movies:1") is None

    asyncio.run(run())


def test_import_parsers() -> None:
    assert split_list("Action|Comedy| Drama") == ("Action", "Comedy", "Drama")
    assert split_list('["a", "b|c"]') == ("a", "b|c")
    assert split_list(None) == ()
    assert parse_timestamp("964982703", where="x").year == 2000
    assert parse_timestamp("2024-01-02T03:04:05", where="x").tzinfo is not None
    with pytest.raises(DataFormatError, match="row 3"):
        parse_timestamp("yesterday", where="row 3")


def test_interactions_build_keeps_catalogue_items() -> None:
    data = Interactions.build(["u"], ["a"], [1.0], catalogue=["z", "a"])
    assert data.item_ids == ["z", "a"]
    assert ItemText().title == ""


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("half_life", [3.0, math.inf])
def test_single_user_scoring_equals_batch_scoring(name: str, half_life: float) -> None:
    """Serving's one-user path (score_user) gives the scores evaluation measured."""
    data = fitted_data(name)
    algo = algos.make(name).fit(data.interactions, data.texts)
    # the fourth user is unknown to the model and has user 0's items
    rows = algos.recency_rows(data.interactions, np.asarray([0, 7, 25, 0], np.int32), half_life)
    users = np.asarray([0, 7, 25, -1], dtype=np.int32)
    batch = algo.score(users, rows)
    for j, user in enumerate(users.tolist()):
        items = rows.indices[rows.indptr[j] : rows.indptr[j + 1]]
        weights = rows.data[rows.indptr[j] : rows.indptr[j + 1]]
        one = algo.score_user(user, items, weights)
        assert one.shape == (data.interactions.n_items,)
        assert one.dtype == np.float32
        np.testing.assert_allclose(one, batch[j], rtol=1e-5, atol=1e-6)
    if isinstance(algo, algos.ALS):
        folded = algo.score(users, rows, fold_in=True)
        items = rows.indices[rows.indptr[1] : rows.indptr[2]]
        one = algo.score_user(7, items, np.ones(len(items), np.float32), fold_in=True)
        np.testing.assert_allclose(one, folded[1], rtol=1e-4, atol=1e-5)


def test_long_histories_score_as_with_every_item() -> None:
    """EASE and content leave out items weighted below 2^-24 of the heaviest item that
    counts; scores stay those of every item even when the latest items do not count (not
    in EASE's B, no text), so the weights left are all tiny."""
    rows = synthetic_rows()
    # user u0 then rates 80 more items, the same second, that nobody else rated and that
    # have no text: in neither B nor TF-IDF
    extra = [f"new{i}" for i in range(80)]
    rows = TrainingRows(
        rows.user_ids + ["u0"] * 80,
        rows.item_ids + extra,
        rows.times + [1_700_000_000.0] * 80,
        last_id=rows.last_id + 80,
        items=rows.items,
    )
    data = RecommendationData.from_rows(rows)
    inter = data.interactions
    history = inter.items[inter.users == 0]
    assert len(history) == 94
    rows_u0 = algos.recency_rows(inter, np.zeros(1, np.int32), 3.0)
    for name in ("ease", "content"):
        algo = algos.make(name).fit(inter, data.texts)
        batch = algo.score(np.zeros(1, np.int32), rows_u0)[0]
        one = algo.score_user(0, history, algos.recency_weights(len(history), 3.0))
        assert np.abs(batch).max() < 1e-6  # only items weighted 2^-27 and less count
        np.testing.assert_allclose(one, batch, rtol=1e-4, atol=1e-12 * np.abs(batch).max())
        assert np.argmax(one) == np.argmax(batch)


def test_model_keeps_the_training_histories(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    data, model = trained
    inter = data.interactions
    for user in (0, 13, 39):
        expected = inter.items[inter.users == user]  # rows are in time order per user
        assert model.training_history(user).tolist() == expected.tolist()
    assert len(model.training_history(-1)) == 0
    again = RecommenderModel.from_bytes(model.to_bytes())
    assert again.histories is not None
    assert again.training_history(13).tolist() == model.training_history(13).tolist()


def _rewrite_artifact(data: bytes, meta_update: dict[str, object], drop: str = "") -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if not (drop and k.startswith(drop))}
    meta = json.loads(arrays["meta.json"].tobytes().decode("utf-8"))
    meta.update(meta_update)
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_format_1_artifacts_load_without_histories_and_bad_histories_are_refused(
    trained: tuple[RecommendationData, RecommenderModel],
) -> None:
    _, model = trained
    old = RecommenderModel.from_bytes(
        _rewrite_artifact(model.to_bytes(), {"format_version": 1}, drop="history.")
    )
    assert old.histories is None
    assert len(old.training_history(0)) == 0
    allowed = np.ones(model.n_items, bool)
    history = model.training_history(3)
    a = model.recommend("u3", history, has_new=False, allowed=allowed, n=5)
    b = old.recommend("u3", history, has_new=False, allowed=allowed, n=5)
    assert a == b
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["history.items"] = arrays["history.items"] + model.n_items  # out of range
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(UnsafeArtifactError, match="histories"):
        RecommenderModel.from_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArtifactError, match="format version"):
        RecommenderModel.from_bytes(_rewrite_artifact(model.to_bytes(), {"format_version": 9}))


def test_algorithm_parameters_are_checked_against_the_constructor() -> None:
    assert algos.make("ease", {"l2": 300}).l2 == 300.0  # type: ignore[attr-defined]
    assert algos.make("als", {"factors": 8}).factors == 8  # type: ignore[attr-defined]
    for name, params, problem in (
        ("als", {"factors": "many"}, "factors"),
        ("als", {"factors": 1.5}, "factors"),
        ("ease", {"bogus": 1}, "bogus"),
        ("popularity", {"x": 1}, "x"),
    ):
        with pytest.raises(InvalidInputError, match=problem):
            algos.make(name, params)
    with pytest.raises(InvalidInputError, match="object"):
        algos.make("ease", 5)  # type: ignore[arg-type]


def test_embedding_content_ranks_by_the_items_embeddings() -> None:
    data = with_topic_embeddings(RecommendationData.from_rows(synthetic_rows()))
    algo = algos.make("content-minilm").fit(data.interactions, data.texts)
    inter = data.interactions
    scifi = inter.item_ids.index("m3")
    similar = algo.similar(scifi)
    assert similar[scifi] == pytest.approx(1.0, abs=1e-5)  # an item's cosine with itself
    top = np.argsort(-similar)[:10]
    assert all(int(inter.item_ids[i][1:]) < 15 for i in top)  # the sci-fi items
    user = inter.user_ids.index("u25")  # a drama fan
    items = inter.items[inter.users == user].astype(np.int32)
    scores = algo.score_user(user, items, np.ones(len(items), np.float32))
    assert all(int(inter.item_ids[i][1:]) >= 15 for i in np.argsort(-scores)[:10])


def test_embedding_content_without_embeddings_says_how_to_get_them() -> None:
    data = RecommendationData.from_rows(synthetic_rows())
    with pytest.raises(InvalidInputError, match="aiweb embeddings install"):
        algos.make("content-minilm").fit(data.interactions, data.texts)


def test_auto_compares_embedding_content_only_with_item_embeddings() -> None:
    data = RecommendationData.from_rows(synthetic_rows())
    names, hybrid = compared("auto", data)
    assert "content-minilm" not in names
    assert hybrid
    names, _ = compared("auto", with_topic_embeddings(data))
    assert "content-minilm" in names
    assert compared("content-minilm", data) == (("content-minilm",), False)
    comparison = compare(with_topic_embeddings(data), names, hybrid=True)
    assert "content-minilm" in comparison.report["algorithms"]
    model = build_model(with_topic_embeddings(data), comparison)
    again = RecommenderModel.from_bytes(model.to_bytes())
    assert [c.algorithm.name for c in again.components] == [
        c.algorithm.name for c in model.components
    ]


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ("ease", "collaborative"),
        ("content", "similar-to:"),
        ("content-minilm", "similar-to:"),
        ("popularity", "popular"),
    ],
)
def test_a_known_users_reasons_say_what_the_model_rests_on(algorithm: str, reason: str) -> None:
    data = fitted_data(algorithm)
    comparison = compare(data, (algorithm,), hybrid=False)
    comparison.select(algorithm)
    model = build_model(data, comparison)
    history = [model.item_index[f"m{i}"] for i in range(5)]
    allowed = np.ones(model.n_items, dtype=bool)
    allowed[history] = False
    recs = model.recommend("u0", history, has_new=False, allowed=allowed, n=5)
    assert len(recs) == 5
    assert all(r.reason.startswith(reason) for r in recs), [r.reason for r in recs]
    if reason == "similar-to:":  # one of the user's own items
        assert {r.reason.split(":", 1)[1] for r in recs} <= {f"m{i}" for i in range(5)}


def test_embedding_content_state_of_another_shape_is_refused() -> None:
    with pytest.raises(UnsafeArtifactError, match="float32"):
        algos.from_state("content-minilm", {}, {"vectors": np.zeros((3, 4), np.float64)})
    with pytest.raises(UnsafeArtifactError, match="float32"):
        algos.from_state("content-minilm", {}, {"vectors": np.zeros(4, np.float32)})
