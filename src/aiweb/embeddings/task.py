"""Sentence embeddings as a task (:class:`aiweb.contract.Task`): ``POST
/v1/models/{name}/embed`` on all-MiniLM-L6-v2 exported to ONNX (registry task
``feature-extraction``).

It is listed first: its process-wide :class:`~aiweb.embeddings.runtime.EmbedderPool`
(``app.state.embedders``) is provided to the tasks after it — classifiers on MiniLM
features and search collections embed through it, so each embedding model version is
loaded once per process.
"""

from __future__ import annotations

from aiweb.contract import Task, TaskContext, TaskRuntime
from aiweb.embeddings import routes
from aiweb.embeddings.install import EMBEDDING_TASK
from aiweb.embeddings.runtime import EmbedderPool


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the embedder pool, offer it to the later tasks, close it at shutdown."""
    embedders = EmbedderPool(
        ctx.registry,
        ctx.settings.embeddings,
        on_batch=ctx.on_batch,
        refresh_s=ctx.settings.serving.alias_refresh_s,
    )
    ctx.provide(embedders)
    return TaskRuntime(state={"embedders": embedders}, close=embedders.aclose)


TASK = Task(
    name=EMBEDDING_TASK,
    model_tasks=frozenset({EMBEDDING_TASK}),
    routers=(routes.router,),
    start=start,
    use_instead="POST /v1/models/{name}/embed",
)
