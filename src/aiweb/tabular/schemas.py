"""API shapes of the tabular tasks (``tabular-classification``, ``tabular-regression``,
``anomaly-detection``): predictions and explanations of JSON rows, and the bodies of
their training jobs.

A row is a JSON object of column name to a cell: a string, a number, a boolean or
``null`` (a missing value). A cell that is anything else (an array, an object), a number
that is not finite or whose magnitude is over :data:`MAX_ABS_NUMBER`, or a string over
:data:`MAX_CELL_CHARS` characters is answered 422 with the row and the column in the
error's ``loc`` (``["body", "inputs", 3, "age"]``). Whether the columns are the model's
is the service's check (:meth:`aiweb.tabular.model.TabularModel.validate_rows`), also a
422 naming the row and the column.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from aiweb.contract import Contribution, Explanation
from aiweb.jobs.schemas import MODEL_NAME_PATTERN
from aiweb.tabular.model import MAX_STRING_CHARS

#: the registry tasks of tabular models
CLASSIFICATION = "tabular-classification"
REGRESSION = "tabular-regression"
ANOMALY = "anomaly-detection"
TASKS = (CLASSIFICATION, REGRESSION, ANOMALY)

#: rows per predict request; more is a 413
MAX_ROWS = 1000
#: rows per explain request (each costs a TreeSHAP pass); more is a 413
MAX_EXPLAIN_ROWS = 100
#: columns per row
MAX_COLUMNS = 1000
#: characters of a column name
MAX_COLUMN_NAME_CHARS = 255
#: characters of a string cell (the runtime's own limit)
MAX_CELL_CHARS = MAX_STRING_CHARS
#: largest magnitude of a number cell (larger ones are far outside any training data and
#: lose integer precision in a float64)
MAX_ABS_NUMBER = 1e15

#: the public datasets a training job may name (:func:`aiweb.tabular.data.load_dataset`)
KNOWN_DATASETS = ("german_credit", "bank_marketing", "adult", "wine_quality")

Cell = str | int | float | bool | None


def check_cell(value: Any) -> Cell:
    """A row's cell as the API accepts it.

    Args:
        value: the parsed JSON value.

    Returns:
        ``value`` unchanged: ``None``, a bool, an int, a float or a str.

    Raises:
        ValueError: an array or object, a non-finite number, a number whose magnitude is
            over :data:`MAX_ABS_NUMBER`, a string over :data:`MAX_CELL_CHARS` characters
            or one that is not valid Unicode (a lone surrogate). Pydantic turns it into
            a 422 located at the row and the column.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number (NaN and infinities are not values)")
        if abs(value) > MAX_ABS_NUMBER:
            raise ValueError(f"a number's magnitude must be at most {MAX_ABS_NUMBER:.0e}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_CELL_CHARS:
            raise ValueError(f"{len(value)} characters; a cell holds at most {MAX_CELL_CHARS:,}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
        return value
    kind = (
        "an object"
        if isinstance(value, dict)
        else "an array"
        if isinstance(value, list)
        else type(value).__name__
    )
    raise ValueError(f"must be a string, a number, a boolean or null, not {kind}")


_CELL_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_CELL_CHARS},
        {"type": "number", "minimum": -MAX_ABS_NUMBER, "maximum": MAX_ABS_NUMBER},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
CellValue = Annotated[Cell, PlainValidator(check_cell), WithJsonSchema(_CELL_SCHEMA)]

#: a string without a NUL character (the API's input limits refuse one before any route)
NO_NUL = r"^[^\x00]*$"


def _no_nul(name: str) -> str:
    if "\x00" in name:
        raise ValueError("a column name cannot hold a NUL character")
    return name


ColumnName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_COLUMN_NAME_CHARS),
    AfterValidator(_no_nul),
]
#: one row: column name -> cell (its schema spelled out: the key rules as propertyNames)
Row = Annotated[
    dict[ColumnName, CellValue],
    Field(max_length=MAX_COLUMNS),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_COLUMNS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": MAX_COLUMN_NAME_CHARS,
                "pattern": NO_NUL,
            },
            "additionalProperties": _CELL_SCHEMA,
        }
    ),
]

