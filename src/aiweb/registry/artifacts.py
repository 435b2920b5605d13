"""The artifact store: model files addressed by relative URIs, on a local directory or on
any fsspec filesystem (``s3://bucket/prefix`` through s3fs, ``gs://…``, ``memory://…``).

A URI is a relative POSIX path such as ``models/sentiment/3/model.skops``. Every URI is
checked by :func:`check_artifact_uri` before it touches storage: absolute paths, ``..``,
empty segments, backslashes and NUL bytes are refused with :class:`UnsafeArtifactPath`.
The local store also refuses paths that resolve (through symlinks) outside its root; the
fsspec store keeps every key under its URL's prefix.

Every store raises :class:`FileNotFoundError` when nothing (or only a "directory") is
stored at a URI. :func:`read_verified` reads an artifact and checks it against the sha256
the registry recorded (:class:`~aiweb.errors.CorruptArtifactError` otherwise).

:meth:`ArtifactStore.move` renames a file or a "directory": the last phase of a
two-phase write (a dataset is stored under a pending name, its row is committed, then it
is moved into place; see :mod:`aiweb.datasets.service`).

Choose the store with :func:`open_artifact_store` (``AIWEB_ARTIFACTS_URL`` /
``AIWEB_ARTIFACTS_OPTIONS``; a local directory under ``AIWEB_HOME`` by default).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from aiweb.errors import CorruptArtifactError, UnsafeArtifactPath

if TYPE_CHECKING:
    from aiweb.config import Settings

#: Bytes read from a source file per step when streaming (put_file, get_file).
CHUNK_BYTES = 1024 * 1024


class ArtifactStore(Protocol):
    """Where artifact bytes live. Every method takes a relative URI (see the module docs).

    Every method raises :class:`UnsafeArtifactPath` for a URI that is not a safe relative
    path, and the reading ones raise :class:`FileNotFoundError` when nothing is stored there.
    """

    @property
    def description(self) -> str:
        """Where the store is, for logs: a directory or a URL such as ``s3://bucket/prefix``.

        Never contains credentials.
        """
        ...

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Store ``data`` at ``uri``, replacing what was there; returns its sha256 hex digest."""
        ...

    def read_bytes(self, uri: str) -> bytes:
        """The whole content stored at ``uri``."""
        ...

    def exists(self, uri: str) -> bool:
        """Whether a file is stored at ``uri`` (a "directory" is not one)."""
        ...

    def open_read(self, uri: str) -> BinaryIO:
        """A binary file object reading ``uri`` in chunks; use it as a context manager."""
        ...

    def put_file(self, uri: str, local_path: Path) -> str:
        """Upload the local file ``local_path`` to ``uri`` in chunks; returns its sha256 hex.

        The artifact appears whole or not at all.
        """
        ...

    def get_file(self, uri: str, local_path: Path) -> None:
        """Download ``uri`` to the local file ``local_path`` in chunks (replacing it)."""
        ...

    def delete(self, uri: str) -> None:
        """Remove what is stored at ``uri``; nothing stored there is not an error."""
        ...

    def delete_tree(self, uri: str) -> int:
        """Remove every file stored under the "directory" ``uri`` (``models/a/3`` removes
        ``models/a/3/model.skops`` and its siblings, never ``models/a/30/…``); nothing
        stored there is not an error. Returns how many files were removed."""
        ...

    def size(self, uri: str) -> int:
        """The size of what is stored at ``uri``, in bytes."""
        ...

    def move(self, src_uri: str, dst_uri: str) -> int:
        """Move the file at ``src_uri``, or every file under the "directory" ``src_uri``
        (keeping their paths below it), to ``dst_uri``, replacing files of the same name
        there. Running it again after it was interrupted finishes the move; files another
        process moved meanwhile are not an error. Returns how many files were moved.

        Raises:
            FileNotFoundError: nothing is stored at or under ``src_uri``.
            ValueError: one of the URIs is the other or lies under it.
        """
        ...


