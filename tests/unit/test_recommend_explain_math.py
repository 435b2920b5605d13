"""Why a recommendation (issue #22, item 4): the history items' contributions per algorithm,
checked against values computed by hand on a tiny catalogue, and additivity
(``score = base + rest + Σ because``) on fitted models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from aiweb.recommendations import algorithms as algos
from aiweb.recommendations.data import Interactions, ItemText
from aiweb.recommendations.explain import BECAUSE_TOP, _implicit_model
from aiweb.recommendations.model import Component, RecommenderModel

#: EASE's B over items 0-2 (item 3 is not in B), rows = the history item
B = np.asarray([[0.0, 0.5, 0.2], [0.3, 0.0, 0.4], [0.1, 0.6, 0.0]], dtype=np.float32)
#: unit TF-IDF vectors of items 0-3 over three terms
V = np.asarray(
    [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]], dtype=np.float32
)


def ease() -> algos.EASE:
    return algos.EASE.from_state(
        {"l2": 1.0},
        {
            "items": np.arange(3, dtype=np.int32),
            "weights": B,
            "n_items": np.asarray([4], dtype=np.int64),
        },
    )


def content() -> algos.Content:
    m = sparse.csr_matrix(V)
    return algos.Content.from_state(
        {"min_df": 1},
        {
            "data": m.data,
            "indices": m.indices,
            "indptr": m.indptr,
            "shape": np.asarray(m.shape, dtype=np.int64),
        },
    )


def tiny(components: list[Component]) -> RecommenderModel:
    """User ``a`` had items 0 then 1 at training; four items."""
    popularity = algos.Popularity.from_state({}, {"popularity": np.asarray([3, 2, 1, 0], "f4")})
    trending = algos.Trending.from_state({}, {"trending": np.asarray([0, 1, 2, 3], "f4")})
    return RecommenderModel(
        name="tiny",
        components=components,
        trending=trending,
        popularity=popularity,
        content=content(),
        user_ids=["a"],
        item_ids=["i0", "i1", "i2", "i3"],
        last_interaction_id=1,
        histories=(np.asarray([0, 2]), np.asarray([0, 1], dtype=np.int32)),
    )


def additive(model: RecommenderModel, user: str, history: list[int], has_new: bool) -> None:
    """``base + rest + Σ because == score`` for every item, the score as served."""
    scores, _ = model.scores(user, history, has_new=has_new)
    targets = list(range(model.n_items))
    for t, why in zip(
        targets, model.explain(user, history, has_new=has_new, targets=targets), strict=True
    ):
        total = why.base + why.rest + sum(w for _, w in why.because)
        assert total == pytest.approx(float(scores[t]), abs=1e-4), (t, why)
        assert len(why.because) <= BECAUSE_TOP
        weights = [w for _, w in why.because]
        assert weights == sorted(weights, reverse=True)
        assert all(w > 0 for w in weights)


def test_ease_weights_are_the_interactions_times_b() -> None:
    # half-life 1: the latest item (i1) weighs 1, the one before (i0) 0.5
    model = tiny([Component(ease(), 1.0, 1.0)])
    i2, i3 = model.explain("a", [0, 1], has_new=False, targets=[2, 3])
    # score(i2) = 0.5·B[0,2] + 1·B[1,2] = 0.1 + 0.4 = 0.5
    assert [(j, round(w, 6)) for j, w in i2.because] == [(1, 0.4), (0, 0.1)]
    assert (i2.method, i2.exact, i2.parts) == ("ease", True, [])
    assert i2.base == pytest.approx(0.0, abs=1e-7)
    assert i2.rest == pytest.approx(0.0, abs=1e-7)
    # i3 is not in B: it scores the row minimum, min(0.3, 0.25, 0.5), no history item's doing
    assert i3.because == []
    assert i3.base == pytest.approx(0.25, abs=1e-7)
    additive(model, "a", [0, 1], False)


def test_ease_lists_at_most_top_and_sums_the_rest() -> None:
    model = tiny([Component(ease(), 1.0, math.inf)])
    (why,) = model.explain("a", [0, 2], has_new=False, targets=[1], top=1)
    # score(i1) = B[0,1] + B[2,1] = 0.5 + 0.6: i2 listed, i0's 0.5 in rest
    assert [(j, round(w, 6)) for j, w in why.because] == [(2, 0.6)]
    assert why.rest == pytest.approx(0.5, abs=1e-6)


def test_content_weights_are_the_recency_weighted_cosines() -> None:
    model = tiny([Component(content(), 1.0, 1.0)])
    # history i1 (weight 0.5), then i3 (weight 1): score(i2) = 0.5·0.48 + 1·0.8 = 1.04
    (why,) = model.explain("a", [1, 3], has_new=True, targets=[2])
    assert [(j, round(w, 6)) for j, w in why.because] == [(3, 0.8), (1, 0.24)]
    assert why.method == "content"
    assert why.exact
    assert why.base == pytest.approx(0.0, abs=1e-6)
    # i0 is orthogonal to i2: it contributes nothing and is not listed
    (why,) = model.explain("a", [0, 1], has_new=False, targets=[2])
    assert [(j, round(w, 6)) for j, w in why.because] == [(1, 0.48)]
    additive(model, "a", [0, 1, 3], True)


def test_hybrid_weights_are_the_blend_weights_over_each_part_deviation() -> None:
    model = tiny([Component(ease(), 0.7, 1.0), Component(content(), 0.3, 1.0)])
    (why,) = model.explain("a", [0, 1], has_new=False, targets=[2])
    # by hand: each part's contributions divided by its score deviation, times its weight
    ease_scores = np.asarray([0.3, 0.25, 0.5, 0.25])  # 0.5·B[0] + B[1], i3 the minimum
    content_scores = V @ (0.5 * V[0] + V[1])
    ease_part = [0.7 * 0.1 / ease_scores.std(), 0.7 * 0.4 / ease_scores.std()]
    content_part = [0.3 * 0.5 * 0.0 / content_scores.std(), 0.3 * 0.48 / content_scores.std()]
    expected = {0: ease_part[0] + content_part[0], 1: ease_part[1] + content_part[1]}
    assert dict(why.because) == pytest.approx(expected, abs=1e-5)
    assert why.method == "hybrid"
    assert [(s, w) for s, w, _ in why.parts] == [("ease", 0.7), ("content", 0.3)]
    shares = {s: share for s, _, share in why.parts}
    assert shares["ease"] == pytest.approx(0.7 * (0.5 - ease_scores.mean()) / ease_scores.std())
    assert why.base == pytest.approx(
        -0.7 * ease_scores.mean() / ease_scores.std()
        - 0.3 * content_scores.mean() / content_scores.std(),
        abs=1e-5,
    )
    additive(model, "a", [0, 1], False)


def test_popularity_explains_nothing_in_the_history() -> None:
    model = tiny([Component(algos.Popularity.from_state({}, {"popularity": np.ones(4, "f4")}))])
    (why,) = model.explain("a", [0, 1], has_new=False, targets=[2])
    assert (why.because, why.method, why.exact, why.base) == ([], "popularity", True, 1.0)


def test_a_user_without_interactions_gets_trending_and_no_because() -> None:
    model = tiny([Component(ease(), 1.0, 1.0)])
    (why,) = model.explain("nobody", [], has_new=False, targets=[3])
    assert (why.because, why.method, why.base) == ([], "trending", 3.0)


def test_a_new_user_is_explained_by_both_parts() -> None:
    model = tiny([Component(ease(), 1.0, 1.0)])
    (why,) = model.explain("b", [0, 1], has_new=True, targets=[2])
    assert why.method == "item-to-item"
    assert [s for s, _, _ in why.parts] == ["ease", "content"]
    assert [j for j, _ in why.because] == [1, 0]
    additive(model, "b", [0, 1], True)


# --------------------------------------------------------------------------- fitted models


def interactions() -> tuple[Interactions, list[ItemText]]:
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(30):
        pool = range(0, 10) if u < 15 else range(10, 20)
        for t, i in enumerate(rng.permutation(list(pool))[:6]):
            users.append(f"u{u}")
            items.append(f"m{i}")
            times.append(1_600_000_000.0 + 3600 * t + u)
    data = Interactions.build(users, items, times, catalogue=[f"m{i}" for i in range(20)])
    texts = [
        ItemText(
            title=f"{'space robots' if int(i[1:]) < 10 else 'family love'} {i}",
            text="",
            categories=(),
            tags=(),
        )
        for i in data.item_ids
    ]
    return data, texts


def fitted(names: list[str], weights: list[float]) -> tuple[RecommenderModel, Interactions]:
    data, texts = interactions()
    components = [
        Component(algos.make(n).fit(data, texts), w, 3.0)
        for n, w in zip(names, weights, strict=True)
    ]
    history = data.matrix().tocsr()
    return (
        RecommenderModel(
            name="+".join(names),
            components=components,
            trending=algos.Trending().fit(data, texts),
            popularity=algos.Popularity().fit(data, texts),
            content=algos.Content(min_df=1).fit(data, texts),
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            last_interaction_id=len(data),
            histories=(history.indptr.astype(np.int64), history.indices.astype(np.int32)),
        ),
        data,
    )


@pytest.mark.parametrize(
    ("names", "weights"),
    [
        (["ease"], [1.0]),
        (["content"], [1.0]),
        (["als"], [1.0]),
        (["bpr"], [1.0]),
        (["popularity"], [1.0]),
        (["ease", "als", "content"], [0.5, 0.3, 0.2]),
    ],
)
def test_every_model_adds_up(names: list[str], weights: list[float]) -> None:
    model, _ = fitted(names, weights)
    history = model.training_history(0).tolist()
    additive(model, "u0", history, False)
    additive(model, "u0", history, True)
    additive(model, "stranger", history[:3], True)


def test_ease_and_content_put_nothing_in_base() -> None:
    for name in ("ease", "content"):
        model, _ = fitted([name], [1.0])
        history = model.training_history(0).tolist()
        for why in model.explain("u0", history, has_new=False, targets=list(range(10))):
            assert why.exact
            assert why.base == pytest.approx(0.0, abs=1e-5)


def test_als_uses_implicits_explain_exactly_for_a_folded_in_user() -> None:
    model, _ = fitted(["als"], [1.0])
    als = model.components[0].algorithm
    assert isinstance(als, algos.ALS)
    history = np.asarray(model.training_history(0))
    scores, _ = model.scores("u0", history, has_new=True)
    targets = [int(t) for t in np.argsort(-scores)[:5]]
    explained = model.explain("u0", history, has_new=True, targets=targets)
    # implicit's own explain of the same user (confidence 1 + alpha: the fold-in's)
    row = sparse.csr_matrix(
        (np.full(len(history), (1 + als.alpha) / als.alpha, "f4"), history, [0, len(history)]),
        shape=(1, model.n_items),
    )
    for target, why in zip(targets, explained, strict=True):
        assert why.method == "als"
        assert why.exact
        total, top, _ = _implicit_model(als).explain(0, row, target, N=BECAUSE_TOP)
        assert total == pytest.approx(float(scores[target]), rel=1e-4, abs=1e-5)
        expected = [(int(j), w) for j, w in top if w > 0]
        assert [j for j, _ in why.because] == [j for j, _ in expected]
        assert [w for _, w in why.because] == pytest.approx([w for _, w in expected], rel=1e-5)
        assert why.base == pytest.approx(0.0, abs=1e-4)


def test_als_of_a_fitted_user_vector_is_marked_approximate() -> None:
    model, _ = fitted(["als"], [1.0])
    history = model.training_history(0).tolist()
    (why,) = model.explain("u0", history, has_new=False, targets=[1])
    assert why.method == "als"
    assert not why.exact
    assert 0 < len(why.because) <= BECAUSE_TOP


def test_als_without_alpha_is_derived_from_the_factors() -> None:
    data, texts = interactions()
    als = algos.ALS(factors=4, alpha=0.0, iterations=3).fit(data, texts)
    model, _ = fitted(["ease"], [1.0])
    model = RecommenderModel(
        name="als",
        components=[Component(als)],
        trending=model.trending,
        popularity=model.popularity,
        content=model.content,
        user_ids=model.user_ids,
        item_ids=model.item_ids,
        last_interaction_id=model.last_interaction_id,
        histories=model.histories,
    )
    additive(model, "u0", model.training_history(0).tolist(), True)


def test_bpr_of_a_known_user_lists_nothing() -> None:
    model, _ = fitted(["bpr"], [1.0])
    history = model.training_history(0).tolist()
    (why,) = model.explain("u0", history, has_new=False, targets=[1])
    assert (why.because, why.exact, why.method) == ([], False, "bpr")


def test_similar_parts_add_up_to_the_score() -> None:
    model, _ = fitted(["ease"], [1.0])
    allowed = np.ones(model.n_items, dtype=bool)
    recs = model.similar(0, allowed=allowed, n=5)
    for rec, because in zip(recs, model.explain_similar(0, [r.item for r in recs]), strict=True):
        assert [p["source"] for p in because["parts"]] == ["content", "ease"]
        assert sum(p["weight"] for p in because["parts"]) == pytest.approx(rec.score, abs=1e-5)
        assert because["source"] == max(because["parts"], key=lambda p: p["weight"])["source"]
