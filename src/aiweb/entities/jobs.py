"""Token-classification jobs (:data:`JOB_TYPES`): ``train`` with ``"task":
"token-classification"``, and ``screen`` (:mod:`aiweb.entities.screening`).

A training body names a built-in dataset (``wnut17``, ``skillspan``): the model is
trained on its train split, early-stopped on dev and scored on the official test split,
beside the CRF baseline. (A user's own CoNLL or JSONL file trains through ``aiweb train
token-classification --data FILE``; uploaded datasets hold tables, whose values cannot
be span lists.) The check at submit validates the parameters, so a typo is a 422 at
submit, never a failed job later. The handler is safe to run again after a crash: it
first looks for a version it already registered (lineage ``job_id``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiweb.entities.data import TASK, load_dataset
from aiweb.entities.screening import ScreeningJobSpec, check_screening, run_screening
from aiweb.entities.training import EntityParams, train_entities
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.schemas import MODEL_NAME_PATTERN
from aiweb.jobs.types import CheckContext, JobType

__all__ = ["JOB_TYPES", "TRAINABLE_DATASETS", "EntitiesTrainJobSpec", "check_train", "run_train"]

#: the built-in datasets with a training split (``job_description_entities`` is a test
#: set only: it scores a model trained on ``skillspan``)
TRAINABLE_DATASETS = ("wnut17", "skillspan")


class EntitiesTrainJobSpec(BaseModel):
    """``{"type": "train", "task": "token-classification", "model": NAME, "dataset":
    "wnut17" | "skillspan"}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["train"]
    task: Literal["token-classification"]
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Point this alias at the new version."
    )
    dataset: Literal["wnut17", "skillspan"] = Field(
        ..., description="A built-in dataset: trained on train, scored on its test split."
    )
    params: EntityParams = Field(
        default_factory=EntityParams,
        description="As `aiweb train token-classification --param`: epochs (30), seed (0), "
        "patterns (true), baseline (true: the CRF baseline).",
    )


def check_train(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """A token-classification training body, checked at submit (its schema holds every
    rule: an unknown parameter or a value out of range is a 422 before this); what to
    store."""
    assert isinstance(spec, EntitiesTrainJobSpec)
    return spec.model_dump(mode="json", exclude={"type"}, exclude_none=True)


def run_train(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Train a token-classification model from the job's dataset and register the version.

    Returns:
        ``{"model", "version", "task", "evaluated_on", "metrics", "baseline_micro_f1",
        "train_seconds"}``: micro precision, recall and F1 of the version on the held-out
        split, and the CRF baseline's micro F1 in the same run.
    """
    spec = EntitiesTrainJobSpec.model_validate({**ctx.job.params, "type": "train"})
    actor = ctx.job.submitted_by or f"job:{ctx.job.id}"
    done = env.version_of_job(spec.model, ctx.job.id)
    if done is not None:  # an earlier attempt registered it, then died
        version, report = done, done.evaluation
    else:
        ctx.progress(0.0, "loading data")
        splits = load_dataset(spec.dataset, env.settings, progress=False)
        sizes = ", ".join(f"{split} {len(rows):,}" for split, rows in splits.splits.items())
        ctx.progress(0.05, f"loaded {splits.name}: {sizes}")
        result = train_entities(
            env.registry,
            spec.model,
            splits,
            params=spec.params,
            alias=spec.alias,
            actor=actor,
            progress=lambda stage, f: ctx.progress(0.05 + 0.9 * f, stage),
            lineage_extra={"job_id": ctx.job.id},
        )
        version, report = result.version, result.report
    metrics = report.get("metrics") or {}
    return {
        "model": version.name,
        "version": version.version,
        "task": TASK,
        "evaluated_on": report.get("evaluated_on"),
        "metrics": {k: v for k, v in metrics.items() if k != "baseline_micro_f1"},
        "baseline_micro_f1": metrics.get("baseline_micro_f1"),
        "train_seconds": (report.get("model") or {}).get("train_seconds"),
    }


#: the jobs of the token-classification task
JOB_TYPES: tuple[JobType, ...] = (
    JobType("train", run_train, spec=EntitiesTrainJobSpec, check=check_train, task=TASK),
    JobType("screen", run_screening, spec=ScreeningJobSpec, check=check_screening),
)
