"""The vision task's job: many images through one vision model
(``{"type": "vision", "model": "faces", "image_ids": […]}``), or the pages of a PDF
(``{"type": "vision", "model": "ocr", "document_id": "…"}``) (:data:`JOB_TYPES`).

At submit (:func:`check_vision`) the model reference is resolved and **pinned**: the job
stores the version it names then (``model_name``, ``model_version``), so an alias moved
while the job waits or runs, or a retried attempt, never mixes two versions' answers.
The images must exist; the document must exist and be a PDF whose original file is kept.

The handler (:func:`run_vision`) loads the pinned version once, then answers the images
(or renders and answers the pages, :func:`aiweb.vision.pages.render_pages`) one at a
time, reporting progress after each, so a cancelled job stops between two images. It
writes, in the artifact store::

    jobs/<job id>/results.jsonl                   one JSON line per image or page, in order
    jobs/<job id>/overlays/0001-<image id>.png    the answer drawn on image 1 (…)
    jobs/<job id>/overlays/page-0001.png          the answer drawn on page 1 (…)

A line is what the predict route answers for the image, without the prediction ``id``
(nothing is written to the prediction log): ``{"image_id" | "page", "model", "version",
"width", "height", "sha256", "detections"}`` for a detector, ``"lines"`` and ``"text"``
instead of ``"detections"`` for OCR. ``sha256`` is that of the uploaded image file, or of
the PDF for a page. A retried attempt (after a crash) writes the same files again, over
the first attempt's: the version is pinned and the models are deterministic, so they
hold the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from aiweb.db.orm import SqlImage
from aiweb.documents.service import Document, DocumentService
from aiweb.errors import (
    ConflictError,
    ImageNotFound,
    InvalidInputError,
    UploadedDocumentNotFound,
)
from aiweb.images.decode import DecodedImage
from aiweb.images.service import ImageService
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext, JobType
from aiweb.names import REF_REGEX
from aiweb.registry.entities import ModelRef
from aiweb.vision.pages import DPI, render_pages
from aiweb.vision.schemas import MODEL_TASKS
from aiweb.vision.service import draw, load_version

__all__ = [
    "ID_PATTERN",
    "JOB_TYPE",
    "JOB_TYPES",
    "MAX_IMAGES",
    "PDF_MEDIA_TYPE",
    "ImageId",
    "VisionJobSpec",
    "check_vision",
    "run_vision",
]

#: the ``type`` of a vision job
JOB_TYPE = "vision"
#: the most images one job reads
MAX_IMAGES = 1000
#: the ids of stored images and documents (UUID strings), as ``POST /v1/images`` gives them
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
#: the media type of a document whose pages a job renders
PDF_MEDIA_TYPE = "application/pdf"

#: one image id of ``image_ids``
ImageId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


_SOURCES = ("image_ids", "document_id")


def _one_source_schema(schema: dict[str, Any]) -> None:
    """The schema of :class:`VisionJobSpec`: ``image_ids`` a list and ``document_id`` a
    string, neither ``null``, exactly one of them present (``oneOf``)."""
    for name in _SOURCES:
        prop = schema["properties"][name]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            description = prop.get("description")
            prop.update(variants[0])
            if description is not None:
                prop["description"] = description
        prop.pop("default", None)
    schema["oneOf"] = [{"required": [name]} for name in _SOURCES]


class VisionJobSpec(BaseModel):
    """``{"type": "vision", "model": REF, "image_ids": [ID, …]}`` or
    ``{"type": "vision", "model": REF, "document_id": ID}``: answer stored images, or the
    pages of an uploaded PDF, with a vision model (exactly one of ``image_ids`` and
    ``document_id``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_source_schema)

    type: Literal["vision"]
    model: str = Field(
        min_length=1,
        max_length=130,
        description="An object-detection or ocr model: name, name@alias or name:version; "
        "the version is pinned at submit.",
        # checked by the submit check (ModelRef.parse), whose 422 says what a name may hold
        json_schema_extra={"pattern": REF_REGEX},
    )
    image_ids: list[ImageId] | None = Field(
        None,
        min_length=1,
        max_length=MAX_IMAGES,
        description=f"Images stored with `POST /v1/images` (1 to {MAX_IMAGES}), answered in "
        "this order.",
    )
    document_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description=f"A PDF uploaded with `POST /v1/documents`: each page is rendered at {DPI} "
        "dpi and answered as an image.",
    )
    overlays: bool = Field(
        True, description="Also keep each image with the answer drawn on it, as a PNG."
    )

    @model_validator(mode="after")
    def _one_source(self) -> VisionJobSpec:
        if (self.image_ids is None) == (self.document_id is None):
            raise ValueError("give exactly one of image_ids and document_id")
        return self