def check_artifact_uri(uri: str) -> PurePosixPath:
    """Check that ``uri`` is a safe relative POSIX path and return it normalised.

    Single-dot segments are dropped (``models/./x`` is ``models/x``), as a local
    filesystem would do, so that every store maps a URI to the same key.

    Returns:
        ``uri`` as a relative :class:`~pathlib.PurePosixPath` with at least one segment.

    Raises:
        UnsafeArtifactPath: ``uri`` is empty, absolute, names the store root (``.``),
            has an empty (``a//b``, trailing ``/``) or ``..`` segment, or contains a
            backslash or a NUL byte.
    """
    pure = PurePosixPath(uri)
    if (
        not uri
        or "\\" in uri
        or "\x00" in uri
        or pure.is_absolute()
        or any(part in ("..", "") for part in uri.split("/"))
        or not pure.parts
    ):
        raise UnsafeArtifactPath(f"artifact path {uri[:200]!r} is not a relative path")
    return pure


def _check_move(src_uri: str, dst_uri: str) -> None:
    """Refuse a move of a URI onto itself or into (out of) its own subtree.

    Raises:
        UnsafeArtifactPath: see :func:`check_artifact_uri`.
        ValueError: one URI is the other or lies under it.
    """
    src, dst = check_artifact_uri(src_uri), check_artifact_uri(dst_uri)
    if src == dst or src in dst.parents or dst in src.parents:
        raise ValueError(f"cannot move artifact {src_uri[:200]!r} to {dst_uri[:200]!r}")


