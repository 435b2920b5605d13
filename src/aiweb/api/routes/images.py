"""``/v1/images``: upload a JPEG, PNG or WebP image (checked against hostile files, kept
as a PNG without metadata), list, describe, read back, delete (:mod:`aiweb.images`;
docs/images.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from aiweb.api.deps import next_offset
from aiweb.api.problems import request_id
from aiweb.errors import ImageError, ImageTooLarge, UnsupportedMediaTypeError
from aiweb.images.decode import BYTES_SETTING, MEDIA_TYPES
from aiweb.images.service import STORED_MEDIA_TYPE, ImageService, StoredImage
from aiweb.security.auth import actor, scoped

__all__ = [
    "FIELD",
    "RAW_BODY_PATHS",
    "RAW_MEDIA_TYPES",
    "UploadedImageList",
    "UploadedImageOut",
    "read_image_body",
    "router",
]

router = APIRouter(prefix="/v1/images", tags=["images"])

#: The multipart field that carries the image.
FIELD = "image"
#: The media types of a raw image body (the format is still told by the bytes).
RAW_MEDIA_TYPES = tuple(MEDIA_TYPES.values())
#: The paths that take a raw image body (the input limits stream it, bounded by
#: ``AIWEB_LIMITS__MAX_IMAGE_BYTES``, instead of answering 415).
RAW_BODY_PATHS = ("/v1/images",)


async def _images(request: Request) -> ImageService:
    service: ImageService = request.app.state.images
    return service


ImagesDep = Annotated[ImageService, Depends(_images)]


class UploadedImageOut(BaseModel):
    """An uploaded image, as stored: a PNG re-encoded from its pixels, without metadata."""

    id: str
    width: int = Field(..., description="Pixels across, as displayed (EXIF orientation applied).")
    height: int = Field(..., description="Pixels down, as displayed.")
    sha256: str = Field(..., description="Hex digest of the uploaded bytes.")
    format: str = Field(
        ..., description="The uploaded file's format, told by its bytes: jpeg, png or webp."
    )
    bytes: int = Field(..., description="Size of the uploaded file, bytes.")
    created_at: datetime

    @classmethod
    def of(cls, image: StoredImage) -> UploadedImageOut:
        return cls(
            id=image.id,
            width=image.width,
            height=image.height,
            sha256=image.sha256,
            format=image.format,
            bytes=image.size_bytes,
            created_at=image.created_at,
        )


class UploadedImageList(BaseModel):
    images: list[UploadedImageOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


_BINARY = {"type": "string", "format": "binary"}

_UPLOAD = scoped("train")
_UPLOAD["openapi_extra"] = {
    **_UPLOAD["openapi_extra"],
    "requestBody": {
        "required": True,
        "description": "The image: a multipart form with the file in field `image`, or the "
        "raw bytes with Content-Type image/jpeg, image/png or image/webp. The format is told "
        "by the bytes, never by the file name or the Content-Type.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        FIELD: {
                            **_BINARY,
                            "description": "A JPEG, PNG or WebP image (its format is told "
                            "by its bytes).",
                        }
                    },
                    "required": [FIELD],
                },
                "encoding": {FIELD: {"contentType": ", ".join(RAW_MEDIA_TYPES)}},
            },
            **{media_type: {"schema": dict(_BINARY)} for media_type in RAW_MEDIA_TYPES},
        },
    },
}
_UPLOAD["responses"] = {
    **_UPLOAD["responses"],
    413: {
        "description": "More bytes than AIWEB_LIMITS__MAX_IMAGE_BYTES, or a header that "
        "declares more pixels than AIWEB_LIMITS__MAX_IMAGE_PIXELS (a decompression bomb), "
        "refused before decoding."
    },
    415: {
        "description": "Not a JPEG, PNG or WebP image (told by its bytes; names what it looks "
        "like: GIF, TIFF, ZIP …), or a body that is neither multipart nor a raw image."
    },
    422: {
        "description": "No `image` field; an empty, truncated or corrupt image; an animated "
        "one; or a polyglot (data after the image's end)."
    },
}


async def read_image_body(request: Request, limit: int) -> bytes:
    """The image bytes of a request: multipart field ``image``, or a raw image body.

    At most ``limit`` bytes are read (one more to tell that there are more).

    Raises:
        RequestValidationError: a multipart form without a file in ``image`` (422).
        ImageTooLarge: more than ``limit`` bytes (413).
        ImageError: an empty body (422).
        UnsupportedMediaTypeError: neither multipart nor a raw image type (415).
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=16) as form:
            part = form.get(FIELD)
            if not isinstance(part, UploadFile):
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", FIELD),
                            "msg": f"a file is required in form field {FIELD!r}",
                            "type": "missing",
                        }
                    ]
                )
            data = await part.read(limit + 1)
    elif media_type in RAW_MEDIA_TYPES:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ImageTooLarge(f"the image is larger than {limit:,} bytes ({BYTES_SETTING})")
            chunks.append(chunk)
        data = b"".join(chunks)
    else:
        given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        raise UnsupportedMediaTypeError(
            f"request body has {given}; send the image as multipart/form-data (field "
            f"{FIELD!r}) or as a raw {', '.join(RAW_MEDIA_TYPES)} body"
        )
    if len(data) > limit:
        raise ImageTooLarge(f"the image is larger than {limit:,} bytes ({BYTES_SETTING})")
    if not data:
        raise ImageError("the file is empty; upload a JPEG, PNG or WebP image")
    return data


