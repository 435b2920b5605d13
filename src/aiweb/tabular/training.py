"""Train, evaluate and register a tabular model (``aiweb train tabular-classification``,
``tabular-regression``, ``anomaly-detection``, and the ``train`` job of each).

The rows come from a user's CSV or JSONL file (an upload, or ``--data``) or from one of
the known public datasets (:mod:`aiweb.tabular.data`); :func:`aiweb.tabular.trainer.fit_tabular`
infers the column types, splits (by time with ``time_column``), fits, calibrates, picks
the cost-minimising threshold and evaluates. The version is registered with the task's
name, the skops artifact, the input schema (``signature.inputs``) and the evaluation
report (``evaluation``, which also holds the schema, as the report shows it).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aiweb import __version__
from aiweb.config import Settings
from aiweb.errors import DataFormatError, InvalidInputError
from aiweb.registry.entities import PRODUCTION, ModelVersion
from aiweb.registry.promotion import non_finite_as_null, non_finite_metrics
from aiweb.registry.service import RegistryService
from aiweb.tabular.columns import read_csv
from aiweb.tabular.data import load_dataset
from aiweb.tabular.model import ANOMALY_LABELS, ARTIFACT_FORMAT
from aiweb.tabular.schemas import (
    ALGORITHMS,
    ANOMALY,
    CLASSIFICATION,
    MAX_SEED,
    REGRESSION,
    TASKS,
)
from aiweb.tabular.trainer import Problem, TabularParams, fit_tabular

#: the trainer's problem of each registry task
PROBLEMS: dict[str, Problem] = {
    CLASSIFICATION: "classification",
    REGRESSION: "regression",
    ANOMALY: "anomaly",
}

#: ``progress(stage, fraction)``: stage name and the fraction of the whole job done.
Progress = Callable[[str, float], None]

#: the largest integer a JSON body may hold (signed 64 bits, as the API's input limits say)
INT64_MAX = 2**63 - 1

#: most rows of a JSONL file read for training
MAX_JSONL_ROWS = 5_000_000


@dataclass(frozen=True)
class TabularTrainingData:
    """Rows to train on, optionally rows to evaluate on, and what is known of them.

    Attributes:
        name: dataset name (``german_credit``) or file name, recorded in the lineage.
        rows: training rows, ``{column: value}`` (values ``str``, numbers, bools or ``None``).
        sha256: digest of the data as loaded (train and eval), recorded in the lineage.
        target: the known target column (a public dataset's), else ``None``.
        eval_rows: rows to evaluate on instead of a held-out split, or ``None``.
        eval_split: the evaluation rows' name (``eval-data``).
        problem: the known problem (a public dataset's: ``classification``/``regression``).
        positive_class: the known positive class of a binary target.
        costs: the published costs ``{"fp", "fn"}`` (German Credit's 1 and 5), if any.
        dropped: columns the loader removed (Bank Marketing's leaking ``duration``).
        caveats: what to know about the data (from its ``SOURCE.md``).
    """

    name: str
    rows: list[dict[str, Any]]
    sha256: str
    target: str | None = None
    eval_rows: list[dict[str, Any]] | None = None
    eval_split: str | None = None
    problem: str | None = None
    positive_class: str | None = None
    costs: dict[str, float] | None = None
    dropped: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, name: str, settings: Settings) -> TabularTrainingData:
        """A known public dataset from ``AIWEB_DATA_HOME`` (or the datasets cache).

        Raises:
            DatasetNotFound, DatasetUnavailableError, DataFormatError: see
                :func:`aiweb.tabular.data.load_dataset`.
        """
        data = load_dataset(name, settings.data_home, cache_dir=settings.datasets_cache_dir)
        return cls(
            name=data.name,
            rows=data.rows,
            sha256=data.sha256(),
            target=data.target,
            problem=data.problem,
            positive_class=data.positive_class,
            costs=data.costs,
            dropped=data.dropped,
            caveats=data.caveats,
        )

    @classmethod
    def from_files(
        cls,
        path: Path,
        *,
        eval_path: Path | None = None,
        name: str | None = None,
        fmt: str | None = None,
        eval_fmt: str | None = None,
    ) -> TabularTrainingData:
        """A user's CSV (or TSV, ``;``-separated) or JSONL file, and optionally one to
        evaluate on.

        Args:
            path: the training file.
            eval_path: the evaluation file, or ``None`` to hold out a split.
            name: the data's name in the lineage (default: the file name).
            fmt: ``csv`` or ``jsonl`` (default: by the file's suffix).
            eval_fmt: the same for ``eval_path``.

        Raises:
            DataFormatError: unreadable, empty or malformed file (names file and line).
        """
        rows, digest = read_table(path, fmt, name=name or path.name)
        eval_rows: list[dict[str, Any]] | None = None
        if eval_path is not None:
            eval_rows, eval_digest = read_table(eval_path, eval_fmt, name=eval_path.name)
            digest = hashlib.sha256((digest + eval_digest).encode()).hexdigest()
        return cls(
            name=name or path.name,
            rows=rows,
            sha256=digest,
            eval_rows=eval_rows,
            eval_split="eval-data" if eval_rows is not None else None,
        )


def read_table(path: Path, fmt: str | None, *, name: str) -> tuple[list[dict[str, Any]], str]:
    """The rows of a CSV or JSONL file and the sha256 of its bytes.

    CSV: :func:`aiweb.tabular.columns.read_csv` (delimiter sniffed, cells stripped, every
    value a string). JSONL: one JSON object per line, values kept as JSON gives them.

    Raises:
        DataFormatError: unreadable file, not UTF-8, no rows, a JSONL line that is not an
            object (names the line).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{name}: cannot read file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    kind = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    if kind == "csv":
        _, csv_rows = read_csv(data, name=name)
        rows: list[dict[str, Any]] = [dict(r) for r in csv_rows]
    else:
        rows = []
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataFormatError(f"{name}: not valid UTF-8; save it as UTF-8") from None
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{name}: line {line_number}: invalid JSON ({exc.msg})"
                ) from None
            if not isinstance(record, dict):
                raise DataFormatError(f"{name}: line {line_number}: expected a JSON object")
            rows.append(record)
            if len(rows) > MAX_JSONL_ROWS:
                raise DataFormatError(f"{name}: more than {MAX_JSONL_ROWS:,} rows")
    if not rows:
        raise DataFormatError(f"{name}: no data rows")
    return rows, digest


@dataclass(frozen=True)
class TabularTrainResult:
    """A registered version and its evaluation report."""

    version: ModelVersion
    report: dict[str, Any]


def build_params(
    task: str,
    *,
    drop: Sequence[str] = (),
    test_size: float | None = None,
    time_column: str | None = None,
    params: Mapping[str, Any] | None = None,
    default_costs: Mapping[str, float] | None = None,
) -> TabularParams:
    """The trainer's parameters (:class:`~aiweb.tabular.trainer.TabularParams`) from the
    options and the ``--param``/``params`` values: the options win over ``params``
    (``drop`` lists are joined); ``default_costs`` (a known dataset's published costs)
    are used by a classifier when ``params`` gives none.

    Raises:
        InvalidInputError: an unknown parameter or a value out of range (lists them).
    """
    if task not in TASKS:
        raise InvalidInputError(f"unknown tabular task {task!r}; one of {', '.join(TASKS)}")
    values: dict[str, Any] = dict(params or {})
    if drop:
        values["drop"] = [*values.get("drop", []), *drop]
    if test_size is not None:
        values["test_size"] = test_size
    if time_column is not None:
        values["time_column"] = time_column
    if task == CLASSIFICATION and "costs" not in values and default_costs is not None:
        values["costs"] = dict(default_costs)
    for key, field in TabularParams.model_fields.items():  # JSON's 60.0 is the integer 60
        value = values.get(key)
        if (
            field.annotation is int
            and isinstance(value, float)
            and value.is_integer()
            and abs(value) <= INT64_MAX
        ):
            values[key] = int(value)
    try:
        # strict, as JSON: "3" is not a seed, {"fp": 1, "fn": 5} is a Costs
        parsed = TabularParams.model_validate_json(json.dumps(values), strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"invalid params: {problems}") from None
    except ValueError as exc:  # NaN or an infinity from the command line
        raise InvalidInputError(f"invalid params: {exc}") from None
    check_task_params(task, parsed)
    return parsed


def check_task_params(task: str, params: TabularParams) -> None:
    """What :class:`~aiweb.tabular.trainer.TabularParams` leaves to the task (the
    training body's schema says the same, :func:`aiweb.tabular.schemas.params_schema`).

    Raises:
        InvalidInputError: an algorithm of another task; ``costs`` or ``positive_class``
            for a task that is not classification; costs both 0; ``seed`` outside
            ``[0, MAX_SEED]``; ``contamination`` outside ``(0, 0.5]``.
    """
    problems: list[str] = []
    if params.algorithm is not None and params.algorithm not in ALGORITHMS[task]:
        problems.append(
            f"algorithm {params.algorithm!r}: a {task} model trains "
            + " or ".join(ALGORITHMS[task])
        )
    if task != CLASSIFICATION:
        problems += [
            f"{name}: only a tabular-classification model has one"
            for name in ("costs", "positive_class")
            if getattr(params, name) is not None
        ]
    if not 0 <= params.seed <= MAX_SEED:
        problems.append(f"seed: must be between 0 and {MAX_SEED}")
    contamination = params.contamination
    if not isinstance(contamination, str) and not 0 < contamination <= 0.5:
        problems.append("contamination: must be 'auto' or in (0, 0.5]")
    if problems:
        raise InvalidInputError(f"invalid params: {'; '.join(problems)}")


def train_tabular(
    registry: RegistryService,
    name: str,
    task: str,
    data: TabularTrainingData,
    *,
    target: str | None = None,
    params: TabularParams | None = None,
    alias: str | None = None,
    description: str = "",
    actor: str = "",
    progress: Progress | None = None,
    lineage_extra: dict[str, Any] | None = None,
) -> TabularTrainResult:
    """Fit, evaluate and register a new version of the tabular model ``name``.

    Args:
        registry: where the version goes.
        name: registered model name.
        task: ``tabular-classification``, ``tabular-regression`` or ``anomaly-detection``.
        data: training (and evaluation) rows.
        target: the column to predict (default: the dataset's known target); ``None``
            for anomaly detection.
        params: the trainer's parameters (defaults when ``None``).
        alias: also point this alias at the new version (the first version of a model
            becomes ``production``). A version whose report holds a number that is not
            finite never becomes ``production``: such numbers are stored as ``null`` and
            listed in the report's ``non_finite_metrics``.
        description: the registered model's description (on creation).
        actor: who trains, for the audit log.
        progress: ``(stage, fraction)`` callback; an exception it raises stops training.
        lineage_extra: more lineage to record (the job id of a training job).

    Returns:
        The registered version and its report.

    Raises:
        InvalidInputError: unusable data (no target, an unknown column, one class, too
            few rows …), from the trainer.
    """
    if task not in TASKS:
        raise InvalidInputError(f"unknown tabular task {task!r}; one of {', '.join(TASKS)}")
    problem = PROBLEMS[task]
    params = params or TabularParams()
    report_progress = progress or (lambda _s, _f: None)
    if problem == "anomaly":
        target = None
    else:
        target = target or data.target
        if target is None:
            raise InvalidInputError(f"a {task} model needs a target column (--target / target)")
    registry.record(
        actor,
        "training.started",
        f"model:{name}",
        after={
            "dataset": data.name,
            "dataset_sha256": data.sha256,
            "task": task,
            "target": target,
            "params": params.model_dump(mode="json"),
        },
    )
    report_progress("fitting", 0.0)
    started = time.perf_counter()
    result = fit_tabular(
        data.rows,
        target,
        problem,
        params,
        progress=lambda f, stage: report_progress(stage, 0.9 * f),
        eval_rows=data.eval_rows,
    )
    fit_seconds = time.perf_counter() - started
    model = result.model
    schema = [spec.to_dict() for spec in result.schema]
    report = dict(result.report)
    report.setdefault("schema", schema)
    report_progress("registering", 0.95)
    broken = non_finite_metrics(report)
    if broken:  # never production: stored as null (JSON has no NaN), named in the report
        report = non_finite_as_null(report)
        report["non_finite_metrics"] = broken
        if alias == PRODUCTION:
            alias = None
    lineage = {
        "dataset": data.name,
        "dataset_sha256": data.sha256,
        "target": target,
        "params": params.model_dump(mode="json"),
        "eval_split": data.eval_split,
        "dropped_by_loader": list(data.dropped),
        "aiweb_version": __version__,
        "trained_at": datetime.now(UTC).isoformat(),
        "fit_seconds": round(fit_seconds, 3),
        "algorithm": model.algorithm,
        **(lineage_extra or {}),
    }
    signature = {
        "inputs": {"type": "object", "columns": schema},
        "outputs": _outputs(model.problem, model.classes, model.positive_class, model.threshold),
    }
    version = registry.register_version(
        name,
        task,
        artifact=model.to_bytes(),
        artifact_format=ARTIFACT_FORMAT,
        labels=list(ANOMALY_LABELS if model.problem == "anomaly" else model.classes),
        signature=signature,
        lineage=lineage,
        evaluation=report,
        description=description,
        alias=alias,
        actor=actor,
        production_if_first=not broken,
    )
    report_progress("done", 1.0)
    return TabularTrainResult(version=version, report=report)


def _outputs(
    problem: str, classes: Sequence[str], positive: str | None, threshold: float | None
) -> dict[str, Any]:
    if problem == "classification":
        rule = (
            f"the label is {positive!r} when its probability is at least {threshold:.4f}"
            if positive is not None and threshold is not None
            else "the label is the most probable class"
        )
        return {"label": list(classes), "scores": f"calibrated probability per class; {rule}"}
    if problem == "regression":
        return {"value": "the predicted value, in the target's units"}
    return {
        "score": "anomaly score in (0, 1], higher is more anomalous",
        "anomaly": f"true when the score is over {threshold}",
    }