def _not_found(uri: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no artifact stored at this URI", uri)


def _sibling_temp(target: Path) -> tuple[int, Path]:
    """A new temporary file next to ``target`` (same filesystem, so os.replace is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    return fd, Path(tmp)


@contextlib.contextmanager
def _atomic_local_file(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` when the block ends without error.

    The data is fsynced before the rename; on error the temporary file is removed and
    ``target`` is left as it was.
    """
    fd, tmp = _sibling_temp(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    """Copy ``src`` to ``dst`` in :data:`CHUNK_BYTES` steps; returns the sha256 hex."""
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK_BYTES):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


class LocalArtifactStore:
    """Artifacts in a local directory (the embedded default).

    Writes are atomic: a temporary file in the target's directory, fsynced, then renamed.

    Args:
        root: the directory; created when missing.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    @property
    def description(self) -> str:
        """The absolute root directory."""
        return str(self.root)

    def path(self, uri: str) -> Path:
        """The absolute path of ``uri`` inside the store.

        Raises:
            UnsafeArtifactPath: ``uri`` is refused by :func:`check_artifact_uri`, or
                resolves (through symlinks) outside the root.
        """
        pure = check_artifact_uri(uri)
        candidate = (self.root / pure).resolve()
        if not candidate.is_relative_to(self.root) or candidate == self.root:
            raise UnsafeArtifactPath(f"artifact path {uri[:200]!r} leaves the artifact store")
        return candidate

    def _file(self, uri: str) -> Path:
        """The path of the regular file stored at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: no file there (a directory does not count).
        """
        target = self.path(uri)
        if not target.is_file():
            raise _not_found(uri)
        return target

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Write ``data`` at ``uri`` atomically (temp file + rename).

        Returns:
            The sha256 hex digest of ``data`` (64 characters).

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
        """
        with _atomic_local_file(self.path(uri)) as fh:
            fh.write(data)
        return hashlib.sha256(data).hexdigest()

    def read_bytes(self, uri: str) -> bytes:
        """The bytes stored at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored there.
        """
        return self._file(uri).read_bytes()

    def exists(self, uri: str) -> bool:
        """Whether a file is stored at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
        """
        return self.path(uri).is_file()

    def open_read(self, uri: str) -> BinaryIO:
        """The file at ``uri``, opened for binary reading (buffered, not read in whole).

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored there.
        """
        return self._file(uri).open("rb")

    def put_file(self, uri: str, local_path: Path) -> str:
        """Copy the local file ``local_path`` to ``uri`` in chunks, atomically.

        Returns:
            The sha256 hex digest of the content, computed while copying.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: ``local_path`` does not exist.
        """
        target = self.path(uri)
        with local_path.open("rb") as src, _atomic_local_file(target) as dst:
            return _copy_hashing(src, dst)

    def get_file(self, uri: str, local_path: Path) -> None:
        """Copy ``uri`` to the local file ``local_path`` in chunks, atomically.

        ``local_path``'s directory is created when missing; an existing file is replaced.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored at ``uri``.
        """
        with self.open_read(uri) as src, _atomic_local_file(local_path) as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)

    def delete(self, uri: str) -> None:
        """Remove the file at ``uri``; no file there (or a directory) is not an error.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
        """
        target = self.path(uri)
        if not target.is_dir():
            target.unlink(missing_ok=True)

    def delete_tree(self, uri: str) -> int:
        """Remove the directory ``uri`` and every file in it; no directory there is not an
        error. Empty parent directories are left in place.

        Returns:
            How many files were removed.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
        """
        target = self.path(uri)
        if not target.is_dir():
            return 0
        removed = sum(1 for p in target.rglob("*") if p.is_file() or p.is_symlink())
        shutil.rmtree(target)
        return removed

    def size(self, uri: str) -> int:
        """The size of the file at ``uri``, in bytes.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored there.
        """
        return self._file(uri).stat().st_size

    def move(self, src_uri: str, dst_uri: str) -> int:
        """Rename the file or directory ``src_uri`` to ``dst_uri`` (``os.replace``:
        atomic, on one filesystem). A directory whose target does not exist (or is
        empty) moves in one rename; into an existing directory its files are renamed one
        by one, replacing files of the same name, and the emptied source is removed.

        Returns:
            How many files were moved.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored at ``src_uri``.
            ValueError: one URI is the other or lies under it.
            IsADirectoryError, NotADirectoryError: a file would replace a directory, or
                the other way round.
        """
        _check_move(src_uri, dst_uri)
        src, dst = self.path(src_uri), self.path(dst_uri)
        if src.is_dir() and not src.is_symlink():
            files = [p for p in src.rglob("*") if not p.is_dir() or p.is_symlink()]
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(src, dst)  # fails on an existing non-empty directory
                return len(files)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dst.is_dir():
                    raise
            moved = 0
            for path in files:
                target = dst / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):  # moved by another process
                    os.replace(path, target)
                    moved += 1
            shutil.rmtree(src, ignore_errors=True)
            return moved
        if not src.is_file():
            raise _not_found(src_uri)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return 1