@router.post("", status_code=201, **_UPLOAD)
async def upload_image(
    request: Request, response: Response, service: ImagesDep
) -> UploadedImageOut:
    """Upload an image (a photo, a scan …) to keep it for later analysis.

    Send it as multipart field ``image`` (``curl -F image=@photo.jpg``) or as the raw body
    with ``Content-Type: image/jpeg``, ``image/png`` or ``image/webp``. The format is
    told by the bytes, never by the name or the Content-Type: JPEG, PNG and WebP only
    (415 for others, naming what the file looks like). At most
    ``AIWEB_LIMITS__MAX_IMAGE_BYTES`` (20 MiB) and ``AIWEB_LIMITS__MAX_IMAGE_PIXELS``
    (40,000,000) pixels, checked from the header before decoding (413). Truncated or
    corrupt files, animations and polyglots (data after the image's end) get a 422 that
    says so. The EXIF orientation is applied; what is kept is a PNG re-encoded from the
    pixels, so no metadata (EXIF, GPS position, XMP, ICC) is ever stored. Audited as
    ``image.upload``.
    """
    data = await read_image_body(request, service.settings.limits.max_image_bytes)
    who = actor(request)
    image = await anyio.to_thread.run_sync(
        lambda: service.upload(data, actor=who, request_id=request_id(request))
    )
    response.headers["Location"] = f"/v1/images/{image.id}"
    return UploadedImageOut.of(image)


@router.get("", **scoped("train"))
async def list_images(
    service: ImagesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> UploadedImageList:
    """Uploaded images, newest first."""
    items, total = await anyio.to_thread.run_sync(lambda: service.list(limit=limit, offset=offset))
    return UploadedImageList(
        images=[UploadedImageOut.of(i) for i in items],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset(offset, len(items), total),
    )


_ONE = scoped("train")
_ONE["responses"] = {**_ONE["responses"], 404: {"description": "No such image."}}

_CONTENT = scoped("train")
_CONTENT["responses"] = {
    **_CONTENT["responses"],
    200: {
        "description": "The stored PNG: re-encoded from the decoded pixels, without metadata.",
        "content": {STORED_MEDIA_TYPE: {"schema": dict(_BINARY)}},
    },
    404: {"description": "No such image."},
}


@router.get("/{image_id}", **_ONE)
async def get_image(
    image_id: Annotated[str, Path(max_length=64)], service: ImagesDep
) -> UploadedImageOut:
    """One uploaded image."""
    return UploadedImageOut.of(await anyio.to_thread.run_sync(service.get, image_id))


@router.get("/{image_id}/content", response_class=Response, **_CONTENT)
async def get_image_content(
    image_id: Annotated[str, Path(max_length=64)], service: ImagesDep
) -> Response:
    """The stored image: a PNG of its pixels as displayed (EXIF orientation applied),
    without any of the uploaded file's metadata."""

    def read() -> tuple[StoredImage, bytes]:
        image = service.get(image_id)
        return image, service.content(image)

    image, png = await anyio.to_thread.run_sync(read)
    return Response(
        content=png,
        media_type=STORED_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'inline; filename="{image.id}.png"',
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.delete("/{image_id}", status_code=204, **_ONE)
async def delete_image(
    image_id: Annotated[str, Path(max_length=64)],
    request: Request,
    service: ImagesDep,
) -> Response:
    """Delete an uploaded image and its stored PNG (audited as ``image.delete``)."""
    await anyio.to_thread.run_sync(
        lambda: service.delete(image_id, actor=actor(request), request_id=request_id(request))
    )
    return Response(status_code=204)
