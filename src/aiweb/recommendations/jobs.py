"""Recommendation job handler: ``train`` with ``"task": "recommendation"``.

The job trains from the items and interactions stored (as ``aiweb train recommendation``
does) and registers the version. With a promotion rule (scheduled retraining) it moves
``production`` only when the rule holds (:func:`decide_promotion`); the audit log records
the decision either way.

Safe to run again after a crash: an attempt first looks for a version an earlier attempt
of the same job registered (lineage ``job_id``) and returns it instead of training again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiweb.errors import AliasNotFound
from aiweb.jobs.runner import JobContext, handler
from aiweb.jobs.schemas import RecommendationPromotionRule, RecommendationTrainJobSpec
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import (
    EMBEDDING_CONTENT,
    TASK,
    TOP_LEVEL_METRICS,
    Progress,
    RecommendationData,
    evaluate_recipe,
    train_recommendation,
    with_item_embeddings,
)
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion

if TYPE_CHECKING:
    from aiweb.jobs.env import JobEnv


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
    """Move ``production`` to ``candidate`` when ``rule`` holds; audit either way.

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
    name = candidate.name
    metric = rule.metric
    baseline = report.get("algorithms", {}).get("popularity", {}).get("test", {})
    decision: dict[str, Any] = {
        "metric": metric,
        "min_delta": rule.min_delta,
        "beat_popularity": rule.beat_popularity,
        "candidate": report.get(metric),
        "candidate_version": candidate.version,
        "popularity": baseline.get(metric),
        "production": None,
        "production_version": None,
    }
    try:
        current: ModelVersion | None = env.registry.resolve(ModelRef(name=name, alias=PRODUCTION))
    except AliasNotFound:
        current = None
    recipe = current.lineage.get("components") if current is not None else None
    if current is not None and current.version != candidate.version:
        decision["production_version"] = current.version
        if current.task == TASK and recipe:
            if any(c.get("algorithm") == EMBEDDING_CONTENT for c in recipe):
                data = with_item_embeddings(
                    env.registry, data, EMBEDDING_CONTENT, progress=progress
                )
            decision["production"] = evaluate_recipe(data, recipe, progress=progress)[metric]
    cand, prod, pop = decision["candidate"], decision["production"], decision["popularity"]
    if current is None or current.version == candidate.version:
        holds = True
        decision["reason"] = "no production version before: the first version is production"
    elif cand is None:
        holds = False
        decision["reason"] = f"the candidate has no {metric}"
    elif rule.beat_popularity and (pop is None or not cand > pop):
        holds = False
        decision["reason"] = f"{metric} {cand:.4f} does not beat popularity ({pop})"
    elif prod is None:
        holds = False
        decision["reason"] = "the production version has no recipe to compare; promote by hand"
    else:
        holds = cand >= prod + rule.min_delta
        decision["reason"] = f"{metric} {cand:.4f} vs production {prod:.4f} + {rule.min_delta}" + (
            f"; popularity {pop:.4f}" if rule.beat_popularity else ""
        )
    decision["promoted"] = holds
    if holds and current is not None and current.version != candidate.version:
        env.registry.promote(name, candidate.version, PRODUCTION, actor=actor)
    env.registry.record(
        actor,
        "retrain.promoted" if holds else "retrain.not_promoted",
        f"model:{name}",
        after=decision,
    )
    return decision


@handler("train", task=TASK)
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
        # embedded once here, for training and for the promotion check's refit
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
        if spec.promotion is not None:
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
    }
    if promotion is not None:
        out["promotion"] = promotion
    return out
