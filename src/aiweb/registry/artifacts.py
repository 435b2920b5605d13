"""The artifact store: model files under one root directory, addressed by relative URIs.

A URI is a relative POSIX path such as ``models/sentiment/3/model.skops``. Every path is
resolved inside the root and refused when it would leave it (``..``, absolute paths,
symlinks pointing outside).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath

from aiweb.errors import InvalidInputError


class UnsafeArtifactPath(InvalidInputError):
    slug = "unsafe-artifact-path"
    title = "Artifact path outside the store"


class LocalArtifactStore:
    """Artifacts in a local directory (the embedded default).

    Args:
        root: the directory; created when missing.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, uri: str) -> Path:
        """The absolute path of ``uri`` inside the store.

        Raises:
            UnsafeArtifactPath: ``uri`` is absolute, empty, contains ``..`` or a
                backslash, or resolves (through symlinks) outside the root.
        """
        pure = PurePosixPath(uri)
        if (
            not uri
            or "\\" in uri
            or "\x00" in uri
            or pure.is_absolute()
            or any(part in ("..", "") for part in uri.split("/"))
        ):
            raise UnsafeArtifactPath(f"artifact path {uri[:200]!r} is not a relative path")
        candidate = (self.root / pure).resolve()
        if not candidate.is_relative_to(self.root):
            raise UnsafeArtifactPath(f"artifact path {uri[:200]!r} leaves the artifact store")
        return candidate

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Write ``data`` at ``uri`` atomically (temp file + rename).

        Returns:
            The sha256 hex digest of ``data``.
        """
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return hashlib.sha256(data).hexdigest()

    def read_bytes(self, uri: str) -> bytes:
        """The bytes stored at ``uri``.

        Raises:
            UnsafeArtifactPath: see :meth:`path`.
            FileNotFoundError: nothing is stored there.
        """
        return self.path(uri).read_bytes()

    def exists(self, uri: str) -> bool:
        """Whether something is stored at ``uri``."""
        return self.path(uri).is_file()
