"""Search collections as a task (:class:`aiweb.contract.Task`): documents embedded by
the embedding task's pool, vector (HNSW or pgvector), keyword and hybrid search.

It serves no model of its own (a collection names its embedding model). Its job:
``index-documents`` (large upserts, submitted by the service itself). Its per-collection
keyword and vector tables are made at run time, outside the migrations
(:func:`~aiweb.search.store.is_derived_table`).
"""

from __future__ import annotations

import asyncio

from aiweb.contract import Task, TaskContext, TaskRuntime, tables_of
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.search import routes
from aiweb.search.jobs import JOB_TYPES
from aiweb.search.orm import SqlCollection, SqlDocument
from aiweb.search.service import SearchService
from aiweb.search.store import SearchStore, is_derived_table
from aiweb.serving.gc import tune_after_load

NAME = "search"


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the search service (``app.state.search``); start its index upkeep once
    every task is built; stop it at shutdown."""
    settings = ctx.settings
    search = SearchService(
        SearchStore(
            ctx.engine,
            pgvector_m=settings.search.pgvector_m,
            pgvector_ef_construction=settings.search.pgvector_ef_construction,
        ),
        ctx.get(EmbedderPool),
        ctx.registry,
        settings,
        ctx.jobs,
        on_query=ctx.on_batch,
        # the indexes load after start-up: keep them out of full collections too
        on_loaded=lambda: tune_after_load(settings.serving, collect=False),
    )

    ctx.provide(search)  # the assistant's help collection answers through it

    async def started() -> None:
        search.start()

    async def close() -> None:
        await asyncio.to_thread(search.close)

    return TaskRuntime(state={"search": search}, started=started, close=close)


TASK = Task(
    name=NAME,
    routers=(routes.router,),
    job_types=JOB_TYPES,
    tables=tables_of(SqlCollection, SqlDocument),
    derived_table=is_derived_table,
    start=start,
    # no erase_user: a document carries no user id (its id, text and metadata are the
    # application's), so an erasure has nothing of search's to find by user id
    erase_user=None,
)
