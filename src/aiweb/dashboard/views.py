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

import base64
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import anyio.to_thread
from prometheus_client.parser import text_string_to_metric_families

from aiweb.classification.explain import words_of
from aiweb.errors import ConflictError, NotFoundError, RolloutNotFound
from aiweb.monitoring.drift import MIN_SAMPLES, DriftService
from aiweb.monitoring.feedback import FeedbackService
from aiweb.monitoring.metrics import render
from aiweb.monitoring.stats import PredictionStats
from aiweb.registry.entities import PRODUCTION, ModelVersion, RegisteredModel
from aiweb.registry.service import RegistryService
from aiweb.rollout.service import RolloutService
from aiweb.vision.schemas import ImageBody
from aiweb.vision.service import VisionService, draw

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
    """The report of one version: metrics, confusion heatmap, lineage; for a tabular
    version also its charts (``tabular``, :func:`tabular_report`; ``None`` otherwise).

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
        "tabular": tabular_report(version.task, evaluation),
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


# -- tabular models (tabular-classification, tabular-regression, anomaly-detection) ----------

TABULAR_TASKS = ("tabular-classification", "tabular-regression", "anomaly-detection")
"""Registry tasks whose versions carry the tabular report (:mod:`aiweb.tabular.evaluation`)."""
WATERFALL_STEPS = 12
"""Columns drawn as their own step of a waterfall; the rest join the ``omitted`` step."""


def _xy(xs: Iterable[Any], ys: Iterable[Any]) -> list[list[float]]:
    """``[[x, y]]`` pairs, rounded to 6 places, without a pair that has a ``None``."""
    return [
        [round(float(x), 6), round(float(y), 6)]
        for x, y in zip(xs, ys, strict=False)
        if x is not None and y is not None
    ]


def tabular_report(task: str, evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """The charts of a tabular version's report, as ``data-spec`` JSON for ``app.js``.

    Args:
        task: the version's registry task (one of :data:`TABULAR_TASKS`, else ``None``
            is answered).
        evaluation: the version's report (:func:`aiweb.tabular.trainer` fills it:
            ``metrics`` from :mod:`aiweb.tabular.evaluation`, ``cost_curve``,
            ``threshold``, ``costs``, ``split``, ``calibration``, ``schema``, ``notes``).

    Returns:
        ``None`` for another task, else ``{"problem", "metrics", "threshold", "costs",
        "split", "calibration_method", "schema", "notes", "heatmap", "confusion_labels",
        "charts": {name: spec}}`` where ``charts`` holds ``calibration`` (mean predicted
        probability against the observed share of positives, per bin, with the diagonal),
        ``cost`` (expected cost per row against the threshold, the chosen threshold as a
        vertical line), ``residuals`` (residual ``actual - predicted`` against the
        predicted value, with the zero line) and ``scores`` (the test rows' anomaly-score
        histogram, bins whose middle is above the threshold in red), each only when its
        data is in the report. A spec is ``{"type": "xy", "series": [{"name", "points":
        [[x, y]], "line", "dashed", "colour"}], "x_label", "y_label", "x_min", "x_max",
        "y_min", "y_max"}`` or ``{"type": "bar", "labels", "series": [{"name",
        "values"}], "colours"}``.
    """
    if task not in TABULAR_TASKS:
        return None
    metrics = evaluation.get("metrics") or {}
    threshold = evaluation.get("threshold")
    confusion = metrics.get("confusion_matrix") or {}
    charts: dict[str, Any] = {}
    calibration = metrics.get("calibration") or {}
    if calibration.get("prob_pred"):
        charts["calibration"] = {
            "type": "xy",
            "series": [
                {
                    "name": "model",
                    "points": _xy(calibration["prob_pred"], calibration.get("prob_true", [])),
                    "line": True,
                },
                {
                    "name": "perfectly calibrated",
                    "points": [[0, 0], [1, 1]],
                    "line": True,
                    "dashed": True,
                    "colour": "#9ca3af",
                },
            ],
            "x_label": f"mean predicted P({metrics.get('positive_class', 'positive')})",
            "y_label": "observed share of positives",
            "x_min": 0,
            "x_max": 1,
            "y_min": 0,
            "y_max": 1,
        }
    curve = evaluation.get("cost_curve") or []
    if curve:
        points = _xy((c.get("threshold") for c in curve), (c.get("cost") for c in curve))
        top = max((p[1] for p in points), default=1.0) or 1.0
        series: list[dict[str, Any]] = [
            {"name": "expected cost per row", "points": points, "line": True}
        ]
        if threshold is not None:
            series.append(
                {
                    "name": f"chosen threshold {float(threshold):.2f}",
                    "points": [[float(threshold), 0.0], [float(threshold), top]],
                    "line": True,
                    "dashed": True,
                    "colour": "#dc2626",
                }
            )
        charts["cost"] = {
            "type": "xy",
            "series": series,
            "x_label": f"threshold on P({evaluation.get('positive_class') or 'positive'})",
            "y_label": "expected cost per row (validation)",
            "x_min": 0,
            "x_max": 1,
            "y_min": 0,
        }
    residuals = metrics.get("residuals") or []
    if residuals:
        points = _xy(
            (r.get("predicted") for r in residuals), (r.get("residual") for r in residuals)
        )
        xs = [p[0] for p in points] or [0.0]
        charts["residuals"] = {
            "type": "xy",
            "series": [
                {"name": "test rows", "points": points, "line": False},
                {
                    "name": "zero",
                    "points": [[min(xs), 0.0], [max(xs), 0.0]],
                    "line": True,
                    "dashed": True,
                    "colour": "#9ca3af",
                },
            ],
            "x_label": "predicted value",
            "y_label": "residual (actual - predicted)",
        }
    histogram = metrics.get("histogram") or {}
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if counts and len(edges) == len(counts) + 1:
        middles = [(a + b) / 2 for a, b in pairwise(edges)]
        charts["scores"] = {
            "type": "bar",
            "labels": [f"{a:.3f} to {b:.3f}" for a, b in pairwise(edges)],
            "series": [{"name": "test rows", "values": [int(c) for c in counts]}],
            "colours": [
                "#dc2626" if threshold is not None and m > float(threshold) else "#2563eb"
                for m in middles
            ],
            "x_label": "anomaly score (red: above the threshold, flagged)",
            "y_label": "rows",
        }
    return {
        "problem": evaluation.get("problem", ""),
        "metrics": metrics,
        "threshold": threshold,
        "costs": evaluation.get("costs") or metrics.get("costs"),
        "positive_class": evaluation.get("positive_class") or metrics.get("positive_class"),
        "split": evaluation.get("split") or {},
        "calibration_method": (evaluation.get("calibration") or {}).get("method"),
        "schema": evaluation.get("schema") or [],
        "notes": evaluation.get("notes") or [],
        "heatmap": heatmap(confusion),
        "confusion_labels": confusion.get("labels", []),
        "charts": charts,
    }


def tabular_example(version: ModelVersion) -> str:
    """A JSON row naming every input column of a tabular version, each ``null``
    (missing), for the playground to start from: ``'{"age": null, …}'``."""
    columns = ((version.signature or {}).get("inputs") or {}).get("columns") or []
    names = [c["name"] for c in columns if isinstance(c, dict) and "name" in c]
    return "{" + ", ".join(f'"{n}": null' for n in names) + "}" if names else "{}"


def parse_row(text: str) -> dict[str, Any]:
    """One row (column → value) from the playground's JSON text: an object, or a list
    holding one object.

    Raises:
        ValueError: not JSON, or not one object (the message says which).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"The row is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        raise ValueError('Type one row as a JSON object, e.g. {"age": 35, "purpose": "car"}.')
    return value


