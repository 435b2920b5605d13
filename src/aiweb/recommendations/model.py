"""A trained recommender as served: its components, the cold-start fallbacks, the artifact.

A model version holds one or more scoring *components* (an algorithm, its blend weight
and the recency half-life of the rows it scores from), plus three parts every version
has: trending items (unknown users), popularity, and TF-IDF item vectors (content-based
results and explanations for users who arrived after training).

How a user is served, from their interactions *now*: the distinct items a user had at
training are kept in the model (:meth:`RecommenderModel.training_history`), so serving reads
from the store only the interactions logged after training (one indexed query) and
appends them:

- no interactions: trending items, reason ``popular``;
- known at training: the components' (blended) scores from the current rows, reason
  ``collaborative`` (item-based components and ALS fold-in reflect new interactions at
  once; ``similar-to:<item_id>`` when every component is content-based, ``popular`` for
  popularity alone);
- unknown at training, with interactions since: item-to-item (the collaborative
  components scored from the rows alone) blended with content-based scores, reason
  ``similar-to:<item_id>`` naming the user's item that contributes most.

Each component scores a user from one gather and one matrix-vector product (no sparse
matrix is built per request: ``score_user`` in :mod:`~aiweb.recommendations.algorithms`).

Artifact format ``npz``: one uncompressed :func:`numpy.savez` archive of plain arrays plus
a JSON document (``meta.json``, UTF-8 bytes); it is read with ``allow_pickle=False``, so
loading it never runs code. The registry checks its sha256 before it is read. Format
version 2 adds the training histories (``history.indptr``, ``history.items``); version 1
artifacts still load, and are then served from the whole history read from the store.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zipfile import BadZipFile

import numpy as np
import numpy.typing as npt

from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.recommendations import algorithms as algos
from aiweb.recommendations import explain as why
from aiweb.recommendations.algorithms import (
    ALS,
    BPR,
    EASE,
    Algorithm,
    Content,
    EmbeddingContent,
    Popularity,
    Trending,
)

ARTIFACT_FORMAT = "npz"
FORMAT_VERSION = 2
#: artifact format versions :meth:`RecommenderModel.from_bytes` reads
READABLE_VERSIONS = (1, 2)
POPULAR = "popular"
COLLABORATIVE = "collaborative"
SIMILAR = "similar"
#: recency half-life (in interactions) of the rows a user unknown at training is served
#: and explained from
NEW_USER_HALF_LIFE = 3.0
#: a new user's most recent items that may explain a recommendation
EXPLAIN_ITEMS = 50

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass
class Component:
    """One scoring part of a model.

    Attributes:
        algorithm: the fitted algorithm.
        weight: its weight in the blend (scores are standardised per user first when
            there are several components).
        half_life: recency half-life (in interactions) of the rows it scores from.
    """

    algorithm: Algorithm
    weight: float = 1.0
    half_life: float = math.inf


@dataclass(frozen=True)
class Ranked:
    """Recommended items, best first.

    Attributes:
        items: intp ``(k,)`` indices into ``item_ids``.
        scores: float32 ``(k,)``, higher is better.
        reasons: ``k`` reasons (``collaborative``, ``popular``, ``similar-to:<item_id>``).
    """

    items: npt.NDArray[np.intp]
    scores: F32
    reasons: list[str]


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: index into ``item_ids``, score (higher is better), reason."""

    item: int
    score: float
    reason: str


@dataclass(frozen=True)
class Explained:
    """Why one item was recommended to a user (:meth:`RecommenderModel.explain`).

    ``score = base + rest + Σ weight of because`` (to float32 rounding).

    Attributes:
        because: ``(item index, weight)`` of the history items that add most to the score
            (at most :data:`~aiweb.recommendations.explain.BECAUSE_TOP`, positive weights
            only), largest first; weights in the units of the score.
        base: the part of the score no history item makes: popularity or trending
            components, the offsets of standardised blends, an item outside EASE's ``B``
            (and, not exact, what ``implicit``'s explanation of a known ALS user misses).
        rest: the sum of the other history items' contributions (unlisted, or negative).
        method: ``ease``, ``als``, ``bpr``, ``content``, ``content-minilm``,
            ``popularity`` (one component), ``hybrid`` (several), ``item-to-item`` (a
            user unknown at training) or ``trending`` (a user without interactions).
        exact: the weights are the model's own arithmetic; false when they approximate
            it (ALS of a user served with their fitted factors, BPR of a known user).
        parts: for a blend, ``(source, blend weight, the part's share of this item's
            score)`` per component; empty for one component.
    """

    because: list[tuple[int, float]]
    base: float
    rest: float
    method: str
    exact: bool
    parts: list[tuple[str, float, float]]