def _missing_image(ctx: CheckContext, image_ids: list[str]) -> str | None:
    """The first of ``image_ids`` (in their order) that no stored image has, if any."""
    wanted = set(image_ids)
    found: set[str] = set()
    ordered = list(dict.fromkeys(image_ids))
    with ctx.datasets.sessions() as s:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update(s.scalars(select(SqlImage.id).where(SqlImage.id.in_(chunk))).all())
    return next((i for i in image_ids if i in wanted - found), None)


def check_vision(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """Check a vision job body at submit; return the parameters to store, with the model
    version pinned (``model_name``, ``model_version``).

    Returns:
        ``{"model", "image_ids" | "document_id", "overlays", "model_name",
        "model_version"}``.

    Raises:
        InvalidInputError: a malformed reference; a model whose registry task is not
            ``object-detection`` or ``ocr`` (names its task); a document that is not a
            PDF, or whose original file was not kept (uploaded with ``redact_pii``) (422).
        ConflictError: the version is not ``ready`` (409).
        ModelNotFound, AliasNotFound, ModelVersionNotFound: the model (404).
        ImageNotFound: an image that does not exist (the first one, by its place in
            ``image_ids``) (404).
        UploadedDocumentNotFound: the document does not exist (404).
    """
    assert isinstance(spec, VisionJobSpec)
    try:
        ref = ModelRef.parse(spec.model)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    version = ctx.registry.resolve(ref)
    if version.task not in MODEL_TASKS:
        raise InvalidInputError(
            f"model {version.name!r} is a {version.task!r} model; a vision job runs "
            f"{' or '.join(MODEL_TASKS)} models"
        )
    if version.status != "ready":
        raise ConflictError(
            f"{version.name}:{version.version} has status {version.status!r}; a vision job "
            "needs a ready version"
        )
    if spec.image_ids is not None:
        missing = _missing_image(ctx, spec.image_ids)
        if missing is not None:
            at = spec.image_ids.index(missing)
            raise ImageNotFound(f"image_ids[{at}]: image {missing!r} does not exist")
    else:
        assert spec.document_id is not None
        try:
            document = ctx.documents.get(spec.document_id)
        except UploadedDocumentNotFound:
            raise UploadedDocumentNotFound(
                f"document_id: document {spec.document_id!r} does not exist"
            ) from None
        if document.media_type != PDF_MEDIA_TYPE:
            raise InvalidInputError(
                f"document {document.id} ({document.name}) is {document.media_type}; a "
                "vision job renders the pages of a PDF"
            )
        if document.original_uri is None:
            raise InvalidInputError(
                f"document {document.id} ({document.name}) was uploaded with redact_pii, so "
                "its file was not kept and its pages cannot be rendered; upload it again "
                "without redact_pii"
            )
    params = spec.model_dump(exclude={"type"}, exclude_none=True)
    params["model_name"] = version.name
    params["model_version"] = version.version
    return params


def _images(
    env: JobEnv, image_ids: list[str]
) -> Iterator[tuple[dict[str, Any], DecodedImage, str]]:
    """``(the line's key, the decoded image, its sha256)`` of each stored image, read one
    at a time (:meth:`ImageService.pixels`)."""
    images = ImageService(env.datasets.sessions, env.registry.artifacts, env.settings)
    for image_id in image_ids:
        stored = images.get(image_id)
        yield {"image_id": image_id}, images.pixels(stored), stored.sha256


def _pages(env: JobEnv, document: Document) -> Iterator[tuple[dict[str, Any], DecodedImage, str]]:
    """``(the line's key, the rendered page, the PDF's sha256)`` of each page of an
    uploaded PDF, rendered one at a time (:func:`render_pages`)."""
    if document.original_uri is None:
        raise InvalidInputError(f"document {document.id} was uploaded without keeping its file")
    pdf = env.registry.artifacts.read_bytes(document.original_uri)
    limits = env.settings.limits
    for number, pixels in enumerate(
        render_pages(pdf, max_pixels=limits.max_image_pixels, max_pages=limits.max_document_pages),
        start=1,
    ):
        height, width = pixels.shape[:2]
        yield {"page": number}, DecodedImage(pixels, width, height, "png"), document.sha256


def run_vision(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Answer every image (or page) of the job with its pinned version; write the JSON
    Lines file and the overlays (module docs).

    Progress is reported after each image (``ctx.progress``), which is also where a
    cancellation stops the job.

    Returns:
        ``{"model", "version", "task", "images", "found", "results", "artifact_uri",
        "format": "jsonl", "sha256", "size_bytes", "overlays"}``: ``images`` the images
        (pages) answered, ``found`` the detections (text lines) in all of them,
        ``results`` where the JSON Lines file is downloaded (``GET
        /v1/jobs/{id}/result``), ``artifact_uri`` where it is in the artifact store, and
        ``overlays`` the artifact-store paths of the overlay PNGs, one per line of the
        file, in its order (empty without ``overlays``).

    Raises:
        ModelVersionNotFound: the pinned version was deleted since the submit (404).
        ModelNotReadyError: the version cannot be loaded here (503).
        ImageNotFound, UploadedDocumentNotFound: an image or the document was deleted
            since the submit (404).
        DataFormatError, PayloadTooLargeError: the PDF cannot be rendered (422, 413).
        CorruptArtifactError: a stored image is missing or unreadable (500).
        JobCancelled: the job was cancelled (between two images).
    """
    p = ctx.job.params
    version = env.registry.get_version(p["model_name"], int(p["model_version"]))
    name, number = version.name, version.version
    ctx.progress(0.0, f"loading {name}:{number}")
    model = load_version(env.registry, version)
    keep_overlays = bool(p.get("overlays", True))
    base = f"jobs/{ctx.job.id}"
    out_path = ctx.workdir / "results.jsonl"
    image_ids: list[str] | None = p.get("image_ids")
    if image_ids is not None:
        total = len(image_ids)
        what = "images"
        items = _images(env, image_ids)
    else:
        document = DocumentService(env.datasets.sessions, env.registry.artifacts, env.settings).get(
            p["document_id"]
        )
        total = max(1, document.pages)
        what = "pages"
        items = _pages(env, document)
    ctx.progress(0.0, f"reading {total:,} {what} with {name}:{number}")
    done = found = 0
    overlays: list[str] = []
    with out_path.open("wb") as fh:
        for key, image, sha256 in items:
            answer: dict[str, Any] = {
                **key,
                "model": name,
                "version": number,
                "width": image.width,
                "height": image.height,
                "sha256": sha256,
                **model.predict(image.pixels),
            }
            fh.write(orjson.dumps(answer) + b"\n")
            found += len(answer.get("detections", answer.get("lines")) or [])
            done += 1
            if keep_overlays:
                if "image_id" in key:
                    uri = f"{base}/overlays/{done:04d}-{key['image_id']}.png"
                else:
                    uri = f"{base}/overlays/page-{key['page']:04d}.png"
                env.registry.artifacts.write_bytes(uri, draw(image, answer))
                overlays.append(uri)
            ctx.progress(0.99 * done / max(total, done), f"{done:,} of {total:,} {what}")
    ctx.progress(1.0, "storing the results")
    uri = f"{base}/results.jsonl"
    sha = env.registry.artifacts.put_file(uri, out_path)
    return {
        "model": name,
        "version": number,
        "task": version.task,
        "images": done,
        "found": found,
        "results": f"/v1/jobs/{ctx.job.id}/result",
        "artifact_uri": uri,
        "format": "jsonl",
        "sha256": sha,
        "size_bytes": out_path.stat().st_size,
        "overlays": overlays,
    }


#: the vision task's jobs
JOB_TYPES: tuple[JobType, ...] = (
    JobType(type=JOB_TYPE, handler=run_vision, spec=VisionJobSpec, check=check_vision),
)
