"""Tabular jobs: ``train`` and ``batch-predict`` (:mod:`aiweb.tabular.batch`), each with
``"task"`` one of ``tabular-classification``, ``tabular-regression`` and
``anomaly-detection`` (:data:`JOB_TYPES`).

The check at submit validates the parameters and, for an uploaded dataset, that the
named columns (target, dropped, time, evaluation label, type overrides) are its columns,
so a typo is a 422 at submit, never a failed job later. The handler is safe to run again
after a crash: it first looks for a version it already registered (lineage ``job_id``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiweb.errors import InvalidInputError
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext, JobType
from aiweb.tabular.batch import BATCH_SPECS, check_batch_predict, run_batch_predict
from aiweb.tabular.schemas import (
    ANOMALY,
    CLASSIFICATION,
    KNOWN_COLUMNS,
    REGRESSION,
    AnomalyTrainJobSpec,
    ClassificationTrainJobSpec,
    RegressionTrainJobSpec,
    TabularTrainData,
    TrainJob,
)
from aiweb.tabular.trainer import TabularParams
from aiweb.tabular.training import TabularTrainingData, build_params, train_tabular

_SPECS: dict[str, type[TabularTrainData]] = {
    CLASSIFICATION: ClassificationTrainJobSpec,
    REGRESSION: RegressionTrainJobSpec,
    ANOMALY: AnomalyTrainJobSpec,
}


def params_of(task: str, spec: TabularTrainData) -> TabularParams:
    """The trainer's parameters of a job body (its options and ``params``).

    Raises:
        InvalidInputError: an unknown parameter or a value out of range (422).
    """
    return build_params(
        task,
        drop=spec.drop,
        test_size=spec.test_size,
        time_column=spec.time_column,
        params=spec.params,
    )


def check_train(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """Check a tabular training body at submit; return the parameters to store.

    Raises:
        InvalidInputError: invalid parameters, a missing target, a column the uploaded
            dataset does not have (422).
        DatasetNotFound: an uploaded dataset that does not exist (404).
    """
    assert isinstance(spec, TrainJob)
    task = next(t for t, kind in _SPECS.items() if isinstance(spec, kind))
    params = params_of(task, spec)
    needed: dict[str, str] = {}
    if spec.target is not None and (task != ANOMALY or spec.dataset is not None):
        needed["target"] = spec.target  # anomaly detection ignores it (the schema does not)
    for i, column in enumerate(params.drop):
        needed[f"drop[{i}]"] = column
    if params.time_column is not None:
        needed["time_column"] = params.time_column
    overridden = spec.params.get("time_column")
    if spec.time_column is not None and overridden is not None:
        # the body's time_column wins over params' one, which must still be a column
        if not isinstance(overridden, str):
            raise InvalidInputError("params.time_column must be a column name or null")
        needed["params.time_column"] = overridden
    if params.label_column is not None:
        needed["label_column"] = params.label_column
    for j, column in enumerate(params.column_types):
        needed[f"column_types key {j}"] = column
    if spec.dataset_id is not None:
        ctx.dataset_columns("dataset_id", spec.dataset_id, needed)
        if spec.eval_dataset_id is not None:
            ctx.dataset_columns("eval_dataset_id", spec.eval_dataset_id, needed)
    elif spec.dataset is not None:
        columns = KNOWN_COLUMNS[spec.dataset]
        for what, column in needed.items():
            if column not in columns:
                raise InvalidInputError(
                    f"{what} {column[:255]!r} is not a column of {spec.dataset}; its columns "
                    f"are: {', '.join(columns)}"
                )
    return spec.model_dump(exclude={"type"}, exclude_none=True)


def load_training_data(env: JobEnv, spec: TabularTrainData, workdir: Path) -> TabularTrainingData:
    """Read the rows a training body names: an uploaded dataset (with an optional
    uploaded evaluation set) or a known public one.

    Raises:
        DatasetNotFound, DataFormatError, DatasetUnavailableError.
    """
    if spec.dataset is not None:
        return TabularTrainingData.from_dataset(spec.dataset, env.settings)
    assert spec.dataset_id is not None
    uploaded = env.datasets.get(spec.dataset_id)
    eval_path: Path | None = None
    eval_fmt: str | None = None
    if spec.eval_dataset_id is not None:
        evaluation = env.datasets.get(spec.eval_dataset_id)
        eval_path = env.datasets.local_copy(evaluation, workdir)
        eval_fmt = evaluation.format
    return TabularTrainingData.from_files(
        env.datasets.local_copy(uploaded, workdir),
        eval_path=eval_path,
        name=uploaded.name,
        fmt=uploaded.format,
        eval_fmt=eval_fmt,
    )


def run_train(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Train a tabular model from the job's data and register the version.

    Returns:
        ``{"model", "version", "task", "metrics", "threshold", "split"}``: the headline
        test metrics (accuracy, ROC-AUC, PR-AUC, expected cost; RMSE, MAE, R²; anomaly
        ROC-AUC and flagged share), the chosen threshold and the split's sizes.
    """
    task = ctx.job.params.get("task")
    if task not in _SPECS:
        raise InvalidInputError(f"unknown tabular task {task!r}")
    spec = _SPECS[task].model_validate({**ctx.job.params, "type": "train"})
    assert isinstance(spec, TrainJob)
    actor = ctx.job.submitted_by or f"job:{ctx.job.id}"
    done = env.version_of_job(spec.model, ctx.job.id)
    if done is not None:  # an earlier attempt registered it, then died
        version, report = done, done.evaluation
    else:
        ctx.progress(0.0, "loading data")
        data = load_training_data(env, spec, ctx.workdir)
        ctx.progress(0.1, f"loaded {len(data.rows):,} rows of {data.name}")
        params = build_params(
            task,
            drop=spec.drop,
            test_size=spec.test_size,
            time_column=spec.time_column,
            params=spec.params,
            default_costs=data.costs,
        )
        result = train_tabular(
            env.registry,
            spec.model,
            task,
            data,
            target=spec.target,
            params=params,
            alias=spec.alias,
            actor=actor,
            progress=lambda stage, f: ctx.progress(0.1 + 0.85 * f, stage),
            lineage_extra={"job_id": ctx.job.id},
        )
        version, report = result.version, result.report
    return {
        "model": version.name,
        "version": version.version,
        "task": task,
        "metrics": headline_metrics(report),
        "threshold": report.get("threshold"),
        "split": report.get("split"),
    }


#: the metrics a job result and the CLI's summary line show, when the report has them
HEADLINE = (
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "expected_cost",
    "rmse",
    "mae",
    "r2",
    "flagged_share",
)


def headline_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The headline test metrics of a tabular report (``report["metrics"]``)."""
    metrics = report.get("metrics") or {}
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


#: the jobs of the tabular tasks (a ``batch-predict`` body names its ``task``; one without
#: it is text classification's)
JOB_TYPES: tuple[JobType, ...] = (
    *(
        JobType("train", run_train, spec=spec, check=check_train, task=task)
        for task, spec in _SPECS.items()
    ),
    *(
        JobType("batch-predict", run_batch_predict, spec=spec, check=check_batch_predict, task=task)
        for task, spec in BATCH_SPECS.items()
    ),
)
