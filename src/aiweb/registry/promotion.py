"""The promotion rule: move ``production`` to a new version only when it is at least as
good as the version serving now.

Scheduled retraining of every task decides with :func:`decide_promotion`; the task only
says how it scores its versions (the candidate's metric from its report, production's
measured on the same data, and optionally a baseline the candidate must beat). The rule:

0. a candidate whose evaluation report holds a number that is not finite (NaN,
   ±infinity; or names such numbers in ``non_finite_metrics``), or whose metric is not
   finite, is never promoted, whatever the other rules say (:func:`non_finite_metrics`);
1. with no other version in ``production`` (none yet, or the candidate already is it,
   as the first version of a model becomes): the candidate is production;
2. a candidate without the metric is not promoted;
3. with a baseline, a candidate not strictly better than the baseline is not promoted;
4. a production version that could not be scored is kept: promote by hand;
5. else the candidate is promoted when ``candidate >= production + min_delta``.

The decision is recorded in the audit log either way (``retrain.promoted`` or
``retrain.not_promoted`` on ``model:<name>``) and returned, to be stored in the job's
result.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiweb.errors import AliasNotFound
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService


@dataclass(frozen=True)
class Baseline:
    """A reference the candidate must beat strictly (rule 3).

    Attributes:
        name: what it is, for the reason (``popularity``).
        score: its value of the metric on the candidate's data (``None``: unknown, which
            the candidate cannot beat).
    """

    name: str
    score: float | None


def non_finite_metrics(report: dict[str, Any]) -> list[str]:
    """Where an evaluation report (nested dicts and lists) holds a number that is not
    finite (NaN, ±infinity), as dotted paths (``["ndcg", "algorithms.als.test.ndcg"]``),
    plus the paths a report lists in its ``non_finite_metrics`` (training stores such
    numbers as ``null``, JSON having no NaN, and names them there)."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif isinstance(value, numbers.Real) and not math.isfinite(value):  # numpy too
            found.append(path)

    walk({k: v for k, v in report.items() if k != "non_finite_metrics"}, "")
    named = report.get("non_finite_metrics")
    if isinstance(named, list):
        found.extend(str(p) for p in named if str(p) not in found)
    elif named:
        found.append("non_finite_metrics")
    return found


def non_finite_as_null(value: Any) -> Any:
    """``value`` (an evaluation report) with every number that is not finite replaced by
    ``None``: JSON has no NaN, and PostgreSQL's JSON columns refuse it."""
    if isinstance(value, dict):
        return {k: non_finite_as_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [non_finite_as_null(v) for v in value]
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        return None
    return value


def _finite(value: float | None) -> bool:
    return value is None or (isinstance(value, int | float) and math.isfinite(value))


def production_version(registry: RegistryService, name: str) -> ModelVersion | None:
    """The version ``name@production`` points at, or ``None``."""
    try:
        return registry.resolve(ModelRef(name=name, alias=PRODUCTION))
    except AliasNotFound:
        return None


def decide_promotion(
    registry: RegistryService,
    candidate: ModelVersion,
    *,
    metric: str,
    min_delta: float,
    candidate_score: float | None,
    score_production: Callable[[ModelVersion], float | None],
    unscored: str,
    actor: str,
    baseline: Baseline | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move ``production`` to ``candidate`` when the rule of the module docstring holds;
    audit the decision either way.

    Args:
        registry: where the aliases move.
        candidate: the version just trained.
        metric: the metric compared (higher is better).
        min_delta: how much better than production the candidate must be (may be < 0).
        candidate_score: the candidate's ``metric``.
        score_production: ``metric`` of the current production version on the
            candidate's data (``None`` when it cannot be scored); called only when another
            version is in production.
        unscored: the reason given when production could not be scored (rule 4).
        actor: who moves the alias and is audited.
        baseline: a reference to beat strictly (rule 3), or ``None``.
        extra: more fields for the decision (the task's rule parameters).

    Returns:
        ``{"metric", "min_delta", "candidate", "candidate_version", "production",
        "production_version", "reason", "promoted", **extra}`` (``production`` is ``None``
        when no other version was in production, or it could not be scored).
    """
    name = candidate.name
    decision: dict[str, Any] = {
        "metric": metric,
        "min_delta": min_delta,
        **(extra or {}),
        "candidate": candidate_score,
        "candidate_version": candidate.version,
        "production": None,
        "production_version": None,
    }
    current = production_version(registry, name)
    first = current is None or current.version == candidate.version
    broken = non_finite_metrics(candidate.evaluation)
    if not _finite(candidate_score):
        broken.insert(0, metric)
        decision["candidate"] = candidate_score = None  # JSON has no NaN
    if current is not None and not first and not broken:
        decision["production_version"] = current.version
        decision["production"] = score_production(current)
        if not _finite(decision["production"]):
            decision["production"] = None  # unscored (rule 4)
    elif current is not None and not first:
        decision["production_version"] = current.version
    cand, prod = candidate_score, decision["production"]
    if broken:
        holds = False
        decision["reason"] = (
            f"the candidate's evaluation has metrics that are not finite numbers "
            f"({', '.join(broken[:5])}{' …' if len(broken) > 5 else ''}): never promoted"
        )
    elif first:
        holds = True
        decision["reason"] = "no production version before: the first version is production"
    elif cand is None:
        holds = False
        decision["reason"] = f"the candidate has no {metric}"
    elif baseline is not None and (baseline.score is None or not cand > baseline.score):
        holds = False
        decision["reason"] = f"{metric} {cand:.4f} does not beat {baseline.name} ({baseline.score})"
    elif prod is None:
        holds = False
        decision["reason"] = unscored
    else:
        holds = cand >= prod + min_delta
        decision["reason"] = f"{metric} {cand:.4f} vs production {prod:.4f} + {min_delta}" + (
            f"; {baseline.name} {baseline.score:.4f}" if baseline is not None else ""
        )
    decision["promoted"] = holds
    if holds and (current is None or current.version != candidate.version):
        registry.promote(name, candidate.version, PRODUCTION, actor=actor)
    registry.record(
        actor,
        "retrain.promoted" if holds else "retrain.not_promoted",
        f"model:{name}",
        after=decision,
    )
    return decision
