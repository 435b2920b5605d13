"""The shared connection table behind ``aiweb serve``'s connection balancing."""

from __future__ import annotations

import multiprocessing
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from aiweb.serving.balance import ConnectionTable, create_table


def hold_slot(path: str, claimed: Any, release: Any) -> None:
    table = ConnectionTable(path)
    claimed.put(table.slot)
    release.wait(30)
    table.close()


def write_count(path: Path, slot: int, count: int) -> None:
    with path.open("r+b") as f:
        f.seek(slot * 8)
        f.write(struct.pack("q", count))


@contextmanager
def other_worker_on(path: Path) -> Iterator[None]:
    """A live child process holding the table's first slot."""
    ctx = multiprocessing.get_context("spawn")
    claimed, release = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=hold_slot, args=(str(path), claimed, release))
    child.start()
    try:
        assert claimed.get(timeout=30) == 0
        yield
    finally:
        release.set()
        child.join(30)


@pytest.fixture
def other_worker(tmp_path: Path) -> Iterator[Path]:
    """A table for 2 workers whose first slot another live process holds."""
    path = tmp_path / "table"
    create_table(str(path), 2)
    with other_worker_on(path):
        yield path


def test_each_worker_claims_its_own_slot_and_a_dead_workers_slot_is_taken_over(
    other_worker: Path,
) -> None:
    write_count(other_worker, 1, 7)  # left by a worker that died
    table = ConnectionTable(str(other_worker))
    try:
        assert table.slot == 1
        assert table.counts() == [0, 0]  # the dead worker's count was reset
        table.opened()
        table.opened()
        assert table.counts() == [0, 2]
        table.lost()
        assert table.counts() == [0, 1]
    finally:
        table.close()


def test_a_worker_with_no_free_slot_neither_counts_nor_closes(tmp_path: Path) -> None:
    path = tmp_path / "table"
    create_table(str(path), 1)
    with other_worker_on(path):
        table = ConnectionTable(str(path))
        assert table.slot is None
        for _ in range(3):
            table.opened()
        assert table.counts() == [0]
        assert not table.over_share()
        table.close()


def test_a_worker_over_its_share_closes_until_the_counts_even_out(other_worker: Path) -> None:
    table = ConnectionTable(str(other_worker))
    try:
        # 3 + 1 of 4 connections: the share is 2, so one connection is told to close
        write_count(other_worker, 0, 1)
        for _ in range(3):
            table.opened()
        assert table.over_share()
        # until that connection is gone, the others on this worker are kept
        assert not table.over_share()
        table.lost()
        write_count(other_worker, 0, 2)  # the client reconnected to the other worker
        assert table.counts() == [2, 2]
        assert not table.over_share()
        # 4 + 0: two connections are told to close, one after the other
        write_count(other_worker, 0, 0)
        table.opened()
        table.opened()
        assert [table.over_share() for _ in range(3)] == [True, True, False]
    finally:
        table.close()


@pytest.mark.parametrize(
    ("mine", "theirs", "closes"),
    [(0, 0, False), (1, 0, False), (2, 1, False), (3, 2, False), (4, 2, True), (5, 0, True)],
)
def test_the_fair_share_is_the_ceiling_of_the_mean(
    other_worker: Path, mine: int, theirs: int, closes: bool
) -> None:
    table = ConnectionTable(str(other_worker))
    try:
        write_count(other_worker, 0, theirs)
        for _ in range(mine):
            table.opened()
        assert table.over_share() is closes
    finally:
        table.close()


def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "table"
    path.write_bytes(b"\0" * 12)
    with pytest.raises(ValueError, match="not a connection table"):
        ConnectionTable(str(path))
    with pytest.raises(ValueError, match="workers must be"):
        create_table(str(path), 0)
