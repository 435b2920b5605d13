"""``aiweb serve --workers N`` divides the cores among the workers' onnxruntime threads."""

from __future__ import annotations

import os

import pytest

from aiweb.cli.serve import EMBEDDING_THREADS_ENV, share_embedding_threads
from aiweb.config import Settings


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.delenv(EMBEDDING_THREADS_ENV, raising=False)


@pytest.mark.usefixtures("four_cores")
@pytest.mark.parametrize(("workers", "threads"), [(2, 2), (4, 1), (3, 1), (8, 1)])
def test_workers_get_their_share_of_the_cores(workers: int, threads: int) -> None:
    share_embedding_threads(workers)
    assert os.environ[EMBEDDING_THREADS_ENV] == str(threads)
    assert Settings().embeddings.threads == threads  # what each worker's settings read


@pytest.mark.usefixtures("four_cores")
def test_one_worker_keeps_every_core() -> None:
    share_embedding_threads(1)
    assert EMBEDDING_THREADS_ENV not in os.environ
    assert Settings().embeddings.threads == 0


@pytest.mark.usefixtures("four_cores")
@pytest.mark.parametrize("configured", ["3", "1"])
def test_an_operator_setting_is_kept(monkeypatch: pytest.MonkeyPatch, configured: str) -> None:
    monkeypatch.setenv(EMBEDDING_THREADS_ENV, configured)
    share_embedding_threads(2)
    assert os.environ[EMBEDDING_THREADS_ENV] == configured


@pytest.mark.usefixtures("four_cores")
def test_zero_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMBEDDING_THREADS_ENV, "0")
    share_embedding_threads(2)
    assert os.environ[EMBEDDING_THREADS_ENV] == "2"
