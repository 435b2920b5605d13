"""Why a recommendation: how much each item of a user's history adds to a recommended
item's score, per algorithm (used by :meth:`~aiweb.recommendations.model.RecommenderModel.
explain`, only when ``?explain=true`` asks: the serving path computes none of it).

Every function here returns a *contribution matrix* ``C``, float64 ``(h, k)`` for ``h``
history items and ``k`` target items, with ``C[j, t]`` the part of target ``t``'s score
that history item ``j`` makes:

- EASE (:func:`ease_contributions`): ``score(i) = Σ_j x_uj·B_ji``, so ``C[j, t] =
  x_uj·B_jt`` with ``x_uj`` the recency weight of item ``j``. Exact: the columns sum to the
  scores (float32 rounding apart). Items not in ``B``, or weighted below
  :data:`~aiweb.recommendations.algorithms.base.MIN_RELATIVE_WEIGHT` times the heaviest
  (left out of the score too), contribute 0.
- Content, TF-IDF and sentence embeddings (:func:`content_contributions`): the profile is
  ``Σ_j w_j·v_j``, so ``score(i) = Σ_j w_j·cos(v_j, v_i)`` and ``C[j, t] = w_j·cos(v_j,
  v_t)``. Exact, with the same cuts as the score.
- ALS (:func:`als_contributions`): ``implicit``'s own
  :meth:`~implicit.cpu.als.AlternatingLeastSquares.explain` (Hu et al. 2008, section 5:
  ``s_ij = c_j·y_iᵀ·W_u·y_j``, ``W_u = (YᵀC_uY + λI)⁻¹``), run on an ``implicit`` model
  holding this model's item factors.
- BPR (:func:`bpr_contributions`): a user unknown at training is the weighted mean of
  their items' factors, so ``C[j, t] = (w_j / Σw)·y_j·y_t`` (exact); a known user's
  learned vector cannot be split over their items (``None``).
- Popularity and trending score every user alike: ``None`` (nothing in the history
  contributes; the whole score is the item's popularity).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.recommendations.algorithms import (
    ALS,
    BPR,
    EASE,
    MIN_RELATIVE_WEIGHT,
    Algorithm,
    Content,
    EmbeddingContent,
)

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]

#: most history items listed in a recommended item's ``because`` (those that add most)
BECAUSE_TOP = 5

#: per fitted ALS, the ``implicit`` model that explains it (built on first use)
_IMPLICIT: weakref.WeakKeyDictionary[ALS, Any] = weakref.WeakKeyDictionary()


def _counted(weights: F32, usable: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which items the single-user score reads: ``usable`` ones weighted at least
    :data:`MIN_RELATIVE_WEIGHT` times the heaviest usable one."""
    counted = usable.copy()
    if counted.any():
        top = float(weights[counted].max())
        counted &= weights >= np.float32(top) * np.float32(MIN_RELATIVE_WEIGHT)
    return counted


def ease_contributions(algo: EASE, items: I32, weights: F32, targets: I32) -> F64:
    """``C[j, t] = x_uj·B_jt`` (see the module docstring): float64 ``(h, k)``."""
    assert algo.positions_ is not None
    assert algo.weights_ is not None
    out = np.zeros((len(items), len(targets)), dtype=np.float64)
    if not len(items) or not len(targets):
        return out
    rows = algo.positions_[items]
    counted = np.flatnonzero(_counted(weights, rows >= 0))
    cols = algo.positions_[targets]
    in_b = np.flatnonzero(cols >= 0)
    if len(counted) and len(in_b):
        block = algo.weights_[np.ix_(rows[counted], cols[in_b])].astype(np.float64)
        out[np.ix_(counted, in_b)] = weights[counted, None].astype(np.float64) * block
    return out


def content_contributions(
    algo: Content | EmbeddingContent, items: I32, weights: F32, targets: I32
) -> F64:
    """``C[j, t] = w_j·cos(v_j, v_t)`` (see the module docstring): float64 ``(h, k)``."""
    out = np.zeros((len(items), len(targets)), dtype=np.float64)
    if not len(items) or not len(targets):
        return out
    v = algo.vectors_
    assert v is not None
    if isinstance(algo, Content):
        assert isinstance(v, sparse.csr_matrix)
        with_text = (v.indptr[items + 1] - v.indptr[items]) > 0
        counted = np.flatnonzero(_counted(weights, with_text))
        if len(counted):
            cos = (v[items[counted]] @ v[targets].T).toarray()
            out[counted] = weights[counted, None].astype(np.float64) * cos
        return out
    counted = np.flatnonzero(_counted(weights, np.ones(len(items), dtype=bool)))
    cos = np.asarray(v[items[counted]] @ v[targets].T, dtype=np.float64)
    out[counted] = weights[counted, None].astype(np.float64) * cos
    return out


def bpr_contributions(algo: BPR, user: int, items: I32, weights: F32, targets: I32) -> F64 | None:
    """A user unknown at training (``user`` -1): ``C[j, t] = (w_j/Σw)·y_j·y_t``; a known
    user: ``None`` (their learned vector is not a sum over their items)."""
    if user >= 0:
        return None
    y = algo.item_factors_
    assert y is not None
    total = max(float(weights.sum()), 1e-9)
    dots = np.asarray(y[items] @ y[targets].T, dtype=np.float64)
    out: F64 = (weights.astype(np.float64) / total)[:, None] * dots
    return out


