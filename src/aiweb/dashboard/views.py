"""What the dashboard pages show, computed from the services and the metrics.

Plain functions returning plain dicts, so they are tested without a browser; they read
no table themselves. Traffic and latency per model come from the prediction log
(:class:`aiweb.monitoring.stats.PredictionStats`, durable, the same for every worker);
HTTP totals and error rates from the Prometheus metrics of the running server
(:func:`aiweb.monitoring.metrics.render`, all workers in multiprocess mode).

Quantiles of a Prometheus histogram are estimated as ``histogram_quantile`` does
(linear interpolation inside the bucket that holds the rank; Prometheus documentation,
"Histograms and summaries").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from aiweb.classification.explain import words_of
from aiweb.errors import ConflictError, NotFoundError
from aiweb.monitoring.drift import MIN_SAMPLES, DriftService
from aiweb.monitoring.feedback import FeedbackService
from aiweb.monitoring.metrics import render
from aiweb.monitoring.stats import PredictionStats
from aiweb.registry.entities import PRODUCTION, ModelVersion, RegisteredModel
from aiweb.registry.service import RegistryService

HEAT_LEVELS = 10
"""Colour steps of the confusion-matrix heatmap (CSS classes ``heat-0`` … ``heat-9``)."""


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, as Prometheus estimates it.

    Args:
        q: quantile in [0, 1].
        buckets: ``(upper_bound, cumulative_count)`` sorted by bound, ending with ``+Inf``.

    Returns:
        The estimate in the buckets' unit, or ``None`` when the histogram is empty. A
        rank in the ``+Inf`` bucket answers the highest finite bound.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def http_summary(text: str | None = None) -> dict[str, Any]:
    """Requests, error rate and latency quantiles of the API since the server started.

    Args:
        text: Prometheus exposition text; the running server's metrics when ``None``.

    Returns:
        ``{"requests": int, "errors": int, "error_rate": float | None, "p50_ms",
        "p95_ms": float | None, "routes": [{"route", "requests", "errors", "p50_ms",
        "p95_ms"}]}`` over the ``/v1`` routes, busiest route first.
    """
    if text is None:
        text = render()[0].decode()
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.name == "aiweb_http_requests":
            for sample in family.samples:
                route = sample.labels.get("route", "")
                if not route.startswith("/v1") or not sample.name.endswith("_total"):
                    continue
                requests[route] += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors[route] += sample.value
        elif family.name == "aiweb_http_request_duration_seconds":
            for sample in family.samples:
                route = sample.labels.get("route", "")
                if sample.name.endswith("_bucket") and route.startswith("/v1"):
                    buckets[route][float(sample.labels["le"])] += sample.value
    routes = []
    merged: dict[float, float] = defaultdict(float)
    for route, count in sorted(requests.items(), key=lambda kv: -kv[1]):
        hist = sorted(buckets.get(route, {}).items())
        for bound, c in hist:
            merged[bound] += c
        routes.append(
            {
                "route": route,
                "requests": int(count),
                "errors": int(errors.get(route, 0)),
                "p50_ms": _ms(histogram_quantile(0.5, hist)),
                "p95_ms": _ms(histogram_quantile(0.95, hist)),
            }
        )
    total = int(sum(requests.values()))
    errs = int(sum(errors.values()))
    all_buckets = sorted(merged.items())
    return {
        "requests": total,
        "errors": errs,
        "error_rate": errs / total if total else None,
        "p50_ms": _ms(histogram_quantile(0.5, all_buckets)),
        "p95_ms": _ms(histogram_quantile(0.95, all_buckets)),
        "routes": routes,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def drift_status(drift: DriftService, name: str, window: str = "24h") -> dict[str, Any]:
    """The drift check of ``name``'s production version, for a badge.

    Returns:
        ``{"state": "drift" | "ok" | "few" | "none", "n", "features", "window",
        "version"}`` — ``few`` when the window has too few predictions to judge,
        ``none`` when the version has no reference profile or no production alias.
    """
    try:
        result = drift.drift(name, window)
    except (ConflictError, NotFoundError) as exc:
        return {"state": "none", "n": 0, "features": [], "window": window, "why": exc.detail}
    state = "drift" if result["drift"] else ("ok" if result["n"] >= MIN_SAMPLES else "few")
    return {**result, "state": state}


def heatmap(confusion: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a confusion matrix with each cell's share of its row and colour step.

    Args:
        confusion: ``{"labels": [str], "matrix": [[int]]}`` (rows: true label).

    Returns:
        ``[{"label", "total", "cells": [{"count", "share", "heat"}]}]`` where ``heat``
        is ``0`` … ``HEAT_LEVELS - 1``.
    """
    rows = []
    labels, matrix = confusion.get("labels", []), confusion.get("matrix", [])
    for label, counts in zip(labels, matrix, strict=False):
        total = sum(counts)
        cells = []
        for count in counts:
            share = count / total if total else 0.0
            cells.append(
                {
                    "count": count,
                    "share": share,
                    "heat": min(HEAT_LEVELS - 1, int(share * HEAT_LEVELS)),
                }
            )
        rows.append({"label": label, "total": total, "cells": cells})
    return rows


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}}`` → ``[("a.b", "1")]``, for showing lineage as a table."""
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, f"{path}."))
        elif isinstance(value, list):
            out.append((path, ", ".join(str(v) for v in value)))
        else:
            out.append((path, "" if value is None else str(value)))
    return out


def model_rows(
    registry: RegistryService, drift: DriftService, stats: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per registered model for the overview and the models page."""
    rows = []
    for model in registry.list_models():
        production = model.aliases.get(PRODUCTION)
        traffic_ = stats["models"].get(model.name, {})
        rows.append(
            {
                "model": model,
                "production": production,
                "n": traffic_.get("n", 0),
                "p50_ms": traffic_.get("p50_ms"),
                "p95_ms": traffic_.get("p95_ms"),
                "drift": drift_status(drift, model.name) if production else {"state": "none"},
            }
        )
    return rows