class FsspecArtifactStore:
    """Artifacts on any fsspec filesystem, as keys under one URL prefix.

    ``uri`` ``models/a/1/model.skops`` in a store on ``s3://bucket/prefix`` is the object
    ``s3://bucket/prefix/models/a/1/model.skops``. On S3 every write is atomic (one PUT or
    one completed multipart upload; an upload that fails is aborted). Streaming reads and
    writes hold at most one filesystem block in memory (s3fs: the ``default_block_size``
    storage option, 50 MiB by default; parts of a multipart upload are that big).

    Args:
        url: an fsspec URL such as ``s3://bucket/prefix`` or ``memory://artifacts``.
        storage_options: keyword arguments of the filesystem, e.g. for s3fs
            ``{"endpoint_url": "http://127.0.0.1:9000", "key": ..., "secret": ...}``.

    Raises:
        ValueError: ``url`` names an unknown protocol, or no bucket/directory
            (``s3://``).
        ImportError: the filesystem's package (e.g. s3fs) is not installed.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        from fsspec.core import url_to_fs  # not imported by the local store's users

        fs, root = url_to_fs(url, **(storage_options or {}))
        self.fs: Any = fs
        self.root: str = str(root).rstrip("/")
        if not self.root:
            raise ValueError("the artifact store URL names no bucket or directory")
        self._description = str(fs.unstrip_protocol(self.root))

    @property
    def description(self) -> str:
        """The store's URL, e.g. ``s3://bucket/prefix`` (no credentials)."""
        return self._description

    def key(self, uri: str) -> str:
        """The filesystem path of ``uri``: ``<prefix>/<uri>``, without the protocol.

        Raises:
            UnsafeArtifactPath: ``uri`` is refused by :func:`check_artifact_uri`.
        """
        pure = check_artifact_uri(uri)
        return f"{self.root}/{pure}" if self.root else str(pure)

    def _info(self, uri: str) -> dict[str, Any]:
        """The filesystem's info of the file at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: no file there (a "directory" prefix does not count).
        """
        path = self.key(uri)
        try:
            info = cast(dict[str, Any], self.fs.info(path))
        except FileNotFoundError:
            raise _not_found(uri) from None
        if info.get("type") != "file":
            raise _not_found(uri)
        return info

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Store ``data`` at ``uri`` in one write, replacing what was there.

        Returns:
            The sha256 hex digest of ``data`` (64 characters).

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
        """
        self.fs.pipe_file(self.key(uri), data)
        return hashlib.sha256(data).hexdigest()

    def read_bytes(self, uri: str) -> bytes:
        """The bytes stored at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: nothing is stored there.
        """
        path = self.key(uri)
        try:
            return bytes(self.fs.cat_file(path))
        except (FileNotFoundError, IsADirectoryError):
            raise _not_found(uri) from None

    def exists(self, uri: str) -> bool:
        """Whether a file is stored at ``uri`` (a "directory" prefix is not one).

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
        """
        return bool(self.fs.isfile(self.key(uri)))

    def open_read(self, uri: str) -> BinaryIO:
        """The object at ``uri``, opened for binary reading: fetched block by block.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: nothing is stored there.
        """
        self._info(uri)
        try:
            return cast(BinaryIO, self.fs.open(self.key(uri), "rb"))
        except FileNotFoundError:  # deleted since _info
            raise _not_found(uri) from None

    def put_file(self, uri: str, local_path: Path) -> str:
        """Upload the local file ``local_path`` to ``uri`` in chunks.

        The object appears only once the whole file is uploaded; when reading or
        uploading fails, the upload is discarded (a multipart upload is aborted).

        Returns:
            The sha256 hex digest of the content, computed while uploading.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: ``local_path`` does not exist.
        """
        path = self.key(uri)
        with local_path.open("rb") as src:
            dst = self.fs.open(path, "wb")
            try:
                digest = _copy_hashing(src, dst)
            except BaseException:
                # fsspec files commit on close(), and close() runs in __exit__ and __del__:
                # throw the partial upload away and mark the file closed so it never lands.
                with contextlib.suppress(Exception):
                    dst.discard()
                with contextlib.suppress(Exception):
                    dst.closed = True
                raise
            dst.close()
        return digest

    def get_file(self, uri: str, local_path: Path) -> None:
        """Download ``uri`` to the local file ``local_path``, atomically.

        ``local_path``'s directory is created when missing; an existing file is replaced.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: nothing is stored at ``uri``.
        """
        path = self.key(uri)
        self._info(uri)
        fd, tmp = _sibling_temp(local_path)
        os.close(fd)
        try:
            try:
                self.fs.get_file(path, str(tmp))
            except FileNotFoundError:  # deleted since _info
                raise _not_found(uri) from None
            os.replace(tmp, local_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, uri: str) -> None:
        """Remove the object at ``uri``; nothing there is not an error.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
        """
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.key(uri))

    def delete_tree(self, uri: str) -> int:
        """Remove every object whose key starts with ``<uri>/`` (batched deletes on S3);
        nothing there is not an error.

        Returns:
            How many objects were removed.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
        """
        prefix = self.key(uri)
        try:
            found = self.fs.find(prefix)
        except FileNotFoundError:
            return 0
        files = [f for f in (str(p) for p in found) if f.startswith(prefix + "/")]
        if files:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(files)
        return len(files)

    def size(self, uri: str) -> int:
        """The size of the object at ``uri``, in bytes.

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: nothing is stored there.
        """
        return int(self._info(uri)["size"])

    def move(self, src_uri: str, dst_uri: str) -> int:
        """Copy each object at or under ``src_uri`` to its place under ``dst_uri``, then
        delete it (S3 has no rename: a server-side copy, then a delete, per object).

        Each object is copied before its source is deleted, so an interrupted move leaves
        every file at one of its two places at least, and running the move again
        finishes it. Readers may see a "directory" half moved meanwhile.

        Returns:
            How many objects were moved (by this call).

        Raises:
            UnsafeArtifactPath: see :meth:`key`.
            FileNotFoundError: nothing is stored at or under ``src_uri``.
            ValueError: one URI is the other or lies under it.
        """
        _check_move(src_uri, dst_uri)
        src, dst = self.key(src_uri), self.key(dst_uri)
        if self.fs.isfile(src):
            pairs = [(src, dst)]
        else:
            try:
                found = [str(p) for p in self.fs.find(src)]
            except FileNotFoundError:
                found = []
            pairs = [(f, dst + f[len(src) :]) for f in found if f.startswith(src + "/")]
            if not pairs:
                raise _not_found(src_uri)
        moved = 0
        for source, target in pairs:
            try:
                self.fs.cp_file(source, target)
            except FileNotFoundError:  # moved (or deleted) by another process meanwhile
                continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(source)
            moved += 1
        self.fs.invalidate_cache()
        return moved


def local_artifacts_root(url: str) -> Path | None:
    """The directory named by ``url`` when it is local, else ``None``.

    A plain path (``~`` expanded) and a ``file://`` or ``local://`` URL are local;
    anything else (``s3://…``, chained ``a::b`` URLs, ``memory://…``) is not.
    """
    if "::" in url:
        return None
    from fsspec.core import split_protocol
    from fsspec.implementations.local import LocalFileSystem

    protocol, _ = split_protocol(url)
    if protocol is None:
        return Path(url).expanduser()
    if protocol in ("file", "local"):
        return Path(LocalFileSystem._strip_protocol(url))
    return None


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store named by ``settings``.

    ``settings.artifacts_url`` when set: a local path or ``file://`` URL gives a
    :class:`LocalArtifactStore`, any other fsspec URL a :class:`FsspecArtifactStore`
    with ``settings.artifacts_options``. Otherwise a :class:`LocalArtifactStore` on
    ``settings.resolved_artifacts_dir``.

    Raises:
        ValueError: ``artifacts_url`` names an unknown protocol.
        ImportError: the filesystem's package (e.g. s3fs for ``s3://``) is not installed.
    """
    url = settings.artifacts_url
    if not url:
        return LocalArtifactStore(settings.resolved_artifacts_dir)
    local = local_artifacts_root(url)
    if local is not None:
        return LocalArtifactStore(local)
    return FsspecArtifactStore(url, settings.artifacts_options)


def read_verified(artifacts: ArtifactStore, uri: str, sha256: str | None, what: str) -> bytes:
    """The bytes at ``uri``, checked against ``sha256`` (when one was recorded).

    Args:
        artifacts: the store to read from.
        uri: the artifact's relative URI.
        sha256: the hex digest the registry recorded, or ``None`` to skip the check.
        what: names the file in errors, e.g. ``"artifact of sentiment:3"``.

    Raises:
        CorruptArtifactError: the file is missing, or its sha256 differs.
        UnsafeArtifactPath: ``uri`` is refused by :func:`check_artifact_uri`.
    """
    try:
        data = artifacts.read_bytes(uri)
    except FileNotFoundError:
        raise CorruptArtifactError(f"{what} ({uri}) is missing from the artifact store") from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256:
        raise CorruptArtifactError(
            f"{what} has sha256 {digest[:12]}…, the registry recorded {sha256[:12]}…; "
            "refusing to load it"
        )
    return data