def _implicit_model(algo: ALS) -> Any:
    """An ``implicit`` CPU ALS model holding ``algo``'s item factors (built once per
    fitted model; ``implicit`` caches ``YᵀY`` in it)."""
    model = _IMPLICIT.get(algo)
    if model is None:
        from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]

        y = algo.item_factors_
        assert y is not None
        model = AlternatingLeastSquares(
            factors=y.shape[1],
            regularization=algo.regularization,
            alpha=algo.alpha,
            random_state=0,
            num_threads=1,
        )
        model.item_factors = y
        _IMPLICIT[algo] = model
    return model


def als_contributions(
    algo: ALS, user: int, items: I32, targets: I32, *, fold_in: bool
) -> tuple[F64, bool]:
    """ALS contributions from ``implicit``'s own ``explain``, and whether they sum to the
    served score exactly.

    ``implicit`` scales the interactions by ``alpha`` into confidences ``c`` and solves
    ``(YᵀY + λI + Σ_j (c_j - 1)·y_j·y_jᵀ) x = Σ_j c_j·y_j``; its ``explain(userid,
    user_items, itemid, N)`` returns ``(total, [(item, c_j·y_iᵀ·W_u·y_j)], W_u)`` with the
    top ``N`` contributions. It is called with a one-row matrix of the user's items, every
    contribution asked for (``N = h``), ``W_u`` reused across targets:

    - a folded-in user (``fold_in``, or unknown at training: ``user`` -1): values
      ``(1 + alpha) / alpha``, so ``c = 1 + alpha``, the very system
      :meth:`~aiweb.recommendations.algorithms.ALS.fold_in` solves: the contributions
      sum to the served score (exact);
    - a known user served with their fitted factors: values 1, so ``c = alpha``, the
      confidences ``implicit``'s fit used; the fitted vector came from the previous
      sweep's item factors (and conjugate-gradient steps), so the sum is close to the
      score, not equal (not exact).

    With ``alpha`` 0 (``implicit`` would scale every confidence to 0), or when its
    Cholesky factorisation fails, the same quantities are derived from the factors here:
    ``C[j, t] = (1 + alpha)·y_tᵀ·(YᵀY + λI + alpha·Y_uᵀY_u)⁻¹·y_j`` (the fold-in's
    system), marked not exact for a user served with their fitted factors.

    Returns:
        ``(C, exact)``: float64 ``(h, k)``.
    """
    out = np.zeros((len(items), len(targets)), dtype=np.float64)
    folded = fold_in or user < 0
    if not len(items) or not len(targets):
        return out, True
    if algo.alpha > 0:
        import scipy.linalg

        model = _implicit_model(algo)
        value = (1.0 + algo.alpha) / algo.alpha if folded else 1.0
        h = len(items)
        row = sparse.csr_matrix(
            (np.full(h, value, dtype=np.float32), items.astype(np.int32), [0, h]),
            shape=(1, algo.item_factors_.shape[0] if algo.item_factors_ is not None else 0),
        )
        where = {int(item): j for j, item in enumerate(items.tolist())}
        try:
            user_weights = None
            for t, target in enumerate(targets.tolist()):
                _, top, user_weights = model.explain(
                    0, row, int(target), user_weights=user_weights, N=h
                )
                for item, weight in top:
                    out[where[int(item)], t] = float(weight)
            return out, folded
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError, ValueError):
            out[:] = 0.0
    y = algo.item_factors_
    assert y is not None
    yu = y[items].astype(np.float64)
    a = (y.T @ y).astype(np.float64) + algo.regularization * np.eye(y.shape[1])
    a += algo.alpha * (yu.T @ yu)
    solved = np.linalg.solve(a, y[targets].astype(np.float64).T)  # (d, k): A⁻¹·y_t
    out = (1.0 + algo.alpha) * (yu @ solved)
    return out, folded


def contributions(
    algo: Algorithm, user: int, items: I32, weights: F32, targets: I32, *, fold_in: bool
) -> tuple[F64 | None, bool]:
    """The contribution matrix of any algorithm (``None`` when its score is not a sum over
    the user's items: popularity, trending, a known user's BPR vector) and whether it is
    the algorithm's own arithmetic (exact) or an approximation."""
    if isinstance(algo, EASE):
        return ease_contributions(algo, items, weights, targets), True
    if isinstance(algo, Content | EmbeddingContent):
        return content_contributions(algo, items, weights, targets), True
    if isinstance(algo, ALS):
        return als_contributions(algo, user, items, targets, fold_in=fold_in)
    if isinstance(algo, BPR):
        found = bpr_contributions(algo, user, items, weights, targets)
        return found, found is not None
    return None, True


def std_of(scores: F32) -> tuple[float, float]:
    """``(mean, std)`` as :func:`~aiweb.recommendations.model._standardize` divides by
    (std 1 when the scores are constant)."""
    mean = float(scores.mean(dtype=np.float64))
    centered = scores - np.float32(mean)
    std = math.sqrt(float(np.dot(centered, centered)) / max(1, len(scores)))
    return mean, std if std > 0 else 1.0