def waterfall(explanation: dict[str, Any], top: int = WATERFALL_STEPS) -> dict[str, Any]:
    """One row's tabular explanation (:func:`aiweb.tabular.explain.explain_rows`, asked
    with ``top_k: 0``) as a waterfall: from the base value, each column's weight moves the
    running total, until the model's margin (``logit``).

    Args:
        explanation: ``{"label", "scores", "target", "method", "exact", "base_value",
            "logit", "contributions": [{"feature", "value", "weight"}], "omitted":
            {"count", "weight"}, "calibration"}``.
        top: columns with their own step (largest ``|weight|`` first); the others, and
            the answer's own ``omitted``, are summed in one "other columns" step.

    Returns:
        ``{"steps": [{"feature", "value", "weight", "start", "end", "sign"}], "chart":
        spec, "base_value", "logit", "target", "label", "method", "exact", "scores",
        "labels", "calibration", "sum_ok"}``; ``chart`` is ``{"type": "waterfall",
        "labels", "ranges": [[start, end]], "colours"}`` (first bar the base value from
        0, last the margin from 0); ``sum_ok`` says ``base_value + Σ weights == logit``
        to ``1e-6 · max(1, |logit|)``.
    """
    contributions = sorted(
        explanation.get("contributions") or [], key=lambda c: -abs(float(c.get("weight", 0.0)))
    )
    omitted = explanation.get("omitted") or {"count": 0, "weight": 0.0}
    rest = contributions[top:]
    base = float(explanation.get("base_value", 0.0))
    logit = float(explanation.get("logit", 0.0))
    steps: list[dict[str, Any]] = []
    at = base
    shown = [(c["feature"], c.get("value"), float(c["weight"])) for c in contributions[:top]]
    other_count = len(rest) + int(omitted.get("count") or 0)
    other_weight = sum(float(c["weight"]) for c in rest) + float(omitted.get("weight") or 0.0)
    if other_count:
        shown.append((f"{other_count} other columns", None, other_weight))
    for feature, value, weight in shown:
        steps.append(
            {
                "feature": feature,
                "value": value,
                "weight": weight,
                "start": at,
                "end": at + weight,
                "sign": "pos" if weight > 0 else "neg" if weight < 0 else "zero",
            }
        )
        at += weight
    chart = {
        "type": "waterfall",
        "labels": ["base value", *[s["feature"] for s in steps], "margin"],
        "ranges": [
            [0.0, round(base, 6)],
            *[[round(s["start"], 6), round(s["end"], 6)] for s in steps],
            [0.0, round(logit, 6)],
        ],
        "colours": [
            "#6b7280",
            *["#16a34a" if s["sign"] == "pos" else "#dc2626" for s in steps],
            "#2563eb",
        ],
    }
    scores = explanation.get("scores") or {}
    return {
        "steps": steps,
        "chart": chart,
        "base_value": base,
        "logit": logit,
        "target": explanation.get("target", ""),
        "label": explanation.get("label", ""),
        "method": explanation.get("method", ""),
        "exact": bool(explanation.get("exact")),
        "scores": sorted(scores.items(), key=lambda kv: -kv[1]),
        "labels": list(scores),
        "calibration": explanation.get("calibration"),
        "sum_ok": math.isclose(at, logit, abs_tol=1e-6 * max(1.0, abs(logit))),
    }


