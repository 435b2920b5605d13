"""Text classification as a task (:class:`aiweb.contract.Task`): sentiment, spam, intent.

Its models (registry task ``text-classification``) answer the predict route and the
explain route (:mod:`aiweb.classification.explain`); their
versions are loaded, warmed and swapped by :class:`~aiweb.classification.loader.ModelLoader`,
and count towards ``/readyz``. Its jobs: ``train`` (the default ``task``) and
``batch-predict``. Classifiers on sentence-embedding features take their embedder from
the embedding task's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiweb.classification.explain import ExplanationService
from aiweb.classification.jobs import JOB_TYPES
from aiweb.classification.loader import ModelLoader
from aiweb.classification.schemas import (
    ExplainRequest,
    ExplainResponse,
    PredictRequest,
    PredictResponse,
)
from aiweb.classification.service import PredictionService
from aiweb.contract import (
    ExplainShapes,
    PredictShapes,
    Readiness,
    Task,
    TaskContext,
    TaskRuntime,
)
from aiweb.embeddings.runtime import EmbedderPool

NAME = "text-classification"


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the model loader, the prediction service and the explanation service
    (``app.state.loader``, ``app.state.predictions``, ``app.state.explanations``); load
    and warm every aliased version once all tasks are built, then re-read the aliases
    every ``serving.alias_refresh_s``."""
    settings = ctx.settings
    loader = ModelLoader(
        ctx.registry, settings.serving, on_batch=ctx.on_batch, embedders=ctx.get(EmbedderPool)
    )
    predictions = PredictionService(loader, ctx.prediction_log, settings, ctx.prediction_cache)
    explanations = ExplanationService(loader, settings)
    refresher: asyncio.Task[None] | None = None

    async def alias_moved(name: str) -> None:
        await loader.refresh()  # the new target is loaded and warm before the answer
        await loader.drop_missing(name)  # a deleted version or model is not served

    ctx.registry.on_alias_moved(alias_moved)

    async def started() -> None:
        nonlocal refresher
        await loader.refresh()
        refresher = asyncio.create_task(loader.refresh_forever(settings.serving.alias_refresh_s))

    async def close() -> None:
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await loader.aclose()

    def readiness() -> Readiness:
        status = loader.status()
        return Readiness(status["ready"], status["loaded"], status["failed"])

    async def predict(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, PredictRequest)
        return await predictions.predict(ref, body.inputs)

    async def explain(ref: str, body: Any) -> dict[str, Any]:
        assert isinstance(body, ExplainRequest)
        return await explanations.explain(ref, body)

    return TaskRuntime(
        state={"loader": loader, "predictions": predictions, "explanations": explanations},
        predictor=predict,
        explainer=explain,
        readiness=readiness,
        started=started,
        close=close,
    )


TASK = Task(
    name=NAME,
    model_tasks=frozenset({NAME}),
    job_types=JOB_TYPES,
    start=start,
    predict=PredictShapes(request=PredictRequest, response=PredictResponse),
    explain=ExplainShapes(request=ExplainRequest, response=ExplainResponse),
)
