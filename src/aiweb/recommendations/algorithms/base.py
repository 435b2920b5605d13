"""What every recommendation algorithm shares: the :class:`Algorithm` protocol, the array
type aliases, recency weighting (:func:`recency_weights`, :func:`recency_rows`), the
:data:`MIN_RELATIVE_WEIGHT` cut of the single-user paths and :func:`standardize` for
blending (see :mod:`aiweb.recommendations.algorithms`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError, NotFittedError
from aiweb.recommendations.data import Interactions, ItemText

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
State = dict[str, npt.NDArray[Any]]

#: items weighted below this fraction (2^-24, float32's relative precision) of a user's
#: heaviest item that counts are left out by :meth:`EASE.score_user` and
#: :meth:`Content.score_user`
MIN_RELATIVE_WEIGHT = 2.0**-24


#: share of the memory available when a fit starts that its estimate may take
#: (:func:`check_fit_memory`)
FIT_MEMORY_FRACTION = 0.5
#: largest seed ``numpy.random`` (and so ``implicit``) accepts
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric parameter: ``low``..``high`` (both included unless
    ``low_open``), finite, whole numbers only when ``integer``.

    Every algorithm lists its parameters' ranges in ``RANGES``; :func:`~aiweb.
    recommendations.algorithms.catalog.make` checks them, so NaN, infinity (also sent as
    the strings ``"NaN"`` or ``"inf"``) and absurd sizes are refused before a fit.
    """

    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def describe(self) -> str:
        """``an integer in [1, 1024]``, ``a finite number in (0, 1e+06]``."""
        kind = "an integer" if self.integer else "a finite number"
        return f"{kind} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}]"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is in the range (never for NaN or infinity)."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e10 else f"{x:g}"


def check_ranges(name: str, ranges: dict[str, Range], values: dict[str, Any]) -> None:
    """Refuse a value of ``values`` outside its range in ``ranges`` (the constructors'
    own check, for algorithms built without :func:`make`).

    Raises:
        InvalidInputError: ``"ease.l2 must be a finite number in (0, 1e+09], not nan"``.
    """
    for key, value in values.items():
        valid = ranges.get(key)
        if valid is None:
            continue
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and valid.contains(float(value))
            and (not valid.integer or float(value).is_integer())
        )
        if not ok:
            raise InvalidInputError(f"{name}.{key} must be {valid.describe()}, not {value!r}")


# --------------------------------------------------------------------------- fit progress

_FIT_PROGRESS: ContextVar[Callable[[float], None] | None] = ContextVar(
    "aiweb_fit_progress", default=None
)
#: least seconds between two calls of a fit's progress callback
FIT_PROGRESS_INTERVAL_S = 0.05


@contextmanager
def fit_progress(callback: Callable[[float], None] | None) -> Iterator[None]:
    """Within the block, the iterative fits (ALS, BPR) call ``callback(fraction)``
    between iterations (at most every :data:`FIT_PROGRESS_INTERVAL_S`): a job's
    ``progress``, which raises when the job is cancelled, stops the fit there."""
    if callback is None:
        yield
        return
    last = [0.0]

    def throttled(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= FIT_PROGRESS_INTERVAL_S or fraction >= 1.0:
            last[0] = now
            callback(fraction)

    token = _FIT_PROGRESS.set(throttled)
    try:
        yield
    finally:
        _FIT_PROGRESS.reset(token)


def report_fit(fraction: float) -> None:
    """Tell the :func:`fit_progress` callback (if any) that ``fraction`` (0 to 1) of the
    current fit is done; it may raise (a cancelled job) to stop the fit."""
    callback = _FIT_PROGRESS.get()
    if callback is not None:
        callback(min(1.0, max(0.0, fraction)))


# --------------------------------------------------------------------------- memory


def available_memory_bytes() -> int | None:
    """Memory a fit may still take: the lesser of the host's ``MemAvailable`` and what
    the cgroup (container) limit leaves; ``None`` when neither can be read."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (AttributeError, ValueError, OSError):
            return None
    return min(found)


def check_fit_memory(what: str, needed: int, hint: str, *, limit: int | None = None) -> None:
    """Refuse a fit whose memory estimate ``needed`` (bytes) exceeds ``limit`` (default:
    :data:`FIT_MEMORY_FRACTION` of :func:`available_memory_bytes`; no check when that is
    unknown), before anything is allocated.

    Args:
        what: the fit, e.g. ``"als with factors=1024 on 610 users x 9,724 items"``.
        needed: estimated peak bytes.
        hint: which parameters shrink it.
        limit: bytes allowed.

    Raises:
        InvalidInputError: the estimate and the limit, in MB.
    """
    if limit is None:
        available = available_memory_bytes()
        if available is None:
            return
        limit = int(available * FIT_MEMORY_FRACTION)
    if needed > limit:
        raise InvalidInputError(
            f"{what} needs about {needed / 1e6:,.0f} MB of memory to fit, more than the "
            f"{limit / 1e6:,.0f} MB allowed ({FIT_MEMORY_FRACTION:.0%} of the memory available "
            f"now): {hint}"
        )


def check_finite(what: str, *arrays: npt.NDArray[Any], hint: str) -> None:
    """Refuse a fit that produced NaN or infinite values (it diverged).

    Raises:
        InvalidInputError: names the fit and the parameters to change.
    """
    for array in arrays:
        if array.size and not np.isfinite(array).all():
            raise InvalidInputError(
                f"{what} produced values that are not finite numbers (NaN or infinite): "
                f"the fit diverged; {hint}"
            )


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
