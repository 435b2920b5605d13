"""Uploaded images (``POST /v1/images``, ``aiweb images upload``): checked, kept, listed,
read back, deleted.

An upload is read whole (at most ``limits.max_image_bytes``) and decoded by
:func:`aiweb.images.decode.read_image` (format told by its bytes, pixels bounded before
decoding, EXIF orientation applied, hostile files refused). What is kept is a PNG
re-encoded from the decoded pixels — never the uploaded bytes, so none of its metadata
(EXIF, GPS position, XMP, ICC profile, text chunks) — in the artifact store::

    images/<id>/image.png

and a row in ``images`` (:class:`~aiweb.db.orm.SqlImage`) with the format, the size as
displayed, and the sha256 and size of the uploaded bytes. The file is written first and
the row committed last; a failed commit removes the file. A process killed between the
two leaves an ``images/<id>/`` directory that no row names: nothing reads it, and it may
be removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, cast

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import Settings
from aiweb.db.orm import SqlImage
from aiweb.db.session import transaction
from aiweb.errors import CorruptArtifactError, ImageError, ImageNotFound, ImageTooLarge
from aiweb.images.decode import (
    BYTES_SETTING,
    DecodedImage,
    ImageFormat,
    encode_png,
    read_image,
)

if TYPE_CHECKING:
    from aiweb.registry.artifacts import ArtifactStore
    from aiweb.security.audit import AuditLog

__all__ = ["STORED_MEDIA_TYPE", "ImageService", "StoredImage", "image_dir"]

log = logging.getLogger(__name__)

#: The media type of every stored image (``GET /v1/images/{id}/content``).
STORED_MEDIA_TYPE = "image/png"


@dataclass(frozen=True)
class StoredImage:
    """An uploaded image.

    Attributes:
        id: UUID string.
        format: the uploaded file's format, told by its bytes: ``jpeg``, ``png``, ``webp``.
        width: pixels across, as displayed (EXIF orientation applied).
        height: pixels down, as displayed.
        sha256: hex digest of the uploaded bytes.
        size_bytes: size of the uploaded file, bytes.
        uri: the stored PNG in the artifact store (``images/<id>/image.png``).
        created_by: who uploaded it (the key's name, ``cli``).
        created_at: when.
    """

    id: str
    format: str
    width: int
    height: int
    sha256: str
    size_bytes: int
    uri: str
    created_by: str
    created_at: datetime


def _to_image(row: SqlImage) -> StoredImage:
    return StoredImage(
        id=row.id,
        format=row.format,
        width=row.width,
        height=row.height,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        uri=row.uri,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def image_dir(image_id: str) -> str:
    """The URI of an image's directory in the artifact store: ``images/<id>``."""
    return f"images/{image_id}"


class ImageService:
    """Decode, keep, describe, read back and delete uploaded images.

    Args:
        session_factory: sessions on the aiweb database.
        artifacts: where the PNGs are kept.
        settings: the bounds (``limits.max_image_bytes``, ``limits.max_image_pixels``).
        audit: where uploads and deletions are recorded (``image.upload``,
            ``image.delete``), or ``None``.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        artifacts: ArtifactStore,
        settings: Settings,
        audit: AuditLog | None = None,
    ) -> None:
        self.sessions = session_factory
        self.artifacts = artifacts
        self.settings = settings
        self.audit = audit

    def read_upload(self, fileobj: IO[bytes]) -> bytes:
        """The bytes of an uploaded file, read whole (at most the image limit).

        Raises:
            ImageTooLarge: more than ``limits.max_image_bytes`` (413).
            ImageError: an empty file (422).
        """
        limit = self.settings.limits.max_image_bytes
        data = fileobj.read(limit + 1)
        if len(data) > limit:
            raise ImageTooLarge(f"the image is larger than {limit:,} bytes ({BYTES_SETTING})")
        if not data:
            raise ImageError("the file is empty; upload a JPEG, PNG or WebP image")
        return data

    def decode(self, data: bytes) -> DecodedImage:
        """Decode an image under the settings' limits (:func:`~aiweb.images.decode.read_image`:
        CPU work; run it in a worker thread from async code).

        Raises:
            ImageTooLarge: over ``limits.max_image_bytes`` or ``limits.max_image_pixels`` (413).
            UnsupportedImageFormat: not a JPEG, PNG or WebP image (415).
            ImageError: empty, truncated or corrupt, animated, a polyglot (422).
        """
        limits = self.settings.limits
        return read_image(
            data, max_pixels=limits.max_image_pixels, max_bytes=limits.max_image_bytes
        )

    def upload(self, data: bytes, *, actor: str = "", request_id: str | None = None) -> StoredImage:
        """Decode and keep an uploaded image (module docs). Nothing is stored when it is
        refused.

        Args:
            data: the uploaded file's bytes.
            actor: who uploads it.
            request_id: the request's id, for the audit event.

        Returns:
            The stored image.

        Raises:
            ImageTooLarge: over ``limits.max_image_bytes`` or ``limits.max_image_pixels`` (413).
            UnsupportedImageFormat: not a JPEG, PNG or WebP image (415).
            ImageError: empty, truncated or corrupt, animated, a polyglot (422).
        """
        decoded = self.decode(data)
        png = encode_png(decoded.pixels)
        image_id = str(uuid.uuid4())
        uri = f"{image_dir(image_id)}/image.png"
        row = SqlImage(
            id=image_id,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            uri=uri,
            created_by=actor,
        )
        try:
            self.artifacts.write_bytes(uri, png)
            with transaction(self.sessions) as s:
                s.add(row)
        except BaseException:
            # no row: nothing names the file (a kill here leaves it, see the module docs)
            with contextlib.suppress(Exception):
                self.artifacts.delete_tree(image_dir(image_id))
            raise
        image = _to_image(row)
        if self.audit is not None:
            self.audit.record(
                actor,
                "image.upload",
                f"image:{image.id}",
                after={
                    "format": image.format,
                    "width": image.width,
                    "height": image.height,
                    "sha256": image.sha256,
                },
                request_id=request_id,
            )
        return image

    def get(self, image_id: str) -> StoredImage:
        """The image ``image_id``.

        Raises:
            ImageNotFound: no such image (404).
        """
        with self.sessions() as s:
            row = s.get(SqlImage, image_id)
            if row is None:
                raise ImageNotFound(f"image {image_id[:64]!r} does not exist")
            return _to_image(row)

    def content(self, image: StoredImage) -> bytes:
        """The stored PNG of ``image`` (:data:`STORED_MEDIA_TYPE`, no metadata).

        Raises:
            CorruptArtifactError: the PNG is missing from the artifact store (500: the
                server's state).
        """
        try:
            return self.artifacts.read_bytes(image.uri)
        except FileNotFoundError:
            raise CorruptArtifactError(
                f"the PNG of image {image.id} is missing from the artifact store"
            ) from None

    def pixels(self, image: StoredImage) -> DecodedImage:
        """The pixels of a stored image: uint8 RGB of shape ``(height, width, 3)``, as
        displayed (decoded from its stored PNG; CPU work).

        Raises:
            CorruptArtifactError: the PNG is missing or unreadable (500).
        """
        data = self.content(image)
        limits = self.settings.limits
        try:
            decoded = read_image(
                data,
                max_pixels=max(limits.max_image_pixels, image.width * image.height),
                max_bytes=max(limits.max_image_bytes, len(data)),
            )
        except (ImageError, ImageTooLarge) as exc:
            raise CorruptArtifactError(
                f"the PNG of image {image.id} is unreadable ({exc.detail})"
            ) from None
        return DecodedImage(
            pixels=decoded.pixels,
            width=decoded.width,
            height=decoded.height,
            format=cast(ImageFormat, image.format),
        )

    def delete(
        self, image_id: str, *, actor: str = "", request_id: str | None = None
    ) -> StoredImage:
        """Remove the image ``image_id``: its row, then its files (audited as
        ``image.delete`` by ``actor``).

        Returns:
            The image as it was.

        Raises:
            ImageNotFound: no such image (404).
        """
        with transaction(self.sessions) as s:
            row = s.get(SqlImage, image_id)
            if row is None:
                raise ImageNotFound(f"image {image_id[:64]!r} does not exist")
            gone = _to_image(row)
            s.execute(delete(SqlImage).where(SqlImage.id == image_id))
            s.expunge(row)
        self.artifacts.delete_tree(image_dir(image_id))
        if self.audit is not None:
            self.audit.record(
                actor,
                "image.delete",
                f"image:{gone.id}",
                before={"format": gone.format, "sha256": gone.sha256},
                request_id=request_id,
            )
        return gone

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[StoredImage], int]:
        """Images, newest first, and how many there are in all."""
        with self.sessions() as s:
            rows = s.scalars(
                select(SqlImage)
                .order_by(SqlImage.created_at.desc(), SqlImage.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = s.scalar(select(func.count()).select_from(SqlImage)) or 0
            return [_to_image(r) for r in rows], int(total)
