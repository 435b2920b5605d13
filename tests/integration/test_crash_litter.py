"""Crash litter (finding 11): what a killed process leaves is swept at start and on a
schedule, and what a live upload or job still uses never is.

The litter is made as a crash makes it: a real upload in a child process killed with
SIGKILL after its body arrived (its ``.upload-*`` copy stays), a dataset directory with
no row, a half-written ``.tmp-*`` artifact, and scratch directories of finished, dead and
live jobs. Kills inside an upload's two-phase write (pending datasets) are in
``test_dataset_pending_litter.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from sqlalchemy import update

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.datasets.service import DatasetService
from aiweb.db.orm import SqlJob, SqlModelVersion
from aiweb.db.session import make_session_factory
from aiweb.errors import ConflictError
from aiweb.jobs.env import build_job_env
from aiweb.jobs.litter import GRACE_S, sweep, sweep_pending_versions
from aiweb.jobs.scheduler import housekeeping

OLD = time.time() - 2 * GRACE_S


def _age(path: Path, when: float = OLD) -> Path:
    for root, dirs, files in os.walk(path) if path.is_dir() else []:
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when))
    os.utime(path, (when, when))
    return path


def _file(path: Path, data: bytes = b"x" * 1024, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _age(path) if old else path


UPLOADER = textwrap.dedent(
    """
    import sys
    from aiweb.config import Settings
    from aiweb.jobs.env import build_job_env

    class Body:  # an upload whose body arrives, then the process is killed mid-check
        def __init__(self):
            self.sent = False
        def read(self, n=-1):
            if not self.sent:
                self.sent = True
                return b"text,label\\n" + b"hello,a\\n" * 50_000
            print("READY", flush=True)
            sys.stdin.readline()  # wait to be killed
            return b""

    env = build_job_env(Settings(home=sys.argv[1], database_url=sys.argv[2]))
    env.datasets.upload(Body(), "data.csv")
    """
)


def _start_upload(settings: Settings) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, str(settings.home), settings.resolved_database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_sweep_removes_exactly_the_litter(settings: Settings) -> None:
    registry, engine = open_registry(settings)
    sessions = make_session_factory(engine)
    artifacts = registry.artifacts
    root = settings.resolved_artifacts_dir
    home = settings.home
    datasets = DatasetService(sessions, artifacts, settings)
    kept_dataset = datasets.upload(iter_bytes(b"text,label\nhi,a\nho,b\n"), "ok.csv")
    _age(root / "datasets" / kept_dataset.id)

    # a real upload killed after its body arrived, and one still running
    dead = _start_upload(settings)
    live = _start_upload(settings)
    dead.send_signal(signal.SIGKILL)
    dead.wait(10)
    uploads = sorted(home.glob(".upload-*"))
    assert len(uploads) == 2
    for path in uploads:
        _age(path)
    fresh_upload = _file(home / ".upload-fresh", old=False)  # younger than the grace

    orphan = _file(root / "datasets" / str(uuid.uuid4()) / "data.csv").parent
    _age(orphan)
    fresh_orphan = _file(root / "datasets" / str(uuid.uuid4()) / "data.csv", old=False).parent
    half_written = _file(root / "models" / "m" / "1" / ".tmp-abc123")
    model_file = _file(root / "models" / "m" / "1" / "model.skops")

    env = build_job_env(settings)
    jobs: dict[str, str] = {}
    for status in ("succeeded", "failed", "cancelled", "running", "pending"):
        job = env.jobs.create("train", {}, submitted_by="t", max_attempts=1)
        with engine.begin() as conn:
            conn.execute(update(SqlJob).where(SqlJob.id == job.id).values(status=status))
        jobs[status] = job.id
        _file(home / "tmp" / "jobs" / job.id / "scratch.csv")
    gone_job = _file(home / "tmp" / "jobs" / str(uuid.uuid4()) / "scratch.csv").parent
    _age(gone_job)
    try:
        counts = sweep(settings, sessions, artifacts)
        assert counts == {
            "uploads": 1,
            "rolled_forward": 0,
            "pending_datasets": 0,
            "datasets": 1,
            "artifact_temps": 1,
            "job_scratch": 4,
            "pending_versions": 0,
        }
        left = sorted(home.glob(".upload-*"))
        assert len(left) == 2  # the live upload's copy stays
        assert fresh_upload in left
        assert not orphan.exists()
        assert not half_written.exists()
        assert fresh_orphan.exists()
        assert model_file.exists()
        assert datasets.get(kept_dataset.id).rows == 2
        assert (root / kept_dataset.artifact_uri).is_file()
        scratch = home / "tmp" / "jobs"
        assert sorted(p.name for p in scratch.iterdir()) == sorted(
            [jobs["running"], jobs["pending"]]
        )
        assert sweep(settings, sessions, artifacts) == dict.fromkeys(counts, 0)
    finally:
        live.kill()
        live.wait(10)
        env.close()
        engine.dispose()
    # the live upload died too: its copy is litter now (the scheduler's round removes it)
    env = build_job_env(settings)
    try:
        _, litter = housekeeping(env, force=True)
        assert litter["uploads"] == 1
        assert sorted(home.glob(".upload-*")) == [fresh_upload]
    finally:
        env.close()


def test_aiweb_serve_sweeps_at_start(settings: Settings, auth_headers: dict[str, str]) -> None:
    _, engine = open_registry(settings)
    engine.dispose()
    upload = _file(settings.home / ".upload-k1ll3d", b"y" * 95_000)
    orphan = _file(settings.resolved_artifacts_dir / "datasets" / str(uuid.uuid4()) / "data.csv")
    _age(orphan.parent)
    scratch = _file(settings.home / "tmp" / "jobs" / str(uuid.uuid4()) / "x.csv").parent
    _age(scratch)
    # the broker setting keeps the embedded runner (and its scheduler tick) out of it
    settings = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert not upload.exists()
        assert not orphan.parent.exists()
        assert not scratch.exists()
        assert client.get("/livez").status_code == 200


REGISTERER = textwrap.dedent(
    """
    import sys
    from aiweb.config import Settings
    from aiweb.registry.artifacts import LocalArtifactStore
    from aiweb.registry.factory import build_registry

    write = LocalArtifactStore.write_bytes

    def write_then_hang(self, uri, data):  # the artifact lands, then the process dies
        digest = write(self, uri, data)
        print("READY", flush=True)
        sys.stdin.readline()  # wait to be killed
        return digest

    LocalArtifactStore.write_bytes = write_then_hang
    registry, _ = build_registry(Settings(home=sys.argv[1], database_url=sys.argv[2]))
    registry.register_version(
        "m", "text-classification", artifact=b"model bytes", artifact_format="skops",
        labels=["a", "b"], signature={}, lineage={}, evaluation={},
    )
    """
)


def test_a_version_left_pending_by_a_killed_writer_is_failed(settings: Settings) -> None:
    """A kill between the artifact write and ``ready`` leaves a pending version and its
    file; the sweep fails it and removes the file once it is older than the grace, leaves
    a young pending version alone, and a writer that comes back late is refused."""
    registry, engine = open_registry(settings)
    sessions = make_session_factory(engine)
    root = settings.resolved_artifacts_dir
    proc = subprocess.Popen(
        [sys.executable, "-c", REGISTERER, str(settings.home), settings.resolved_database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        dead = registry.get_version("m", 1)
        assert dead.status == "pending"
        assert (root / "models" / "m" / "1" / "model.skops").is_file()
        young = registry.store.create_version(
            "m", labels=["a", "b"], signature={}, lineage={}, evaluation={}, artifact_format="skops"
        )
        assert young.version == 2

        # younger than the grace: a writer may still be at work
        assert sweep_pending_versions(sessions, registry.artifacts) == 0
        assert registry.get_version("m", 1).status == "pending"

        with engine.begin() as conn:  # the killed writer's row is old now
            conn.execute(
                update(SqlModelVersion)
                .where(SqlModelVersion.version == 1)
                .values(created_at=dead.created_at - timedelta(seconds=2 * GRACE_S))
            )
        counts = sweep(settings, sessions, registry.artifacts)
        assert counts["pending_versions"] == 1
        assert registry.get_version("m", 1).status == "failed"
        assert not (root / "models" / "m" / "1").exists()
        assert registry.get_version("m", 2).status == "pending"
        assert sweep(settings, sessions, registry.artifacts)["pending_versions"] == 0

        # the writer of version 1 cannot come back and mark it ready without its file
        with pytest.raises(ConflictError, match="no longer pending"):
            registry.store.finish_version("m", 1, status="ready", artifact_uri="x")
        registry.store.finish_version("m", 2, status="failed")  # a failed write still ends
        assert registry.get_version("m", 2).status == "failed"
        # a failed version's number is never given again
        assert (
            registry.register_version(
                "m",
                "text-classification",
                artifact=b"ok",
                artifact_format="skops",
                labels=["a", "b"],
                signature={},
                lineage={},
                evaluation={},
            ).version
            == 3
        )
    finally:
        proc.kill()
        proc.wait(10)
        engine.dispose()


class iter_bytes:  # a file-like object, as an upload hands it
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        chunk, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return chunk
