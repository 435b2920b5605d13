"""Uploaded data files (``POST /v1/datasets``): checked, described and kept in the
artifact store under ``datasets/<id>/data.<csv|jsonl>``.

An upload is copied to a scratch file ``<home>/.upload-*`` (locked while in use), checked,
stored (an atomic write in a local store), then its row is committed; a failed commit
removes the stored file. What a killed process leaves at each step is removed by the
crash-litter sweep (:mod:`aiweb.jobs.litter`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import Settings
from aiweb.datasets.tables import inspect_table, table_format
from aiweb.db.orm import SqlDataset, SqlJob, SqlSchedule
from aiweb.db.session import transaction
from aiweb.errors import ConflictError, DatasetNotFound

if TYPE_CHECKING:
    from aiweb.registry.artifacts import ArtifactStore

_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")

#: job states in which a job may still read its datasets
_ACTIVE_JOBS = ("pending", "running")


@dataclass(frozen=True)
class Dataset:
    """An uploaded file.

    Attributes:
        id: UUID string.
        name: the uploaded file name (sanitised).
        format: ``csv`` or ``jsonl``.
        rows: data rows (header not counted).
        columns: column names (CSV header; JSONL keys in first-seen order).
        sha256: hex digest of the file's bytes.
        size_bytes: file size.
        artifact_uri: where the file is in the artifact store.
    """

    id: str
    name: str
    format: str
    rows: int
    columns: list[str]
    sha256: str
    size_bytes: int
    artifact_uri: str
    created_by: str
    created_at: datetime

    @property
    def suffix(self) -> str:
        return ".csv" if self.format == "csv" else ".jsonl"


def _to_dataset(row: SqlDataset) -> Dataset:
    return Dataset(
        id=row.id,
        name=row.name,
        format=row.format,
        rows=row.rows,
        columns=list(row.columns),
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        artifact_uri=row.artifact_uri,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _uses(params: Any, dataset_id: str) -> bool:
    """Whether job parameters (or a training spec) name ``dataset_id`` in a
    ``*dataset_id`` field (``dataset_id``, ``eval_dataset_id`` …), at any depth."""
    if isinstance(params, dict):
        return any(
            (isinstance(key, str) and key.endswith("dataset_id") and value == dataset_id)
            or _uses(value, dataset_id)
            for key, value in params.items()
        )
    if isinstance(params, list):
        return any(_uses(item, dataset_id) for item in params)
    return False


def _hold(fileno: int) -> None:
    """Lock an upload's scratch copy exclusively (``flock``), so the crash-litter sweep
    (:mod:`aiweb.jobs.litter`) knows a live upload owns it; no-op where unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fileno, fcntl.LOCK_EX | fcntl.LOCK_NB)


