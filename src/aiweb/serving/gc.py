"""Garbage-collector and allocator tuning for serving processes.

A loaded model is hundreds of thousands of long-lived Python objects. CPython's cyclic
collector walks all of them on every full collection, and with the default thresholds
(700, 10, 10) a busy server runs one every few seconds, stalling every request in the
process for tens of milliseconds: measured here, p99 at concurrency 32 went from 131 ms
to 22 ms with this tuning (docs/benchmarks.md). The standard remedy
(https://docs.python.org/3/library/gc.html#gc.freeze, as used by Instagram's Django
fleet) is to move the objects alive after start-up into the permanent generation, which
no collection scans, and to collect young objects less often.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

from aiweb.config import ServingSettings

log = logging.getLogger(__name__)


def tune_after_load(settings: ServingSettings, *, collect: bool) -> None:
    """Freeze every object alive now out of the cyclic collector's reach and set the
    young-generation threshold, when ``settings.gc_freeze`` is on.

    Args:
        settings: ``gc_freeze`` and ``gc_gen0_threshold``.
        collect: run a full collection first, so garbage is not frozen with the models
            (at start-up; not while serving, where it would stall requests).
    """
    if not settings.gc_freeze:
        return
    if collect:
        gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)
    log.debug("gc: %d objects frozen, thresholds %s", gc.get_freeze_count(), gc.get_threshold())


M_ARENA_MAX = -8
"""``mallopt`` parameter of glibc's ``<malloc.h>``: the most malloc arenas."""


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas of this process at ``arenas`` (``mallopt(M_ARENA_MAX)``).

    glibc gives each thread that contends for the heap an arena of its own, up to 8 per
    core, and memory freed into one arena is not reused by another; a server that runs
    requests on a pool of threads (``anyio.to_thread``, onnxruntime, BLAS) so keeps
    growing its RSS long after its caches are full. The cap is the remedy glibc documents
    (``mallopt(3)``, ``MALLOC_ARENA_MAX``); it applies to arenas made from now on, so it is
    called before the serving threads start.

    Args:
        arenas: the cap (``AIWEB_SERVING__MALLOC_ARENAS``); 0 leaves glibc's default.

    Returns:
        Whether the cap was set: ``False`` for 0, and where the C library is not glibc
        (musl, macOS), which has no such arenas.
    """
    if arenas <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done
