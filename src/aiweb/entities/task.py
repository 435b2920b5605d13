"""Token classification as a task (:class:`aiweb.contract.Task`): entity and skill
extraction from text.

Its models (registry task ``token-classification``) answer the predict route with the
entities of each text, as character offsets (:mod:`aiweb.entities.schemas`); their
versions are held by :class:`~aiweb.entities.service.EntityService`
(``app.state.entities``), which loads every production version once all tasks are built
and counts towards ``/readyz``. Its job: ``train`` with ``"task": "token-classification"``
(:mod:`aiweb.entities.jobs`). A rollout compares two versions' answers by
:func:`compare_entities`. Feedback on a prediction may be the corrected entity list; its
label is :func:`~aiweb.entities.service.text_label` of that list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiweb.contract import PredictShapes, Readiness, Task, TaskContext, TaskRuntime
from aiweb.entities.data import TASK as MODEL_TASK
from aiweb.entities.jobs import JOB_TYPES
from aiweb.entities.routes import router as screening_router
from aiweb.entities.schemas import EntitiesPredictRequest, EntitiesPredictResponse
from aiweb.entities.service import EntityService, text_label

__all__ = ["TASK", "compare_entities", "start"]

NAME = MODEL_TASK


def _entity_set(output: Mapping[str, Any]) -> frozenset[tuple[Any, Any, Any]] | None:
    """The ``(start, end, label)`` set of one prediction, or ``None`` when it has no
    list of entities (not comparable)."""
    entities = output.get("entities")
    if not isinstance(entities, list):
        return None
    return frozenset(
        (e.get("start"), e.get("end"), e.get("label")) for e in entities if isinstance(e, Mapping)
    )


def compare_entities(served: Mapping[str, Any], other: Mapping[str, Any]) -> tuple[int, int]:
    """Whether two versions' answers to the same body agree, input by input (a
    rollout's agreement gate; :data:`aiweb.rollout.router.Compare`).

    An input is compared when both answers have its prediction with a list of entities
    (aligned by index), and agrees when both found the same set of ``(start, end,
    label)``: the same spans with the same types, exactly (a span one character
    shorter, or of another type, is a disagreement; two empty sets agree).

    Returns:
        ``(compared, agreed)``: how many inputs were compared and how many agreed.
    """
    a, b = served.get("predictions"), other.get("predictions")
    if not isinstance(a, list) or not isinstance(b, list):
        return 0, 0
    compared = agreed = 0
    for x, y in zip(a, b, strict=False):
        if not isinstance(x, Mapping) or not isinstance(y, Mapping):
            continue
        left, right = _entity_set(x), _entity_set(y)
        if left is None or right is None:
            continue
        compared += 1
        agreed += left == right
    return compared, agreed


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the entity service (``app.state.entities``); load its production versions
    once every task is built; stop its batchers at shutdown."""
    service = EntityService(ctx.registry, ctx.settings, ctx.prediction_log, on_batch=ctx.on_batch)
    ctx.registry.on_alias_moved(service.alias_moved)
    ctx.provide(service)  # the assistant's entities: slots are filled through it

    async def started() -> None:
        await service.warm()

    def readiness() -> Readiness:
        status = service.status()
        return Readiness(status["ready"], status["loaded"], status["failed"])

    async def predict(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, EntitiesPredictRequest)
        return await service.predict(ref, body.inputs)

    return TaskRuntime(
        state={"entities": service},
        predictor=predict,
        readiness=readiness,
        started=started,
        close=service.aclose,
        preload=service.preload,
    )


TASK = Task(
    name=NAME,
    model_tasks=frozenset({MODEL_TASK}),
    routers=(screening_router,),
    job_types=JOB_TYPES,
    start=start,
    predict=PredictShapes(
        request=EntitiesPredictRequest,
        response=EntitiesPredictResponse,
        compare=compare_entities,
    ),
    span_label=text_label,
)
