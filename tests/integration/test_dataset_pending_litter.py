"""An upload's two-phase write (issue #18, finding 11): a dataset is stored under
``datasets/.pending-<id>/``, its row is committed, then it is moved to ``datasets/<id>/``.

A kill between the phases is made the way it happens: the phases run one by one (the
next one never runs), or a child process is killed with SIGKILL after the commit. The
crash-litter sweep rolls a pending dataset with a row forward and removes one without a
row once it is older than the grace period; readers roll forward by themselves. Every
test runs on SQLite and on PostgreSQL (the ``settings`` fixture)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import open_registry

from aiweb.config import Settings
from aiweb.datasets.service import DatasetService, StagedUpload, pending_dir
from aiweb.db.session import make_session_factory
from aiweb.errors import DatasetNotFound
from aiweb.jobs.litter import GRACE_S, sweep
from aiweb.registry.artifacts import LocalArtifactStore

DATA = b"text,label\nhi,a\nho,b\nhu,a\n"
OLD = time.time() - 2 * GRACE_S


class Body:  # a file-like upload body
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        chunk, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return chunk


@pytest.fixture
def service(settings: Settings) -> Iterator[DatasetService]:
    registry, engine = open_registry(settings)
    try:
        yield DatasetService(make_session_factory(engine), registry.artifacts, settings)
    finally:
        engine.dispose()


def _root(service: DatasetService) -> Path:
    assert isinstance(service.artifacts, LocalArtifactStore)
    return service.artifacts.root


def _age(path: Path, when: float = OLD) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when))
    os.utime(path, (when, when))


def _sweep(service: DatasetService) -> dict[str, int]:
    return sweep(service.settings, service._sessions, service.artifacts)


def _stage(service: DatasetService, data: bytes = DATA) -> StagedUpload:
    return service.stage(Body(data), "reviews.csv")


def test_an_upload_ends_at_its_final_uri(service: DatasetService) -> None:
    dataset = service.upload(Body(DATA), "reviews.csv")
    root = _root(service)
    assert dataset.artifact_uri == f"datasets/{dataset.id}/data.csv"
    assert (root / dataset.artifact_uri).read_bytes() == DATA
    assert sorted(p.name for p in (root / "datasets").iterdir()) == [dataset.id]
    assert service.get(dataset.id).sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_kill_before_the_commit_leaves_a_pending_dir_the_sweep_removes(
    service: DatasetService,
) -> None:
    staged = _stage(service)  # ... and the process dies: no row
    root = _root(service)
    pending = root / pending_dir(staged.id)
    assert staged.pending_uri == f"datasets/.pending-{staged.id}/data.csv"
    assert (root / staged.pending_uri).read_bytes() == DATA
    assert not (root / staged.artifact_uri).exists()
    with pytest.raises(DatasetNotFound):
        service.get(staged.id)

    counts = _sweep(service)  # too young: it may be an upload about to commit
    assert not any(counts.values())
    assert pending.is_dir()

    _age(pending)
    counts = _sweep(service)
    assert counts["pending_datasets"] == 1
    assert counts["rolled_forward"] == 0
    assert counts["datasets"] == 0  # never mistaken for a row-less datasets/<id>/
    assert not pending.exists()
    assert list((root / "datasets").iterdir()) == []
    assert not any(_sweep(service).values())


def test_a_kill_after_the_commit_is_rolled_forward_by_the_sweep(
    service: DatasetService,
) -> None:
    staged = _stage(service)
    dataset = service.commit(staged, actor="t")  # ... and the process dies before the move
    root = _root(service)
    assert dataset.artifact_uri == staged.artifact_uri
    assert not (root / dataset.artifact_uri).exists()
    assert (root / staged.pending_uri).is_file()

    _age(root / pending_dir(staged.id))  # old or not, a committed row is rolled forward
    counts = _sweep(service)
    assert counts["rolled_forward"] == 1
    assert counts["pending_datasets"] == 0
    assert counts["datasets"] == 0
    assert (root / dataset.artifact_uri).read_bytes() == DATA
    assert not (root / pending_dir(staged.id)).exists()
    assert not any(_sweep(service).values())

    fresh = service.commit(_stage(service, DATA + b"hy,b\n"))  # young: rolled forward too
    assert _sweep(service)["rolled_forward"] == 1
    assert (root / fresh.artifact_uri).read_bytes() == DATA + b"hy,b\n"


def test_readers_roll_a_pending_dataset_forward(service: DatasetService, tmp_path: Path) -> None:
    root = _root(service)
    first = service.commit(_stage(service))
    with service.open(first) as fh:
        assert fh.read() == DATA
    assert (root / first.artifact_uri).is_file()
    assert not (root / pending_dir(first.id)).exists()

    second = service.commit(_stage(service))
    copy = service.local_copy(second, tmp_path / "work")
    assert copy.read_bytes() == DATA
    assert (root / second.artifact_uri).is_file()

    publish_twice = service.commit(_stage(service))  # the sweep and a reader both move it
    assert _sweep(service)["rolled_forward"] == 1
    with service.open(publish_twice) as fh:
        assert fh.read() == DATA

    gone = service.commit(_stage(service))
    (root / pending_dir(gone.id) / "data.csv").unlink()  # lost from both places
    with pytest.raises(FileNotFoundError):
        service.open(gone)


def test_a_failed_commit_removes_the_pending_file(service: DatasetService) -> None:
    staged = _stage(service)
    unstorable = dataclasses.replace(staged, columns=[{"not", "json"}])  # type: ignore[list-item]
    with pytest.raises(Exception, match="JSON serializable"):
        service.commit(unstorable)
    root = _root(service)
    assert not (root / pending_dir(staged.id)).exists()
    with pytest.raises(DatasetNotFound):
        service.get(staged.id)


def test_deleting_a_dataset_still_pending_removes_its_file(service: DatasetService) -> None:
    dataset = service.commit(_stage(service))
    service.delete(dataset.id)
    root = _root(service)
    assert list((root / "datasets").iterdir()) == []
    assert not any(_sweep(service).values())


KILLED_AFTER_COMMIT = textwrap.dedent(
    """
    import sys
    from aiweb.config import Settings
    from aiweb.jobs.env import build_job_env

    env = build_job_env(Settings(home=sys.argv[1], database_url=sys.argv[2]))
    staged = env.datasets.stage(open(sys.argv[3], "rb"), "reviews.csv")
    dataset = env.datasets.commit(staged, actor="killed")
    print(dataset.id, flush=True)
    sys.stdin.readline()  # wait to be killed, before the move
    """
)


def test_a_process_killed_between_the_commit_and_the_move(
    service: DatasetService, tmp_path: Path
) -> None:
    source = tmp_path / "reviews.csv"
    source.write_bytes(DATA)
    settings = service.settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_AFTER_COMMIT,
            str(settings.home),
            settings.resolved_database_url,
            str(source),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        dataset_id = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(10)
    dataset = service.get(dataset_id)
    assert dataset.created_by == "killed"
    root = _root(service)
    assert not (root / dataset.artifact_uri).exists()
    assert (root / pending_dir(dataset_id) / "data.csv").read_bytes() == DATA

    assert _sweep(service)["rolled_forward"] == 1
    assert (root / dataset.artifact_uri).read_bytes() == DATA
    with service.open(dataset) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == dataset.sha256
