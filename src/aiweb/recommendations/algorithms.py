"""Recommendation algorithms: one interface, scikit-learn conventions.

Every algorithm is fitted on a float32 CSR user-item matrix ``X`` of shape
``(n_users, n_items)`` (1.0 where a user interacted with an item, see
:mod:`aiweb.recommendations.data`) and scores items for a batch of users from their rows::

    scores = algo.score(users, rows)   # float32 (len(users), n_items), higher is better

``users`` holds the users' row indices in ``X`` (``-1`` for a user unknown at fit time)
and ``rows`` their interactions now, a CSR ``(len(users), n_items)`` whose values are
recency weights in (0, 1] (1.0 for the most recent; :func:`recency_rows`). Item-based
algorithms score from ``rows`` alone, so a new interaction changes the result at once,
without refitting; ALS folds a user's current rows in (Hu et al. 2008, eq. 4).

Serving scores one user per request, so every algorithm also has a single-user path with
the same results (up to float32 summation order) and no sparse-matrix construction::

    scores = algo.score_user(user, items, weights)   # float32 (n_items,)

``items`` are the user's item indices and ``weights`` their recency weights (the nonzeros
of one row of ``rows``). EASE and content leave out the items whose weight is below
:data:`MIN_RELATIVE_WEIGHT` times the largest weight among the items that count (those in
``B``, those with text): they change no float32 score, and a user with thousands of
interactions then costs no more than one with a hundred (with a recency half-life of 3,
73 items count).

Learned state ends in ``_``; :meth:`Algorithm.state` / :meth:`Algorithm.from_state` move it
to and from plain numpy arrays (stored with :func:`numpy.savez`, loaded with
``allow_pickle=False``: no pickled objects ever).

Sources:

- ALS: Y. Hu, Y. Koren, C. Volinsky, "Collaborative Filtering for Implicit Feedback
  Datasets", ICDM 2008 — fitted by :class:`implicit.cpu.als.AlternatingLeastSquares`
  (conjugate gradient, Takács et al. 2011), confidence ``1 + alpha * x``.
- BPR: S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
  UAI 2009 — :class:`implicit.cpu.bpr.BayesianPersonalizedRanking`.
- EASE: H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019,
  closed form ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹`` (numpy / LAPACK).
- Content: TF-IDF (scikit-learn :class:`~sklearn.feature_extraction.text.TfidfVectorizer`)
  over title, text, categories and tags; a user's profile is the recency-weighted sum of
  the L2-normalised vectors of their items, scored by cosine (Pazzani & Billsus, "Content-
  Based Recommendation Systems", The Adaptive Web, 2007).
- Content (sentence embeddings, ``content-minilm``): the same profile and cosine over the
  all-MiniLM-L6-v2 embeddings of the items' documents (Reimers & Gurevych,
  "Sentence-BERT", EMNLP 2019), computed at training by the registered embedding model.
- Popularity: number of users per item. Trending: the same count with each interaction
  decayed exponentially by its age (half-life ``half_life_days``).
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from scipy import sparse
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.recommendations.data import Interactions, ItemText

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
State = dict[str, npt.NDArray[Any]]

ALGORITHMS = ("als", "bpr", "ease", "content", "content-minilm", "popularity", "trending")
#: items weighted below this fraction (2^-24, float32's relative precision) of a user's
#: heaviest item that counts are left out by :meth:`EASE.score_user` and
#: :meth:`Content.score_user`
MIN_RELATIVE_WEIGHT = 2.0**-24


class NotFittedError(RuntimeError):
    """An algorithm was asked to score before :meth:`fit` or :meth:`from_state`."""


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


# --------------------------------------------------------------------------- popularity


class Popularity:
    """Most interacted-with items first: the same scores for every user.

    ``popularity_`` is float32 ``(n_items,)``: distinct users per item.
    """

    name: ClassVar[str] = "popularity"

    def __init__(self) -> None:
        self.popularity_: F32 | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> Popularity:
        self.popularity_ = np.bincount(data.items, minlength=data.n_items).astype(
            np.float32, copy=False
        )
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.popularity_, self.name)
        assert self.popularity_ is not None
        return np.broadcast_to(self.popularity_, (len(users), len(self.popularity_))).copy()

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """The popularity array itself, read-only."""
        _check(self.popularity_, self.name)
        assert self.popularity_ is not None
        return _read_only(self.popularity_)

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> State:
        assert self.popularity_ is not None
        return {"popularity": self.popularity_}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> Popularity:
        algo = cls(**params)
        algo.popularity_ = state["popularity"].astype(np.float32, copy=False)
        return algo


class Trending:
    """Recency-decayed popularity: each interaction counts ``0.5 ** (age / half_life)``,
    age measured from the newest interaction seen in training.

    Args:
        half_life_days: days after which an interaction counts half, > 0.
    """

    name: ClassVar[str] = "trending"

    def __init__(self, half_life_days: float = 30.0) -> None:
        if half_life_days <= 0:
            raise InvalidInputError("half_life_days must be positive")
        self.half_life_days = half_life_days
        self.trending_: F32 | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> Trending:
        newest = float(data.times.max()) if len(data) else 0.0
        age_days = (newest - data.times) / 86400.0
        weights = np.power(0.5, age_days / self.half_life_days)
        self.trending_ = np.bincount(data.items, weights, minlength=data.n_items).astype(
            np.float32, copy=False
        )
        # ties (nothing recent) are broken by all-time popularity
        popularity = np.bincount(data.items, minlength=data.n_items).astype(np.float32, copy=False)
        self.trending_ += 1e-6 * popularity / max(1.0, float(popularity.max()))
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.trending_, self.name)
        assert self.trending_ is not None
        return np.broadcast_to(self.trending_, (len(users), len(self.trending_))).copy()

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """The trending array itself, read-only."""
        _check(self.trending_, self.name)
        assert self.trending_ is not None
        return _read_only(self.trending_)

    def params(self) -> dict[str, Any]:
        return {"half_life_days": self.half_life_days}

    def state(self) -> State:
        assert self.trending_ is not None
        return {"trending": self.trending_}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> Trending:
        algo = cls(**params)
        algo.trending_ = state["trending"].astype(np.float32, copy=False)
        return algo


# --------------------------------------------------------------------------- matrix factorisation


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

    def fit(self, data: Interactions, texts: list[ItemText]) -> Self:
        build = self._implicit_model()
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            model = build()
            model.fit(data.matrix(), show_progress=False)
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
            num_threads=0,
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


# --------------------------------------------------------------------------- item-based


class EASE:
    """EASE (Steck 2019): an item-item weight matrix ``B`` with a zero diagonal, in closed
    form: ``P = (XᵀX + λI)⁻¹``, ``B = I - P·diag(1/diag(P))``; scores ``rows · B``.

    Only items with at least ``min_item_users`` users in training enter ``B`` (the
    inverse is cubic in their number: up to ~20k items); the others score the row
    minimum. The matrix is kept as float32 (``m²·4`` bytes for ``m`` items).

    Args:
        l2: regularisation λ (> 0).
        min_item_users: users an item needs to enter ``B``.
        max_items: refuse to fit more items than this.

    Attributes:
        items_: int32 ``(m,)`` item indices in ``B``.
        weights_: float32 ``(m, m)``, ``B``.
        positions_: int32 ``(n_items,)``: the row of each item in ``B``, -1 when not in it
            (derived from ``items_``).
    """

    name: ClassVar[str] = "ease"

    def __init__(self, l2: float = 200.0, min_item_users: int = 2, max_items: int = 20_000) -> None:
        if l2 <= 0:
            raise InvalidInputError("l2 must be positive")
        self.l2 = l2
        self.min_item_users = min_item_users
        self.max_items = max_items
        self.items_: npt.NDArray[np.int32] | None = None
        self.weights_: F32 | None = None
        self.positions_: I32 | None = None
        self.n_items_ = 0

    def _set_items(self, items: I32, n_items: int) -> None:
        self.items_ = items
        self.n_items_ = n_items
        self.positions_ = np.full(n_items, -1, dtype=np.int32)
        self.positions_[items] = np.arange(len(items), dtype=np.int32)

    def fit(self, data: Interactions, texts: list[ItemText]) -> EASE:
        counts = np.bincount(data.items, minlength=data.n_items)
        items = np.flatnonzero(counts >= self.min_item_users).astype(np.int32)
        if len(items) > self.max_items:
            raise InvalidInputError(
                f"EASE needs a dense {len(items)}² matrix; the limit is {self.max_items} items "
                "(raise min_item_users, or use als)"
            )
        x = data.matrix()[:, items]
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32, copy=False)
        self._set_items(items, data.n_items)
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.weights_, self.name)
        assert self.items_ is not None
        assert self.weights_ is not None
        sub = rows[:, self.items_]
        part = np.asarray(sub @ self.weights_, dtype=np.float32)
        out = np.empty((rows.shape[0], self.n_items_), dtype=np.float32)
        out[:] = part.min(axis=1, keepdims=True) if part.shape[1] else 0.0
        out[:, self.items_] = part
        return out

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """One user's scores: the ``weights``-weighted sum of the rows of ``B`` of their
        ``items`` (one gather and one matrix-vector product; items weighted below
        :data:`MIN_RELATIVE_WEIGHT` times the heaviest item in ``B`` left out)."""
        _check(self.weights_, self.name)
        assert self.items_ is not None
        assert self.weights_ is not None
        assert self.positions_ is not None
        rows = self.positions_[items]
        known = rows >= 0
        if not known.all():
            rows, weights = rows[known], weights[known]
        if len(rows):
            heavy = _heavy(weights)
            if heavy is not None:
                rows, weights = rows[heavy], weights[heavy]
            part = weights @ self.weights_[rows]
        else:
            part = np.zeros(len(self.items_), dtype=np.float32)
        out = np.empty(self.n_items_, dtype=np.float32)
        out[:] = part.min() if len(part) else 0.0
        out[self.items_] = part
        return out

    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "min_item_users": self.min_item_users, "max_items": self.max_items}

    def state(self) -> State:
        assert self.items_ is not None
        assert self.weights_ is not None
        return {
            "items": self.items_,
            "weights": self.weights_,
            "n_items": np.asarray([self.n_items_], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> EASE:
        algo = cls(**params)
        algo.weights_ = state["weights"].astype(np.float32, copy=False)
        algo._set_items(state["items"].astype(np.int32), int(state["n_items"][0]))
        return algo


def item_document(text: ItemText) -> str:
    """The text TF-IDF reads for an item: title, text, categories and tags, joined."""
    return " ".join((text.title, text.text, *text.categories, *text.tags))


class Content:
    """Content-based: TF-IDF (scikit-learn, word 1-2-grams, sublinear tf) over
    :func:`item_document`, L2-normalised; a user's score for item ``i`` is the cosine of
    ``i`` with the recency-weighted sum of their items' vectors.

    Args:
        min_df: a term must occur in this many items.
        max_features: vocabulary size cap.

    Attributes:
        vectors_: float32 CSR ``(n_items, n_terms)``, rows L2-normalised (all zero for an
            item without text).
    """

    name: ClassVar[str] = "content"

    def __init__(self, min_df: int = 2, max_features: int = 50_000) -> None:
        self.min_df = min_df
        self.max_features = max_features
        self.vectors_: sparse.csr_matrix | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> Content:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if len(texts) != data.n_items:
            raise InvalidInputError(f"{len(texts)} item texts for {data.n_items} items")
        docs = [item_document(t) for t in texts]
        vectorizer = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=min(self.min_df, max(1, len(docs))),
            max_features=self.max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )
        try:
            vectors = vectorizer.fit_transform(docs)
        except ValueError:  # no item has any text: an empty vocabulary
            vectors = sparse.csr_matrix((len(docs), 1), dtype=np.float32)
        self.vectors_ = sparse.csr_matrix(vectors, dtype=np.float32)
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        profile = rows @ self.vectors_
        return np.asarray((profile @ self.vectors_.T).toarray(), dtype=np.float32)

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """One user's scores: their dense profile ``weights · V[items]`` (float32
        ``(n_terms,)``) times every item's vector (one sparse matrix-vector product; items
        weighted below :data:`MIN_RELATIVE_WEIGHT` times the heaviest item with text left
        out)."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        v = self.vectors_
        starts = v.indptr[items]
        lengths = v.indptr[items + 1] - starts
        with_text = lengths > 0
        if not with_text.any():
            return np.zeros(v.shape[0], dtype=np.float32)
        if not with_text.all():
            starts, lengths, weights = starts[with_text], lengths[with_text], weights[with_text]
        heavy = _heavy(weights)
        if heavy is not None:
            starts, lengths, weights = starts[heavy], lengths[heavy], weights[heavy]
        # the profile from the items' nonzeros, gathered through indptr (what v[items].T @
        # weights computes, without building a sparse matrix)
        ends = np.cumsum(lengths)
        nonzeros = np.arange(int(ends[-1])) + np.repeat(starts - (ends - lengths), lengths)
        profile = np.bincount(
            v.indices[nonzeros],
            v.data[nonzeros] * np.repeat(weights, lengths),
            minlength=v.shape[1],
        ).astype(np.float32)
        return np.asarray(v @ profile, dtype=np.float32)

    def similar(self, item: int) -> F32:
        """Cosine of item ``item`` with every item: float32 ``(n_items,)``."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        return np.asarray((self.vectors_ @ self.vectors_[item].T).toarray()).ravel()

    def params(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "max_features": self.max_features}

    def state(self) -> State:
        assert self.vectors_ is not None
        v = self.vectors_
        return {
            "data": v.data,
            "indices": v.indices,
            "indptr": v.indptr,
            "shape": np.asarray(v.shape, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> Content:
        algo = cls(**params)
        shape = tuple(int(x) for x in state["shape"])
        algo.vectors_ = sparse.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=shape, dtype=np.float32
        )
        return algo


class EmbeddingContent:
    """Content-based on sentence embeddings (``content-minilm``): each item is the
    embedding of :func:`item_document` that training attached to its
    :class:`~aiweb.recommendations.data.ItemText` (all-MiniLM-L6-v2 by default, float32,
    L2-normalised); a user's score for item ``i`` is the cosine of ``i`` with the
    recency-weighted sum of their items' vectors, as :class:`Content` does with TF-IDF.
    The vectors are kept in the artifact, so serving needs no embedding model.

    Attributes:
        vectors_: float32 ``(n_items, dim)``, rows L2-normalised (zero for an item
            without text).
    """

    name: ClassVar[str] = "content-minilm"

    def __init__(self) -> None:
        self.vectors_: F32 | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> EmbeddingContent:
        """Stack the items' embeddings.

        Raises:
            InvalidInputError: a text count other than ``data.n_items``, or items without
                an embedding (training attaches them when an embedding model is installed).
        """
        if len(texts) != data.n_items:
            raise InvalidInputError(f"{len(texts)} item texts for {data.n_items} items")
        if any(t.embedding is None for t in texts):
            raise InvalidInputError(
                "content-minilm needs the items' sentence embeddings, and no embedding model "
                "is installed: run `aiweb embeddings install`"
            )
        vectors = np.stack([t.embedding for t in texts if t.embedding is not None])
        self.vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        profile = np.asarray(rows @ self.vectors_, dtype=np.float32)
        return np.asarray(profile @ self.vectors_.T, dtype=np.float32)

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """One user's scores: their profile ``weights · V[items]`` (float32 ``(dim,)``;
        items weighted below :data:`MIN_RELATIVE_WEIGHT` times the heaviest left out)
        times every item's vector."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        v = self.vectors_
        if len(items) == 0:
            return np.zeros(v.shape[0], dtype=np.float32)
        heavy = _heavy(weights)
        if heavy is not None:
            items, weights = items[heavy], weights[heavy]
        profile = weights.astype(np.float32) @ v[items]
        return np.asarray(v @ profile, dtype=np.float32)

    def similar(self, item: int) -> F32:
        """Cosine of item ``item`` with every item: float32 ``(n_items,)``."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        return np.asarray(self.vectors_ @ self.vectors_[item], dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> State:
        assert self.vectors_ is not None
        return {"vectors": self.vectors_}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> EmbeddingContent:
        algo = cls(**params)
        vectors = state["vectors"]
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise UnsafeArtifactError("content-minilm state: vectors must be float32 (n, dim)")
        algo.vectors_ = vectors
        return algo


CLASSES: dict[str, Any] = {
    c.name: c for c in (ALS, BPR, EASE, Content, EmbeddingContent, Popularity, Trending)
}


def make(name: str, params: dict[str, Any] | None = None) -> Algorithm:
    """A new, unfitted algorithm by name.

    Raises:
        InvalidInputError: unknown name or parameter.
    """
    cls = CLASSES.get(name)
    if cls is None:
        raise InvalidInputError(
            f"unknown recommendation algorithm {name!r}; known: {', '.join(ALGORITHMS)}"
        )
    if not isinstance(params or {}, dict):
        raise InvalidInputError(f"parameters for {name} must be an object of name: value")
    try:
        checked = _params_model(cls).model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"bad parameters for {name}: {problems}") from None
    algo: Algorithm = cls(**checked.model_dump(exclude_unset=True))
    return algo


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters (types from its annotations,
    defaults from its signature; unknown names refused)."""
    hints = typing.get_type_hints(vars(cls)["__init__"])
    fields: dict[str, Any] = {
        p.name: (hints.get(p.name, Any), p.default)
        for p in inspect.signature(cls).parameters.values()
    }
    return create_model(
        f"{cls.__name__}Params",
        __config__=ConfigDict(extra="forbid", strict=False),
        **fields,
    )


def from_state(name: str, params: dict[str, Any], state: State) -> Algorithm:
    """Rebuild a fitted algorithm from :meth:`Algorithm.state`."""
    algo: Algorithm = CLASSES[name].from_state(params, state)
    return algo


def standardize(scores: F32) -> F32:
    """Each row minus its mean, divided by its standard deviation (1 when constant):
    scores of different algorithms on one scale, for blending."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return np.asarray((scores - mean) / std, dtype=np.float32)
