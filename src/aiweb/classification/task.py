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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

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
    agreement_of,
)
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import ModelNotReadyError
from aiweb.registry.entities import ModelRef
from aiweb.registry.service import RegistryService
from aiweb.serving.oip import Tensor, TensorAnswer, TensorModel, TensorSpec

NAME = "text-classification"


class TensorClassifier:
    """Text classifiers over the Open Inference Protocol (``TaskRuntime.v2``).

    One input, ``text`` (``BYTES`` ``[-1]``); three outputs aligned with it: ``label``
    (``BYTES`` ``[-1]``, the answered label), ``probabilities`` (``FP32`` ``[-1,
    n_classes]``, with the class names in its ``parameters.classes``) and ``id``
    (``BYTES`` ``[-1]``, the prediction ids, for feedback). Inference goes through the
    predict route's predictor: same limits, micro-batching, cache and prediction log.

    Args:
        registry: resolves references for the metadata.
        loader: the loaded models (readiness).
        predict: the task's predictor, ``predict(ref, PredictRequest) -> response``.
    """

    def __init__(
        self,
        registry: RegistryService,
        loader: ModelLoader,
        predict: Callable[[str, Any], Awaitable[Mapping[str, Any]]],
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.predict = predict

    async def metadata(self, ref: str) -> TensorModel:
        """The inputs and outputs of the version ``ref`` names (from the registry)."""
        version = await anyio.to_thread.run_sync(self.registry.resolve, ModelRef.parse(ref))
        classes = list(version.labels)
        return TensorModel(
            name=version.name,
            version=version.version,
            platform=f"aiweb_{NAME}",
            inputs=(TensorSpec("text", "BYTES", (-1,)),),
            outputs=(
                TensorSpec("label", "BYTES", (-1,)),
                TensorSpec("probabilities", "FP32", (-1, len(classes)), {"classes": classes}),
                TensorSpec("id", "BYTES", (-1,)),
            ),
        )

    async def ready(self, ref: str) -> bool:
        """Whether the version ``ref`` names is loaded (it is loaded now if it can be)."""
        try:
            await self.loader.get(ModelRef.parse(ref))
        except ModelNotReadyError:
            return False
        return True

    async def infer(self, ref: str, inputs: Mapping[str, Tensor]) -> TensorAnswer:
        """Classify the texts of ``inputs["text"]`` with the predict route's predictor."""
        texts = [str(t) for t in inputs["text"].data]
        answer = await self.predict(ref, PredictRequest(inputs=texts))
        predictions = answer["predictions"]
        n = len(predictions)
        classes = list(predictions[0]["scores"]) if predictions else []
        probabilities = [float(p["scores"][c]) for p in predictions for c in classes]
        return TensorAnswer(
            model=answer["model"],
            version=int(answer["version"]),
            outputs=(
                Tensor("label", "BYTES", (n,), [p["label"] for p in predictions]),
                Tensor(
                    "probabilities",
                    "FP32",
                    (n, len(classes)),
                    probabilities,
                    {"classes": classes},
                ),
                Tensor("id", "BYTES", (n,), [p["id"] for p in predictions]),
            ),
        )


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
    ctx.provide(predictions)  # the assistant's intents model answers through it
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

    async def preload(ref: str) -> None:
        await loader.get(ModelRef.parse(ref))

    return TaskRuntime(
        state={"loader": loader, "predictions": predictions, "explanations": explanations},
        predictor=predict,
        explainer=explain,
        v2=TensorClassifier(ctx.registry, loader, predict),
        readiness=readiness,
        started=started,
        close=close,
        preload=preload,
    )


TASK = Task(
    name=NAME,
    model_tasks=frozenset({NAME}),
    job_types=JOB_TYPES,
    start=start,
    predict=PredictShapes(
        request=PredictRequest, response=PredictResponse, compare=agreement_of("label")
    ),
    explain=ExplainShapes(request=ExplainRequest, response=ExplainResponse),
)
