"""Non-personalised baselines: :class:`Popularity` and :class:`Trending` score every user
alike.

Sources:

- Popularity: number of users per item. Trending: the same count with each interaction
  decayed exponentially by its age (half-life ``half_life_days``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError
from aiweb.recommendations.algorithms.base import F32, I32, Range, State, _check, _read_only
from aiweb.recommendations.data import Interactions, ItemText


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
    #: valid parameter values (checked by :func:`~aiweb.recommendations.algorithms.make`)
    RANGES: ClassVar[dict[str, Range]] = {"half_life_days": Range(0, 36_500, low_open=True)}

    def __init__(self, half_life_days: float = 30.0) -> None:
        if not half_life_days > 0:  # NaN too
            raise InvalidInputError(
                f"trending.half_life_days must be {self.RANGES['half_life_days'].describe()}, "
                f"not {half_life_days!r}"
            )
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
