"""Recommendation jobs: ``train`` with ``"task": "recommendation"``: its check at submit
and its handler (:data:`JOB_TYPES`).

The job trains from the items and interactions stored (as ``aiweb train recommendation``
does) and registers the version. With a promotion rule (scheduled retraining) it moves
``production`` only when the rule holds (:func:`decide_promotion`); the audit log records
the decision either way. A version trained on too little data to be evaluated is
registered but never promoted by a rule, nor made ``production`` as a model's first
version: only an explicit ``alias`` moves it.

Safe to run again after a crash: an attempt first looks for a version an earlier attempt
of the same job registered (lineage ``job_id``) and returns it instead of training again.
"""

from __future__ import annotations

from typing import Any

from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import ConflictError, EmbeddingModelNotInstalled, InvalidInputError, ModelNotFound
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext, JobType
from aiweb.recommendations import algorithms as algos
from aiweb.recommendations.schemas import (
    RecommendationPromotionRule,
    RecommendationScheduleIn,
    RecommendationTrainJobSpec,
)
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import (
    EMBEDDING_CONTENT,
    TASK,
    TOP_LEVEL_METRICS,
    Progress,
    RecommendationData,
    evaluate_recipe,
    not_evaluated_reason,
    train_recommendation,
    with_item_embeddings,
)
from aiweb.registry.entities import ModelVersion
from aiweb.registry.promotion import Baseline, production_version
from aiweb.registry.promotion import decide_promotion as decide_by_rule


def check_train(ctx: CheckContext, spec: RecommendationTrainJobSpec) -> dict[str, Any]:
    """Check a recommender's training spec and return the parameters to store: known
    algorithms in ``params`` with valid parameters, no model ``spec.model`` of another
    task, and an installed embedding model when the algorithm needs one
    (``content-minilm``; resolved, not loaded).

    Raises:
        InvalidInputError: an unknown algorithm or parameter (422).
        ConflictError: a model of that name exists with another task (409).
        EmbeddingModelNotInstalled: ``content-minilm`` without the sentence-embedding
            model (404).
    """
    for name, values in spec.params.items():
        algos.make(name, values)  # InvalidInputError for an unknown name or parameter
    try:
        existing = ctx.registry.get_model(spec.model)
    except ModelNotFound:
        pass
    else:
        if existing.task != TASK:
            raise ConflictError(
                f"model {spec.model!r} exists with task {existing.task!r}, not {TASK!r}; "
                "choose another name"
            )
    if spec.algorithm == EMBEDDING_CONTENT:
        try:
            EmbedderPool(ctx.registry).resolve(None)  # as training finds it (with_item_embeddings)
        except EmbeddingModelNotInstalled as exc:
            raise EmbeddingModelNotInstalled(
                f"algorithm {EMBEDDING_CONTENT!r} needs the sentence-embedding model: {exc.detail}"
            ) from None
    return spec.model_dump(exclude={"type"}, exclude_none=True)


