"""Vision as a task (:class:`aiweb.contract.Task`): faces and people found, and text read,
in images.

Its models (registry tasks ``object-detection`` and ``ocr``; registered by ``aiweb
models install faces people ocr``, :mod:`aiweb.vision.builtin`) answer the predict route
with an image as the body (raw ``image/jpeg``, ``image/png``, ``image/webp``, or the
multipart field ``image``) or a JSON ``{"image_id"}`` of a stored image, and draw their
answer with ``Accept: image/png``. Their versions are held by
:class:`~aiweb.vision.service.VisionService` (``app.state.vision``), which loads every
production version once all tasks are built and counts towards ``/readyz``. A rollout
compares two versions' answers by :func:`compare_answers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiweb.contract import FileInput, PredictShapes, Readiness, Task, TaskContext, TaskRuntime
from aiweb.errors import InvalidInputError
from aiweb.monitoring.feedback import Box, box_counts
from aiweb.vision.jobs import JOB_TYPES
from aiweb.vision.schemas import (
    IMAGE_FIELD,
    IMAGE_MEDIA_TYPES,
    MODEL_TASKS,
    ImageBody,
    VisionPredictRequest,
    VisionPredictResponse,
)
from aiweb.vision.service import VisionService

__all__ = ["NAME", "TASK", "compare_answers", "start"]

NAME = "vision"


def _boxes(detections: list[Any]) -> list[Box]:
    return [
        Box(
            str(d.get("label")),
            *(float((d.get("box") or {}).get(k, 0)) for k in ("x", "y", "width", "height")),
        )
        for d in detections
        if isinstance(d, Mapping)
    ]


def compare_answers(served: Mapping[str, Any], other: Mapping[str, Any]) -> tuple[int, int]:
    """Whether two versions' answers to the same image agree (a rollout's agreement gate;
    :data:`aiweb.rollout.router.Compare`): detectors when every box of one pairs with a box
    of the other of the same label at IoU ≥ 0.5 and none is left over
    (:func:`aiweb.monitoring.feedback.box_counts`, PASCAL VOC's criterion); OCR when the
    text read is the same.

    Returns:
        ``(compared, agreed)``: ``(1, 0|1)``, or ``(0, 0)`` when the answers are not both
        of one kind.
    """
    a, b = served.get("detections"), other.get("detections")
    if isinstance(a, list) and isinstance(b, list):
        counts = box_counts(_boxes(a), _boxes(b))
        return 1, int(counts["false_positives"] == 0 and counts["false_negatives"] == 0)
    x, y = served.get("text"), other.get("text")
    if isinstance(x, str) and isinstance(y, str):
        return 1, int(x == y)
    return 0, 0


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the vision service (``app.state.vision``); load its production versions once
    every task is built."""
    if ctx.images is None:
        raise RuntimeError("the vision task needs the image service (TaskContext.images)")
    service = VisionService(
        ctx.registry, ctx.settings, ctx.prediction_log, ctx.images, on_batch=ctx.on_batch
    )
    ctx.registry.on_alias_moved(service.alias_moved)

    async def started() -> None:
        await service.warm()

    def readiness() -> Readiness:
        status = service.status()
        return Readiness(status["ready"], status["loaded"], status["failed"])

    async def predict(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, ImageBody | VisionPredictRequest)
        return await service.predict(ref, body)

    async def render(ref: str, body: Any, media_type: str) -> tuple[bytes, dict[str, Any]]:
        assert isinstance(body, ImageBody | VisionPredictRequest)
        return await service.render(ref, body, media_type)

    return TaskRuntime(
        state={"vision": service},
        predictor=predict,
        renderer=render,
        readiness=readiness,
        started=started,
        close=service.aclose,
        preload=service.preload,
    )


def _to_request(data: bytes, media_type: str) -> ImageBody:
    if not data:
        raise InvalidInputError("the image is empty; send a JPEG, PNG or WebP image")
    return ImageBody(data, media_type)


TASK = Task(
    name=NAME,
    model_tasks=frozenset(MODEL_TASKS),
    job_types=JOB_TYPES,
    start=start,
    predict=PredictShapes(
        request=VisionPredictRequest,
        response=VisionPredictResponse,
        compare=compare_answers,
        file=FileInput(media_types=IMAGE_MEDIA_TYPES, field=IMAGE_FIELD, to_request=_to_request),
        renders=("image/png",),
    ),
)
