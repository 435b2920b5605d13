"""Functions that ``tests/unit/test_child_process.py`` runs in a child process: in a module
of their own, so the child imports this (numpy) and not the whole test module."""

from __future__ import annotations

import numpy as np

from aiweb.jobs.child import blas_threads


def child_blas_threads(_load_numpy: np.ndarray) -> int | None:
    """The BLAS threads of the child once numpy is loaded (the argument loads it)."""
    return blas_threads()
