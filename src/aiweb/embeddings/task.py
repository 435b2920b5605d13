"""Sentence embeddings as a task (:class:`aiweb.contract.Task`): ``POST
/v1/models/{name}/embed`` on all-MiniLM-L6-v2 exported to ONNX (registry task
``feature-extraction``).

It is listed first: its process-wide :class:`~aiweb.embeddings.runtime.EmbedderPool`
(``app.state.embedders``) is provided to the tasks after it — every model and collection
that embeds its inputs does so through it, so each embedding model version is loaded
once per process.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio.to_thread

from aiweb.config import Settings
from aiweb.contract import Task, TaskContext, TaskRuntime
from aiweb.embeddings import routes
from aiweb.embeddings.install import EMBEDDING_TASK
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import InvalidInputError, ModelNotReadyError, PayloadTooLargeError
from aiweb.serving.oip import Tensor, TensorAnswer, TensorModel, TensorSpec


class TensorEmbedder:
    """Sentence embedders over the Open Inference Protocol (``TaskRuntime.v2``).

    One input, ``text`` (``BYTES`` ``[-1]``); two outputs aligned with it: ``embedding``
    (``FP32`` ``[-1, dim]``, 384 for all-MiniLM-L6-v2, rows L2-normalised) and
    ``truncated`` (``BOOL`` ``[-1]``: the text was cut at the model's token limit).
    Inference goes through the pool the embed route uses (same limits, micro-batching).

    Args:
        pool: the embedder pool.
        settings: the limits (``embeddings.max_inputs``, ``serving.max_text_chars``).
    """

    def __init__(self, pool: EmbedderPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def metadata(self, ref: str) -> TensorModel:
        """The inputs and outputs of the version ``ref`` names (from the registry)."""
        version = await anyio.to_thread.run_sync(self.pool.resolve, ref)
        dim = int(version.signature.get("dim", 384))
        return TensorModel(
            name=version.name,
            version=version.version,
            platform=f"aiweb_{EMBEDDING_TASK}",
            inputs=(TensorSpec("text", "BYTES", (-1,)),),
            outputs=(
                TensorSpec("embedding", "FP32", (-1, dim)),
                TensorSpec("truncated", "BOOL", (-1,)),
            ),
        )

    async def ready(self, ref: str) -> bool:
        """Whether the version ``ref`` names is loaded (it is loaded now if it can be)."""
        version = await anyio.to_thread.run_sync(self.pool.resolve, ref)
        try:
            await anyio.to_thread.run_sync(self.pool.get, version)
        except ModelNotReadyError:
            return False
        return True

    async def infer(self, ref: str, inputs: Mapping[str, Tensor]) -> TensorAnswer:
        """Embed the texts of ``inputs["text"]``, with the embed route's limits."""
        texts = [str(t) for t in inputs["text"].data]
        limit = self.settings.embeddings.max_inputs
        if len(texts) > limit:
            raise PayloadTooLargeError(
                f"{len(texts)} inputs in one request; the limit is {limit} "
                "(AIWEB_EMBEDDINGS__MAX_INPUTS)"
            )
        max_chars = self.settings.serving.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > max_chars:
                raise InvalidInputError(
                    f"text[{i}] has {len(text)} characters; the limit is {max_chars} "
                    "(AIWEB_SERVING__MAX_TEXT_CHARS)"
                )
        version, result = await self.pool.embed(ref, texts)
        n, dim = (int(d) for d in result.vectors.shape)
        return TensorAnswer(
            model=version.name,
            version=version.version,
            outputs=(
                Tensor("embedding", "FP32", (n, dim), result.vectors.reshape(-1).tolist()),
                Tensor("truncated", "BOOL", (n,), [bool(t) for t in result.truncated]),
            ),
        )


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the embedder pool, offer it to the later tasks, close it at shutdown."""
    embedders = EmbedderPool(
        ctx.registry,
        ctx.settings.embeddings,
        on_batch=ctx.on_batch,
        refresh_s=ctx.settings.serving.alias_refresh_s,
    )
    ctx.provide(embedders)
    return TaskRuntime(
        state={"embedders": embedders},
        close=embedders.aclose,
        v2=TensorEmbedder(embedders, ctx.settings),
    )


TASK = Task(
    name=EMBEDDING_TASK,
    model_tasks=frozenset({EMBEDDING_TASK}),
    routers=(routes.router,),
    start=start,
    use_instead="POST /v1/models/{name}/embed",
)
