"""Crash litter: files a killed process left behind, swept at start and on a schedule.

A process killed at the wrong moment leaves:

- an upload's scratch copy, ``<home>/.upload-*`` (up to ``limits.max_upload_bytes``), when
  it died after the body arrived and before the dataset was stored;
- a pending dataset directory in the artifact store, ``datasets/.pending-<id>/``, when it
  died during an upload's two-phase write (:mod:`aiweb.datasets.service`): with no
  dataset row when it died before the row was committed, with its row when it died
  between the commit and the move into place, ``datasets/<id>/``;
- a dataset directory ``datasets/<id>/`` with no dataset row (left by versions that
  stored the file in place before committing the row, or by a delete that died);
- a half-written artifact, ``.tmp-*`` next to its target, when it died during an atomic
  write (the rename never happened);
- a job's scratch directory, ``<home>/tmp/jobs/<job id>/``, when the attempt using it
  died (the runner removes it when an attempt ends, and a new attempt of the same job on
  the same host starts by removing it);
- a model version stuck ``pending`` (:meth:`aiweb.registry.RegistryService.register_version`
  adds the row, writes the artifact, then marks it ``ready``), with whatever part of its
  files ``models/<name>/<version>/`` was written, when it died between the two.

:func:`sweep` removes exactly these, and never what a live process still uses:

- an upload in progress holds an exclusive ``flock`` on its scratch file (see
  :meth:`aiweb.datasets.service.DatasetService.stage`): a file whose lock can be taken
  has no live owner; files are also left alone while younger than ``grace_s``;
- a pending dataset directory whose row exists is moved into place at once (rolled
  forward, :func:`aiweb.datasets.service.publish`; the readers of a dataset do the same
  when they find its file missing, and a move racing another is harmless); one with no
  row goes only when nothing in it changed for ``grace_s`` (an upload stores its file,
  then commits its row, within seconds);
- a dataset directory goes only when no row names it and nothing in it changed for
  ``grace_s``;
- a ``.tmp-*`` artifact goes only when unchanged for ``grace_s``;
- a job's scratch directory goes only when its job finished for good (``succeeded``,
  ``failed``, ``cancelled``) or no longer exists (and it is older than ``grace_s``):
  ``pending`` and ``running`` jobs keep theirs;
- a ``pending`` model version is marked ``failed`` and its files removed only when it was
  created more than ``grace_s`` ago (writing an artifact takes seconds); the mark is a
  conditional update (``WHERE status = 'pending'``), so a writer that finished meanwhile
  wins, and a writer that finishes later is refused
  (:meth:`aiweb.registry.sql_store.SqlRegistryStore.finish_version`). Its version number
  is never given again, as for a deleted version.

``aiweb serve`` sweeps in its lifespan before serving and an ``aiweb worker`` when it
starts; the scheduler tick sweeps every ``retention.interval_s``. Pending datasets are
rolled forward and pending versions failed on every artifact store; everything else is
removed from a local artifact store only (an object store's stray
``datasets/.pending-<id>/`` and ``datasets/<id>/`` prefixes are left to its lifecycle
rules).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import Settings
from aiweb.datasets.service import PENDING_PREFIX, publish
from aiweb.db.orm import SqlDataset, SqlJob, SqlModelVersion, SqlRegisteredModel
from aiweb.registry.artifacts import ArtifactStore, FsspecArtifactStore, LocalArtifactStore

try:  # POSIX; elsewhere the age alone tells litter from a live upload
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("aiweb.jobs")

#: prefix of an upload's scratch copy in ``<home>``
UPLOAD_PREFIX = ".upload-"
#: prefix of an atomic write's temporary file in a local artifact store
ARTIFACT_TEMP_PREFIX = ".tmp-"
#: what is younger than this (seconds since its last change) is never litter
GRACE_S = 600.0

_FINISHED = ("succeeded", "failed", "cancelled")


def _in_use(path: Path) -> bool:
    """Whether a live process holds an exclusive ``flock`` on ``path`` (an upload holds
    one on its scratch copy while it runs)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone or unreadable: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def _age_s(path: Path, now: float) -> float:
    """Seconds since ``path`` (or, for a directory, anything in it) last changed."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    with contextlib.suppress(OSError):
                        newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    except OSError:
        return 0.0
    return now - newest


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    except OSError:
        log.warning("could not remove litter %s", path, exc_info=True)
        return False
    return True


def _children(directory: Path) -> Iterator[Path]:
    try:
        yield from directory.iterdir()
    except (FileNotFoundError, NotADirectoryError):
        return


def sweep_uploads(home: Path, *, grace_s: float = GRACE_S, now: float | None = None) -> int:
    """Remove upload scratch copies (``<home>/.upload-*``) no live upload holds."""
    now = time.time() if now is None else now
    removed = 0
    for path in _children(home):
        if not path.name.startswith(UPLOAD_PREFIX) or not path.is_file():
            continue
        if _age_s(path, now) < grace_s or _in_use(path):
            continue
        removed += _remove(path)
    return removed


def sweep_datasets(
    sessions: sessionmaker[Session],
    artifacts: ArtifactStore,
    *,
    grace_s: float = GRACE_S,
    now: float | None = None,
) -> int:
    """Remove ``datasets/<id>/`` directories of a local artifact store that no dataset
    row names (a kill between storing the file and committing the row)."""
    if not isinstance(artifacts, LocalArtifactStore):
        return 0
    now = time.time() if now is None else now
    candidates = [
        path
        for path in _children(artifacts.root / "datasets")
        if path.is_dir()
        and not path.is_symlink()
        and not path.name.startswith(PENDING_PREFIX)  # see sweep_pending_datasets
        and _age_s(path, now) >= grace_s
    ]
    if not candidates:
        return 0
    with sessions() as s:
        known = set(
            s.scalars(
                select(SqlDataset.id).where(SqlDataset.id.in_([p.name for p in candidates]))
            ).all()
        )
    return sum(_remove(path) for path in candidates if path.name not in known)


def _pending_ids(artifacts: ArtifactStore) -> list[str]:
    """The ids of the pending dataset directories, ``datasets/.pending-<id>/``."""
    if isinstance(artifacts, LocalArtifactStore):
        names = [
            p.name
            for p in _children(artifacts.root / "datasets")
            if p.is_dir() and not p.is_symlink()
        ]
    elif isinstance(artifacts, FsspecArtifactStore):
        try:
            listed = artifacts.fs.ls(artifacts.key("datasets"), detail=False, refresh=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = [str(p).rstrip("/").rpartition("/")[2] for p in listed]
    else:
        return []
    return [n[len(PENDING_PREFIX) :] for n in names if n.startswith(PENDING_PREFIX)]


def sweep_pending_datasets(
    sessions: sessionmaker[Session],
    artifacts: ArtifactStore,
    *,
    grace_s: float = GRACE_S,
    now: float | None = None,
) -> tuple[int, int]:
    """Finish or undo the uploads a kill interrupted: move ``datasets/.pending-<id>/``
    into place when the row of ``<id>`` exists (any store); remove it when no row does
    and it is older than ``grace_s`` (a local store only).

    Returns:
        ``(rolled forward, removed)``: how many pending directories.
    """
    ids = _pending_ids(artifacts)
    if not ids:
        return 0, 0
    now = time.time() if now is None else now
    with sessions() as s:
        known = set(s.scalars(select(SqlDataset.id).where(SqlDataset.id.in_(ids))).all())

    def roll_forward(dataset_id: str) -> int:
        try:
            return int(publish(artifacts, dataset_id))
        except Exception:
            log.warning("could not move pending dataset %s into place", dataset_id, exc_info=True)
            return 0

    rolled = removed = 0
    for dataset_id in ids:
        if dataset_id in known:
            rolled += roll_forward(dataset_id)
            continue
        if isinstance(artifacts, LocalArtifactStore):
            path = artifacts.root / "datasets" / f"{PENDING_PREFIX}{dataset_id}"
            if _age_s(path, now) < grace_s:
                continue
            # the row may have been committed since the query: check again before removing
            with sessions() as s:
                committed = s.get(SqlDataset, dataset_id) is not None
            if committed:
                rolled += roll_forward(dataset_id)
            else:
                removed += _remove(path)
    return rolled, removed


def sweep_artifact_temps(
    artifacts: ArtifactStore, *, grace_s: float = GRACE_S, now: float | None = None
) -> int:
    """Remove half-written artifacts (``.tmp-*`` files of atomic writes) of a local store."""
    if not isinstance(artifacts, LocalArtifactStore):
        return 0
    now = time.time() if now is None else now
    removed = 0
    for root, _dirs, files in os.walk(artifacts.root):
        for name in files:
            path = Path(root) / name
            if name.startswith(ARTIFACT_TEMP_PREFIX) and _age_s(path, now) >= grace_s:
                removed += _remove(path)
    return removed


def sweep_job_scratch(
    sessions: sessionmaker[Session],
    home: Path,
    *,
    grace_s: float = GRACE_S,
    now: float | None = None,
) -> int:
    """Remove ``<home>/tmp/jobs/<id>/`` of jobs finished for good, or gone."""
    now = time.time() if now is None else now
    candidates = [p for p in _children(home / "tmp" / "jobs") if p.is_dir()]
    if not candidates:
        return 0
    with sessions() as s:
        rows = s.execute(
            select(SqlJob.id, SqlJob.status).where(SqlJob.id.in_([p.name for p in candidates]))
        )
        status: dict[str, str] = {job_id: state for job_id, state in rows}  # noqa: C416
    removed = 0
    for path in candidates:
        state = status.get(path.name)
        if state in _FINISHED or (state is None and _age_s(path, now) >= grace_s):
            removed += _remove(path)
    return removed


def sweep_pending_versions(
    sessions: sessionmaker[Session],
    artifacts: ArtifactStore,
    *,
    grace_s: float = GRACE_S,
    now: float | None = None,
) -> int:
    """Mark ``failed`` the model versions left ``pending`` for over ``grace_s`` seconds
    (their writer died between adding the row and marking it ``ready``) and remove the
    files written for them, ``models/<name>/<version>/``; any artifact store.

    Returns:
        How many versions were marked ``failed``.
    """
    now = time.time() if now is None else now
    cutoff = datetime.fromtimestamp(now, UTC) - timedelta(seconds=grace_s)
    with sessions() as s:
        stuck = s.execute(
            select(SqlModelVersion.id, SqlRegisteredModel.name, SqlModelVersion.version)
            .join(SqlRegisteredModel, SqlRegisteredModel.id == SqlModelVersion.model_id)
            .where(SqlModelVersion.status == "pending", SqlModelVersion.created_at < cutoff)
        ).all()
    failed = 0
    for row_id, name, version in stuck:
        with sessions.begin() as s:
            result = s.execute(
                update(SqlModelVersion)
                .where(SqlModelVersion.id == row_id, SqlModelVersion.status == "pending")
                .values(status="failed")
                .execution_options(synchronize_session=False)
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue  # its writer finished meanwhile
        failed += 1
        log.warning("model %s version %s was left pending by a dead writer: failed", name, version)
        try:
            artifacts.delete_tree(f"models/{name}/{version}")
        except Exception:
            log.warning("could not remove the files of %s version %s", name, version, exc_info=True)
    return failed


def sweep(
    settings: Settings,
    sessions: sessionmaker[Session],
    artifacts: ArtifactStore,
    *,
    grace_s: float = GRACE_S,
    now: float | None = None,
) -> dict[str, int]:
    """Remove every kind of crash litter (see the module docstring); errors are logged.

    Args:
        now: the time to age files against (``time.time()`` when ``None``).

    Returns:
        ``{"uploads", "pending_datasets", "datasets", "artifact_temps", "job_scratch"}``:
        what was removed, ``"pending_versions"``: how many versions were marked
        ``failed``, and ``"rolled_forward"``: how many pending datasets were moved
        into place.
    """
    counts = dict.fromkeys(
        (
            "uploads",
            "rolled_forward",
            "pending_datasets",
            "datasets",
            "artifact_temps",
            "job_scratch",
            "pending_versions",
        ),
        0,
    )

    def pending() -> int:
        counts["rolled_forward"], removed = sweep_pending_datasets(
            sessions, artifacts, grace_s=grace_s, now=now
        )
        return removed

    steps: dict[str, Callable[[], int]] = {
        "uploads": lambda: sweep_uploads(settings.home, grace_s=grace_s, now=now),
        "pending_datasets": pending,
        "datasets": lambda: sweep_datasets(sessions, artifacts, grace_s=grace_s, now=now),
        "artifact_temps": lambda: sweep_artifact_temps(artifacts, grace_s=grace_s, now=now),
        "job_scratch": lambda: sweep_job_scratch(sessions, settings.home, grace_s=grace_s, now=now),
        "pending_versions": lambda: sweep_pending_versions(
            sessions, artifacts, grace_s=grace_s, now=now
        ),
    }
    for kind, step in steps.items():
        try:
            counts[kind] = step()
        except Exception:
            log.warning("sweeping crash litter (%s) failed", kind, exc_info=True)
    if any(counts.values()):
        log.info("swept crash litter: %s", counts)
    return counts
