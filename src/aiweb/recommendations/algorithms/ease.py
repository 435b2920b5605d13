"""Item-based: :class:`EASE`, an item-item weight matrix in closed form.

Sources:

- EASE: H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019,
  closed form ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹`` (numpy / LAPACK).

The inverse is one LAPACK call, minutes long at thousands of items, that nothing can
interrupt; from :data:`CHILD_MIN_ITEMS` items on it runs in a child process
(:func:`aiweb.jobs.child.run_in_child`) that a cancelled job ends at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError
from aiweb.jobs.child import run_in_child
from aiweb.recommendations.algorithms.base import (
    F32,
    I32,
    Range,
    State,
    _check,
    _heavy,
    check_finite,
    check_fit_memory,
    report_fit,
)
from aiweb.recommendations.data import Interactions, ItemText

#: items in ``B`` from which :meth:`EASE.fit` computes ``B`` in a child process that a
#: cancel ends (:func:`aiweb.jobs.child.run_in_child`), and below which in this process.
#: Measured on the 2-core reference machine (one BLAS thread, as ``aiweb serve`` runs):
#: the child adds 0.15-0.4 s (a fresh interpreter, ``X`` there and ``B`` back), while the
#: whole computation takes 0.03 s at 500 items, 0.14 s at 1,000, 0.8 s at 2,000, 1.8 s at
#: 3,000 and ~5 s at 4,000 (cubic; minutes at the 20,000 of ``max_items``). From 2,000
#: items a fit lasts long enough for a cancel to matter, and the child adds a third at most.
CHILD_MIN_ITEMS = 2_000


def ease_weights(x: sparse.csr_matrix, l2: float) -> F32:
    """EASE's ``B`` of the user-item matrix ``x`` (``n_users x m``, only the items in
    ``B``): ``P = (XᵀX + λI)⁻¹`` in float64, ``B = I - P·diag(1/diag(P))``.

    A module-level function, so :func:`~aiweb.jobs.child.run_in_child` can run it in a
    child process (the same code, so the same numbers).

    Returns:
        float32 ``(m, m)`` with a zero diagonal.

    Raises:
        InvalidInputError: ``B`` is not finite (raise ``l2``).
    """
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    del gram
    b = p / (-np.diag(p))
    del p
    b[np.diag_indices_from(b)] = 0.0
    check_finite(f"ease (l2={l2})", b, hint="raise l2")
    weights: F32 = b.astype(np.float32, copy=False)
    return weights


def _fit_check() -> None:
    """The cancellation check of a fit in a child: the fit's progress callback (a job's
    ``progress``, which raises when the job is cancelled), told nothing new."""
    report_fit(0.0)


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
    #: valid parameter values (checked by :func:`~aiweb.recommendations.algorithms.make`)
    RANGES: ClassVar[dict[str, Range]] = {
        "l2": Range(0, 1e9, low_open=True),
        "min_item_users": Range(1, 1e9, integer=True),
        "max_items": Range(1, 100_000, integer=True),
    }

    def __init__(self, l2: float = 200.0, min_item_users: int = 2, max_items: int = 20_000) -> None:
        if not l2 > 0:  # NaN too
            raise InvalidInputError(f"ease.l2 must be {self.RANGES['l2'].describe()}, not {l2!r}")
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

    @staticmethod
    def memory_bytes(m: int) -> int:
        """Estimated peak bytes of :meth:`fit` with ``m`` items in ``B``: the float64 Gram
        matrix, its inverse and ``B`` (``m²·8`` each), and ``B`` as float32."""
        return 3 * m * m * 8 + m * m * 4

    def fit(self, data: Interactions, texts: list[ItemText]) -> EASE:
        """Fit ``B`` on ``data`` (``texts`` unused).

        With :data:`CHILD_MIN_ITEMS` items or more, ``B`` (:func:`ease_weights`) is
        computed in a child process, and the fit's progress callback
        (:func:`~aiweb.recommendations.algorithms.base.fit_progress`) is called every
        0.25 s while it works: what the callback raises (a cancelled job's
        ``JobCancelled``) ends the child at once and propagates. Smaller fits run in this
        process (starting a child costs more than they take), to the same numbers.

        Raises:
            InvalidInputError: more than ``max_items`` items with ``min_item_users``
                users, a memory estimate (:meth:`memory_bytes`) above the limit
                (:func:`~aiweb.recommendations.algorithms.base.check_fit_memory`, checked
                before the matrices are allocated), or a ``B`` that is not finite.
            ChildDied: the child process was killed (out of memory) before answering
                (:class:`aiweb.jobs.child.ChildDied`).
        """
        counts = np.bincount(data.items, minlength=data.n_items)
        items = np.flatnonzero(counts >= self.min_item_users).astype(np.int32)
        if len(items) > self.max_items:
            raise InvalidInputError(
                f"EASE needs a dense {len(items)}² matrix; the limit is {self.max_items} items "
                "(raise min_item_users, or use als)"
            )
        check_fit_memory(
            f"ease on {len(items):,} items (a dense {len(items):,}² matrix)",
            self.memory_bytes(len(items)),
            "raise min_item_users, lower max_items, or use als",
        )
        x = data.matrix()[:, items]
        if len(items) >= CHILD_MIN_ITEMS:
            self.weights_ = run_in_child(
                ease_weights,
                x,
                self.l2,
                check=_fit_check,
                what=f"the ease fit on {len(items):,} items",
            )
        else:
            self.weights_ = ease_weights(x, self.l2)
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
