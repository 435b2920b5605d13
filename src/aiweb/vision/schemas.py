"""API shapes of the vision task's models (registry tasks ``object-detection`` and
``ocr``): the predict body and answers.

The image comes as the raw body (``image/jpeg``, ``image/png``, ``image/webp``), as the
multipart field ``image``, or, in a JSON body, as the id of an image stored with
``POST /v1/images`` (:class:`VisionPredictRequest`). Coordinates are pixels of the image
as oriented by its EXIF tag: ``x`` to the right and ``y`` down from the top-left corner.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DETECTION_TASK",
    "IMAGE_FIELD",
    "IMAGE_MEDIA_TYPES",
    "MODEL_TASKS",
    "OCR_TASK",
    "BoxOut",
    "DetectionOut",
    "ImageBody",
    "OcrLineOut",
    "VisionPredictRequest",
    "VisionPredictResponse",
]

#: the registry task of the face and people detectors
DETECTION_TASK = "object-detection"
#: the registry task of the text reader
OCR_TASK = "ocr"
MODEL_TASKS = (DETECTION_TASK, OCR_TASK)

#: raw body types the predict route takes for these models (what the bytes are is told by
#: the bytes: :mod:`aiweb.images.decode`)
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
#: the multipart field holding the image
IMAGE_FIELD = "image"


class VisionPredictRequest(BaseModel):
    """A JSON predict body: an image stored with ``POST /v1/images``. (A raw image body or
    the multipart field ``image`` need no JSON.)"""

    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="An image stored with `POST /v1/images`.",
    )


@dataclass(frozen=True, eq=False)
class ImageBody:
    """An image sent as the predict body (raw or multipart): its bytes, not yet decoded,
    and the media type it was sent as (not trusted: the decoder sniffs the bytes)."""

    data: bytes
    media_type: str


class BoxOut(BaseModel):
    """A box in pixels: top-left corner ``(x, y)``, ``width`` and ``height``."""

    x: int
    y: int
    width: int
    height: int


class DetectionOut(BaseModel):
    """One object found: ``label`` (``face``, ``person``), ``score`` in (0, 1) (an
    ordering of the detector's confidence, not a calibrated probability) and its box."""

    label: str
    score: float
    box: BoxOut


class OcrLineOut(BaseModel):
    """One line of text read: the recognizer's mean character confidence ``score`` in
    [0, 1] and the line's quadrilateral, four ``[x, y]`` corners clockwise from the top
    left."""

    text: str
    score: float
    polygon: list[list[float]]


class VisionPredictResponse(BaseModel):
    """The answer of a vision model: ``detections`` (detectors) or ``lines`` and ``text``
    (OCR; lines in reading order, ``text`` the lines joined: a space within a row, a
    newline between rows)."""

    model: str
    version: int
    id: str = Field(description="The prediction id (for feedback).")
    width: int = Field(description="Pixels across, after EXIF orientation.")
    height: int = Field(description="Pixels down, after EXIF orientation.")
    sha256: str = Field(description="sha256 of the image file's bytes.")
    detections: list[DetectionOut] | None = None
    lines: list[OcrLineOut] | None = None
    text: str | None = None
