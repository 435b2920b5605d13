"""Top-N metrics and the offline evaluation of a recommender.

For one user with ranked list ``r`` (item ids, best first) and held-out set ``T``, with
``hits@k`` the number of the first ``k`` items of ``r`` in ``T`` (binary relevance):

- Precision@k = ``hits@k / k``;
- Recall@k = ``hits@k / |T|``;
- HitRate@k = 1 when ``hits@k > 0``;
- NDCG@k = ``DCG / IDCG`` with ``DCG = Σ_{j<k, r_j ∈ T} 1 / log2(j + 2)`` and IDCG the DCG
  of ``min(|T|, k)`` hits at the top (Järvelin & Kekäläinen, ACM TOIS 2002);
- AP@k = ``Σ_{j<k, r_j ∈ T} Precision@(j+1) / min(|T|, k)``; MAP@k is its mean (the
  definition of e.g. ``ml_metrics.apk``);

each averaged over the users that have a held-out set. Catalogue coverage is the share
of the catalogue that appears in at least one user's top ``k`` (Ge et al., "Beyond
accuracy", RecSys 2010).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")

#: ``score(users, rows) -> float32 (len(users), n_items)``
ScoreFn = Callable[[npt.NDArray[np.int32], sparse.csr_matrix], npt.NDArray[np.float32]]


def _hits(ranked: Sequence[object], relevant: AbstractSet[object], k: int) -> list[bool]:
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, not {k}")
    return [item in relevant for item in list(ranked)[:k]]


def precision_at_k(ranked: Sequence[object], relevant: AbstractSet[object], k: int) -> float:
    """Share of the first ``k`` ranked items that are relevant (divided by ``k`` even when
    fewer are ranked). Raises InvalidInputError when ``k`` < 1."""
    return sum(_hits(ranked, relevant, k)) / k


def recall_at_k(ranked: Sequence[object], relevant: AbstractSet[object], k: int) -> float:
    """Share of ``relevant`` found in the first ``k`` ranked items (0 when none is relevant)."""
    if not relevant:
        return 0.0
    return sum(_hits(ranked, relevant, k)) / len(relevant)


def hit_rate_at_k(ranked: Sequence[object], relevant: AbstractSet[object], k: int) -> float:
    """1.0 when any of the first ``k`` ranked items is relevant, else 0.0."""
    return 1.0 if any(_hits(ranked, relevant, k)) else 0.0


def ndcg_at_k(ranked: Sequence[object], relevant: AbstractSet[object], k: int) -> float:
    """Binary-relevance NDCG@k (see the module docstring); 0 when nothing is relevant."""
    hits = _hits(ranked, relevant, k)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(j + 2) for j, hit in enumerate(hits) if hit)
    idcg = sum(1.0 / math.log2(j + 2) for j in range(min(len(relevant), k)))
    return dcg / idcg


def average_precision_at_k(
    ranked: Sequence[object], relevant: AbstractSet[object], k: int
) -> float:
    """AP@k: mean of Precision@(j+1) at each hit j < k, over ``min(|relevant|, k)``."""
    hits = _hits(ranked, relevant, k)
    if not relevant:
        return 0.0
    total, found = 0.0, 0
    for j, hit in enumerate(hits):
        if hit:
            found += 1
            total += found / (j + 1)
    return total / min(len(relevant), k)


def coverage(recommended: Sequence[Sequence[object]], catalogue_size: int) -> float:
    """Share of a catalogue of ``catalogue_size`` items recommended to at least one user.

    Raises:
        InvalidInputError: ``catalogue_size`` < 1.
    """
    if catalogue_size < 1:
        raise InvalidInputError("the catalogue is empty")
    return len({item for items in recommended for item in items}) / catalogue_size


@dataclass(frozen=True)
class EvalSet:
    """Users to score, what they may be shown, and what they should be shown.

    Attributes:
        users: int32 ``(b,)`` user indices (rows of the training matrix).
        rows: float32 CSR ``(b, n_items)``: the users' training interactions, weighted by
            recency (what the algorithm scores from).
        seen: bool CSR ``(b, n_items)``: items never to recommend (training interactions).
        relevant: per user, the held-out item indices.
    """

    users: npt.NDArray[np.int32]
    rows: sparse.csr_matrix
    seen: sparse.csr_matrix
    relevant: list[set[int]]


def top_k(
    scores: npt.NDArray[np.float32], seen: sparse.csr_matrix, k: int
) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` best items per row, best first, never a seen one.

    Args:
        scores: float32 ``(b, n_items)`` (modified: seen items set to -inf).
        seen: CSR ``(b, n_items)``, non-zero where the item is excluded.
        k: list length (at most ``n_items``).

    Returns:
        int64 ``(b, k)``.
    """
    coo = seen.tocoo()
    scores[coo.row, coo.col] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranked_lists(
    score: ScoreFn, data: EvalSet, k: int, *, batch_users: int = 1024
) -> npt.NDArray[np.int64]:
    """Top ``k`` unseen items for every user of ``data``: int64 ``(b, k)``.

    Raises:
        InvalidInputError: a score is not a finite number (NaN or infinite): a ranking
            of such scores means nothing, and its metrics would pass for real ones.
    """
    out = []
    for lo in range(0, len(data.users), batch_users):
        hi = lo + batch_users
        scores = np.array(score(data.users[lo:hi], data.rows[lo:hi]), dtype=np.float32)
        if not np.isfinite(scores).all():
            raise InvalidInputError(
                "the model scores items with numbers that are not finite (NaN or "
                "infinite): it cannot be evaluated or served; check its parameters"
            )
        out.append(top_k(scores, data.seen[lo:hi], k))
    return np.vstack(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate_lists(
    lists: npt.NDArray[np.int64], relevant: list[set[int]], n_items: int, k: int = 10
) -> dict[str, float]:
    """Mean metrics@k of ranked lists against held-out sets, and catalogue coverage.

    Args:
        lists: int64 ``(b, ≥k)`` ranked item indices.
        relevant: ``b`` held-out sets (users with an empty set are skipped).
        n_items: catalogue size.
        k: cut-off.

    Returns:
        ``{"precision", "recall", "ndcg", "map", "hit_rate", "coverage", "users"}``.
    """
    sums = dict.fromkeys(METRICS, 0.0)
    users = 0
    shown: list[list[int]] = []
    for ranked, rel in zip(lists.tolist(), relevant, strict=True):
        shown.append(ranked[:k])
        if not rel:
            continue
        users += 1
        sums["precision"] += precision_at_k(ranked, rel, k)
        sums["recall"] += recall_at_k(ranked, rel, k)
        sums["ndcg"] += ndcg_at_k(ranked, rel, k)
        sums["map"] += average_precision_at_k(ranked, rel, k)
        sums["hit_rate"] += hit_rate_at_k(ranked, rel, k)
    out = {m: (v / users if users else 0.0) for m, v in sums.items()}
    out["coverage"] = coverage(shown, n_items) if n_items else 0.0
    out["users"] = float(users)
    return out


def evaluate_scores(score: ScoreFn, data: EvalSet, n_items: int, k: int = 10) -> dict[str, float]:
    """:func:`ranked_lists` then :func:`evaluate_lists`."""
    return evaluate_lists(ranked_lists(score, data, k), data.relevant, n_items, k)