def decide_promotion(
    env: JobEnv,
    candidate: ModelVersion,
    report: dict[str, Any],
    data: RecommendationData,
    rule: RecommendationPromotionRule,
    *,
    actor: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Move ``production`` to ``candidate`` when ``rule`` holds; audit either way
    (:func:`aiweb.registry.promotion.decide_promotion`, with the popularity baseline to
    beat when ``rule.beat_popularity``).

    ``candidate``'s test metrics come from its report; the current production version's
    recipe (lineage ``components``) is refitted and scored on the same split of ``data``
    (:func:`~aiweb.recommendations.training.evaluate_recipe`); the popularity baseline is
    the one in ``candidate``'s report, on that split too.

    Returns:
        ``{"metric", "min_delta", "beat_popularity", "candidate", "candidate_version",
        "popularity", "production", "production_version", "reason", "promoted"}``
        (``production`` is ``None`` when there was no other production version, or it has
        no recipe to refit).
    """
    metric = rule.metric
    popularity = report.get("algorithms", {}).get("popularity", {}).get("test", {}).get(metric)

    def score_production(current: ModelVersion) -> float | None:
        recipe = current.lineage.get("components")
        if current.task != TASK or not recipe:
            return None
        refit = data
        if any(c.get("algorithm") == EMBEDDING_CONTENT for c in recipe):
            refit = with_item_embeddings(env.registry, data, EMBEDDING_CONTENT, progress=progress)
        try:
            return evaluate_recipe(refit, recipe, progress=progress)[metric]
        except InvalidInputError:  # e.g. parameters outside today's ranges: rule 4
            return None

    return decide_by_rule(
        env.registry,
        candidate,
        metric=metric,
        min_delta=rule.min_delta,
        candidate_score=report.get(metric),
        score_production=score_production,
        unscored="the production version has no recipe that can be refitted to compare; "
        "promote by hand",
        actor=actor,
        baseline=Baseline("popularity", popularity) if rule.beat_popularity else None,
        extra={"beat_popularity": rule.beat_popularity, "popularity": popularity},
    )


def not_promoted_unevaluated(
    env: JobEnv,
    candidate: ModelVersion,
    report: dict[str, Any],
    rule: RecommendationPromotionRule,
    *,
    actor: str,
) -> dict[str, Any]:
    """The decision of a promotion rule on a version that was not evaluated: never
    promoted (there is no metric to judge it by), audited as ``retrain.not_promoted``.

    Returns:
        The fields of :func:`decide_promotion`'s decision, ``"promoted": false``.
    """
    current = production_version(env.registry, candidate.name)
    decision: dict[str, Any] = {
        "metric": rule.metric,
        "min_delta": rule.min_delta,
        "beat_popularity": rule.beat_popularity,
        "popularity": None,
        "candidate": None,
        "candidate_version": candidate.version,
        "production": None,
        "production_version": None if current is None else current.version,
        "reason": f"{report.get('reason') or 'not evaluated'}; a version that was not "
        "evaluated is promoted only by hand",
        "promoted": False,
    }
    env.registry.record(actor, "retrain.not_promoted", f"model:{candidate.name}", after=decision)
    return decision


def run_train(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Train a recommender from the stored interactions and register the version."""
    spec = RecommendationTrainJobSpec.model_validate({**ctx.job.params, "type": "train"})
    actor = ctx.job.submitted_by or f"job:{ctx.job.id}"
    promotion: dict[str, Any] | None = None
    done = env.version_of_job(spec.model, ctx.job.id)
    if done is not None:  # an earlier attempt registered it, then died
        version, report = done, done.evaluation
    else:
        ctx.progress(0.0, "loading interactions")
        data = RecommendationData.from_store(RecommendationStore(env.engine))
        inter = data.interactions
        ctx.progress(
            0.05,
            f"loaded {len(inter):,} interactions of {inter.n_users:,} users on "
            f"{inter.n_items:,} items",
        )
        # embedded once here, for training and for the promotion check's refit (not when
        # too little data to evaluate: auto then trains popularity, which needs none)
        if not_evaluated_reason(inter) is None or spec.algorithm == EMBEDDING_CONTENT:
            data = with_item_embeddings(env.registry, data, spec.algorithm)
        share = 0.8 if spec.promotion else 0.9
        result = train_recommendation(
            env.registry,
            spec.model,
            data,
            algorithm=spec.algorithm,
            params=spec.params,
            alias=None if spec.promotion else spec.alias,
            actor=actor,
            progress=lambda stage, f: ctx.progress(0.05 + share * f, stage),
            lineage_extra={"job_id": ctx.job.id},
        )
        version, report = result.version, result.report
        if spec.promotion is not None and not result.evaluated:
            promotion = not_promoted_unevaluated(env, version, report, spec.promotion, actor=actor)
        elif spec.promotion is not None:
            ctx.progress(0.85, "comparing with production")
            promotion = decide_promotion(
                env,
                version,
                report,
                data,
                spec.promotion,
                actor=actor,
                progress=lambda stage, f: ctx.progress(0.85 + 0.14 * f, f"production: {stage}"),
            )
    out: dict[str, Any] = {
        "model": version.name,
        "version": version.version,
        "task": TASK,
        "selected": report.get("selected"),
        "metrics": {
            m: report[m] for m in (*TOP_LEVEL_METRICS, "coverage") if report.get(m) is not None
        },
        "split": report.get("split"),
        "evaluated": report.get("evaluated") is not False,
        "aliases": list(env.registry.get_version(version.name, version.version).aliases),
    }
    if report.get("evaluated") is False:
        out["reason"] = report.get("reason")
    if promotion is not None:
        out["promotion"] = promotion
    return out


#: the jobs of recommendations
JOB_TYPES: tuple[JobType, ...] = (
    JobType(
        "train",
        run_train,
        spec=RecommendationTrainJobSpec,
        check=check_train,
        task=TASK,
        schedule=RecommendationScheduleIn,
    ),
)
