"""Text-classification jobs: ``train`` (the default ``task`` of a training job) and
``batch-predict``: their checks at submit and their handlers (:data:`JOB_TYPES`).

Both are safe to run again after a crash: a training job first looks for a version it
already registered (lineage ``job_id``), and a batch-prediction attempt writes its
output under its own attempt number and publishes it only by finishing the job.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from aiweb import datasets
from aiweb.classification.evaluation import evaluate
from aiweb.classification.loader import load_runtime
from aiweb.classification.rejection import Rejection, decide, output_labels
from aiweb.classification.schemas import (
    KNOWN_DATASETS,
    BatchPredictJobSpec,
    PromotionRule,
    ScheduleIn,
    TrainData,
    TrainJobSpec,
)
from aiweb.classification.trainer import parse_params
from aiweb.classification.training import TASK, TrainingData, train_text_classification
from aiweb.datasets.tables import iter_table
from aiweb.errors import ConflictError, InvalidInputError, NotFoundError
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext, JobType
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.registry.promotion import decide_promotion as decide_by_rule

#: Score columns are written with this many decimals (probabilities).
SCORE_DECIMALS = 6


def load_training_data(env: JobEnv, data: TrainData, workdir: Path) -> TrainingData:
    """Read the rows a training spec names: an uploaded dataset (with an optional
    uploaded evaluation set) or a built-in dataset.

    Raises:
        DatasetNotFound, DataFormatError, DatasetUnavailableError.
    """
    if data.dataset is not None:
        return TrainingData.from_splits(datasets.load(data.dataset, env.settings, progress=False))
    assert data.dataset_id is not None
    uploaded = env.datasets.get(data.dataset_id)
    eval_path = None
    if data.eval_dataset_id is not None:
        eval_path = env.datasets.local_copy(env.datasets.get(data.eval_dataset_id), workdir)
    return TrainingData.from_files(
        env.datasets.local_copy(uploaded, workdir),
        text_column=data.text_column,
        label_column=data.label_column,
        eval_path=eval_path,
        name=uploaded.name,
    )


def check_train_data(ctx: CheckContext, data: TrainData) -> None:
    """Check a training spec's parameters, dataset and columns.

    Raises:
        InvalidInputError: invalid parameters, an unknown dataset or column (422).
    """
    parse_params(data.params)  # InvalidInputError naming each problem and its range
    columns = {"text_column": data.text_column, "label_column": data.label_column}
    if data.dataset_id is not None:
        ctx.dataset_columns("dataset_id", data.dataset_id, columns)
    if data.eval_dataset_id is not None:
        ctx.dataset_columns("eval_dataset_id", data.eval_dataset_id, columns)
    if data.dataset is not None:
        check_dataset(data.dataset)


def check_dataset(name: str) -> None:
    """A known dataset a text classifier trains on (:data:`KNOWN_DATASETS`).

    Raises:
        InvalidInputError: an unknown dataset, or one of another task (422, naming the
            datasets that fit).
    """
    known = ", ".join(KNOWN_DATASETS)
    try:
        info = datasets.info(name)
    except NotFoundError:
        raise InvalidInputError(f"unknown dataset {name!r}; known datasets: {known}") from None
    if info.task != TASK:
        raise InvalidInputError(
            f"dataset {name!r} is a {info.task} dataset; a text classifier trains on one "
            f"of: {known}"
        )


def check_train(ctx: CheckContext, spec: TrainJobSpec) -> dict[str, Any]:
    """The stored parameters of a training job (see :func:`check_train_data`)."""
    check_train_data(ctx, spec)
    return spec.model_dump(exclude={"type"}, exclude_none=True)


def check_batch_predict(ctx: CheckContext, spec: BatchPredictJobSpec) -> dict[str, Any]:
    """The stored parameters of a batch-prediction job, with the model version pinned
    (an alias moved while the job waits does not change what it scores with).

    Raises:
        InvalidInputError: a malformed reference, an unknown dataset or column (422).
        ConflictError: the model is not a ready text classifier (409).
        ModelNotFound, AliasNotFound, ModelVersionNotFound: the model (404).
    """
    try:
        ref = ModelRef.parse(spec.model)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    version = ctx.registry.resolve(ref)
    if version.task != TASK or version.status != "ready":
        raise ConflictError(  # the model's state, not the body's shape: 409
            f"{version.name}:{version.version} is a {version.task!r} model with status "
            f"{version.status!r}; batch prediction needs a ready text-classification model"
        )
    ctx.dataset_columns("dataset_id", spec.dataset_id, {"text_column": spec.text_column})
    params = spec.model_dump(exclude={"type"})
    params["model_version"] = version.version
    params["model_name"] = version.name
    return params


def decide_promotion(
    env: JobEnv,
    candidate: ModelVersion,
    report: dict[str, Any],
    eval_texts: list[str],
    eval_labels: list[str],
    rule: PromotionRule,
    *,
    actor: str,
) -> dict[str, Any]:
    """Move ``production`` to ``candidate`` when ``rule`` holds; audit either way
    (:func:`aiweb.registry.promotion.decide_promotion`).

    The current production version is scored on the candidate's evaluation rows, so
    both numbers come from the same data; a production version with other labels is not
    scored (promote by hand).

    Returns:
        ``{"metric", "min_delta", "candidate", "candidate_version", "production",
        "production_version", "reason", "promoted"}`` (``production`` is ``None`` when
        there was no other production version).
    """

    def score_production(current: ModelVersion) -> float | None:
        runtime = load_runtime(env.registry, current)
        proba = runtime.predict_proba(eval_texts)
        rejection = Rejection.of_lineage(current.lineage)
        labels = output_labels(runtime.labels, rejection)
        if labels != list(candidate.labels):
            return None
        baseline = evaluate(
            eval_labels,
            proba,
            labels,
            split="candidate-eval",
            predicted=decide(runtime.labels, proba, rejection),
        )
        score = baseline.get(rule.metric)
        return None if score is None else float(score)

    return decide_by_rule(
        env.registry,
        candidate,
        metric=rule.metric,
        min_delta=rule.min_delta,
        candidate_score=report.get(rule.metric),
        score_production=score_production,
        unscored="the production version has other labels; promote by hand",
        actor=actor,
    )


def run_train(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Train a text classifier from the job's data and register the version."""
    spec = TrainJobSpec.model_validate({**ctx.job.params, "type": "train"})
    actor = ctx.job.submitted_by or f"job:{ctx.job.id}"
    done = env.version_of_job(spec.model, ctx.job.id)
    if done is not None:  # an earlier attempt registered it, then died
        version, report, promotion = done, done.evaluation, None
    else:
        ctx.progress(0.0, "loading data")
        data = load_training_data(env, spec, ctx.workdir)
        ctx.progress(0.1, f"loaded {len(data.train_texts):,} rows of {data.name}")
        result = train_text_classification(
            env.registry,
            spec.model,
            data,
            params=parse_params(spec.params),
            test_size=spec.test_size,
            alias=None if spec.promotion else spec.alias,
            actor=actor,
            progress=lambda stage, f: ctx.progress(0.1 + 0.85 * f, stage),
            lineage_extra={"job_id": ctx.job.id},
        )
        version, report, promotion = result.version, result.report, None
        if spec.promotion is not None:
            assert result.eval_texts is not None
            assert result.eval_labels is not None
            ctx.progress(0.97, "comparing with production")
            promotion = decide_promotion(
                env,
                version,
                report,
                result.eval_texts,
                result.eval_labels,
                spec.promotion,
                actor=actor,
            )
    out: dict[str, Any] = {
        "model": version.name,
        "version": version.version,
        "task": TASK,
        "metrics": {k: report[k] for k in ("accuracy", "macro_f1", "roc_auc") if k in report},
        "split": report.get("split"),
    }
    oos = report.get("out_of_scope")
    if isinstance(oos, dict):
        out["metrics"].update(
            in_scope_accuracy=oos.get("in_scope_accuracy"), oos_recall=oos.get("oos_recall")
        )
    if promotion is not None:
        out["promotion"] = promotion
    return out


