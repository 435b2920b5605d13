"""API shapes of text classification: predictions, explanations, and the bodies of its
jobs (``train``, ``batch-predict``) and retraining schedules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from aiweb.contract import Explanation
from aiweb.datasets import catalog
from aiweb.jobs.schemas import CRON_PATTERN, MODEL_NAME_PATTERN, TIME_ZONES
from aiweb.names import REF_REGEX


class PredictRequest(BaseModel):
    """Texts to classify. Limits (count, length) are settings, checked by the service."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["a gorgeous, witty, seductive movie"]}]},
    )

    inputs: list[str] = Field(
        ..., min_length=1, description="1 to 256 texts, each at most 10,000 characters."
    )


class Prediction(BaseModel):
    id: str = Field(..., description="Prediction id: send feedback about it later.")
    label: str = Field(
        ...,
        description="The most probable class; for an intent model with out-of-scope "
        "detection, its out-of-scope label (`oos`) when the top probability is below the "
        "version's calibrated threshold (`lineage.rejection`).",
    )
    scores: dict[str, float] = Field(..., description="Probability of every class.")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]


# ---- explanations ----------------------------------------------------------------------------

#: Texts per explain request (each costs far more than a prediction); more is a 413.
MAX_EXPLAIN_INPUTS = 32


class ExplainRequest(BaseModel):
    """Texts whose answers to explain (``POST /v1/models/{name}/explain``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "inputs": ["not a good movie, but the acting was superb"],
                    "target": None,
                    "top_k": 10,
                }
            ]
        },
    )

    inputs: list[str] = Field(
        ...,
        min_length=1,
        description=f"1 to {MAX_EXPLAIN_INPUTS} texts, each at most 10,000 characters "
        "(AIWEB_SERVING__MAX_TEXT_CHARS); more texts are answered 413, as by predict.",
        json_schema_extra={"maxItems": MAX_EXPLAIN_INPUTS},
    )
    target: str | None = Field(
        None,
        max_length=1000,
        description="The class to explain, for every input; default: each input's "
        "answered class (its most probable class when the answer is out of scope and the "
        "out-of-scope label is not a class of the model).",
    )
    top_k: StrictInt = Field(
        10,
        ge=0,
        le=100_000,
        description="Most contributions listed per input, by decreasing |weight|; 0 lists "
        "them all. The rest are summed in `omitted`.",
    )


class OutOfScope(BaseModel):
    """Why an answer is the out-of-scope label (a version with a rejection rule)."""

    label: str = Field(..., description="The out-of-scope label answered (`oos`).")
    threshold: float = Field(
        ..., description="The version's calibrated threshold on the top probability."
    )
    top_score: float = Field(..., description="This input's top class probability.")
    below_threshold: bool = Field(
        ...,
        description="True when the answer is out of scope because `top_score` is below "
        "`threshold`; false when the out-of-scope class is itself the most probable.",
    )


class TextExplanation(Explanation):
    """The explanation of one text's answer: per word of the text, its contribution to
    the logit of ``target``; ``feature == input[start:end]``.

    ``method: "linear"`` (TF-IDF features): exact, ``base_value + Σ contributions +
    omitted.weight == logit``. ``method: "occlusion"`` (sentence-embedding and stacked
    features): each word's weight is the drop of the target's logit when it is removed; an
    approximation (``exact: false``), of the first 64 words (``skipped_words`` more)."""

    skipped_words: int = Field(
        0, description="Words after the first 64 that occlusion did not score (0 for linear)."
    )
    out_of_scope: OutOfScope | None = Field(
        None, description="Set when the answered label is the version's out-of-scope label."
    )


class ExplainResponse(BaseModel):
    model: str
    version: int
    explanations: list[TextExplanation]


# ---- jobs ------------------------------------------------------------------------------------

_COLUMN = Field("text", min_length=1, max_length=255)


class PromotionRule(BaseModel):
    """Move ``production`` to the new version only when it is at least as good.

    The new version and the current production version are both scored on the new
    version's evaluation split; the rule holds when
    ``new[metric] >= production[metric] + min_delta``.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["macro_f1", "accuracy", "roc_auc"] = "macro_f1"
    min_delta: StrictFloat = Field(0.0, ge=-1.0, le=1.0)


