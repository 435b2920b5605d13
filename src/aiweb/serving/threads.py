"""BLAS threads of a serving process.

OpenBLAS (numpy's and scipy's) runs a matrix-vector product as large as a
recommendation request's (9,742 items by 65 factors) on every core. Serving answers many
requests at once, in several workers, so those threads only wait for each other: on this
2-core machine, with other work running, ``item_factors @ user_factors`` took 2.3 ms with
two BLAS threads and 0.15 ms with one (docs/benchmarks.md). A serving process therefore
keeps BLAS to ``serving.blas_threads`` threads (1 by default), set once at start with
threadpoolctl (https://github.com/joblib/threadpoolctl), which changes the limit of every
BLAS library loaded in the process; it is process-wide, so training inside ``aiweb serve``
(the embedded job runner) is limited too. Training from the CLI or on Celery workers is
not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


def limit_blas_threads(threads: int) -> Callable[[], None]:
    """Limit every BLAS library loaded now to ``threads`` threads (``0``: leave them).

    Import numpy (and scipy) before calling: libraries loaded later are not limited.

    Args:
        threads: threads per BLAS library, or ``0`` for no change.

    Returns:
        A function that restores the limits found before (call it at shutdown).
    """
    if threads <= 0:
        return lambda: None
    limits = threadpool_limits(limits=threads, user_api="blas")
    log.debug("BLAS limited to %d thread(s)", threads)

    def restore() -> None:
        limits.restore_original_limits()

    return restore