_EXAMPLE_ROW: dict[str, Any] = {
    "age": 39,
    "workclass": "State-gov",
    "education": "Bachelors",
    "hours_per_week": 40,
    "native_country": None,
}


class TabularPredictRequest(BaseModel):
    """Rows to score: column name to value, the model's columns (a column left out is a
    missing value; a column the model does not know is a 422)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": [_EXAMPLE_ROW]}]}
    )

    inputs: list[Row] = Field(
        ...,
        min_length=1,
        description=f"1 to {MAX_ROWS:,} rows; more are answered 413.",
        json_schema_extra={"maxItems": MAX_ROWS},
    )


class ClassPrediction(BaseModel):
    """A ``tabular-classification`` row's answer."""

    id: str = Field(..., description="Prediction id: send feedback about it later.")
    label: str = Field(
        ...,
        description="The decided class: for a binary model, the positive class when its "
        "probability is at least the version's threshold (chosen to minimise the expected "
        "cost on the validation slice, `evaluation.threshold`); else the most probable.",
    )
    scores: dict[str, float] = Field(..., description="Calibrated probability of every class.")


class ValuePrediction(BaseModel):
    """A ``tabular-regression`` row's answer."""

    id: str
    value: float = Field(..., description="The predicted value, in the target's units.")


class AnomalyPrediction(BaseModel):
    """An ``anomaly-detection`` row's answer."""

    id: str
    score: float = Field(..., description="Anomaly score: higher is more anomalous.")
    anomaly: bool = Field(..., description="Whether the score is over the version's threshold.")


class TabularPredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[ClassPrediction | ValuePrediction | AnomalyPrediction]


# ---- explanations ----------------------------------------------------------------------------


class TabularExplainRequest(BaseModel):
    """Rows whose answers to explain (``POST /v1/models/{name}/explain``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": [_EXAMPLE_ROW], "target": None, "top_k": 10}]},
    )

    inputs: list[Row] = Field(
        ...,
        min_length=1,
        description=f"1 to {MAX_EXPLAIN_ROWS} rows; more are answered 413.",
        json_schema_extra={"maxItems": MAX_EXPLAIN_ROWS},
    )
    target: str | None = Field(
        None,
        max_length=1000,
        description="The class to explain (classification), for every row; default: each "
        "row's answered class. Not used by regression and anomaly models.",
    )
    top_k: StrictInt = Field(
        10,
        ge=0,
        le=MAX_COLUMNS,
        description="Most contributions listed per row, by decreasing |weight|; 0 lists "
        "them all. The rest are summed in `omitted`.",
    )


class TabularContribution(Contribution):
    """One column of the row and its weight (``feature`` is the column name)."""

    value: Cell = Field(None, description="The row's value of the column, as sent (null: missing).")


class TabularExplanation(Explanation):
    """The explanation of one row's answer: per column, its contribution to the model's
    raw output for ``target``.

    ``method: "tree"`` (boosted trees): path-dependent TreeSHAP (Lundberg et al. 2018,
    2020), exact: ``base_value + Σ contributions + omitted.weight == logit``.
    ``method: "linear"``: coefficient x centred value, summed per column, exact.
    Classification weights are in the uncalibrated margin (log-odds of ``target`` for a
    binary model), ``scores`` the calibrated probabilities; regression weights are in the
    target's units and ``logit`` is the predicted value. Anomaly models are not explained."""

    contributions: list[TabularContribution]  # type: ignore[assignment]
    calibration: str | None = Field(
        None, description="Classification: the map from margin to probability (sigmoid, isotonic)."
    )
    value: float | None = Field(None, description="Regression: the predicted value.")


class TabularExplainResponse(BaseModel):
    model: str
    version: int
    explanations: list[TabularExplanation]


# ---- jobs ------------------------------------------------------------------------------------

#: the largest ``seed`` (scikit-learn's random states are below 2**32; the split uses seed + 1)
MAX_SEED = 2**32 - 2