def safe_name(filename: str | None) -> str:
    """The base name of an uploaded file, without path parts or odd characters."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_NAME.sub("_", base).strip(" .")[:200]
    return base or "upload"


class DatasetService:
    """Upload, describe and read back data files.

    Args:
        session_factory: sessions on the aiweb database.
        artifacts: where the files are kept.
        settings: upload bounds (``limits.max_upload_rows``) and the scratch directory.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], artifacts: ArtifactStore, settings: Settings
    ) -> None:
        self._sessions = session_factory
        self.artifacts = artifacts
        self.settings = settings

    def upload(
        self,
        fileobj: IO[bytes],
        filename: str | None,
        content_type: str | None = None,
        *,
        actor: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> Dataset:
        """Check and store an uploaded file.

        The whole file is validated before anything is stored: a rejected upload leaves
        nothing behind.

        Args:
            fileobj: the file's bytes (read once, streamed).
            filename: the client's file name; its suffix (``.csv``, ``.jsonl``) or else
                ``content_type`` picks the format.
            progress: called with the bytes read so far.

        Raises:
            DataFormatError: unknown format, not UTF-8, malformed rows, no rows, more
                than ``limits.max_upload_rows`` rows (422; the message names the line).
        """
        name = safe_name(filename)
        fmt = table_format(name, content_type)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.settings.home, prefix=".upload-") as tmp:
            # held while the upload runs: the crash-litter sweep removes only scratch
            # copies nobody holds (a killed process's lock is released with it)
            _hold(tmp.fileno())
            shutil.copyfileobj(fileobj, tmp, 1024 * 1024)
            tmp.flush()
            tmp.seek(0)
            info = inspect_table(
                tmp,  # type: ignore[arg-type]
                fmt,
                name=name,
                max_rows=self.settings.limits.max_upload_rows,
                progress=progress,
            )
            dataset_id = str(uuid.uuid4())
            uri = f"datasets/{dataset_id}/data{'.csv' if fmt == 'csv' else '.jsonl'}"
            self.artifacts.put_file(uri, Path(tmp.name))
        row = SqlDataset(
            id=dataset_id,
            name=name,
            format=info.format,
            rows=info.rows,
            columns=info.columns,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            artifact_uri=uri,
            created_by=actor,
        )
        try:
            with transaction(self._sessions) as s:
                s.add(row)
        except BaseException:
            # no row: the stored file is litter (a kill here leaves it to the sweep)
            self.artifacts.delete_tree(f"datasets/{dataset_id}")
            raise
        return _to_dataset(row)

    def get(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id``.

        Raises:
            DatasetNotFound: no such dataset (404).
        """
        with self._sessions() as s:
            row = s.get(SqlDataset, dataset_id)
            if row is None:
                raise DatasetNotFound(f"dataset {dataset_id[:64]!r} does not exist")
            return _to_dataset(row)

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[Dataset], int]:
        """Datasets, newest first, and how many there are in all."""
        with self._sessions() as s:
            rows = s.scalars(
                select(SqlDataset)
                .order_by(SqlDataset.created_at.desc(), SqlDataset.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = s.scalar(select(func.count()).select_from(SqlDataset)) or 0
            return [_to_dataset(r) for r in rows], int(total)

    def delete(self, dataset_id: str) -> Dataset:
        """Remove the dataset ``dataset_id``: its row, then its stored file.

        Refused while a pending or running job, or a retraining schedule, names it
        (``dataset_id``, ``eval_dataset_id``): the job would fail, the schedule would
        fire jobs that cannot start.

        Returns:
            The dataset as it was.

        Raises:
            DatasetNotFound: no such dataset (404).
            ConflictError: a job or schedule uses it; the message names them (409).
        """
        with transaction(self._sessions) as s:
            row = s.get(SqlDataset, dataset_id)
            if row is None:
                raise DatasetNotFound(f"dataset {dataset_id[:64]!r} does not exist")
            gone = _to_dataset(row)
            # Write first: the database's write lock (SQLite) is taken before the jobs
            # are read; a conflict below rolls the delete back.
            s.execute(delete(SqlDataset).where(SqlDataset.id == dataset_id))
            s.expunge(row)
            jobs = [
                job_id
                for job_id, params in s.execute(
                    select(SqlJob.id, SqlJob.params)
                    .where(SqlJob.status.in_(_ACTIVE_JOBS))
                    .order_by(SqlJob.created_at)
                )
                if _uses(params, dataset_id)
            ]
            schedules = [
                model
                for model, training in s.execute(
                    select(SqlSchedule.model, SqlSchedule.job).order_by(SqlSchedule.model)
                )
                if _uses(training, dataset_id)
            ]
            if jobs or schedules:
                users = [f"job {j}" for j in jobs[:5]] + [
                    f"the retraining schedule of {m!r}" for m in schedules[:5]
                ]
                more = len(jobs) + len(schedules) - len(users)
                raise ConflictError(
                    f"dataset {dataset_id} is in use by {', '.join(users)}"
                    + (f" and {more} more" if more > 0 else "")
                    + "; wait for the jobs to finish (or cancel them) and change or delete "
                    "the schedules, then delete it"
                )
        self.artifacts.delete(gone.artifact_uri)
        directory = gone.artifact_uri.rpartition("/")[0]
        if directory:
            self.artifacts.delete_tree(directory)
        return gone

    def open(self, dataset: Dataset) -> BinaryIO:
        """The stored file, for streaming (close it, or use it in ``with``)."""
        return self.artifacts.open_read(dataset.artifact_uri)

    def local_copy(self, dataset: Dataset, directory: Path) -> Path:
        """Copy the stored file into ``directory`` (named by its format's suffix)."""
        target = directory / f"{dataset.id}{dataset.suffix}"
        self.artifacts.get_file(dataset.artifact_uri, target)
        return target
