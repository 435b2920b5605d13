"""Tabular batch predictions: ``{"type": "batch-predict", "task": <tabular task>, …}``
scores every row of an uploaded CSV or JSONL dataset and stores the answers as a CSV
file, as text classification's batch predictions do (:data:`BATCH_SPECS`, checked by
:func:`check_batch_predict`, run by :func:`run_batch_predict`).

The file is streamed in chunks of ``jobs.batch_chunk_rows`` rows, so memory stays
bounded whatever its size; each chunk is checked and scored in one call. A row is what
the predict route takes: the file's columns that are the model's inputs (the others are
not read; an input the file lacks is a missing value in every row). CSV cells are the
strings of the file, read as the training job reads them (``"42"`` is a number to a
numeric column, ``"?"`` or an empty cell a missing value); a JSONL line is its JSON
object, so it is scored exactly as the same object sent to ``POST
/v1/models/{name}/predict``.

A row the model refuses (a word in a numeric column …) fails the job with a 422 error
naming the row (counted from 1, as the output's default ids) and the column: the predict
route refuses a request for one bad row, and a text-classification batch job, which
takes any text, has no per-row errors to mirror. Like it, an attempt writes under its
own attempt number and publishes its file only by finishing the job, so a retried
attempt is safe.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from aiweb.datasets.service import Dataset
from aiweb.datasets.tables import iter_table
from aiweb.errors import ConflictError, DataFormatError, InvalidInputError, InvalidRowError
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext
from aiweb.names import REF_REGEX
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.tabular.model import TabularModel
from aiweb.tabular.schemas import ANOMALY, CLASSIFICATION, MAX_COLUMN_NAME_CHARS, REGRESSION

__all__ = [
    "BATCH_SPECS",
    "SCORE_DECIMALS",
    "AnomalyBatchPredictJobSpec",
    "BatchPredictJob",
    "ClassificationBatchPredictJobSpec",
    "RegressionBatchPredictJobSpec",
    "check_batch_predict",
    "input_columns",
    "output_columns",
    "run_batch_predict",
]

#: probabilities and anomaly scores are written with this many decimals (as text
#: classification's batch output); regression values are written in full
SCORE_DECIMALS = 6

_BOM = b"\xef\xbb\xbf"
_ROW = re.compile(r"^row (\d+)")


class BatchPredictJob(BaseModel):
    """The fields of every tabular batch-prediction body (its ``task`` is in the
    subclasses): the model, the uploaded dataset to score, and the column whose values
    name the output rows."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["batch-predict"]
    model: str = Field(
        ...,
        min_length=1,
        max_length=130,
        description="name, name@alias or name:version; the version is pinned at submit.",
        json_schema_extra={"pattern": REF_REGEX},
    )
    dataset_id: str = Field(..., max_length=64, description="An uploaded CSV or JSONL dataset.")
    id_column: str = Field(
        "id",
        min_length=1,
        max_length=MAX_COLUMN_NAME_CHARS,
        description="Copied to the output's id column; the row number (from 1) when absent.",
    )


class ClassificationBatchPredictJobSpec(BatchPredictJob):
    """``{"type": "batch-predict", "task": "tabular-classification", "model": NAME,
    "dataset_id": ID}``: writes ``id,label,score_<class>…``."""

    task: Literal["tabular-classification"]


class RegressionBatchPredictJobSpec(BatchPredictJob):
    """``{"type": "batch-predict", "task": "tabular-regression", "model": NAME,
    "dataset_id": ID}``: writes ``id,value``."""

    task: Literal["tabular-regression"]


class AnomalyBatchPredictJobSpec(BatchPredictJob):
    """``{"type": "batch-predict", "task": "anomaly-detection", "model": NAME,
    "dataset_id": ID}``: writes ``id,score,anomaly``."""

    task: Literal["anomaly-detection"]


#: the body of a tabular batch-prediction job, by task
BATCH_SPECS: dict[str, type[BatchPredictJob]] = {
    CLASSIFICATION: ClassificationBatchPredictJobSpec,
    REGRESSION: RegressionBatchPredictJobSpec,
    ANOMALY: AnomalyBatchPredictJobSpec,
}


