"""Uploaded data files (``POST /v1/datasets``): checked, described and kept in the
artifact store under ``datasets/<id>/data.<csv|jsonl|conll>`` (a JSONL spans file:
``data.jsonl``).

An upload is a two-phase write:

1. :meth:`DatasetService.stage` copies the body to a scratch file ``<home>/.upload-*``
   (locked while in use), checks it and stores it under its pending name,
   ``datasets/.pending-<id>/data.<suffix>`` (an atomic write in a local store);
2. :meth:`DatasetService.commit` commits the dataset row, which names the final URI
   (a failed commit removes the pending file);
3. :func:`publish` moves ``datasets/.pending-<id>/`` to ``datasets/<id>/`` (one rename
   in a local store; a copy and a delete on S3).

So a stored file without a row is a pending one (or a delete's, killed halfway). What a
killed process leaves at each step is handled by the crash-litter sweep
(:mod:`aiweb.jobs.litter`): a pending directory whose row exists is moved into place
(rolled forward), one without a row is removed once it is older than the sweep's grace
period.

Readers tolerate the window between 2 and 3: :meth:`DatasetService.open` and
:meth:`DatasetService.local_copy` that find nothing at the row's URI roll the pending
directory forward themselves (:func:`publish`) and read from the final URI. Whoever reads
``Dataset.artifact_uri`` straight from the artifact store should call :func:`publish`
first when the file is missing.
"""

from __future__ import annotations

import contextlib
import logging
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

#: prefix of a dataset directory whose row is not committed (or not yet moved into place)
PENDING_PREFIX = ".pending-"

log = logging.getLogger(__name__)

#: job states in which a job may still read its datasets
_ACTIVE_JOBS = ("pending", "running")


#: an uploaded file's name in the store (``data<suffix>``), by format
STORED_SUFFIX = {"csv": ".csv", "jsonl": ".jsonl", "conll": ".conll", "spans": ".jsonl"}


@dataclass(frozen=True)
class Dataset:
    """An uploaded file.

    Attributes:
        id: UUID string.
        name: the uploaded file name (sanitised).
        format: ``csv``, ``jsonl``, ``conll`` or ``spans`` (JSONL span annotations; see
            :mod:`aiweb.datasets.tables`).
        rows: data rows (header not counted; CoNLL: tokens; spans: lines).
        columns: column names (CSV header; JSONL keys in first-seen order; CoNLL:
            ``sentence``, ``token``, ``tag``; spans: ``text``, ``spans``).
        sha256: hex digest of the file's bytes.
        size_bytes: file size.
        artifact_uri: where the file is in the artifact store, ``datasets/<id>/data.<suffix>``
            (right after an upload's commit it may still be under its pending name;
            see the module docs).
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
        return STORED_SUFFIX.get(self.format, ".jsonl")


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


def dataset_dir(dataset_id: str) -> str:
    """The URI of a dataset's directory in the artifact store: ``datasets/<id>``."""
    return f"datasets/{dataset_id}"


def pending_dir(dataset_id: str) -> str:
    """The URI a dataset is stored under until its row is committed and it is moved into
    place (:func:`publish`): ``datasets/.pending-<id>``."""
    return f"datasets/{PENDING_PREFIX}{dataset_id}"


def publish(artifacts: ArtifactStore, dataset_id: str) -> bool:
    """Move ``datasets/.pending-<id>/`` into place, ``datasets/<id>/`` (phase 3 of an
    upload; the crash-litter sweep and the readers call it too).

    Call it only for a dataset whose row is committed. Safe to run in several processes
    at once, and again after an interrupted run.

    Returns:
        Whether a pending directory was found (and moved); ``False`` when there is none,
        e.g. it was moved already.

    Raises:
        OSError: the store failed (the pending directory stays for the next try).
    """
    try:
        artifacts.move(pending_dir(dataset_id), dataset_dir(dataset_id))
    except FileNotFoundError:
        return False  # nothing pending: published already (maybe by another process)
    return True