def tabular_playground_models(
    registry: RegistryService, models: Iterable[RegisteredModel]
) -> list[dict[str, Any]]:
    """The tabular models with a production version, for the playground's row form:
    ``[{"name", "version", "task", "example"}]`` (``example``: :func:`tabular_example`
    of the production version)."""
    out = []
    for model in servable(models, TABULAR_TASKS):
        version = registry.get_version(model.name, model.aliases[PRODUCTION])
        out.append(
            {
                "name": model.name,
                "version": version.version,
                "task": model.task,
                "example": tabular_example(version),
            }
        )
    return out


async def tabular_answer(
    service: Any, model: str, row_text: str, target: str | None = None
) -> dict[str, Any]:
    """Score one JSON row with a tabular model and explain the answer, for the playground.

    The row is scored first (``service.predict``, which names the version), then that
    same version (``name:version``) explains it with every column (``top_k: 0``);
    anomaly models are scored only (they are not explained).

    Args:
        service: the tabular service (``app.state.tabular``,
            :class:`aiweb.tabular.service.TabularService`).
        model: ``name``, ``name@alias`` or ``name:version``.
        row_text: one row as JSON (:func:`parse_row`).
        target: the class to explain (default: the answered one).

    Returns:
        ``{"ok": True, "kind": "tabular", "model", "version", "ref", "row_text",
        "prediction": {"label", "value", "score", "anomaly", "scores": [(class, p)]},
        "waterfall": :func:`waterfall` or None}``.

    Raises:
        ValueError: no model, or a row that is not one JSON object.
        AiwebError: what the service raises (a row the model cannot take is a 422 that
            names the column; an unknown model a 404).
    """
    if not model:
        raise ValueError("Choose a model.")
    if not row_text.strip():
        raise ValueError("Type a row as a JSON object.")
    row = parse_row(row_text)
    body = await service.predict(model, [row])
    answer = body["predictions"][0]
    ref = f"{body['model']}:{body['version']}"
    explained = None
    if "score" not in answer:  # anomaly detectors answer a score and are not explained
        result = await service.explain(ref, [row], target=target, top_k=0)
        explained = waterfall(result["explanations"][0])
    scores = answer.get("scores") or {}
    return {
        "ok": True,
        "kind": "tabular",
        "model": body["model"],
        "version": body["version"],
        "ref": ref,
        "row_text": row_text,
        "prediction": {
            "label": answer.get("label"),
            "value": answer.get("value"),
            "score": answer.get("score"),
            "anomaly": answer.get("anomaly"),
            "scores": sorted(scores.items(), key=lambda kv: -kv[1]),
        },
        "waterfall": explained,
    }


# -- rollouts (shadow, canary, A/B) ----------------------------------------------------------

STATE_BADGES = {
    "running": "info",
    "held": "warn",
    "promoted": "good",
    "rolled_back": "bad",
    "aborted": "muted",
}
"""Badge class (``app.css``) of each rollout state."""
RESULT_BADGES = {"pass": "good", "fail": "bad", "inconclusive": "warn", "skipped": "muted"}
"""Badge class of each gate result (and of the verdict)."""
EVENT_MARKS = {
    "started": ("#2563eb", "circle"),
    "step": ("#0891b2", "triangle"),
    "held": ("#d97706", "rectRot"),
    "promoted": ("#16a34a", "star"),
    "rolled_back": ("#dc2626", "crossRot"),
    "aborted": ("#4b5563", "rect"),
}
"""Colour and Chart.js point style of each history event on the traffic chart."""
VARIANT_COLOURS = {"baseline": "#6b7280", "candidate": "#2563eb"}
NO_FIGURE = "\u2013"
"""What stands for a missing number (an en dash, as the templates' macros show it)."""