@dataclass(frozen=True)
class _Attribution:
    """One user's scores split over their history: ``scores`` (float32 ``(n_items,)``, as
    served), ``matrix`` (float64 ``(h, k)``: each history item's part of each target's
    score), ``exact``, ``method`` and per blend component ``(source, weight, share of each
    target's score)``."""

    scores: F32
    matrix: npt.NDArray[np.float64]
    exact: bool
    method: str
    parts: list[tuple[str, float, npt.NDArray[np.float64]]]


def _top(scores: F32, allowed: npt.NDArray[np.bool_], n: int) -> tuple[F32, npt.NDArray[np.intp]]:
    """``(scores with disallowed items at -inf, the indices of the up to n best allowed
    items, best first)``."""
    scores = np.where(allowed, scores, np.float32(-np.inf)).astype(np.float32, copy=False)
    k = min(n, int(np.count_nonzero(allowed)))
    if k <= 0:
        return scores, np.zeros(0, dtype=np.intp)
    top = np.argpartition(-scores, k - 1)[:k]
    return scores, top[np.argsort(-scores[top], kind="stable")]


def _kind(algorithm: Algorithm) -> str:
    """What an algorithm's scores rest on: collaborative, popular or (content) similar."""
    if isinstance(algorithm, Popularity | Trending):
        return POPULAR
    if isinstance(algorithm, Content | EmbeddingContent):
        return SIMILAR
    return COLLABORATIVE


def _standardize(scores: F32) -> F32:
    """:func:`~aiweb.recommendations.algorithms.standardize` of one score vector (the
    same up to float32 rounding; the variance from one dot product): a new float32 array."""
    out = scores - np.float32(scores.mean(dtype=np.float64))
    std = math.sqrt(float(np.dot(out, out)) / max(1, len(out)))
    if std > 0:
        out /= np.float32(std)
    return out


