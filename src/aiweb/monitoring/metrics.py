"""Prometheus metrics: definitions and the ``GET /metrics`` exposition.

Every Prometheus object aiweb defines lives in this module (names follow the Prometheus
naming guide: base units, ``_total`` for counters):

=========================================  =========  ===================================
metric                                     type       labels
=========================================  =========  ===================================
``aiweb_http_request_duration_seconds``    histogram  route (the template), method, status
``aiweb_http_requests_total``              counter    route, method, status
``aiweb_inference_duration_seconds``       histogram  model, version (one model call)
``aiweb_batch_size``                       histogram  model, version (texts per call)
``aiweb_predictions_total``                counter    model, version, label
``aiweb_prediction_cache_hits_total``      counter    —
``aiweb_prediction_cache_misses_total``    counter    —
``aiweb_feedback_waits_refused_total``     counter    —
``aiweb_dashboard_login_failures_total``   counter    reason
``aiweb_jobs_total``                       gauge      type, status (jobs in the database)
``aiweb_model_live_accuracy``              gauge      model, version (24 h, from feedback)
``aiweb_model_drift_score``                gauge      model, version, feature
=========================================  =========  ===================================

Several worker processes (``aiweb serve --workers N``) use prometheus-client's
multiprocess mode: ``aiweb serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, each worker writes its samples there, and whichever
worker answers ``/metrics`` merges them (counters and histograms summed), so a scrape sees
the whole server. Process collectors (CPU, memory) are per process and only exposed with
one worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from aiweb.db.orm import SqlJob

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUEST_DURATION = Histogram(
    "aiweb_http_request_duration_seconds",
    "Time from receiving a request to sending the last byte of its response, seconds.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "aiweb_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_CONNECTIONS_REBALANCED = Counter(
    "aiweb_http_connections_rebalanced",
    "Keep-alive connections a worker closed (Connection: close) because it held more "
    "than its share of the open connections (serving.balance_connections).",
)
INFERENCE_DURATION = Histogram(
    "aiweb_inference_duration_seconds",
    "Duration of one model call (a micro-batch), seconds.",
    ["model", "version"],
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "aiweb_batch_size",
    "Inputs per model call (micro-batch size).",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
PREDICTIONS = Counter(
    "aiweb_predictions",
    "Predictions served, by model version and predicted label.",
    ["model", "version", "label"],
)
PREDICTION_OBJECTS = Histogram(
    "aiweb_prediction_objects",
    "Objects one prediction found in its input (boxes detected in an image, lines of "
    "text read …), for models whose answers are lists of objects.",
    ["model", "version"],
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144),
)
LIVE_ACCURACY = Gauge(
    "aiweb_model_live_accuracy",
    "Accuracy of a model version's predictions of the last 24 h that got feedback.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
LIVE_RMSE = Gauge(
    "aiweb_model_live_rmse",
    "RMSE of a model version's predicted numbers of the last 24 h that got feedback.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
DRIFT_SCORE = Gauge(
    "aiweb_model_drift_score",
    "Drift of a model version's live inputs from its reference profile, per feature: the "
    "PSI for text_length and oov_rate (drift above 0.2), 1 - the chi-square p-value for "
    "predicted_label (drift above 0.99). Set when drift is computed.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
PREDICTION_CACHE_HITS = Counter(
    "aiweb_prediction_cache_hits",
    "Texts whose scores were served from the prediction cache.",
)
PREDICTION_CACHE_MISSES = Counter(
    "aiweb_prediction_cache_misses",
    "Texts looked up in the prediction cache and not found (scored by the model).",
)
FEEDBACK_WAITS_REFUSED = Counter(
    "aiweb_feedback_waits_refused",
    "Feedback requests for a prediction not logged yet that got 503 at once because "
    "the most feedback requests allowed were already waiting.",
)
DASHBOARD_LOGIN_FAILURES = Counter(
    "aiweb_dashboard_login_failures",
    "Failed dashboard logins, by reason: bad_key, not_admin, bad_password, incomplete, "
    "throttled (refused unchecked while the account or address waits out its delay).",
    ["reason"],
)

ROLLOUT_REQUESTS = Counter(
    "aiweb_rollout_requests",
    "Predict requests of a model under rollout, by the variant that answered "
    "(baseline, candidate) or was shadow-scored (shadow).",
    ["model", "variant"],
)
ROLLOUT_TRAFFIC = Gauge(
    "aiweb_rollout_traffic",
    "Fraction of a model's users (or requests) its rollout sends to the candidate "
    "(shadow: copies); 0 when no rollout runs.",
    ["model"],
    multiprocess_mode="mostrecent",
)
ROLLOUT_STATE = Gauge(
    "aiweb_rollout_state",
    "1 for the state a model's latest rollout is in (running, held, promoted, "
    "rolled_back, aborted), 0 for the others.",
    ["model", "state"],
    multiprocess_mode="mostrecent",
)
ROLLOUT_SHADOW_DROPPED = Counter(
    "aiweb_rollout_shadow_dropped",
    "Shadow and doubly-scored requests dropped because the shadow queue was full.",
    ["model"],
)


def observe_batch(model: str, version: int, size: int, seconds: float) -> None:
    """Record one model call (the model loader's ``on_batch`` hook)."""
    labels = (model, str(version))
    INFERENCE_DURATION.labels(*labels).observe(seconds)
    BATCH_SIZE.labels(*labels).observe(size)


class JobsCollector(Collector):
    """``aiweb_jobs_total{type,status}``: jobs in the database, counted at scrape time
    (one ``GROUP BY`` query), so every process reports the same truth."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "aiweb_jobs_total",
            "Jobs in the database by type and status.",
            labels=["type", "status"],
        )
        query = select(SqlJob.type, SqlJob.status, func.count()).group_by(
            SqlJob.type, SqlJob.status
        )
        with self._engine.connect() as conn:
            for job_type, status, count in conn.execute(query):
                family.add_metric([job_type, status], float(count))
        yield family


def multiprocess_mode() -> bool:
    """Whether samples are shared through ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type.

    Args:
        extra: collectors read at scrape time (e.g. :class:`JobsCollector`).
    """
    if multiprocess_mode():
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    scrape = CollectorRegistry(auto_describe=False)
    for collector in extra:
        scrape.register(collector)
    return body + generate_latest(scrape), CONTENT_TYPE_LATEST


def worker_exited() -> None:
    """Tell multiprocess mode this process is gone (drops its live-gauge files)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
