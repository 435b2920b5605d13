"""Tabular models as a task (:class:`aiweb.contract.Task`): classification (fraud, credit
risk, churn), regression (prices) and anomaly scores over rows of named columns.

Its models (registry tasks ``tabular-classification``, ``tabular-regression`` and
``anomaly-detection``) answer the predict route with JSON rows and the explain route
with per-column contributions (:mod:`aiweb.tabular.explain`); their versions are held by
:class:`~aiweb.tabular.service.TabularService` (``app.state.tabular``), which loads every
production version once all tasks are built and counts towards ``/readyz``. Its jobs:
``train`` and ``batch-predict``, with ``"task"`` one of the three (:mod:`aiweb.tabular.jobs`).
"""

from __future__ import annotations

from typing import Any

from aiweb.contract import (
    ExplainShapes,
    PredictShapes,
    Readiness,
    Task,
    TaskContext,
    TaskRuntime,
    agreement_of,
)
from aiweb.tabular.jobs import JOB_TYPES
from aiweb.tabular.schemas import (
    TASKS,
    TabularExplainRequest,
    TabularExplainResponse,
    TabularPredictRequest,
    TabularPredictResponse,
)
from aiweb.tabular.service import TabularService

NAME = "tabular"


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the tabular service (``app.state.tabular``); load its production versions
    once every task is built; stop its batchers at shutdown."""
    service = TabularService(
        ctx.registry,
        ctx.settings,
        ctx.prediction_log,
        ctx.prediction_cache,
        on_batch=ctx.on_batch,
    )
    ctx.registry.on_alias_moved(service.alias_moved)

    async def started() -> None:
        await service.warm()

    def readiness() -> Readiness:
        status = service.status()
        return Readiness(status["ready"], status["loaded"], status["failed"])

    async def predict(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, TabularPredictRequest)
        return await service.predict(ref, body.inputs)

    async def explain(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, TabularExplainRequest)
        return await service.explain(ref, body.inputs, target=body.target, top_k=body.top_k)

    return TaskRuntime(
        state={"tabular": service},
        predictor=predict,
        explainer=explain,
        readiness=readiness,
        started=started,
        close=service.aclose,
        preload=service.preload,
    )


TASK = Task(
    name=NAME,
    model_tasks=frozenset(TASKS),
    job_types=JOB_TYPES,
    start=start,
    predict=PredictShapes(
        request=TabularPredictRequest,
        response=TabularPredictResponse,
        # classes by label, anomaly detectors by flag; regressions are not compared
        compare=agreement_of("label", "anomaly"),
    ),
    explain=ExplainShapes(request=TabularExplainRequest, response=TabularExplainResponse),
)