def input_columns(version: ModelVersion) -> list[str]:
    """The input columns of a tabular version, from its signature (``signature.inputs``)."""
    inputs = version.signature.get("inputs") or {}
    columns = inputs.get("columns") or []
    return [str(c["name"]) for c in columns if isinstance(c, Mapping) and "name" in c]


def check_batch_predict(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """Check a tabular batch-prediction body at submit; return the parameters to store,
    with the model version pinned (an alias moved while the job waits does not change
    what it scores with).

    Raises:
        InvalidInputError: a malformed reference; a dataset that has none of the
            model's input columns (422).
        ConflictError: the model is not a ready model of the body's ``task`` (409).
        ModelNotFound, AliasNotFound, ModelVersionNotFound: the model (404).
        DatasetNotFound: the dataset (404).
    """
    assert isinstance(spec, BatchPredictJob)
    task: str = getattr(spec, "task")  # noqa: B009 - every subclass has it
    try:
        ref = ModelRef.parse(spec.model)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    version = ctx.registry.resolve(ref)
    if version.task != task or version.status != "ready":
        # the model exists but is not one this job can use: its state, not the body's
        # shape, decides, so 409 (another request may have made it of another task)
        raise ConflictError(
            f"{version.name}:{version.version} is a {version.task!r} model with status "
            f"{version.status!r}; this batch prediction needs a ready {task!r} model"
            + (f' (send "task": "{version.task}")' if version.task in BATCH_SPECS else "")
        )
    ctx.dataset_columns("dataset_id", spec.dataset_id, {})
    dataset = ctx.datasets.get(spec.dataset_id)
    inputs = input_columns(version)
    if inputs and not set(inputs) & set(dataset.columns):
        raise InvalidInputError(
            f"dataset {dataset.id} ({dataset.name}) has none of the input columns of "
            f"{version.name}:{version.version} ({', '.join(inputs)}); its columns are: "
            f"{', '.join(dataset.columns)}"
        )
    params = spec.model_dump(exclude={"type"})
    params["model_version"] = version.version
    params["model_name"] = version.name
    return params


def output_columns(model: TabularModel) -> list[str]:
    """The header of a batch output: ``id,label,score_<class>…`` (classification),
    ``id,value`` (regression), ``id,score,anomaly`` (anomaly detection)."""
    if model.problem == "classification":
        return ["id", "label", *(f"score_{c}" for c in model.classes)]
    if model.problem == "regression":
        return ["id", "value"]
    return ["id", "score", "anomaly"]


def _output_row(model: TabularModel, row_id: Any, answer: Mapping[str, Any]) -> list[Any]:
    """One output line of an answer of :meth:`TabularModel.predict_matrix`."""
    if model.problem == "classification":
        scores = answer["scores"]
        return [row_id, answer["label"], *(round(scores[c], SCORE_DECIMALS) for c in model.classes)]
    if model.problem == "regression":
        return [row_id, answer["value"]]
    return [
        row_id,
        round(answer["score"], SCORE_DECIMALS),
        "true" if answer["anomaly"] else "false",
    ]


def _jsonl_chunks(
    raw: BinaryIO, name: str, chunk_rows: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """``(start, records)`` of a JSONL file, ``chunk_rows`` records at a time, values as
    JSON gives them (blank lines skipped; integers beyond 64 bits read exactly).

    Raises:
        DataFormatError: a line that is not a JSON object (names the file and line).
    """
    start = 0
    chunk: list[dict[str, Any]] = []
    for line, text in enumerate(raw, start=1):
        if line == 1 and text.startswith(_BOM):
            text = text[len(_BOM) :]
        if not text.strip():
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:
                record = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise DataFormatError(f"{name}: line {line}: invalid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{name}: line {line}: expected a JSON object")
        chunk.append(record)
        if len(chunk) == chunk_rows:
            yield start, chunk
            start += len(chunk)
            chunk = []
    if chunk:
        yield start, chunk


def _chunks(
    raw: BinaryIO, dataset: Dataset, inputs: Sequence[str], id_column: str, chunk_rows: int
) -> Iterator[tuple[int, list[dict[str, Any]], list[Any]]]:
    """``(start, rows, ids)`` of a dataset, chunk by chunk: each row holds the inputs the
    line has (a missing one is left out), each id the line's ``id_column`` value or its
    row number (from 1)."""
    has_ids = id_column in dataset.columns
    if dataset.format == "jsonl":
        for start, records in _jsonl_chunks(raw, dataset.name, chunk_rows):
            rows = [{c: r[c] for c in inputs if c in r} for r in records]
            ids: list[Any] = [
                r.get(id_column) if has_ids and r.get(id_column) is not None else start + i + 1
                for i, r in enumerate(records)
            ]
            yield start, rows, ids
        return
    wanted = [*inputs, id_column] if has_ids and id_column not in inputs else list(inputs)
    wanted = wanted or dataset.columns[:1]  # a column to count the rows by
    for chunk in iter_table(
        raw, dataset.format, name=dataset.name, columns=wanted, chunk_rows=chunk_rows
    ):
        n = len(chunk.columns[wanted[0]])
        rows = [{c: v for c in inputs if (v := chunk.columns[c][i]) is not None} for i in range(n)]
        if has_ids:
            ids = [
                v if v is not None else chunk.start + i + 1
                for i, v in enumerate(chunk.columns[id_column])
            ]
        else:
            ids = list(range(chunk.start + 1, chunk.start + n + 1))
        yield chunk.start, rows, ids


def _validate(
    model: TabularModel, rows: list[dict[str, Any]], start: int, ids: list[Any], name: str
) -> Any:
    """The raw feature matrix of a chunk (:meth:`TabularModel.validate_rows`).

    Raises:
        InvalidRowError: the first row the model refuses, named by its row number in the
            dataset (from 1), its id and the column.
    """
    try:
        return model.validate_rows(rows)
    except InvalidRowError as exc:
        detail = exc.detail
        match = _ROW.match(detail)
        if match is None:
            raise
        i = int(match.group(1))
        number = start + i + 1
        named = f" (id {str(ids[i])[:100]!r})" if ids[i] != number else ""
        raise InvalidRowError(
            f"{name}: row {number}{named}{detail[match.end() :]} (the job stores no predictions)"
        ) from None


def run_batch_predict(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Score every row of an uploaded dataset with the pinned tabular version; store the
    answers as a CSV file (:func:`output_columns`).

    Returns:
        ``{"artifact_uri", "format": "csv", "rows", "sha256", "size_bytes", "model",
        "version", "task", "columns", "missing_columns"}``: where the file is, its
        header, and the model's input columns the dataset lacks (missing in every row).

    Raises:
        InvalidRowError: a row the model refuses (422, see :func:`_validate`).
        DataFormatError: an unreadable file; InvalidInputError: fewer or more rows read
            than the dataset has on record.
        CorruptArtifactError, UnsafeArtifactError: the model's artifact.
    """
    p = ctx.job.params
    version = env.registry.get_version(p["model_name"], int(p["model_version"]))
    if not version.artifact_uri:
        raise InvalidInputError(f"{version.name}:{version.version} has no artifact")
    model = TabularModel.from_bytes(
        read_verified(
            env.registry.artifacts,
            version.artifact_uri,
            version.artifact_sha256,
            f"artifact of {version.name}:{version.version}",
        )
    )
    dataset = env.datasets.get(p["dataset_id"])
    inputs = [s.name for s in model.schema if s.name in dataset.columns]
    missing = [s.name for s in model.schema if s.name not in dataset.columns]
    header = output_columns(model)
    total = max(1, dataset.rows)
    out_path = ctx.workdir / "predictions.csv"
    rows = 0
    ctx.progress(0.0, f"scoring {dataset.rows:,} rows with {version.name}:{version.version}")
    with env.datasets.open(dataset) as raw, out_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for start, chunk, ids in _chunks(
            raw, dataset, inputs, p["id_column"], env.settings.jobs.batch_chunk_rows
        ):
            matrix = _validate(model, chunk, start, ids, dataset.name)
            answers = model.predict_matrix(np.asarray(matrix, dtype=np.float64))
            writer.writerows(_output_row(model, i, a) for i, a in zip(ids, answers, strict=True))
            rows += len(chunk)
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
        "task": version.task,
        "columns": header,
        "missing_columns": missing,
    }
