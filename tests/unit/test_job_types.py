"""Job types as the jobs engine is given them: one table, built from the tasks' lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from aiweb.classification.jobs import run_train as classification_train
from aiweb.jobs.entities import Job
from aiweb.jobs.types import JobType, JobTypes
from aiweb.recommendations.jobs import run_train as recommendation_train
from aiweb.tasks import job_types


def job(type_: str, **params: Any) -> Job:
    now = datetime.now(UTC)
    return Job(
        id="j",
        type=type_,
        params=params,
        status="pending",
        progress=0.0,
        message="",
        result=None,
        error=None,
        attempts=0,
        max_attempts=3,
        cancel_requested=False,
        runner=None,
        submitted_by="tests",
        created_at=now,
        run_after=now,
        started_at=None,
        heartbeat_at=None,
        finished_at=None,
    )


def test_a_train_job_finds_its_task_handler_and_the_default_without_one() -> None:
    types = JobTypes(job_types())
    assert types.handler_for(job("train", task="recommendation")) is recommendation_train
    assert types.handler_for(job("train", task="text-classification")) is classification_train
    assert types.handler_for(job("train")) is classification_train
    assert types.handler_for(job("nope")) is None
    assert types.scheduled_type == "train"


def test_bodies_are_told_apart_by_type_then_task() -> None:
    types = JobTypes(job_types())
    spec = types.parse({"type": "train", "model": "m", "dataset": "sst2"})
    assert type(spec).__name__ == "TrainJobSpec"  # no task: text classification
    spec = types.parse({"type": "train", "task": "recommendation", "model": "m"})
    assert type(spec).__name__ == "RecommendationTrainJobSpec"
    with pytest.raises(ValidationError, match="train_task"):
        types.parse({"type": "train", "task": "translation", "model": "m"})
    with pytest.raises(ValidationError, match="'train', 'batch-predict'"):
        types.parse({"type": "index-documents"})  # submitted by aiweb itself only


def test_a_type_registered_twice_is_refused() -> None:
    class Spec(BaseModel):
        task: str = "a"

    class OtherSpec(BaseModel):
        task: str = "b"

    def handle(*_args: Any) -> dict[str, Any]:
        return {}

    def check(*_args: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="twice"):
        JobTypes([JobType("x", handle), JobType("x", handle)])
    with pytest.raises(ValueError, match="needs its check"):
        JobType("x", handle, spec=Spec)
    with pytest.raises(ValueError, match="two default tasks"):
        JobTypes(
            [
                JobType("x", handle, spec=Spec, check=check, task="a"),
                JobType("x", handle, spec=OtherSpec, check=check, task="b"),
            ]
        )


def test_an_untagged_variant_and_tagged_ones_share_a_type() -> None:
    """``batch-predict`` without ``task`` stays text classification's (users' scripts send
    no task); the tabular variants are chosen by their ``task``."""
    from aiweb.classification.jobs import run_batch_predict as classification_batch
    from aiweb.tabular.batch import run_batch_predict as tabular_batch

    types = JobTypes(job_types())
    untagged = types.parse({"type": "batch-predict", "model": "m", "dataset_id": "d"})
    assert type(untagged).__name__ == "BatchPredictJobSpec"
    tagged = {"type": "batch-predict", "model": "m", "dataset_id": "d"}
    spec = types.parse({**tagged, "task": "tabular-regression"})
    assert type(spec).__name__ == "RegressionBatchPredictJobSpec"
    assert types.handler_for(job("batch-predict")) is classification_batch
    assert types.handler_for(job("batch-predict", task="anomaly-detection")) is tabular_batch

    class Spec(BaseModel):
        task: str = "a"

    def handle(*_args: Any) -> dict[str, Any]:
        return {}

    def check(*_args: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="two default tasks"):
        JobTypes(
            [
                JobType("x", handle),  # untagged: the default
                JobType("x", handle, spec=Spec, check=check, task="a"),  # a default too
            ]
        )
