"""Token-classification jobs (:data:`JOB_TYPES`): ``train`` with ``"task":
"token-classification"``, and ``screen`` (:mod:`aiweb.entities.screening`).

A training body names a built-in dataset (``wnut17``, ``skillspan``): the model is
trained on its train split, early-stopped on dev and scored on the official test split,
beside the CRF baseline. Or it names an uploaded file (``dataset_id``; ``POST
/v1/datasets``): CoNLL (a ``.conll``, ``.iob`` or ``.bio`` file) or JSONL spans (a
``.jsonl`` file of ``{"text": "…", "spans": [{"start", "end", "label"}]}`` lines,
dataset format ``spans``), with an optional uploaded evaluation file
(``eval_dataset_id``), else a seeded ``params.test_size`` share of it is held out — as
``aiweb train token-classification --data FILE [--eval-data FILE]``. The check at submit
validates the parameters and that the datasets exist and are CoNLL or JSONL spans files,
so a typo is a 422 at submit, never a failed job later. The upload checked each line's
layout and offsets; the job reads the file as the command does (spans may overlap, as
tag layers may) and fails on what only it checks (a span given twice, a span's
``"text"`` that differs from its slice) with a message naming the file and the line.
The handler is safe to run again after a crash: it first looks for a version it already
registered (lineage ``job_id``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aiweb.datasets.service import Dataset
from aiweb.entities.data import (
    TASK,
    EntitySplits,
    file_splits,
    load_cross_domain,
    load_dataset,
)
from aiweb.entities.screening import ScreeningJobSpec, check_screening, run_screening
from aiweb.entities.training import EntityParams, train_entities
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.schemas import MODEL_NAME_PATTERN
from aiweb.jobs.types import CheckContext, JobType

__all__ = [
    "JOB_TYPES",
    "TRAINABLE_DATASETS",
    "UPLOAD_FORMATS",
    "EntitiesTrainJobSpec",
    "check_train",
    "run_train",
]

#: the formats of uploaded datasets a training job reads: CoNLL and JSONL spans files
UPLOAD_FORMATS = ("conll", "spans")

#: the built-in datasets with a training split (``job_description_entities`` is a test
#: set only: it scores a model trained on ``skillspan``)
TRAINABLE_DATASETS = ("wnut17", "skillspan")


#: ``dataset_id`` xor ``dataset`` (given: present and not null), and
#: ``eval_dataset_id`` only with ``dataset_id``, as the schema says it
_ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["dataset_id"],
            "properties": {"dataset_id": {"type": "string"}},
            "not": {"required": ["dataset"], "properties": {"dataset": {"type": "string"}}},
        },
        {
            "required": ["dataset"],
            "properties": {"dataset": {"type": "string"}},
            "not": {
                "anyOf": [
                    {"required": ["dataset_id"], "properties": {"dataset_id": {"type": "string"}}},
                    {
                        "required": ["eval_dataset_id"],
                        "properties": {"eval_dataset_id": {"type": "string"}},
                    },
                ]
            },
        },
    ]
}


class EntitiesTrainJobSpec(BaseModel):
    """``{"type": "train", "task": "token-classification", "model": NAME, "dataset":
    "wnut17" | "skillspan"}``, or ``"dataset_id": ID [, "eval_dataset_id": ID]`` of
    uploaded CoNLL or JSONL spans files."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    type: Literal["train"]
    task: Literal["token-classification"]
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Point this alias at the new version."
    )
    dataset: Literal["wnut17", "skillspan"] | None = Field(
        None, description="A built-in dataset: trained on train, scored on its test split."
    )
    dataset_id: str | None = Field(
        None,
        max_length=64,
        description="An uploaded CoNLL dataset (.conll, .iob, .bio) or JSONL span file "
        '({"text", "spans": [{"start", "end", "label"}]} a line; dataset format spans).',
    )
    eval_dataset_id: str | None = Field(
        None,
        max_length=64,
        description="Score on this uploaded CoNLL or JSONL span dataset (with dataset_id) "
        "instead of a held-out params.test_size share of it.",
    )
    params: EntityParams = Field(
        default_factory=EntityParams,
        description="As `aiweb train token-classification --param`: epochs (30), seed (0), "
        "patterns (true), baseline (true: the CRF baseline).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EntitiesTrainJobSpec:
        if (self.dataset_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of dataset_id or dataset")
        if self.eval_dataset_id is not None and self.dataset_id is None:
            raise ValueError(
                "eval_dataset_id goes with dataset_id (a built-in dataset has its split)"
            )
        return self


def check_train(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """A token-classification training body, checked at submit (its schema holds every
    rule: an unknown parameter or a value out of range is a 422 before this); what to
    store."""
    assert isinstance(spec, EntitiesTrainJobSpec)
    for field in ("dataset_id", "eval_dataset_id"):
        dataset_id = getattr(spec, field)
        if dataset_id is not None:
            ctx.dataset_columns(field, dataset_id, {}, formats=UPLOAD_FORMATS)
    return spec.model_dump(mode="json", exclude={"type"}, exclude_none=True)


def _local_copy(env: JobEnv, dataset: Dataset, directory: Path) -> Path:
    """A copy of an uploaded dataset in ``directory`` (made here), under the name it was
    uploaded with: a malformed line's message names the user's file. The format is read
    from the content (:func:`~aiweb.entities.data.read_examples`), never the name."""
    directory.mkdir()
    return env.datasets.local_copy(dataset, directory).rename(directory / dataset.name)


def _splits(env: JobEnv, spec: EntitiesTrainJobSpec, workdir: Path) -> EntitySplits:
    """The examples a training spec names (see the module docs).

    Raises:
        DatasetNotFound, DataFormatError (naming the line), InvalidInputError (no entity
        to learn, too few examples to hold one out), DatasetUnavailableError.
    """
    if spec.dataset is not None:
        return load_dataset(spec.dataset, env.settings, progress=False)
    assert spec.dataset_id is not None
    uploaded = env.datasets.get(spec.dataset_id)
    eval_path = None
    if spec.eval_dataset_id is not None:
        eval_path = _local_copy(env, env.datasets.get(spec.eval_dataset_id), workdir / "eval")
    splits = file_splits(
        _local_copy(env, uploaded, workdir / "train"),
        eval_path=eval_path,
        test_size=spec.params.test_size,
        seed=spec.params.seed,
    )
    return EntitySplits(name=uploaded.name, splits=splits.splits, labels=splits.labels)


def run_train(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Train a token-classification model from the job's dataset and register the version.

    Returns:
        ``{"model", "version", "task", "evaluated_on", "metrics", "baseline_micro_f1",
        "train_seconds"}``: micro precision, recall and F1 of the version on the held-out
        split, and the CRF baseline's micro F1 in the same run; with ``"cross_domain":
        {"dataset", "exact_f1", "overlap_f1"}`` when a built-in dataset has a
        cross-domain test set (:data:`aiweb.entities.data.CROSS_DOMAIN`).
    """
    spec = EntitiesTrainJobSpec.model_validate({**ctx.job.params, "type": "train"})
    actor = ctx.job.submitted_by or f"job:{ctx.job.id}"
    done = env.version_of_job(spec.model, ctx.job.id)
    if done is not None:  # an earlier attempt registered it, then died
        version, report = done, done.evaluation
    else:
        ctx.progress(0.0, "loading data")
        env.settings.home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=env.settings.home, prefix=".train-") as workdir:
            splits = _splits(env, spec, Path(workdir))
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
            lineage_extra={
                "job_id": ctx.job.id,
                **spec.model_dump(include={"dataset_id", "eval_dataset_id"}, exclude_none=True),
            },
            cross_domain=(
                load_cross_domain(spec.dataset, env.settings) if spec.dataset is not None else None
            ),
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
        **_cross_domain_result(report),
    }


def _cross_domain_result(report: dict[str, Any]) -> dict[str, Any]:
    """``{"cross_domain": {"dataset", "exact_f1", "overlap_f1"}}`` of the model when the
    version was also scored on another domain's test set, else ``{}``."""
    scores = report.get("cross_domain")
    if not scores or "model" not in scores:
        return {}
    model = scores["model"]
    return {
        "cross_domain": {
            "dataset": scores["dataset"],
            "exact_f1": model["exact"]["f1"],
            "overlap_f1": model["overlap"]["f1"],
        }
    }


#: the jobs of the token-classification task
JOB_TYPES: tuple[JobType, ...] = (
    JobType("train", run_train, spec=EntitiesTrainJobSpec, check=check_train, task=TASK),
    JobType("screen", run_screening, spec=ScreeningJobSpec, check=check_screening),
)