#: the names ``dataset`` takes: the built-in text-classification datasets (``aiweb
#: datasets list``; the others, MovieLens or the entity sets, train other tasks)
KNOWN_DATASETS = [d.name for d in catalog.available() if d.task == "text-classification"]

#: ``dataset_id`` xor ``dataset`` (given: present and not null), as the schema says it
_ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {"required": ["dataset_id"], "properties": {"dataset_id": {"type": "string"}}},
        {"required": ["dataset"], "properties": {"dataset": {"type": "string"}}},
    ]
}


def _train_params(schema: dict[str, Any]) -> None:
    """``params``: the hyper-parameters :func:`aiweb.classification.trainer.parse_params`
    takes (names, types, ranges), and ``char_ngram_min <= char_ngram_max`` (defaults 2
    and 5) as the alternatives that hold it."""
    from aiweb.classification.trainer import TrainParams  # scikit-learn: only when asked

    params = TrainParams.model_json_schema()
    fields = params["properties"]
    low, high = fields["char_ngram_min"], fields["char_ngram_max"]
    schema.update({k: v for k, v in params.items() if k not in ("title", "description")})
    both = [
        {
            "required": ["char_ngram_min", "char_ngram_max"],
            "properties": {"char_ngram_min": {"const": m}, "char_ngram_max": {"minimum": m}},
        }
        for m in range(low["minimum"], low["maximum"] + 1)
    ]
    schema["anyOf"] = [
        *both,
        {
            "not": {"required": ["char_ngram_min"]},
            "properties": {"char_ngram_max": {"minimum": low["default"]}},
        },
        {
            "not": {"required": ["char_ngram_max"]},
            "properties": {"char_ngram_min": {"maximum": high["default"]}},
        },
    ]


class TrainData(BaseModel):
    """Where training data comes from: an uploaded dataset (``dataset_id``) or a known
    one (``dataset``), exactly one of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    dataset_id: str | None = Field(None, max_length=64, description="An uploaded dataset.")
    dataset: (
        Annotated[str, Field(max_length=64, json_schema_extra={"enum": KNOWN_DATASETS})] | None
    ) = Field(None, description="A known dataset: sst2, sms_spam …")
    eval_dataset_id: str | None = Field(
        None, max_length=64, description="Evaluate on this uploaded dataset instead of a split."
    )
    text_column: str = _COLUMN
    label_column: str = Field("label", min_length=1, max_length=255)
    test_size: StrictFloat = Field(0.2, gt=0.0, lt=1.0)
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Hyper-parameters, as `aiweb train --param` (C, n_features_log2 …).",
        json_schema_extra=_train_params,
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainData:
        if (self.dataset_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of dataset_id or dataset")
        return self


class TrainJobSpec(TrainData):
    """``{"type": "train", "task": "text-classification", "model": NAME, …}``."""

    type: Literal["train"]
    task: Literal["text-classification"] = "text-classification"
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Point this alias at the new version."
    )
    promotion: PromotionRule | None = Field(
        None, description="Move production only when this rule holds (scheduled retraining)."
    )


class BatchPredictJobSpec(BaseModel):
    """``{"type": "batch-predict", "model": "sentiment", "dataset_id": …}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["batch-predict"]
    model: str = Field(
        ...,
        min_length=1,
        max_length=130,
        description="name, name@alias or name:version.",
        json_schema_extra={"pattern": REF_REGEX},
    )
    dataset_id: str = Field(..., max_length=64)
    text_column: str = _COLUMN
    id_column: str = Field(
        "id",
        min_length=1,
        max_length=255,
        description="Copied to the output's id column; the row number (from 1) when absent.",
    )


class ScheduleIn(TrainData):
    """``PUT /v1/models/{name}/schedule``: when to retrain, on what, and when to promote."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        ...,
        max_length=255,
        description="5-field cron expression, e.g. '0 3 * * *'.",
        examples=["0 3 * * *"],
        json_schema_extra={"pattern": CRON_PATTERN},
    )
    timezone: str = Field(
        "UTC",
        max_length=64,
        description="IANA time zone of the cron.",
        json_schema_extra={"enum": [*TIME_ZONES]},
    )
    promotion: PromotionRule = Field(default_factory=PromotionRule)
    enabled: StrictBool = True