def model_detail(
    registry: RegistryService,
    drift: DriftService,
    feedback: FeedbackService,
    prediction_stats: PredictionStats,
    name: str,
) -> dict[str, Any]:
    """Everything the page of one model shows.

    Raises:
        ModelNotFound.
    """
    model: RegisteredModel = registry.get_model(name)
    versions = sorted(registry.list_versions(name), key=lambda v: -v.version)
    history = {
        alias: list(reversed(registry.store.alias_history(name, alias)))[:20]
        for alias in sorted(model.aliases)
    }
    production = model.aliases.get(PRODUCTION)
    performance = feedback.performance(name, production) if production else None
    series = prediction_stats.accuracy_series(name, production) if production else None
    return {
        "model": model,
        "versions": versions,
        "history": history,
        "production": production,
        "drift": drift_status(drift, name) if production else {"state": "none"},
        "performance": performance,
        "accuracy_series": series,
    }


def version_detail(registry: RegistryService, name: str, number: int) -> dict[str, Any]:
    """The report of one version: metrics, confusion heatmap, lineage.

    Raises:
        ModelNotFound, ModelVersionNotFound.
    """
    version: ModelVersion = registry.get_version(name, number)
    evaluation = version.evaluation or {}
    confusion = evaluation.get("confusion_matrix") or {}
    return {
        "version": version,
        "evaluation": evaluation,
        "heatmap": heatmap(confusion),
        "confusion_labels": confusion.get("labels", []),
        "per_class": evaluation.get("per_class", {}),
        "lineage": flatten(version.lineage or {}),
        "onnx": evaluation.get("onnx"),
        "algorithms": algorithm_rows(evaluation),
    }


def servable(models: Iterable[RegisteredModel], tasks: Iterable[str]) -> list[RegisteredModel]:
    """The ``models`` of ``tasks`` that have a production version (for the playground)."""
    wanted = set(tasks)
    return [m for m in models if m.task in wanted and PRODUCTION in m.aliases]


def algorithm_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """A recommendation version's offline comparison, one row per algorithm, best NDCG
    first: ``[{"name", "selected", "ndcg", "recall", "precision", "map", "hit_rate",
    "coverage", "fit_seconds"}]`` (test split, at ``evaluation["k"]``)."""
    rows = []
    for name, result in (evaluation.get("algorithms") or {}).items():
        test = result.get("test") or {}
        rows.append(
            {
                "name": name,
                "selected": name == evaluation.get("selected"),
                **{m: test.get(m) for m in ("ndcg", "recall", "precision", "map", "hit_rate")},
                "coverage": test.get("coverage"),
                "fit_seconds": result.get("fit_seconds"),
            }
        )
    return sorted(rows, key=lambda r: -(r["ndcg"] or 0.0))