def run_batch_predict(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Score every row of an uploaded dataset; write ``id,label,score_<class>…`` CSV.

    The input is streamed in chunks of ``jobs.batch_chunk_rows`` rows, so memory stays
    bounded whatever the file size; each chunk is one ``predict_proba`` call.
    """
    p = ctx.job.params
    version = env.registry.get_version(p["model_name"], int(p["model_version"]))
    runtime = load_runtime(env.registry, version)
    labels = list(runtime.labels)
    rejection = Rejection.of_lineage(version.lineage)
    dataset = env.datasets.get(p["dataset_id"])
    text_column, id_column = p["text_column"], p["id_column"]
    has_ids = id_column in dataset.columns
    total = max(1, dataset.rows)
    out_path = ctx.workdir / "predictions.csv"
    rows = 0
    ctx.progress(0.0, f"scoring {dataset.rows:,} rows with {version.name}:{version.version}")
    with env.datasets.open(dataset) as raw, out_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "label", *(f"score_{label}" for label in labels)])
        for chunk in iter_table(
            raw,
            dataset.format,
            name=dataset.name,
            columns=[text_column, id_column] if has_ids else [text_column],
            required=[text_column],
            chunk_rows=env.settings.jobs.batch_chunk_rows,
        ):
            texts = [t if t is not None else "" for t in chunk.columns[text_column]]
            n = len(texts)
            if has_ids:
                ids: list[Any] = [
                    v if v is not None else str(chunk.start + i + 1)
                    for i, v in enumerate(chunk.columns[id_column])
                ]
            else:
                ids = list(range(chunk.start + 1, chunk.start + n + 1))
            proba = runtime.predict_proba(texts)
            answered = decide(labels, proba, rejection)
            scores = np.round(proba, SCORE_DECIMALS).tolist()
            writer.writerows(
                [i, label, *s] for i, label, s in zip(ids, answered, scores, strict=True)
            )
            rows += n
            ctx.progress(rows / total, f"{rows:,} of {dataset.rows:,} rows")
    if rows != dataset.rows:
        raise InvalidInputError(
            f"dataset {dataset.id} has {dataset.rows} rows on record but {rows} were read"
        )
    ctx.progress(1.0, "storing the result")
    uri = f"jobs/{ctx.job.id}/attempt-{ctx.attempt}/predictions.csv"
    sha256 = env.registry.artifacts.put_file(uri, out_path)
    return {
        "artifact_uri": uri,
        "format": "csv",
        "rows": rows,
        "sha256": sha256,
        "size_bytes": out_path.stat().st_size,
        "model": version.name,
        "version": version.version,
        "columns": ["id", "label", *(f"score_{label}" for label in labels)],
    }


#: the jobs of text classification
JOB_TYPES: tuple[JobType, ...] = (
    JobType(
        "train",
        run_train,
        spec=TrainJobSpec,
        check=check_train,
        task=TASK,
        schedule=ScheduleIn,
    ),
    JobType(
        "batch-predict", run_batch_predict, spec=BatchPredictJobSpec, check=check_batch_predict
    ),
)