@dataclass(frozen=True)
class StagedUpload:
    """An upload checked and stored under its pending name, its row not committed yet
    (see :meth:`DatasetService.stage`).

    Attributes:
        id: the dataset's id to be.
        name, format, rows, columns, sha256, size_bytes: as in :class:`Dataset`.
        pending_uri: where the file is now, ``datasets/.pending-<id>/data.<suffix>``.
        artifact_uri: where it goes, ``datasets/<id>/data.<suffix>``.
    """

    id: str
    name: str
    format: str
    rows: int
    columns: list[str]
    sha256: str
    size_bytes: int
    pending_uri: str
    artifact_uri: str


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

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The sessions on the aiweb database this service reads and writes."""
        return self._sessions

    def upload(
        self,
        fileobj: IO[bytes],
        filename: str | None,
        content_type: str | None = None,
        *,
        actor: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> Dataset:
        """Check and store an uploaded file: :meth:`stage`, :meth:`commit`, then move
        the file into place (:func:`publish`; see the module docs).

        The whole file is validated before anything is stored: a rejected upload leaves
        nothing behind. When the last move fails (the row is committed by then), the
        failure is logged and the dataset returned: readers and the crash-litter sweep
        finish the move.

        Args:
            fileobj: the file's bytes (read once, streamed).
            filename: the client's file name; its suffix (``.csv``, ``.jsonl``,
                ``.conll`` …) or else ``content_type`` picks the format; a JSONL file whose
                first line holds a ``"spans"`` array is stored as a spans file.
            progress: called with the bytes read so far.

        Raises:
            DataFormatError: unknown format, not UTF-8, malformed rows, no rows, more
                than ``limits.max_upload_rows`` rows (422; the message names the line).
        """
        staged = self.stage(fileobj, filename, content_type, progress=progress)
        dataset = self.commit(staged, actor=actor)
        try:
            publish(self.artifacts, dataset.id)
        except Exception:
            log.warning(
                "dataset %s is stored but could not be moved into place yet; "
                "its readers and the crash-litter sweep will move it",
                dataset.id,
                exc_info=True,
            )
        return dataset

    def stage(
        self,
        fileobj: IO[bytes],
        filename: str | None,
        content_type: str | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> StagedUpload:
        """Phase 1 of :meth:`upload`: copy, check and store the file under its pending
        name ``datasets/.pending-<id>/``; no row is written.

        Raises:
            DataFormatError: as :meth:`upload`; nothing is stored then.
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
            filename_in_store = f"data{STORED_SUFFIX[info.format]}"
            pending_uri = f"{pending_dir(dataset_id)}/{filename_in_store}"
            self.artifacts.put_file(pending_uri, Path(tmp.name))
        return StagedUpload(
            id=dataset_id,
            name=name,
            format=info.format,
            rows=info.rows,
            columns=info.columns,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            pending_uri=pending_uri,
            artifact_uri=f"{dataset_dir(dataset_id)}/{filename_in_store}",
        )

    def commit(self, staged: StagedUpload, *, actor: str = "") -> Dataset:
        """Phase 2 of :meth:`upload`: commit the row of a staged upload (its
        ``artifact_uri`` is the final URI). A failed commit removes the pending file.

        Returns:
            The dataset; its file is still under the pending name until :func:`publish`.
        """
        row = SqlDataset(
            id=staged.id,
            name=staged.name,
            format=staged.format,
            rows=staged.rows,
            columns=staged.columns,
            sha256=staged.sha256,
            size_bytes=staged.size_bytes,
            artifact_uri=staged.artifact_uri,
            created_by=actor,
        )
        try:
            with transaction(self._sessions) as s:
                s.add(row)
        except BaseException:
            # no row: the pending file is litter (a kill here leaves it to the sweep)
            with contextlib.suppress(Exception):
                self.artifacts.delete_tree(pending_dir(staged.id))
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
        self.artifacts.delete_tree(pending_dir(dataset_id))  # never moved into place
        return gone

    def _published(self, dataset: Dataset) -> None:
        """Roll ``dataset``'s pending directory forward (a reader met the window between
        its row's commit and its move, or a process killed there); see :func:`publish`."""
        if publish(self.artifacts, dataset.id):
            log.info("moved the pending file of dataset %s into place", dataset.id)

    def open(self, dataset: Dataset) -> BinaryIO:
        """The stored file, for streaming (close it, or use it in ``with``).

        A file still under its pending name is moved into place first (module docs).

        Raises:
            FileNotFoundError: the file is in neither place.
        """
        try:
            return self.artifacts.open_read(dataset.artifact_uri)
        except FileNotFoundError:
            self._published(dataset)
            return self.artifacts.open_read(dataset.artifact_uri)

    def local_copy(self, dataset: Dataset, directory: Path) -> Path:
        """Copy the stored file into ``directory`` (named by its format's suffix).

        A file still under its pending name is moved into place first (module docs).

        Raises:
            FileNotFoundError: the file is in neither place.
        """
        target = directory / f"{dataset.id}{dataset.suffix}"
        try:
            self.artifacts.get_file(dataset.artifact_uri, target)
        except FileNotFoundError:
            self._published(dataset)
            self.artifacts.get_file(dataset.artifact_uri, target)
        return target
