from __future__ import annotations

import gc
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


@pytest.mark.usefixtures("restore_gc")
def test_loaded_objects_are_frozen_and_young_collections_are_rarer() -> None:
    gc.unfreeze()
    model_like = [{"weights": [float(i)]} for i in range(10_000)]
    tune_after_load(ServingSettings(gc_gen0_threshold=12_345), collect=True)
    assert gc.get_freeze_count() >= len(model_like)
    assert gc.get_threshold()[0] == 12_345


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
