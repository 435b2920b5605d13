"""Matrix factorisation: :class:`ALS` and :class:`BPR`, both fitted by ``implicit`` and
scored as ``user factors · item factors``.

Sources:

- ALS: Y. Hu, Y. Koren, C. Volinsky, "Collaborative Filtering for Implicit Feedback
  Datasets", ICDM 2008 — fitted by :class:`implicit.cpu.als.AlternatingLeastSquares`
  (conjugate gradient, Takács et al. 2011), confidence ``1 + alpha * x``.
- BPR: S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
  UAI 2009 — :class:`implicit.cpu.bpr.BayesianPersonalizedRanking`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from scipy import sparse
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from aiweb.recommendations.algorithms.base import (
    F32,
    I32,
    MAX_SEED,
    Range,
    State,
    _check,
    check_finite,
    check_fit_memory,
    report_fit,
)
from aiweb.recommendations.data import Interactions, ItemText


class _ImplicitFactors:
    """What ALS and BPR share: fitted by ``implicit``, scored as ``user factors · item
    factors``, their state the two factor matrices.

    Subclasses say how ``implicit`` builds the model (:meth:`_implicit_model`) and how a
    user's factors come from their rows (:meth:`_row_factors`) when the fitted ones are
    not used.

    Attributes:
        item_factors_: float32 ``(n_items, d)``.
        user_factors_: float32 ``(n_users, d)``.
    """

    name: ClassVar[str]
    #: latent dimensions ``implicit`` adds to ``factors`` (BPR's item bias)
    extra_factors: ClassVar[int] = 0

    def __init__(self, factors: int, regularization: float, iterations: int, seed: int) -> None:
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed
        self.item_factors_: F32 | None = None
        self.user_factors_: F32 | None = None

    def _implicit_model(self) -> Callable[[], Any]:
        """Builds the unfitted ``implicit`` model. Returned rather than called: ``implicit``
        is imported here, before :meth:`fit` limits BLAS threads (the limit reaches only
        the BLAS libraries loaded by then), and built under the limit."""
        raise NotImplementedError

    def _row_factors(self, rows: sparse.csr_matrix) -> F32:
        raise NotImplementedError

    def _item_factors(self, items: I32, weights: F32) -> F32:
        """One user's factors from their items (what :meth:`_row_factors` does per row)."""
        raise NotImplementedError

    def _set_factors(self, user_factors: npt.NDArray[Any], item_factors: npt.NDArray[Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)

    def memory_bytes(self, n_users: int, n_items: int, nnz: int) -> int:
        """Estimated peak bytes of :meth:`fit` on ``n_users x n_items`` with ``nnz``
        interactions: the float32 factor matrices three times (``implicit``'s, ours, the
        artifact), the CSR matrix and its transpose with confidences (12 bytes per
        nonzero, twice) and ``factors²`` float64 work matrices per thread."""
        d = self.factors + self.extra_factors
        threads = max(1, os.cpu_count() or 1)
        return 3 * (n_users + n_items) * d * 4 + 2 * 12 * nnz + (threads + 2) * d * d * 8

    def fit(self, data: Interactions, texts: list[ItemText]) -> Self:
        """Fit on ``data`` (``texts`` unused).

        Between iterations the fit reports its progress (:func:`~aiweb.recommendations.
        algorithms.base.report_fit`): an exception raised there (a cancelled job) ends it.

        Raises:
            InvalidInputError: the estimated memory (:meth:`memory_bytes`) exceeds the
                limit (:func:`~aiweb.recommendations.algorithms.base.check_fit_memory`),
                checked before anything is allocated; or the fit diverged (NaN factors).
        """
        check_fit_memory(
            f"{self.name} with factors={self.factors} on {data.n_users:,} users x "
            f"{data.n_items:,} items",
            self.memory_bytes(data.n_users, data.n_items, len(data)),
            "lower factors",
        )
        build = self._implicit_model()
        iterations = max(1, self.iterations)

        def callback(iteration: int, _seconds: float, *_loss: Any) -> None:
            report_fit((iteration + 1) / iterations)

        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            model = build()
            model.fit(data.matrix(), show_progress=False, callback=callback)
        check_finite(
            f"{self.name} (factors={self.factors})",
            model.user_factors,
            model.item_factors,
            hint="lower the learning rate or alpha, or raise regularization",
        )
        self._set_factors(model.user_factors, model.item_factors)
        return self

    def _score(
        self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix, redo: npt.NDArray[np.bool_]
    ) -> F32:
        """Scores with the fitted factors of ``users``, except where ``redo`` (always for
        users ``-1``): there the factors come from ``rows`` (:meth:`_row_factors`)."""
        _check(self.item_factors_, self.name)
        assert self.item_factors_ is not None
        assert self.user_factors_ is not None
        factors = np.zeros((len(users), self.item_factors_.shape[1]), dtype=np.float32)
        known = users >= 0
        factors[known] = self.user_factors_[users[known]]
        redo = redo | ~known
        if redo.any():
            factors[redo] = self._row_factors(rows[np.flatnonzero(redo)])
        return factors @ self.item_factors_.T

    def _score_user(self, user: int, items: I32, weights: F32, redo: bool) -> F32:
        """One user's scores: ``item factors · user factors`` (one matrix-vector product),
        the user factors from ``items`` when ``redo`` or ``user`` is ``-1``."""
        _check(self.item_factors_, self.name)
        assert self.item_factors_ is not None
        assert self.user_factors_ is not None
        if user >= 0 and not redo:
            factors = self.user_factors_[user]
        else:
            factors = self._item_factors(items, weights)
        return np.asarray(self.item_factors_ @ factors, dtype=np.float32)

    def state(self) -> State:
        assert self.item_factors_ is not None
        assert self.user_factors_ is not None
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> Self:
        algo = cls(**params)
        algo._set_factors(state["user_factors"], state["item_factors"])
        return algo


class ALS(_ImplicitFactors):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) fitted by ``implicit``.

    Confidence of an observed pair is ``1 + alpha`` (``X`` is binary), of the rest 1.
    Users whose rows are given at scoring time are folded in from those rows (the
    closed-form least-squares step of the paper, eq. 4), so a new interaction counts at
    once and users unknown at fit time get factors too.

    Args:
        factors: latent dimensions.
        regularization: L2 weight λ.
        alpha: confidence scale.
        iterations: ALS sweeps.
        seed: random seed of the initial factors.

    Attributes:
        item_factors_: float32 ``(n_items, factors)``.
        user_factors_: float32 ``(n_users, factors)``.
    """

    name: ClassVar[str] = "als"
    #: valid parameter values (checked by :func:`~aiweb.recommendations.algorithms.make`)
    RANGES: ClassVar[dict[str, Range]] = {
        "factors": Range(1, 1024, integer=True),
        # > 0: the fold-in solves (YᵀY + λI) x = b, singular without λ when factors > items
        "regularization": Range(0, 1e6, low_open=True),
        "alpha": Range(0, 1e6),
        "iterations": Range(1, 1000, integer=True),
        "seed": Range(0, MAX_SEED, integer=True),
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        super().__init__(factors, regularization, iterations, seed)
        self.alpha = alpha
        #: float64 ``(factors, factors)``: ``YᵀY + λI``, the part of every fold-in system
        #: that does not depend on the user (set with the factors)
        self._gram: npt.NDArray[np.float64] | None = None

    def _implicit_model(self) -> Callable[[], Any]:
        from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]

        return functools.partial(
            AlternatingLeastSquares,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=0,
        )

    def _set_factors(self, user_factors: npt.NDArray[Any], item_factors: npt.NDArray[Any]) -> None:
        super()._set_factors(user_factors, item_factors)
        y = self.item_factors_
        assert y is not None
        self._gram = (y.T @ y).astype(np.float64) + self.regularization * np.eye(y.shape[1])

    def fold_in(self, rows: sparse.csr_matrix) -> F32:
        """User factors from interaction rows: float32 ``(len(rows), factors)``.

        Solves ``(YᵀY + alpha·Y_uᵀY_u + λI) x = (1 + alpha)·Y_uᵀ 1`` per user, ``Y_u`` the
        factors of the user's items (Hu et al. 2008, eq. 4, binary preferences).
        """
        _check(self.item_factors_, self.name)
        assert self.item_factors_ is not None
        out = np.zeros((rows.shape[0], self.item_factors_.shape[1]), dtype=np.float32)
        for r in range(rows.shape[0]):
            cols = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
            out[r] = self._fold_in_items(cols)
        return out

    def _fold_in_items(self, items: I32) -> F32:
        """:meth:`fold_in` of one user from their items: float32 ``(factors,)`` (zeros
        when there are none)."""
        y = self.item_factors_
        assert y is not None
        assert self._gram is not None
        if len(items) == 0:
            return np.zeros(y.shape[1], dtype=np.float32)
        yu = y[items].astype(np.float64)
        a = self._gram + self.alpha * (yu.T @ yu)
        b = (1.0 + self.alpha) * yu.sum(axis=0)
        return np.linalg.solve(a, b).astype(np.float32)

    _row_factors = fold_in

    def _item_factors(self, items: I32, weights: F32) -> F32:
        return self._fold_in_items(items)

    def score(
        self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix, *, fold_in: bool = False
    ) -> F32:
        """Scores ``user factors · item factors``; with ``fold_in`` (or for users ``-1``)
        the user factors come from ``rows``."""
        return self._score(users, rows, np.full(len(users), fold_in))

    def score_user(self, user: int, items: I32, weights: F32, *, fold_in: bool = False) -> F32:
        """:meth:`score` of one user; ``weights`` are not read (preferences are binary)."""
        return self._score_user(user, items, weights, fold_in)

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "seed": self.seed,
        }


class BPR(_ImplicitFactors):
    """Bayesian Personalized Ranking (Rendle et al. 2009) fitted by ``implicit``.

    A user unknown at fit time is represented by the mean factors of the items in their
    rows (weighted by recency), an item-based stand-in, as BPR has no fold-in step.

    Args:
        factors: latent dimensions (``implicit`` adds an item-bias column).
        learning_rate: SGD step.
        regularization: L2 weight.
        iterations: epochs over the positives.
        seed: random seed.

    Attributes:
        item_factors_: float32 ``(n_items, factors + 1)``.
        user_factors_: float32 ``(n_users, factors + 1)``.
    """

    name: ClassVar[str] = "bpr"
    extra_factors: ClassVar[int] = 1
    #: valid parameter values (checked by :func:`~aiweb.recommendations.algorithms.make`)
    RANGES: ClassVar[dict[str, Range]] = {
        "factors": Range(1, 1024, integer=True),
        "learning_rate": Range(0, 10, low_open=True),
        "regularization": Range(0, 1e6),
        "iterations": Range(1, 10_000, integer=True),
        "seed": Range(0, MAX_SEED, integer=True),
    }

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(factors, regularization, iterations, seed)
        self.learning_rate = learning_rate

    def _implicit_model(self) -> Callable[[], Any]:
        from implicit.cpu.bpr import BayesianPersonalizedRanking  # type: ignore[import-untyped]

        return functools.partial(
            BayesianPersonalizedRanking,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            # one thread: implicit's parallel SGD updates race (hogwild), so two fits
            # with one seed differ by up to 0.1 on every core; one thread repeats exactly
            num_threads=1,
        )

    def _row_factors(self, rows: sparse.csr_matrix) -> F32:
        """The recency-weighted mean factors of the rows' items."""
        assert self.item_factors_ is not None
        sums = np.asarray(rows.sum(axis=1)).ravel()
        return np.asarray((rows @ self.item_factors_) / np.maximum(sums, 1e-9)[:, None])

    def _item_factors(self, items: I32, weights: F32) -> F32:
        assert self.item_factors_ is not None
        total = max(float(weights.sum()), 1e-9)
        return np.asarray((weights @ self.item_factors_[items]) / total, dtype=np.float32)

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        return self._score(users, rows, np.zeros(len(users), dtype=bool))

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """:meth:`score` of one user (a known user's fitted factors; ``-1``: the weighted
        mean factors of ``items``)."""
        return self._score_user(user, items, weights, False)

    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "seed": self.seed,
        }
