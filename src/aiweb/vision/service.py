"""Serving the vision models: decode the image safely, run the version, log, draw.

:class:`VisionService` is what the predict route (through the task's predictor and
renderer), the jobs and the dashboard call. Versions are held in the one version cache
(:class:`~aiweb.serving.versions.VersionCache`). An image is decoded by
:class:`~aiweb.images.service.ImageService` (format told by the bytes, pixel count
checked from the header before decoding, EXIF orientation applied, metadata dropped) in
a worker thread; the model runs in a worker thread too, one call at a time per version
(OpenCV and onnxruntime each spread one call over the cores), so the event loop keeps
answering while an image is read.

What is logged per image (:class:`~aiweb.monitoring.prediction_log.PredictionRecord`):
the sha256 of the image file's bytes (never its pixels, even with ``AIWEB_LOG_INPUTS``),
its ``label`` (detectors: the label found most often, ``"none"`` when nothing was found;
OCR: ``"text"`` or ``"none"``), ``scores`` the count of each label (OCR: ``lines``) and
``objects`` the boxes found, or the sha256 of the text read (the text too with
``AIWEB_LOG_INPUTS``), which feedback with the corrected boxes or text is compared with
(:func:`logged_objects`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from aiweb.config import Settings
from aiweb.errors import InvalidInputError, ModelNotReadyError
from aiweb.images.decode import DecodedImage
from aiweb.images.service import ImageService
from aiweb.monitoring.feedback import NOTHING, TEXT, boxes_label
from aiweb.monitoring.logs import MODEL, VERSION
from aiweb.monitoring.metrics import PREDICTION_OBJECTS, PREDICTIONS
from aiweb.monitoring.prediction_log import PredictionLogger, PredictionRecord, text_sha256
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.versions import VersionCache
from aiweb.vision.detectors import FACE_CASCADE
from aiweb.vision.model import Manifest, VisionModel
from aiweb.vision.schemas import MODEL_TASKS, ImageBody, VisionPredictRequest

__all__ = [
    "LoadedVision",
    "VisionService",
    "answer_label",
    "draw",
    "load_version",
    "logged_objects",
]

log = logging.getLogger(__name__)


@dataclass
class LoadedVision:
    """A served vision version: its registry entry, its runtime, and the lock that runs
    one call at a time on it."""

    version: ModelVersion
    model: VisionModel
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)


def answer_label(answer: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """``(label, scores)`` an answer is logged under (module docs)."""
    if "lines" in answer:
        lines = answer.get("lines") or []
        return (TEXT if lines else NOTHING), {"lines": float(len(lines))}
    labels = [str(d.get("label")) for d in answer.get("detections") or []]
    counts = Counter(labels)
    return boxes_label(labels), {k: float(v) for k, v in counts.items()}


def logged_objects(answer: Mapping[str, Any], *, log_text: bool) -> dict[str, Any]:
    """What the prediction log keeps of an answer's objects (feedback compares the
    corrected boxes or text with it: :mod:`aiweb.monitoring.feedback`): the boxes
    ``{"boxes": [[label, x, y, width, height], …]}``, or the text read as its sha256, and
    the text itself only when ``log_text`` (``AIWEB_LOG_INPUTS``: a scan's text is the
    user's content)."""
    if "lines" in answer:
        text = str(answer.get("text") or "")
        kept: dict[str, Any] = {"text_sha256": text_sha256(text)}
        if log_text:
            kept["text"] = text
        return kept
    return {
        "boxes": [
            [d["label"], *(d["box"][k] for k in ("x", "y", "width", "height"))]
            for d in answer.get("detections") or []
        ]
    }


def load_version(registry: RegistryService, version: ModelVersion) -> VisionModel:
    """The runtime of a registered vision version (blocking: the service, the jobs).

    Raises:
        ModelNotReadyError: the version is not ``ready``, its library is missing, or the
            installed package's model is not the registered one (503).
        CorruptArtifactError, UnsafeArtifactError: its artifact is refused (500).
    """
    if version.status != "ready" or not version.artifact_uri:
        raise ModelNotReadyError(f"{version.name}:{version.version} is {version.status!r}")
    what = f"artifact of {version.name}:{version.version}"
    manifest = Manifest.from_bytes(
        read_verified(registry.artifacts, version.artifact_uri, version.artifact_sha256, what)
    )
    files: dict[str, bytes] = {}
    for name in (FACE_CASCADE,) if manifest.kind == "faces" else ():
        files[name] = registry.artifacts.read_bytes(version.file_uri(name))
    return VisionModel.load(manifest, files, version.lineage)


class VisionService:
    """Serves ``POST /v1/models/{name}/predict`` for ``object-detection`` and ``ocr``
    models.

    Args:
        registry: resolves references and reads artifacts.
        settings: refresh interval, versions kept, image limits.
        logger: the prediction log writer.
        images: decodes images and reads stored ones.
        on_batch: metrics hook ``(model, version, batch_size, seconds)``.
    """

    def __init__(
        self,
        registry: RegistryService,
        settings: Settings,
        logger: PredictionLogger,
        images: ImageService,
        on_batch: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.logger = logger
        self.images = images
        self._on_batch = on_batch
        self._versions: VersionCache[LoadedVision] = VersionCache(
            "vision models",
            resolve=self._resolve,
            load=self._load,
            refresh_s=settings.serving.alias_refresh_s,
            keep=settings.serving.keep_versions,
        )
        self.ready = False
        #: ``{"name@production": reason}`` of models that could not be loaded at start
        self.failed: dict[str, str] = {}

    # ------------------------------------------------------------------ versions

    def _resolve(self, ref: ModelRef) -> ModelVersion:
        version = self.registry.resolve(ref)
        if version.task not in MODEL_TASKS:
            raise InvalidInputError(
                f"model {version.name!r} has task {version.task!r}: the vision service "
                f"serves {' and '.join(MODEL_TASKS)} models only"
            )
        return version

    def _load(self, version: ModelVersion) -> LoadedVision:
        """Read, check and build ``version`` (on a worker thread)."""
        return LoadedVision(version, load_version(self.registry, version))

    async def get(self, ref: str) -> LoadedVision:
        """The loaded version ``ref`` names (``faces``, ``faces@staging``, ``faces:2``).

        Raises:
            InvalidInputError: a malformed reference, or a model of another task (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            ModelNotReadyError: the version cannot be loaded now (503).
            CorruptArtifactError, UnsafeArtifactError: its artifact is refused (500).
        """
        try:
            parsed = ModelRef.parse(ref)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        return (await self._versions.get(parsed)).value

    async def preload(self, ref: str) -> None:
        """Load the version ``ref`` names ahead of its first request."""
        await self.get(ref)

    async def alias_moved(self, name: str) -> None:
        """Follow an alias of ``name`` moved in this process at once; stop serving its
        versions the registry no longer has."""
        await self._versions.alias_moved(name)
        await self._versions.drop_missing(name)

    async def warm(self) -> list[str]:
        """Load the production version of every vision model (at start); one that cannot
        be loaded is logged, listed in :attr:`failed` and left to its first request.

        Returns:
            ``name:version`` of the versions loaded.
        """
        models = await anyio.to_thread.run_sync(self.registry.list_models)
        warmed: list[str] = []
        failed: dict[str, str] = {}
        for m in models:
            if m.task not in MODEL_TASKS or PRODUCTION not in m.aliases:
                continue
            try:
                loaded = await self.get(m.name)
            except Exception as exc:  # serving starts even when a version cannot be loaded
                log.exception("could not load vision model %s at start", m.name)
                failed[f"{m.name}@{PRODUCTION}"] = str(getattr(exc, "detail", exc))
                continue
            warmed.append(f"{loaded.version.name}:{loaded.version.version}")
        self.failed = failed
        self.ready = True
        return warmed

    def status(self) -> dict[str, Any]:
        """``{"ready", "loaded", "failed"}`` for ``/readyz``."""
        resolved = self._versions.resolutions()
        failed = {k: v for k, v in self.failed.items() if k not in resolved}
        return {
            "ready": self.ready and not failed,
            "loaded": [f"{s.version.name}:{s.version.version}" for s in self._versions.loaded()],
            "failed": failed,
        }

    async def aclose(self) -> None:
        """Release every loaded version."""
        await self._versions.aclose()

    # ------------------------------------------------------------------ serving

    async def image_of(self, body: ImageBody | VisionPredictRequest) -> tuple[DecodedImage, str]:
        """The decoded image of a predict body and the sha256 of its file's bytes.

        Raises:
            ImageTooLarge (413), UnsupportedImageFormat (415), ImageError (422): the
                uploaded bytes are refused (:meth:`ImageService.decode`).
            ImageNotFound: no stored image of that id (404).
        """
        if isinstance(body, ImageBody):
            decoded = await anyio.to_thread.run_sync(self.images.decode, body.data)
            return decoded, hashlib.sha256(body.data).hexdigest()
        stored = await anyio.to_thread.run_sync(self.images.get, body.image_id)
        decoded = await anyio.to_thread.run_sync(self.images.pixels, stored)
        return decoded, stored.sha256

    async def predict_image(
        self, ref: str, image: DecodedImage, sha256: str, *, log_prediction: bool = True
    ) -> dict[str, Any]:
        """Answer one decoded image with the model ``ref`` names.

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            image: the decoded image (uint8 RGB, oriented).
            sha256: the image file's sha256 (logged instead of the image).
            log_prediction: write the prediction log and metrics (jobs: also true).

        Returns:
            ``{"model", "version", "id", "width", "height", "sha256"}`` and
            ``"detections"`` or ``"lines"`` and ``"text"``
            (:class:`~aiweb.vision.schemas.VisionPredictResponse`).

        Raises:
            see :meth:`get`.
        """
        started = time.perf_counter()
        loaded = await self.get(ref)
        name, number = loaded.version.name, loaded.version.version
        MODEL.set(name)
        VERSION.set(number)
        async with loaded.limiter:
            called = time.perf_counter()
            found = await anyio.to_thread.run_sync(loaded.model.predict, image.pixels)
            seconds = time.perf_counter() - called
        if self._on_batch is not None:
            self._on_batch(name, number, 1, seconds)
        pid = str(uuid.uuid4())
        answer: dict[str, Any] = {
            "model": name,
            "version": number,
            "id": pid,
            "width": image.width,
            "height": image.height,
            "sha256": sha256,
            **found,
        }
        if log_prediction:
            label, scores = answer_label(answer)
            self.logger.record(
                [
                    PredictionRecord(
                        id=pid,
                        model=name,
                        version=number,
                        label=label,
                        scores=scores,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                        input_sha256=sha256,
                        input_text=None,  # never the pixels
                        created_at=datetime.now(UTC),
                        objects=logged_objects(answer, log_text=self.settings.log_inputs),
                    )
                ]
            )
            PREDICTIONS.labels(name, str(number), label).inc()
            objects = found.get("detections", found.get("lines")) or []
            PREDICTION_OBJECTS.labels(name, str(number)).observe(len(objects))
        return answer

    async def predict(self, ref: str, body: ImageBody | VisionPredictRequest) -> dict[str, Any]:
        """Decode the body's image and answer it (:meth:`image_of`, :meth:`predict_image`)."""
        image, sha256 = await self.image_of(body)
        return await self.predict_image(ref, image, sha256)

    async def render(
        self, ref: str, body: ImageBody | VisionPredictRequest, media_type: str = "image/png"
    ) -> tuple[bytes, dict[str, Any]]:
        """Answer the body's image and draw the answer on it.

        Returns:
            ``(png, answer)``: the oriented image with the boxes (labelled) or the text
            lines (numbered in reading order) drawn, as PNG bytes; and the JSON answer.
        """
        image, sha256 = await self.image_of(body)
        answer = await self.predict_image(ref, image, sha256)
        png = await anyio.to_thread.run_sync(draw, image, answer)
        return png, answer


def draw(image: DecodedImage, answer: Mapping[str, Any]) -> bytes:
    """``answer`` drawn on ``image``, as PNG bytes (:mod:`aiweb.vision.overlay`)."""
    from aiweb.vision.overlay import draw_detections, draw_lines

    if "lines" in answer:
        return draw_lines(image.pixels, answer.get("lines") or [])
    return draw_detections(image.pixels, answer.get("detections") or [])