#: the columns of each known dataset, as :func:`aiweb.tabular.data.load_dataset` gives them
#: (Bank Marketing without its leaking ``duration``); a test checks them against the files
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "german_credit": (
        "checking_status", "duration_months", "credit_history", "purpose", "credit_amount",
        "savings", "employment_since", "installment_rate", "personal_status_sex",
        "other_debtors", "residence_since", "property", "age", "other_installment_plans",
        "housing", "existing_credits", "job", "people_liable", "telephone", "foreign_worker",
        "credit_risk",
    ),
    "bank_marketing": (
        "age", "job", "marital", "education", "default", "balance", "housing", "loan",
        "contact", "day", "month", "campaign", "pdays", "previous", "poutcome", "y",
    ),
    "adult": (
        "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
        "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
        "hours-per-week", "native-country", "income",
    ),
    "wine_quality": (
        "fixed_acidity", "volatile_acidity", "citric_acid", "residual_sugar", "chlorides",
        "free_sulfur_dioxide", "total_sulfur_dioxide", "density", "pH", "sulphates",
        "alcohol", "color", "quality",
    ),
}  # fmt: skip


def sources_schema(needs_target: bool) -> dict[str, Any]:
    """Where the rows come from, as a JSON-schema ``oneOf``: ``dataset_id`` (a string,
    with ``target`` when the task has one), or a known ``dataset`` (no
    ``eval_dataset_id``), whose column names (``target``, ``drop``, ``time_column`` and
    the same in ``params``, ``label_column``, ``column_types``) are its columns."""
    uploaded: dict[str, Any] = {
        "required": ["dataset_id", "target"] if needs_target else ["dataset_id"],
        "properties": {"dataset_id": {"type": "string"}, "dataset": {"type": "null"}}
        | ({"target": {"type": "string"}} if needs_target else {}),
    }
    known: list[dict[str, Any]] = []
    for name, columns in KNOWN_COLUMNS.items():
        column = {"type": "string", "enum": list(columns)}
        column_or_null = {"anyOf": [column, {"type": "null"}]}
        known.append(
            {
                "required": ["dataset"],
                "properties": {
                    "dataset": {"const": name},
                    "dataset_id": {"type": "null"},
                    "eval_dataset_id": {"type": "null"},
                    "target": column_or_null,
                    "time_column": column_or_null,
                    "drop": {"items": column},
                    "params": {
                        "properties": {
                            "drop": {"items": column},
                            "time_column": column_or_null,
                            "label_column": column_or_null,
                            "column_types": {"propertyNames": column},
                        }
                    },
                },
            }
        )
    return {"oneOf": [uploaded, *known]}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/X"}`` replaced by ``defs["X"]``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def params_schema(task: str) -> dict[str, Any]:
    """The JSON schema of a training body's ``params`` for ``task``: the trainer's
    parameters (:class:`aiweb.tabular.trainer.TabularParams`: names, types, ranges) with
    what :func:`aiweb.tabular.training.check_task_params` adds: the task's algorithms,
    ``costs`` and ``positive_class`` for classification only, costs not both 0,
    ``seed`` in ``[0, MAX_SEED]``, ``contamination`` ``auto`` or in ``(0, 0.5]``."""
    from aiweb.tabular.trainer import TabularParams  # scikit-learn: only when asked

    raw = TabularParams.model_json_schema()
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    schema.pop("title", None)
    schema.pop("description", None)
    props = schema["properties"]
    props["algorithm"] = {
        "anyOf": [
            {"type": "string", "enum": list(ALGORITHMS[task])},
            {"type": "null"},
        ],
        "default": None,
    }
    if task == CLASSIFICATION:
        costs = props["costs"]["anyOf"][0]
        costs["anyOf"] = [
            {"properties": {"fp": {"exclusiveMinimum": 0}}},
            {"properties": {"fn": {"exclusiveMinimum": 0}}},
        ]
    else:
        props["costs"] = {"type": "null", "default": None}
        props["positive_class"] = {"type": "null", "default": None}
    props["seed"] = {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0}
    props["contamination"] = {
        "anyOf": [
            {"type": "string", "enum": ["auto"]},
            {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
        ],
        "default": "auto",
    }
    return schema


#: the algorithms each task trains
ALGORITHMS: dict[str, tuple[str, ...]] = {
    CLASSIFICATION: ("hgb", "linear"),
    REGRESSION: ("hgb", "linear"),
    ANOMALY: ("isolation_forest",),
}


class TabularTrainData(BaseModel):
    """Where a tabular model's training rows come from and how they are split: an
    uploaded CSV/JSONL dataset (``dataset_id``, with ``target``) or a known public one
    (``dataset``: its target and caveats are known), exactly one of them."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(None, max_length=64, description="An uploaded dataset.")
    dataset: Literal["german_credit", "bank_marketing", "adult", "wine_quality"] | None = Field(
        None, description="A known public dataset."
    )
    eval_dataset_id: str | None = Field(
        None, max_length=64, description="Evaluate on this uploaded dataset instead of a split."
    )
    target: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_COLUMN_NAME_CHARS,
        description="The column to predict (required with `dataset_id`, except for "
        "anomaly detection, which has none; a known dataset's default otherwise).",
    )
    drop: list[ColumnName] = Field(
        default_factory=list, max_length=MAX_COLUMNS, description="Columns not to learn from."
    )
    test_size: StrictFloat | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Held-out fraction when there is no evaluation set (default 0.2).",
    )
    time_column: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_COLUMN_NAME_CHARS,
        description="Split by this column's time: the latest rows are held out, so no "
        "future row is trained on.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="More parameters, as `aiweb train --param`: algorithm, column_types, "
        'costs ({"fp": 1, "fn": 5}), seed, label_column (anomaly detection: a label used '
        "for evaluation only).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TabularTrainData:
        if (self.dataset_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of dataset_id or dataset")
        if self.eval_dataset_id is not None and self.dataset_id is None:
            raise ValueError("eval_dataset_id goes with dataset_id (a known dataset has its split)")
        return self


class TrainJob(TabularTrainData):
    """The fields every tabular training body has (its ``task`` is in the subclasses)."""

    #: whether an uploaded dataset needs ``target`` (anomaly detection has none)
    needs_target: ClassVar[bool] = True

    type: Literal["train"]
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Point this alias at the new version."
    )

    @model_validator(mode="after")
    def _target(self) -> TrainJob:
        if self.needs_target and self.dataset_id is not None and self.target is None:
            raise ValueError("target: a model trained on dataset_id needs its target column")
        return self


_PARAMS_HELP = (
    "More parameters, as `aiweb train --param`: algorithm, column_types, costs "
    '({"fp": 1, "fn": 5}), positive_class, seed, label_column (a true/false column used '
    "to evaluate only), learning_rate, max_iter, C, alpha, contamination …"
)


class ClassificationTrainJobSpec(TrainJob):
    """``{"type": "train", "task": "tabular-classification", "model": NAME, …}``."""

    model_config = ConfigDict(json_schema_extra=sources_schema(True))

    task: Literal["tabular-classification"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=_PARAMS_HELP,
        json_schema_extra=lambda schema: schema.update(params_schema(CLASSIFICATION)),
    )


class RegressionTrainJobSpec(TrainJob):
    """``{"type": "train", "task": "tabular-regression", "model": NAME, …}``."""

    model_config = ConfigDict(json_schema_extra=sources_schema(True))

    task: Literal["tabular-regression"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=_PARAMS_HELP,
        json_schema_extra=lambda schema: schema.update(params_schema(REGRESSION)),
    )


class AnomalyTrainJobSpec(TrainJob):
    """``{"type": "train", "task": "anomaly-detection", "model": NAME, …}`` (no target)."""

    needs_target: ClassVar[bool] = False
    model_config = ConfigDict(json_schema_extra=sources_schema(False))

    task: Literal["anomaly-detection"]
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=_PARAMS_HELP,
        json_schema_extra=lambda schema: schema.update(params_schema(ANOMALY)),
    )


TrainJobSpec = ClassificationTrainJobSpec | RegressionTrainJobSpec | AnomalyTrainJobSpec