def _moment(value: Any) -> datetime | None:
    """A datetime from the report (a datetime, or an ISO 8601 string in history entries),
    UTC when it carries no zone; ``None`` for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _share(value: Any) -> str:
    """``0.25`` → ``"25%"``, ``0.125`` → ``"12.5%"``; :data:`NO_FIGURE` for ``None``."""
    if not isinstance(value, int | float):
        return NO_FIGURE
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def gate_figure(gate: str, value: float | None) -> str:
    """A gate's bound or value in the gate's unit: a share for error rate and agreement,
    ms for latency, signed points for the accuracy difference; :data:`NO_FIGURE` for
    ``None``.

    >>> gate_figure("max_error_rate", 0.0125), gate_figure("min_accuracy_delta", -0.02)
    ('1.25%', '-2.0 pts')
    >>> gate_figure("max_latency_p95_ms", 12.345), gate_figure("min_agreement", None) == NO_FIGURE
    ('12.3 ms', True)
    """
    if value is None or not math.isfinite(value):
        return NO_FIGURE
    if gate == "max_latency_p95_ms":
        return f"{value:.1f} ms"
    if gate == "min_accuracy_delta":
        return f"{value * 100:+.1f} pts"
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _interval_text(gate: str, interval: list[float | None] | None) -> str:
    """``"0.1% to 2.31%"``; an end the data cannot bound is ``unbounded``."""
    if not interval:
        return NO_FIGURE
    low, high = interval
    return (
        ("unbounded" if low is None else gate_figure(gate, low))
        + " to "
        + ("unbounded" if high is None else gate_figure(gate, high))
    )


def _time_axis(start: datetime, end: datetime) -> tuple[float, str]:
    """Seconds per unit and the unit's name for a chart spanning ``start`` to ``end``."""
    span = (end - start).total_seconds()
    if span <= 2 * 3600:
        return 60.0, "minutes"
    if span <= 2 * 86400:
        return 3600.0, "hours"
    return 86400.0, "days"


def _event_note(entry: Mapping[str, Any]) -> str:
    """One line about a history entry: what happened, by whom, and why."""
    event = str(entry.get("event", ""))
    text = {
        "started": f"started at {_share(entry.get('traffic'))}",
        "step": f"stepped to {_share(entry.get('traffic'))}",
        "held": "held",
        "promoted": "promoted",
        "rolled_back": "rolled back",
        "aborted": "aborted",
    }.get(event, event)
    if entry.get("actor"):
        text += f" by {entry['actor']}"
    decision = entry.get("decision") or {}
    reason = decision.get("reason")
    if reason and decision.get("result") != "manual":
        text += f": {reason}"
    return text