class RecommenderModel:
    """A served recommendation model.

    Args:
        name: ``auto``'s choice or the algorithm asked for (``ease``, ``hybrid`` …).
        components: the scoring parts (at least one).
        trending, popularity, content: the parts every version has.
        user_ids, item_ids: external ids of the rows and columns it was trained on.
        last_interaction_id: the highest interaction log id it was trained on.
        histories: ``(indptr, items)``, the CSR layout of every training user's distinct
            items, oldest first: user ``u``'s are ``items[indptr[u]:indptr[u + 1]]``
            (int64 ``(n_users + 1,)`` and int32); ``None`` for a version 1 artifact.
    """

    def __init__(
        self,
        *,
        name: str,
        components: list[Component],
        trending: Trending,
        popularity: Popularity,
        content: Content,
        user_ids: list[str],
        item_ids: list[str],
        last_interaction_id: int,
        histories: tuple[npt.NDArray[np.int64], I32] | None = None,
    ) -> None:
        if not components:
            raise InvalidInputError("a model needs at least one component")
        self.name = name
        self.components = components
        self.trending = trending
        self.popularity = popularity
        self.content = content
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.last_interaction_id = last_interaction_id
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        self.item_index = {t: i for i, t in enumerate(item_ids)}
        if histories is not None:
            indptr, items = histories
            if len(indptr) != len(user_ids) + 1 or int(indptr[-1]) != len(items):
                raise InvalidInputError("histories do not match the model's users")
            histories = (
                np.asarray(indptr, dtype=np.int64),
                np.ascontiguousarray(items, dtype=np.int32),
            )
        self.histories = histories
        self._cf = self._item_to_item(components)
        # content-minilm components' vectors: explanations add their cosine
        self._embeddings = [
            c.algorithm.vectors_
            for c in components
            if isinstance(c.algorithm, EmbeddingContent) and c.algorithm.vectors_ is not None
        ]
        # the reason of a known user's results: collaborative when a collaborative
        # component scores them, popular for popularity alone, else (content-based
        # components only) similar-to the user's items
        kinds = {_kind(c.algorithm) for c in components}
        self._known_kind = (
            COLLABORATIVE if COLLABORATIVE in kinds else POPULAR if kinds == {POPULAR} else SIMILAR
        )
        # what item-to-item similarity reads, prepared once: for ALS/BPR the L2-normalised
        # item factors (EASE keeps the position of each item in ``B`` itself)
        self._unit_factors: F32 | None = None
        if isinstance(self._cf, ALS | BPR):
            assert self._cf.item_factors_ is not None
            f = self._cf.item_factors_
            norms = np.linalg.norm(f, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            self._unit_factors = (f / norms).astype(np.float32)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def training_history(self, user: int) -> I32:
        """The distinct items user index ``user`` had at training, oldest first: int32
        (a read-only view; empty for ``-1`` or a version 1 artifact)."""
        if user < 0 or self.histories is None:
            return np.zeros(0, dtype=np.int32)
        indptr, items = self.histories
        view = items[indptr[user] : indptr[user + 1]]
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ scoring

    def _blend(self, user: int, history: I32, *, fold_in: bool) -> F32:
        """The components' scores of one user (standardised and weighted when several):
        float32 ``(n_items,)``, possibly a read-only array."""
        total: F32 | None = None
        weights_at: dict[float, F32] = {}
        for c in self.components:
            if c.half_life not in weights_at:
                weights_at[c.half_life] = algos.recency_weights(len(history), c.half_life)
            weights = weights_at[c.half_life]
            if isinstance(c.algorithm, ALS):
                scores = c.algorithm.score_user(user, history, weights, fold_in=fold_in)
            else:
                scores = c.algorithm.score_user(user, history, weights)
            if len(self.components) == 1:
                return scores
            part = c.weight * _standardize(scores)
            if total is None:
                total = part
            else:
                total += part
        assert total is not None
        return total

    def scores(
        self, user_id: str, history: Sequence[int] | I32, *, has_new: bool
    ) -> tuple[F32, str]:
        """Scores of every item for a user and the kind of result.

        Args:
            user_id: external id.
            history: the user's distinct item indices now, oldest first.
            has_new: the user has interactions the model was not trained on.

        Returns:
            ``(float32 (n_items,), kind)``, kind ``popular``, ``collaborative`` or
            ``similar`` (new user: content-based and item-to-item). The array may be
            read-only (the model's own trending scores): copy it to change it.
        """
        items = np.asarray(history, dtype=np.int32)
        if not len(items):
            return self.trending.score_user(-1, items, np.zeros(0, np.float32)), POPULAR
        user = self.user_index.get(user_id, -1)
        if user >= 0:
            return self._blend(user, items, fold_in=has_new), self._known_kind
        cf = self._blend(-1, items, fold_in=True)
        weights = algos.recency_weights(len(items), NEW_USER_HALF_LIFE)
        content = self.content.score_user(-1, items, weights)
        return _standardize(cf) + _standardize(content), SIMILAR

    def rank(
        self,
        user_id: str,
        history: Sequence[int] | I32,
        *,
        has_new: bool,
        allowed: npt.NDArray[np.bool_],
        n: int,
    ) -> Ranked:
        """The ``n`` best allowed items for a user, with reasons, as arrays.

        Args:
            user_id: external id.
            history: distinct item indices the user interacted with, oldest first.
            has_new: the user has interactions newer than the model.
            allowed: bool ``(n_items,)``: items that may be recommended.
            n: list length.

        Returns:
            Up to ``n`` items, best first.
        """
        scores, kind = self.scores(user_id, history, has_new=has_new)
        scores, top = _top(scores, allowed, n)
        if kind != SIMILAR or not len(top):
            return Ranked(top, scores[top], [kind] * len(top))
        sources = np.asarray(history, dtype=np.int64)[-EXPLAIN_ITEMS:]
        block = self.item_similarity(sources, top)
        block = block * algos.recency_weights(len(sources), NEW_USER_HALF_LIFE)[:, None]
        best = block.argmax(axis=0)
        reasons = []
        for j in range(len(top)):
            if block[best[j], j] > 0:
                reasons.append(f"similar-to:{self.item_ids[int(sources[best[j]])]}")
            else:
                reasons.append(POPULAR)
        return Ranked(top, scores[top], reasons)

    def recommend(
        self,
        user_id: str,
        history: Sequence[int] | I32,
        *,
        has_new: bool,
        allowed: npt.NDArray[np.bool_],
        n: int,
    ) -> list[Recommendation]:
        """:meth:`rank` as a list of :class:`Recommendation`, best first."""
        ranked = self.rank(user_id, history, has_new=has_new, allowed=allowed, n=n)
        return [
            Recommendation(i, s, r)
            for i, s, r in zip(
                ranked.items.tolist(), ranked.scores.tolist(), ranked.reasons, strict=True
            )
        ]

    # ------------------------------------------------------------------ explanations

    def _attribute(self, user: int, items: I32, targets: I32, *, fold_in: bool) -> _Attribution:
        """:meth:`_blend` with each history item's part of each target's score."""
        h, k = len(items), len(targets)
        weights_at: dict[float, F32] = {}
        total: F32 | None = None
        matrix = np.zeros((h, k), dtype=np.float64)
        exact = True
        parts: list[tuple[str, float, npt.NDArray[np.float64]]] = []
        for c in self.components:
            if c.half_life not in weights_at:
                weights_at[c.half_life] = algos.recency_weights(h, c.half_life)
            weights = weights_at[c.half_life]
            if isinstance(c.algorithm, ALS):
                scores = c.algorithm.score_user(user, items, weights, fold_in=fold_in)
            else:
                scores = c.algorithm.score_user(user, items, weights)
            found, ok = why.contributions(
                c.algorithm, user, items, weights, targets, fold_in=fold_in
            )
            exact = exact and ok
            if len(self.components) == 1:
                if found is not None:
                    matrix = found
                return _Attribution(scores, matrix, exact, c.algorithm.name, [])
            _, std = why.std_of(scores)
            part = c.weight * _standardize(scores)
            if found is not None:
                matrix += (c.weight / std) * found
            parts.append((c.algorithm.name, c.weight, part[targets].astype(np.float64)))
            if total is None:
                total = part
            else:
                total += part
        assert total is not None
        return _Attribution(total, matrix, exact, "hybrid", parts)

    def explain(
        self,
        user_id: str,
        history: Sequence[int] | I32,
        *,
        has_new: bool,
        targets: Sequence[int],
        top: int = why.BECAUSE_TOP,
    ) -> list[Explained]:
        """Why each of ``targets`` scores what it does for the user (the scores of
        :meth:`scores`, split over the user's history; see
        :mod:`~aiweb.recommendations.explain` for each algorithm's arithmetic).

        A user known at training: their components' contributions (a blend's standardised
        by the same mean and deviation as the score: the means go to ``base``). A user
        unknown at training with interactions: the item-to-item part and the TF-IDF
        part, both standardised, summed (``method`` ``item-to-item``). No interactions:
        trending, nothing in ``because``.

        Args:
            user_id: external id.
            history: the user's distinct item indices now, oldest first.
            has_new: the user has interactions newer than the model.
            targets: item indices to explain (the recommended ones).
            top: most history items listed per target.

        Returns:
            One :class:`Explained` per target, in order.
        """
        items = np.asarray(history, dtype=np.int32)
        wanted = np.asarray(targets, dtype=np.int32)
        if not len(items):
            scores = self.trending.score_user(-1, items, np.zeros(0, np.float32))
            return [
                Explained([], float(scores[t]), 0.0, "trending", True, []) for t in wanted.tolist()
            ]
        user = self.user_index.get(user_id, -1)
        if user >= 0:
            found = self._attribute(user, items, wanted, fold_in=has_new)
        else:
            cf = self._attribute(-1, items, wanted, fold_in=True)
            weights = algos.recency_weights(len(items), NEW_USER_HALF_LIFE)
            content = self.content.score_user(-1, items, weights)
            matrix, _ = why.contributions(self.content, -1, items, weights, wanted, fold_in=True)
            assert matrix is not None
            cf_std, content_std = why.std_of(cf.scores)[1], why.std_of(content)[1]
            cf_part, content_part = _standardize(cf.scores), _standardize(content)
            found = _Attribution(
                cf_part + content_part,
                cf.matrix / cf_std + matrix / content_std,
                cf.exact,
                "item-to-item",
                [
                    (cf.method, 1.0, cf_part[wanted].astype(np.float64)),
                    ("content", 1.0, content_part[wanted].astype(np.float64)),
                ],
            )
        out = []
        for t, target in enumerate(wanted.tolist()):
            column = found.matrix[:, t]
            order = np.argsort(-column, kind="stable")[: max(0, top)]
            because = [(int(items[j]), float(column[j])) for j in order if column[j] > 0]
            attributed = float(column.sum())
            listed = sum(w for _, w in because)
            out.append(
                Explained(
                    because,
                    float(found.scores[target]) - attributed,
                    attributed - listed,
                    found.method,
                    found.exact,
                    [(name, weight, float(share[t])) for name, weight, share in found.parts],
                )
            )
        return out

    def explain_similar(self, item: int, targets: Sequence[int]) -> list[dict[str, Any]]:
        """Why each of ``targets`` is similar to ``item`` (the score of :meth:`similar`,
        split by source).

        Returns:
            Per target ``{"source", "parts": [{"source", "similarity", "weight"}]}``:
            ``content`` (the TF-IDF cosine) and, when the model has one, the collaborative
            source (``ease``: ``B[item, target]``; ``als``/``bpr``: the cosine of the item
            factors); ``weight`` is the source's standardised share of the score (the
            weights sum to it), ``source`` the source of the larger weight.
        """
        everything = np.arange(self.n_items, dtype=np.int64)
        wanted = np.asarray(targets, dtype=np.int64)
        cf = self._cf_similarity(np.asarray([item], dtype=np.int64), everything)
        content = self.content.similar(item)
        content_std = algos.standardize(content[None, :])[0]
        cf_std = algos.standardize(cf)[0] if np.abs(cf).max() > 0 else None
        out = []
        for t in wanted.tolist():
            parts: list[dict[str, Any]] = [
                {
                    "source": "content",
                    "similarity": round(float(content[t]), 6),
                    "weight": round(float(content_std[t]), 6),
                }
            ]
            if cf_std is not None and self._cf is not None:
                parts.append(
                    {
                        "source": self._cf.name,
                        "similarity": round(float(cf[0, t]), 6),
                        "weight": round(float(cf_std[t]), 6),
                    }
                )
            best = max(parts, key=lambda p: float(p["weight"]))
            out.append({"source": best["source"], "parts": parts})
        return out

    # ------------------------------------------------------------------ item-to-item

    @staticmethod
    def _item_to_item(components: list[Component]) -> EASE | ALS | BPR | None:
        """The collaborative algorithm item-to-item similarity comes from: the heaviest
        EASE, ALS or BPR component (the first of equals), or none."""
        best: EASE | ALS | BPR | None = None
        weight = -math.inf
        for c in components:
            if isinstance(c.algorithm, EASE | ALS | BPR) and c.weight > weight:
                best, weight = c.algorithm, c.weight
        return best

    def _cf_similarity(self, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]) -> F32:
        if self._unit_factors is not None:
            unit = self._unit_factors
            return unit[sources] @ unit[targets].T
        out = np.zeros((len(sources), len(targets)), dtype=np.float32)
        if isinstance(self._cf, EASE):
            assert self._cf.weights_ is not None
            assert self._cf.positions_ is not None
            ps, pt = self._cf.positions_[sources], self._cf.positions_[targets]
            ok_s, ok_t = np.flatnonzero(ps >= 0), np.flatnonzero(pt >= 0)
            if len(ok_s) and len(ok_t):
                out[np.ix_(ok_s, ok_t)] = self._cf.weights_[np.ix_(ps[ok_s], pt[ok_t])]
        return out

    def item_similarity(
        self, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]
    ) -> F32:
        """Similarity of items ``sources`` to items ``targets``: float32
        ``(len(sources), len(targets))``, the collaborative similarity scaled to at most 1
        plus the TF-IDF cosine (plus the embedding cosine of a content-minilm component)."""
        cf = self._cf_similarity(sources, targets)
        peak = float(np.abs(cf).max()) if cf.size else 0.0
        if peak > 0:
            cf = cf / peak
        assert self.content.vectors_ is not None
        v = self.content.vectors_
        content = np.asarray((v[sources] @ v[targets].T).toarray(), dtype=np.float32)
        for e in self._embeddings:  # content-minilm components: their cosine too
            content += e[sources] @ e[targets].T
        return (cf + content).astype(np.float32)

    def similar(self, item: int, *, allowed: npt.NDArray[np.bool_], n: int) -> list[Recommendation]:
        """Items most like ``item``: collaborative and content similarity, standardised and
        summed (content only for an item nobody interacted with in training).

        Returns:
            Up to ``n`` items (never ``item`` itself), reason ``similar-to:<item_id>``.
        """
        everything = np.arange(self.n_items, dtype=np.int64)
        source = np.asarray([item], dtype=np.int64)
        cf = self._cf_similarity(source, everything)
        content = self.content.similar(item)[None, :]
        scores = algos.standardize(content)[0]
        if np.abs(cf).max() > 0:
            scores = scores + algos.standardize(cf)[0]
        allowed = allowed.copy()
        allowed[item] = False
        scores, top = _top(scores, allowed, n)
        reason = f"similar-to:{self.item_ids[item]}"
        return [Recommendation(int(i), float(scores[i]), reason) for i in top]

    # ------------------------------------------------------------------ artifact

    def meta(self) -> dict[str, Any]:
        return {
            "format": "aiweb-recommender",
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "components": [
                {
                    "algorithm": c.algorithm.name,
                    "params": c.algorithm.params(),
                    "weight": c.weight,
                    "half_life": None if math.isinf(c.half_life) else c.half_life,
                }
                for c in self.components
            ],
            "trending": self.trending.params(),
            "content": self.content.params(),
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "last_interaction_id": self.last_interaction_id,
        }

    def to_bytes(self) -> bytes:
        """The artifact: an ``.npz`` archive (see the module docstring)."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "meta.json": np.frombuffer(json.dumps(self.meta()).encode("utf-8"), dtype=np.uint8)
        }
        parts: list[tuple[str, Algorithm]] = [
            ("trending", self.trending),
            ("popularity", self.popularity),
            ("content", self.content),
        ]
        parts += [(f"c{i}", c.algorithm) for i, c in enumerate(self.components)]
        for prefix, algo in parts:
            for key, value in algo.state().items():
                arrays[f"{prefix}.{key}"] = value
        if self.histories is not None:
            arrays["history.indptr"], arrays["history.items"] = self.histories
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RecommenderModel:
        """Rebuild a model from :meth:`to_bytes`.

        Raises:
            UnsafeArtifactError: not an npz archive of this format (object arrays are
                refused: ``allow_pickle=False``).
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            meta = json.loads(arrays.pop("meta.json").tobytes().decode("utf-8"))
        except (
            ValueError,
            OSError,
            KeyError,
            UnicodeDecodeError,
            EOFError,
            BadZipFile,
        ) as exc:
            raise UnsafeArtifactError(f"not a recommender artifact: {exc}") from None
        if (
            meta.get("format") != "aiweb-recommender"
            or meta.get("format_version") not in READABLE_VERSIONS
        ):
            raise UnsafeArtifactError(
                "not a recommender artifact of format version "
                + " or ".join(str(v) for v in READABLE_VERSIONS)
            )

        def state(prefix: str) -> dict[str, npt.NDArray[Any]]:
            return {
                k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + ".")
            }

        histories = None
        if "history.indptr" in arrays or "history.items" in arrays:
            indptr = arrays.get("history.indptr", np.zeros(0, np.int64))
            items = arrays.get("history.items", np.zeros(0, np.int32))
            n_items = len(meta["item_ids"])
            if (
                indptr.dtype.kind not in "iu"
                or items.dtype.kind not in "iu"
                or indptr.ndim != 1
                or items.ndim != 1
                or len(indptr) != len(meta["user_ids"]) + 1
                or (len(indptr) and (indptr[0] != 0 or int(indptr[-1]) != len(items)))
                or np.any(np.diff(indptr) < 0)
                or (len(items) and (items.min() < 0 or items.max() >= n_items))
            ):
                raise UnsafeArtifactError("the artifact's training histories are inconsistent")
            histories = (indptr, items)
        components = [
            Component(
                algorithm=algos.from_state(c["algorithm"], c["params"], state(f"c{i}")),
                weight=float(c["weight"]),
                half_life=math.inf if c["half_life"] is None else float(c["half_life"]),
            )
            for i, c in enumerate(meta["components"])
        ]
        return cls(
            name=meta["name"],
            components=components,
            trending=Trending.from_state(meta["trending"], state("trending")),
            popularity=Popularity.from_state({}, state("popularity")),
            content=Content.from_state(meta["content"], state("content")),
            user_ids=list(meta["user_ids"]),
            item_ids=list(meta["item_ids"]),
            last_interaction_id=int(meta["last_interaction_id"]),
            histories=histories,
        )
