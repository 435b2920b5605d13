"""Durable background jobs: training, batch prediction, scheduled retraining.

The job row in the database is the truth; the same job code runs inside ``aiweb serve``
(embedded default, :mod:`aiweb.jobs.embedded`) or on Celery workers
(:mod:`aiweb.jobs.celery_app`) when ``AIWEB_BROKER_URL`` is set.
"""