def traffic_chart(report: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The candidate's share over time as a step chart, each move marked.

    Args:
        report: a rollout report (:meth:`aiweb.rollout.service.RolloutService.report`).
        now: where a running rollout's line ends (an ended one ends at ``ended_at``).

    Returns:
        A ``data-spec`` for ``app.js``: ``{"type": "xy", "series", "x_label", "y_label",
        "y_min": 0, "y_max": 1, "y_percent": True}``; the first series is the stepped
        line (``[[t, share]]``, ``t`` in the unit of ``x_label`` since the start), the
        others one marker series per kind of event, with a ``notes`` line per point
        (:func:`_event_note`) for the tooltip.
    """
    start = _moment(report["started_at"]) or now
    end = _moment(report.get("ended_at")) or max(now, start)
    unit_s, unit = _time_axis(start, end)

    def at(moment: datetime | None) -> float:
        return round(((moment or start) - start).total_seconds() / unit_s, 4)

    history = list(report.get("history") or [])
    line = [[at(_moment(h.get("at"))), float(h.get("traffic", 0.0))] for h in history]
    line.append([at(end), float(report["traffic"])])
    series: list[dict[str, Any]] = [
        {
            "name": "candidate share",
            "points": line,
            "line": True,
            "stepped": True,
            "fill": True,
            "radius": 0,
            "colour": VARIANT_COLOURS["candidate"],
        }
    ]
    for event, (colour, style) in EVENT_MARKS.items():
        entries = [h for h in history if h.get("event") == event]
        if entries:
            series.append(
                {
                    "name": event.replace("_", " "),
                    "points": [
                        [at(_moment(h.get("at"))), float(h.get("traffic", 0.0))] for h in entries
                    ],
                    "notes": [_event_note(h) for h in entries],
                    "line": False,
                    "colour": colour,
                    "point_style": style,
                    "radius": 7,
                }
            )
    return {
        "type": "xy",
        "series": series,
        "x_label": f"{unit} since the start ({start.strftime('%Y-%m-%d %H:%M')} UTC)",
        "y_label": "candidate share of traffic",
        "x_min": 0,
        "y_min": 0,
        "y_max": 1,
        "y_percent": True,
        "title": "candidate traffic over time",
    }


def live_quality(variant: Mapping[str, Any]) -> dict[str, Any]:
    """The live quality the ``min_accuracy_delta`` gate judges for one variant:
    ``{"metric", "value", "ci", "n"}`` — the report's ``quality`` when it has one (a
    task's own metric, such as ``ctr``), else the accuracy from label feedback."""
    quality = variant.get("quality")
    if isinstance(quality, Mapping) and quality.get("metric"):
        return {
            "metric": str(quality["metric"]),
            "value": quality.get("value"),
            "ci": quality.get("ci"),
            "n": int(quality.get("n") or 0),
        }
    return {
        "metric": "accuracy",
        "value": variant.get("live_accuracy"),
        "ci": variant.get("live_accuracy_ci"),
        "n": int(variant.get("feedback_n") or 0),
    }


def accuracy_chart(variants: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Both variants' live quality (:func:`live_quality`: accuracy from feedback, or the
    task's own metric) with its 95% interval, as a ``data-spec``: ``{"type": "interval",
    "labels", "values", "ranges": [[lo, hi] | None], "colours", "x_label", "x_min": 0,
    "x_max": 1, "percent": True}``; ``None`` while neither variant has any."""
    names = ("baseline", "candidate")
    quality = {n: live_quality(variants[n]) for n in names}
    if all(quality[n]["value"] is None for n in names):
        return None
    metric = quality["candidate"]["metric"]
    source = "from feedback" if metric == "accuracy" else "live"
    return {
        "type": "interval",
        "labels": [f"{n} v{variants[n]['version']}" for n in names],
        "values": [quality[n]["value"] for n in names],
        "ranges": [quality[n]["ci"] for n in names],
        "colours": [VARIANT_COLOURS[n] for n in names],
        "x_label": f"{metric} {source} (point: estimate; bar: 95% Wilson interval)",
        "x_min": 0,
        "x_max": 1,
        "percent": True,
        "title": f"live {metric} of both versions with 95% intervals",
    }


def rollout_view(report: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What the rollout page shows of one report.

    Args:
        report: :meth:`aiweb.rollout.service.RolloutService.report` (the shape of
            :class:`aiweb.rollout.schemas.RolloutReport`).
        now: the moment the page is drawn (default: now, UTC).

    Returns:
        The report's fields, plus ``active`` (running or held: it can be promoted or
        aborted), ``badge`` (state badge class), ``verdict_badge``, ``traffic_share``
        (``"25%"``), ``gates`` with ``badge``, ``bound_text``, ``value_text`` and
        ``interval_text``, ``timeline`` (history newest first: ``at`` as a datetime,
        ``event``, ``state``, ``traffic_share``, ``actor``, ``gate``, ``result``,
        ``reason``), ``decision_at``, ``quality`` (each variant's :func:`live_quality`),
        ``traffic_chart`` (:func:`traffic_chart`) and ``accuracy_chart``
        (:func:`accuracy_chart`).
    """
    now = now or datetime.now(UTC)
    gates = [
        {
            **g,
            "badge": RESULT_BADGES.get(g["result"], "muted"),
            "bound_text": gate_figure(g["gate"], g.get("bound")),
            "value_text": gate_figure(g["gate"], g.get("value")),
            "interval_text": _interval_text(g["gate"], g.get("interval")),
        }
        for g in report.get("gates") or []
    ]
    timeline = []
    for entry in reversed(report.get("history") or []):
        decision = entry.get("decision") or {}
        timeline.append(
            {
                "at": _moment(entry.get("at")),
                "event": entry.get("event", ""),
                "state": entry.get("state", ""),
                "traffic_share": _share(entry.get("traffic")),
                "actor": entry.get("actor")
                or ("" if entry.get("event") == "started" else "automatic"),
                "gate": decision.get("gate"),
                "result": decision.get("result"),
                "reason": decision.get("reason")
                or ("" if entry.get("event") != "started" else "rollout started"),
            }
        )
    decision = report.get("decision")
    return {
        **report,
        "active": report["state"] in ("running", "held"),
        "badge": STATE_BADGES.get(report["state"], "muted"),
        "verdict_badge": RESULT_BADGES.get(report.get("verdict", ""), "muted"),
        "traffic_share": _share(report["traffic"]),
        "steps_text": " → ".join(_share(x) for x in (report.get("config") or {}).get("steps", [])),
        "gates": gates,
        "timeline": timeline,
        "decision_at": _moment(decision.get("at")) if decision else None,
        "started": _moment(report.get("started_at")),
        "stepped": _moment(report.get("stepped_at")),
        "updated": _moment(report.get("updated_at")),
        "ended": _moment(report.get("ended_at")),
        "traffic_chart": traffic_chart(report, now),
        "quality": {n: live_quality(v) for n, v in report["variants"].items()},
        "accuracy_chart": accuracy_chart(report["variants"]),
    }


def rollout_detail(
    registry: RegistryService, rollouts: RolloutService, name: str
) -> dict[str, Any]:
    """Everything the rollout page of ``name`` shows: ``{"model", "rollout": rollout_view
    or None, "start": {"production", "candidate"}}``; ``start`` suggests the command that
    starts a rollout (the newest ready version newer than production as the candidate,
    ``None`` when there is none).

    Raises:
        ModelNotFound.
    """
    model = registry.get_model(name)
    production = model.aliases.get(PRODUCTION)
    try:
        view: dict[str, Any] | None = rollout_view(rollouts.report(name))
    except RolloutNotFound:
        view = None
    candidate = None
    if view is None or not view["active"]:
        ready = [
            v.version
            for v in registry.list_versions(name)
            if v.status == "ready" and v.version > (production or 0)
        ]
        candidate = max(ready, default=None)
    return {
        "model": model,
        "rollout": view,
        "start": {"production": production, "candidate": candidate},
    }


def running_rollout(rollouts: RolloutService, name: str) -> dict[str, Any] | None:
    """The running (or held) rollout of ``name`` for the model page's badge:
    ``{"state", "mode", "candidate", "traffic_share"}``, or ``None``."""
    for r in rollouts.active():
        if r.model == name:
            return {
                "state": r.state,
                "mode": r.mode,
                "candidate": r.candidate,
                "traffic_share": _share(r.traffic),
                "badge": STATE_BADGES.get(r.state, "muted"),
            }
    return None


# -- token classification and resume screening -----------------------------------------------

ENTITY_COLOURS = 8
"""Colours of entity types in a highlighted text (CSS classes ``ent-0`` … ``ent-7``); the
types of one answer take them in alphabetical order, a ninth type the first again."""


def highlight(text: str, spans: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``text`` cut into consecutive segments at the offsets of ``spans``, for a template
    that wraps the segments that carry a span in ``<mark>`` (Jinja escapes every
    segment's text: nothing of ``text`` reaches the page unescaped).

    Spans are taken by start (the longer first at the same start); a span that is out of
    ``[0, len(text)]``, empty, not integer, or that overlaps one already taken is left
    out (and counted), so overlapping or out-of-order spans never break the text: the
    segments always join back to ``text``.

    >>> segments, skipped = highlight("a <b> c", [{"start": 2, "end": 5}, {"start": 3, "end": 4}])
    >>> [(s["text"], s["span"] is not None) for s in segments], skipped
    ([('a ', False), ('<b>', True), (' c', False)], 1)

    Args:
        text: the text, as the offsets index it (code points).
        spans: mappings with integer ``start`` and ``end`` (end exclusive) and anything
            else the template wants (kept as the segment's ``span``).

    Returns:
        ``(segments, skipped)``: ``[{"text", "span": the span or None}]`` covering the
        whole text in order, and how many spans were left out.
    """
    usable: list[Mapping[str, Any]] = []
    skipped = 0
    for span in spans:
        start, end = span.get("start"), span.get("end")
        if (
            isinstance(start, int)
            and isinstance(end, int)
            and not isinstance(start, bool)
            and not isinstance(end, bool)
            and 0 <= start < end <= len(text)
        ):
            usable.append(span)
        else:
            skipped += 1
    usable.sort(key=lambda s: (s["start"], -s["end"]))
    segments: list[dict[str, Any]] = []
    at = 0
    for span in usable:
        start, end = span["start"], span["end"]
        if start < at:
            skipped += 1
            continue
        if start > at:
            segments.append({"text": text[at:start], "span": None})
        segments.append({"text": text[start:end], "span": span})
        at = end
    if at < len(text) or not segments:
        segments.append({"text": text[at:], "span": None})
    return segments, skipped


def entities_view(text: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """One text's entities (an item of the predict route's ``predictions`` for a
    ``token-classification`` model) as the playground shows them.

    Args:
        text: the text, as sent.
        entities: ``[{"text", "label", "start", "end", "score"}]``, code point offsets.

    Returns:
        ``{"segments": highlight segments, each span with its ``colour`` class
        (``ent-N``, :data:`ENTITY_COLOURS`), "legend": [{"label", "colour", "count"}],
        "rows": the entities with their colour and ``shown`` (highlighted, or left out as
        overlapping/out of range), "skipped"}``.
    """
    labels = sorted({str(e.get("label", "")) for e in entities})
    colour = {label: f"ent-{i % ENTITY_COLOURS}" for i, label in enumerate(labels)}
    rows = [{**e, "colour": colour[str(e.get("label", ""))]} for e in entities]
    segments, skipped = highlight(text, rows)
    shown = {id(s["span"]) for s in segments if s["span"] is not None}
    counts: dict[str, int] = defaultdict(int)
    for e in entities:
        counts[str(e.get("label", ""))] += 1
    return {
        "segments": segments,
        "legend": [{"label": lb, "colour": colour[lb], "count": counts[lb]} for lb in labels],
        "rows": [{**r, "shown": id(r) in shown} for r in rows],
        "skipped": skipped,
    }


def screening_view(
    job_result: Mapping[str, Any] | None, names: Mapping[str, str]
) -> dict[str, Any] | None:
    """A ``screen`` job's result (:func:`aiweb.entities.screening.screen`) as the
    screening page shows it: the ranked candidates with their documents' names
    (``names``: document id -> name; a deleted document shows its id), best first.

    Returns:
        ``None`` without a result, else ``{"skills", "candidates": [{"document_id",
        "name", "rank", "score", "coverage", "similarity", "matched", "missing",
        "evidence_n", "pii"}], "formula", "similarity_method", "models", "redact_pii",
        "warnings"}``.
    """
    if not job_result:
        return None
    candidates = []
    for c in sorted(job_result.get("candidates") or [], key=lambda c: c.get("rank", 0)):
        document_id = str(c.get("document_id", ""))
        candidates.append(
            {
                "document_id": document_id,
                "name": names.get(document_id),
                "rank": c.get("rank"),
                "score": c.get("score"),
                "coverage": c.get("coverage"),
                "similarity": c.get("similarity"),
                "matched": list(c.get("matched_skills") or []),
                "missing": list(c.get("missing_skills") or []),
                "evidence_n": len(c.get("evidence") or []),
                "pii": c.get("pii") or {},
            }
        )
    formula = job_result.get("formula") or {}
    return {
        "skills": list(job_result.get("job_description_skills") or []),
        "candidates": candidates,
        "formula": formula.get("score", "") if isinstance(formula, Mapping) else str(formula),
        "similarity_method": job_result.get("similarity_method", ""),
        "models": job_result.get("models") or {},
        "redact_pii": bool(job_result.get("redact_pii")),
        "warnings": list(job_result.get("warnings") or []),
    }


def cv_view(
    pages: Iterable[Any],
    evidence: Iterable[Mapping[str, Any]],
    pii: Mapping[int, Iterable[tuple[str, int, int]]],
    placeholders: Mapping[str, str],
) -> dict[str, Any]:
    """A CV's text, page by page, with a screening's evidence highlighted and its PII
    replaced by placeholders.

    Args:
        pages: the document's pages (:class:`aiweb.documents.service.Page`: ``page``,
            ``start``, ``end``, ``text``; ``start`` is the page's offset in the document's
            text, the pages joined by a form feed).
        evidence: ``[{"skill", "page", "start", "end", "match"}]`` with ``start``/``end``
            offsets into the document's text (as the ``screen`` job gives them).
        pii: page number -> ``(kind, start, end)`` page-local spans to show as their
            placeholder (none: the text is shown as stored).
        placeholders: kind -> placeholder (``email`` -> ``[EMAIL]`` …).

    Returns:
        ``{"pages": [{"page", "segments"}], "highlighted", "skipped"}``: each segment's
        ``span`` is ``{"kind": "evidence", "skill", "match", ...}`` or ``{"kind": "pii",
        "placeholder"}`` or ``None``; evidence that overlaps PII, lies outside its page
        or overlaps other evidence is not highlighted (``skipped`` counts it).
    """
    by_page: dict[int, list[dict[str, Any]]] = defaultdict(list)
    skipped = 0
    for e in evidence:
        page, start, end = e.get("page"), e.get("start"), e.get("end")
        if isinstance(page, int) and isinstance(start, int) and isinstance(end, int):
            by_page[page].append({**e, "kind": "evidence", "doc_start": start, "doc_end": end})
        else:
            skipped += 1
    out = []
    highlighted = 0
    for p in pages:
        secret = [
            {"kind": "pii", "start": s, "end": t, "placeholder": placeholders.get(k, "[PII]")}
            for k, s, t in pii.get(p.page, ())
        ]
        marks = []
        for e in by_page.pop(p.page, []):
            local = {**e, "start": e["doc_start"] - p.start, "end": e["doc_end"] - p.start}
            if any(local["start"] < s["end"] and s["start"] < local["end"] for s in secret):
                skipped += 1  # never evidence over PII (the job does not make any)
                continue
            marks.append(local)
        segments, left_out = highlight(p.text, [*secret, *marks])
        skipped += left_out
        highlighted += sum(
            1 for s in segments if s["span"] is not None and s["span"]["kind"] == "evidence"
        )
        out.append({"page": p.page, "segments": segments})
    skipped += sum(len(v) for v in by_page.values())  # pages the document does not have
    return {"pages": out, "highlighted": highlighted, "skipped": skipped}


# -- the vision playground -------------------------------------------------------------------


def vision_alt(answer: Mapping[str, Any]) -> str:
    """What an overlay shows, in words (its ``alt`` text): ``faces found: 1`` (the model's
    name and the number of its detections), or for OCR ``lines of text found: 2``."""
    if "lines" in answer:
        return f"lines of text found: {len(answer.get('lines') or [])}"
    return f"{answer.get('model', 'objects')} found: {len(answer.get('detections') or [])}"


def vision_view(answer: Mapping[str, Any], png: bytes, image_format: str = "") -> dict[str, Any]:
    """A vision model's answer and its overlay as the vision playground shows them.

    Args:
        answer: the predict route's answer (:class:`aiweb.vision.schemas.VisionPredictResponse`
            as a dict): ``detections``, or ``lines`` and ``text``.
        png: the overlay (:func:`aiweb.vision.service.draw`), embedded in the page as a
            ``data:`` URL (the CSP allows ``img-src data:``), so nothing is kept.
        image_format: the uploaded file's format (``jpeg``, ``png``, ``webp``).

    Returns:
        ``{"ok": True, "kind": "ocr" | "detections", "model", "version", "id", "width",
        "height", "sha256", "format", "overlay": data URL, "alt": :func:`vision_alt`,
        "rows": [...], "text": str | None}``; a detection row is
        ``{"label", "score", "x", "y", "width", "height"}``, an OCR row ``{"n", "text",
        "score"}`` (``n`` the line's number on the overlay, from 1, reading order).
    """
    ocr = "lines" in answer
    rows: list[dict[str, Any]]
    if ocr:
        rows = [
            {"n": i, "text": str(line.get("text", "")), "score": line.get("score")}
            for i, line in enumerate(answer.get("lines") or [], start=1)
        ]
    else:
        rows = []
        for d in answer.get("detections") or []:
            box = d.get("box") or {}
            rows.append(
                {
                    "label": str(d.get("label", "")),
                    "score": d.get("score"),
                    **{k: box.get(k) for k in ("x", "y", "width", "height")},
                }
            )
    return {
        "ok": True,
        "kind": "ocr" if ocr else "detections",
        "model": answer.get("model"),
        "version": answer.get("version"),
        "id": answer.get("id"),
        "width": answer.get("width"),
        "height": answer.get("height"),
        "sha256": answer.get("sha256"),
        "format": image_format,
        "overlay": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "alt": vision_alt(answer),
        "rows": rows,
        "text": str(answer.get("text") or "") if ocr else None,
    }


async def vision_answer(
    service: VisionService, model: str, data: bytes, media_type: str = ""
) -> dict[str, Any]:
    """Answer one uploaded image with a vision model and draw the answer, for the vision
    playground: through the predict route's service (decoded with its checks, logged and
    metered as an API call; the image itself is not kept).

    Args:
        service: ``app.state.vision``.
        model: ``name``, ``name@alias`` or ``name:version``.
        data: the uploaded file's bytes (already bounded by ``limits.max_image_bytes``).
        media_type: the type the browser sent it as (not trusted: the bytes tell).

    Returns:
        :func:`vision_view`.

    Raises:
        ValueError: no model chosen.
        AiwebError: what the service raises: an unknown model (404), a model of another
            task (422), a refused image (413, 415, 422: its ``detail`` says why).
    """
    if not model:
        raise ValueError("Choose a model.")
    await service.get(model)  # an unknown model, or one of another task, before decoding
    image, sha256 = await service.image_of(ImageBody(data, media_type))
    answer = await service.predict_image(model, image, sha256)
    png = await anyio.to_thread.run_sync(draw, image, answer)
    if max(image.width, image.height) > PREVIEW_SIDE:
        png = await anyio.to_thread.run_sync(_preview, png)
    return vision_view(answer, png, image.format)


#: the longest side of the overlay embedded in the vision playground, in pixels (a 40
#: megapixel photo would make a page of tens of MB)
PREVIEW_SIDE = 1600


def _preview(png: bytes) -> bytes:
    """``png`` scaled down to :data:`PREVIEW_SIDE` pixels on its longest side."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as picture:
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.save(out, "PNG", compress_level=1)
    return out.getvalue()
