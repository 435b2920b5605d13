"""Durable background jobs: training, batch prediction, scheduled retraining.

The job row in the database is the truth; the same job code runs inside ``aiweb serve``
(embedded default, :mod:`aiweb.jobs.embedded`) or on Celery workers
(:mod:`aiweb.jobs.celery_app`) when ``AIWEB_BROKER_URL`` is set.

This package is an engine: it knows no task. The tasks give it their job types
(:class:`aiweb.jobs.types.JobType`: the body ``POST /v1/jobs`` accepts, its check at
submit, its handler), gathered by :func:`aiweb.tasks.job_types`.
"""

__all__ = [
    "celery_app",
    "child",
    "context",
    "embedded",
    "entities",
    "env",
    "erasure",
    "events",
    "litter",
    "runner",
    "scheduler",
    "schedules",
    "schemas",
    "service",
    "store",
    "types",
]
