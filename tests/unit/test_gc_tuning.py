from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aiweb.config import ServingSettings
from aiweb.serving.gc import tune_after_load


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_loaded_objects_are_frozen_and_young_collections_are_rarer() -> None:
    # in a fresh interpreter: here, the full collection it runs first would walk every
    # object the test worker holds (16 s after a few hundred test files)
    code = (
        "import gc\n"
        "from aiweb.config import ServingSettings\n"
        "from aiweb.serving.gc import tune_after_load\n"
        "import weakref\n"
        "class Node: pass\n"
        "model_like = [{'weights': [float(i)]} for i in range(10_000)]\n"
        "cycle = Node(); cycle.me = cycle; garbage = weakref.ref(cycle); del cycle\n"
        "tune_after_load(ServingSettings(gc_gen0_threshold=12_345), collect=%s)\n"
        "print(gc.get_freeze_count(), gc.get_threshold()[0], garbage() is None)\n"
    )
    for collect in (True, False):
        done = subprocess.run(
            [sys.executable, "-c", code % collect],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        frozen, gen0, collected = done.stdout.split()
        assert int(frozen) >= 2 * 10_000  # the dicts and their lists
        assert int(gen0) == 12_345
        # collect=True: the garbage cycle is collected first, not frozen with the models
        assert collected == str(collect)


@pytest.mark.usefixtures("restore_gc")
def test_switched_off_it_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_after_load(ServingSettings(gc_freeze=False), collect=True)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_malloc_arenas_are_capped_on_glibc_and_left_alone_at_zero() -> None:
    import platform

    from aiweb.serving.gc import limit_malloc_arenas

    assert limit_malloc_arenas(0) is False  # 0: glibc's default, nothing called
    expected = platform.libc_ver()[0] == "glibc"
    assert limit_malloc_arenas(2) is expected
