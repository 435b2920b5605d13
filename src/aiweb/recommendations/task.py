"""Recommendations as a task (:class:`aiweb.contract.Task`): items, interactions, per-user
top-N and similar items (registry task ``recommendation``).

Its service (``app.state.recommendations``) resolves, loads and keeps its own model
versions and the catalogue; it warms every production version at start. Its job:
``train`` with ``"task": "recommendation"``.
"""

from __future__ import annotations

from aiweb.contract import Task, TaskContext, TaskRuntime, tables_of
from aiweb.jobs.env import JobEnv
from aiweb.recommendations import routes
from aiweb.recommendations.cache import erase_cached, make_recommendation_cache
from aiweb.recommendations.jobs import JOB_TYPES
from aiweb.recommendations.orm import SqlInteraction, SqlItem, SqlServedList
from aiweb.recommendations.rollout import QUALITY
from aiweb.recommendations.service import RecommendationService
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import TASK as NAME


async def start(ctx: TaskContext) -> TaskRuntime:
    """Build the recommendation service; warm its production models and the catalogue
    once every task is built; stop its background re-reads at shutdown."""
    settings = ctx.settings
    service = RecommendationService(
        RecommendationStore(ctx.engine),
        ctx.registry,
        settings,
        make_recommendation_cache(settings.cache, settings.redis_url),
    )
    ctx.registry.on_alias_moved(service.alias_moved)

    async def started() -> None:
        await service.warm()

    return TaskRuntime(state={"recommendations": service}, started=started, close=service.aclose)


def erase_user(env: JobEnv, user_id: str) -> dict[str, int]:
    """Erase what recommendations keep about ``user_id``: its interactions (in batches)
    and its cached recommendation lists (Redis, and this process's memory cache).

    Model versions trained before keep what they learned from the user (its factors in
    the artifact) until a model is trained again without them.

    Returns:
        ``{"interactions": n, "served_lists": n, "cached_lists": n}`` (``served_lists``:
        the lists logged for a rollout's click-through rate).
    """
    store = RecommendationStore(env.engine)
    interactions = store.delete_user(user_id)
    served = store.delete_served_lists(user_id)
    cached = erase_cached(env.settings.cache, env.settings.redis_url, user_id)
    return {"interactions": interactions, "served_lists": served, "cached_lists": cached}


TASK = Task(
    name=NAME,
    model_tasks=frozenset({NAME}),
    routers=(routes.router,),
    job_types=JOB_TYPES,
    tables=tables_of(SqlItem, SqlInteraction, SqlServedList),
    start=start,
    use_instead="GET /v1/users/{user_id}/recommendations?model={name} "
    "(and GET /v1/items/{item_id}/similar)",
    erase_user=erase_user,
    rollout_quality=QUALITY,
)
