"""What every recommendation algorithm shares: the :class:`Algorithm` protocol, the array
type aliases, recency weighting (:func:`recency_weights`, :func:`recency_rows`), the
:data:`MIN_RELATIVE_WEIGHT` cut of the single-user paths and :func:`standardize` for
blending (see :mod:`aiweb.recommendations.algorithms`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import NotFittedError
from aiweb.recommendations.data import Interactions, ItemText

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
State = dict[str, npt.NDArray[Any]]

#: items weighted below this fraction (2^-24, float32's relative precision) of a user's
#: heaviest item that counts are left out by :meth:`EASE.score_user` and
#: :meth:`Content.score_user`
MIN_RELATIVE_WEIGHT = 2.0**-24


class Algorithm(Protocol):
    """What every recommendation algorithm offers."""

    name: ClassVar[str]

    def fit(self, data: Interactions, texts: list[ItemText]) -> Algorithm: ...

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32: ...

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """Scores of one user: float32 ``(n_items,)``, equal (up to float32 summation
        order) to ``score([user], rows)[0]`` where ``rows`` holds ``weights`` at ``items``.
        The array may be the algorithm's own (read-only) state: copy it to change it."""
        ...

    def params(self) -> dict[str, Any]: ...

    def state(self) -> State: ...


def recency_weights(n: int, half_life: float) -> F32:
    """Weights of a user's ``n`` items, oldest first: the k-th most recent (k = 0 for the
    latest) gets ``0.5 ** (k / half_life)``; ``half_life = inf`` gives every item 1.0.

    Returns:
        float32 ``(n,)``.
    """
    if not math.isfinite(half_life):
        return np.ones(n, dtype=np.float32)
    age = np.arange(n - 1, -1, -1, dtype=np.float32)
    return np.asarray(np.power(np.float32(0.5), age / np.float32(half_life)), dtype=np.float32)


def recency_rows(
    data: Interactions, users: npt.NDArray[np.int32], half_life: float
) -> sparse.csr_matrix:
    """The rows of ``users`` in ``data`` weighted by recency (:func:`recency_weights`).

    Args:
        data: interactions sorted by user then time.
        users: int32 ``(b,)`` user indices.
        half_life: in interactions, > 0.

    Returns:
        float32 CSR ``(b, n_items)``.
    """
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)))
    indptr = [0]
    cols: list[npt.NDArray[np.int32]] = []
    vals: list[F32] = []
    for u in users.tolist():
        lo, hi = (starts[u], starts[u + 1]) if u >= 0 else (0, 0)
        cols.append(data.items[lo:hi])
        vals.append(recency_weights(hi - lo, half_life))
        indptr.append(indptr[-1] + hi - lo)
    return sparse.csr_matrix(
        (
            np.concatenate(vals) if vals else np.zeros(0, np.float32),
            np.concatenate(cols) if cols else np.zeros(0, np.int32),
            np.asarray(indptr),
        ),
        shape=(len(users), data.n_items),
        dtype=np.float32,
    )


def _check(fitted: object, name: str) -> None:
    if fitted is None:
        raise NotFittedError(f"{name} is not fitted: call fit() or from_state() first")


def _heavy(weights: F32) -> npt.NDArray[np.bool_] | None:
    """Which of ``weights`` are at least :data:`MIN_RELATIVE_WEIGHT` times the largest, or
    ``None`` when all are."""
    heavy = weights >= weights.max() * MIN_RELATIVE_WEIGHT
    return None if heavy.all() else heavy


def _read_only(array: F32) -> F32:
    """A view of ``array`` that cannot be written through (no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


def standardize(scores: F32) -> F32:
    """Each row minus its mean, divided by its standard deviation (1 when constant):
    scores of different algorithms on one scale, for blending."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return np.asarray((scores - mean) / std, dtype=np.float32)