TINT_LEVELS = 4
"""Tint steps of a word in the playground's explanation (CSS classes ``tint-pos-1`` …
``tint-pos-4`` towards the target, ``tint-neg-1`` … ``tint-neg-4`` against it)."""
BAR_STEPS = 20
"""Width steps of a contribution bar (CSS classes ``w-1`` … ``w-20``, 5% each)."""
TOP_BARS = 10
"""Contributions drawn as bars in the playground (the text shows every word's tint)."""


def _step(value: float, largest: float, steps: int) -> int:
    """``value`` (>= 0) as a step ``1`` … ``steps`` of ``largest`` (0 when it is 0)."""
    if value <= 0.0 or largest <= 0.0:
        return 0
    return max(1, min(steps, math.ceil(steps * value / largest - 1e-9)))


def explanation_view(text: str, explanation: dict[str, Any], top: int = TOP_BARS) -> dict[str, Any]:
    """One text's explanation (an item of the explain route's ``explanations``, asked
    with ``top_k: 0`` so that every weighted word is there) as the playground shows it.

    Args:
        text: the explained text, as sent.
        explanation: ``{"label", "scores", "target", "method", "exact", "base_value",
            "contributions": [{"feature", "start", "end", "weight"}], "omitted",
            "logit", "skipped_words", "out_of_scope"}``.
        top: contributions drawn as bars.

    Returns:
        ``{"segments": [{"text", "weight", "tint", "title"}], "bars": [{"feature",
        "weight", "sign", "width"}], "target", "label", "method", "exact", "base_value",
        "logit", "omitted", "skipped_words", "out_of_scope", "labels", "weighted",
        "words"}`` (``weighted``: words with a weight; ``words``: words of the text).
        ``segments`` cover the whole text in order (a word with a weight
        carries its tint class ``tint-pos-N``/``tint-neg-N``, N from 1 to
        :data:`TINT_LEVELS` by its share of the largest ``|weight|``; the text between
        words has no weight); ``bars`` are the ``top`` largest ``|weight|`` with their
        width class ``w-N`` (N from 1 to :data:`BAR_STEPS`). CSS classes, never inline
        styles (the dashboard's CSP has ``style-src 'self'``).
    """
    contributions = [
        c
        for c in explanation.get("contributions", [])
        if isinstance(c.get("start"), int) and isinstance(c.get("end"), int)
    ]
    largest = max((abs(c["weight"]) for c in contributions), default=0.0)
    segments: list[dict[str, Any]] = []
    at = 0
    for c in sorted(contributions, key=lambda c: c["start"]):
        start, end, weight = c["start"], c["end"], float(c["weight"])
        if start < at or end > len(text):  # never for the explainers' answers
            continue
        if start > at:
            segments.append({"text": text[at:start], "weight": None, "tint": "", "title": ""})
        level = _step(abs(weight), largest, TINT_LEVELS)
        side = "pos" if weight > 0 else "neg"
        segments.append(
            {
                "text": text[start:end],
                "weight": weight,
                "tint": f"tint-{side}-{level}" if level else "",
                "title": f"{weight:+.3f}",
            }
        )
        at = end
    if at < len(text):
        segments.append({"text": text[at:], "weight": None, "tint": "", "title": ""})
    bars = [
        {
            "feature": c["feature"],
            "weight": float(c["weight"]),
            "sign": "pos" if c["weight"] > 0 else "neg",
            "width": f"w-{max(1, _step(abs(c['weight']), largest, BAR_STEPS))}",
        }
        for c in sorted(contributions, key=lambda c: (-abs(c["weight"]), c["start"]))[:top]
    ]
    omitted = explanation.get("omitted") or {"count": 0, "weight": 0.0}
    return {
        "segments": segments,
        "bars": bars,
        "target": explanation.get("target", ""),
        "label": explanation.get("label", ""),
        "labels": list((explanation.get("scores") or {}).keys()),
        "method": explanation.get("method", ""),
        "exact": bool(explanation.get("exact")),
        "base_value": float(explanation.get("base_value", 0.0)),
        "logit": float(explanation.get("logit", 0.0)),
        "omitted": omitted,
        "skipped_words": int(explanation.get("skipped_words") or 0),
        "out_of_scope": explanation.get("out_of_scope"),
        "weighted": len(contributions),
        "words": len(words_of(text)),
    }
