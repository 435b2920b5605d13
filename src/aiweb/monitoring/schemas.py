"""API shapes of feedback and live performance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aiweb.names import INT32_MAX

#: most spans in one corrected list (``FeedbackRequest.entities``)
MAX_FEEDBACK_SPANS = 1000
#: the truths a feedback body may carry, exactly one of them
_TRUTHS = ("label", "value", "entities", "boxes", "text")
#: boxes in one box feedback
MAX_FEEDBACK_BOXES = 1000
#: characters of one text feedback
MAX_FEEDBACK_TEXT = 100_000


def _one_truth_schema(schema: dict[str, Any]) -> None:
    """The schema of :class:`FeedbackRequest`: ``label`` a string, ``value`` a number and
    ``entities`` a list of spans, none of them ``null``, exactly one of them present."""
    for name in _TRUTHS:
        prop = schema["properties"][name]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            description = prop.get("description")
            prop.update(variants[0])
            if description is not None:
                prop["description"] = description
        prop.pop("default", None)
    schema["oneOf"] = [{"required": [name]} for name in _TRUTHS]
    schema["examples"] = [
        {"label": "negative", "comment": "sarcasm"},
        {"value": 129500.0},
        {"entities": [{"start": 0, "end": 6, "label": "ORG"}]},
        {"boxes": [{"label": "face", "x": 153, "y": 105, "width": 228, "height": 228}]},
        {"text": "Invoice 2026\nTotal due"},
    ]


def _json_integer(value: Any) -> Any:
    """JSON Schema's ``integer``: a number without a fractional part (``6`` or ``6.0``),
    never a string or a boolean (which a lax ``int`` would take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            raise PydanticCustomError("int_from_float", "Input should be a whole number")
        return int(value)
    return value


#: an integer as JSON Schema means it (see :func:`_json_integer`)
JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class FeedbackSpan(BaseModel):
    """One span of a text: the characters ``start`` to ``end`` (code point offsets, end
    excluded, as a predict answer gives them) are one ``label``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: JsonInt = Field(..., ge=0, le=INT32_MAX, description="First character.")
    end: JsonInt = Field(
        ..., ge=1, le=INT32_MAX, description="Just past the last character (> start)."
    )
    label: StrictStr = Field(..., min_length=1, max_length=255, description="Its type.")


class FeedbackBox(BaseModel):
    """One box in an image: top-left corner ``(x, y)``, ``width`` and ``height`` in pixels
    of the image as the predict answer gave them, holding one ``label``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: StrictStr = Field(..., min_length=1, max_length=255, description="What it holds.")
    x: float = Field(..., ge=0, le=1_000_000, allow_inf_nan=False)
    y: float = Field(..., ge=0, le=1_000_000, allow_inf_nan=False)
    width: float = Field(..., gt=0, le=1_000_000, allow_inf_nan=False)
    height: float = Field(..., gt=0, le=1_000_000, allow_inf_nan=False)


class FeedbackRequest(BaseModel):
    """The label a prediction should have had, the value a prediction of a number
    should have been, or the spans a prediction of spans (entities) should have found:
    exactly one of the three."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_one_truth_schema,
    )

    label: str | None = Field(
        None, min_length=1, max_length=255, description="One of the model's labels."
    )
    value: float | None = Field(
        None,
        allow_inf_nan=False,
        description="The true value, for a model that predicts a number.",
    )
    entities: list[FeedbackSpan] | None = Field(
        None,
        max_length=MAX_FEEDBACK_SPANS,
        json_schema_extra={"uniqueItems": True},
        description="The corrected list of spans, for a model whose predictions are spans "
        "(entities): every span the text holds, none twice, none overlapping another, "
        "each of one of the model's labels and inside the text ([] when it holds none). "
        "Whether spans overlap or lie inside the text is checked against the prediction "
        "(422).",
    )
    boxes: list[FeedbackBox] | None = Field(
        None,
        max_length=MAX_FEEDBACK_BOXES,
        description="The corrected list of boxes, for a model that finds boxes in images: "
        "every object the image holds ([] when it holds none).",
    )
    text: StrictStr | None = Field(
        None,
        max_length=MAX_FEEDBACK_TEXT,
        description="The corrected text, for a model that reads text in images: "
        "the whole text as the answer's `text` gives it (a space within a row, a newline "
        "between rows).",
    )
    comment: str | None = Field(None, max_length=2000, description="Free text, kept as is.")

    @model_validator(mode="after")
    def _one_truth(self) -> FeedbackRequest:
        given = [name for name in _TRUTHS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of label (a class), value (a number), entities "
                "(a corrected list of spans), boxes (a corrected list of boxes) and text "
                "(the corrected text read)"
            )
        if self.entities is not None and len(set(self.entities)) != len(self.entities):
            raise ValueError("entities holds the same span twice")
        return self


class SpanOut(BaseModel):
    """One span of a text in an answer: the characters ``start`` to ``end`` (end
    excluded) are one ``label``."""

    start: int
    end: int
    label: str


class SpanCounts(BaseModel):
    """The predicted spans against the corrected ones, by exact match of start, end and
    label (the CoNLL-2003 convention; Tjong Kim Sang & De Meulder, 2003), or predicted
    boxes against corrected ones, matched at IoU >= 0.5 (PASCAL VOC): precision =
    tp / (tp + fp), recall = tp / (tp + fn)."""

    true_positives: int = Field(..., description="Predicted spans that are in the correction.")
    false_positives: int = Field(..., description="Predicted spans that are not in the correction.")
    false_negatives: int = Field(..., description="Corrected spans the prediction missed.")


class FeedbackResponse(BaseModel):
    prediction_id: str
    model: str
    version: int
    predicted_label: str = Field(
        ..., description="What the model answered (a predicted number as text)."
    )
    label: str = Field(
        ...,
        description="What it should have answered (a value as text; for a corrected list "
        "of spans, the label that list is logged under).",
    )
    correct: bool | None = Field(
        ...,
        description="label == predicted_label; for a corrected list of spans, whether the "
        "predicted spans equal it exactly; null for a value.",
    )
    value: float | None = Field(None, description="The true value (feedback on a number).")
    predicted_value: float | None = Field(None, description="The predicted number.")
    entities: list[SpanOut] | None = Field(
        None, description="The corrected spans, in text order (feedback on spans)."
    )
    predicted_entities: list[SpanOut] | None = Field(
        None, description="The spans the model predicted, in text order (feedback on spans)."
    )
    counts: SpanCounts | None = Field(
        None, description="The predicted spans against the corrected ones (feedback on spans)."
    )
    boxes: list[FeedbackBox] | None = Field(
        None, description="The corrected boxes (feedback on boxes)."
    )
    predicted_boxes: list[FeedbackBox] | None = Field(
        None, description="The boxes the model found (feedback on boxes)."
    )
    text: str | None = Field(None, description="The corrected text (feedback on text).")
    predicted_text: str | None = Field(
        None,
        description="The text the model read, when it was logged (AIWEB_LOG_INPUTS); null "
        "otherwise (only its sha256 is kept).",
    )
    cer: float | None = Field(
        None,
        description="Character error rate of the text read against the corrected text "
        "(Levenshtein distance / characters of the corrected text; Morris et al. 2004), "
        "when the text read was logged.",
    )
    comment: str | None
    created_at: datetime


class WindowPerformance(BaseModel):
    n: int = Field(..., description="Predictions in the window with feedback.")
    accuracy: float | None = Field(..., description="Correct / n; null when n is 0.")
    macro_f1: float | None = Field(..., description="Unweighted mean of per-class F1.")
    rmse: float | None = Field(
        None, description="Root mean squared error of predicted numbers; null for labels."
    )
    mae: float | None = Field(
        None, description="Mean absolute error of predicted numbers; null for labels."
    )


class PerformanceResponse(BaseModel):
    model: str
    version: int
    windows: dict[str, WindowPerformance] = Field(
        ..., description="Keys 1h, 24h and 7d: predictions made that long ago or less."
    )


class Shares(BaseModel):
    reference: float = Field(..., description="Share in the reference (evaluation) data.")
    live: float = Field(..., description="Share in the window.")


class DriftFeature(BaseModel):
    name: str = Field(
        ...,
        description="predicted_label, text_length, oov_rate, or a binned feature "
        "(an input column, or prediction: a predicted number).",
    )
    statistic: str = Field(..., description="psi, or chi-square p-value for predicted_label.")
    value: float
    threshold: float = Field(..., description="PSI above it, or a p-value below it, is drift.")
    drift: bool
    kind: str | None = Field(None, description="Binned features: numeric or categorical.")
    bins: list[str] | None = Field(None, description="Binned features: the bins' labels.")
    reference: list[float] | None = Field(None, description="Reference share of each bin.")
    live: list[float] | None = Field(None, description="Live share of each bin.")
    missing_share: Shares | None = Field(None, description="Share of missing values.")
    unseen_share: Shares | None = Field(
        None, description="Categorical: share of categories never seen in training."
    )


class DriftResponse(BaseModel):
    model: str
    version: int
    window: str
    n: int = Field(..., description="Predictions in the window that were compared.")
    min_n: int = Field(..., description="Below this many predictions nothing is flagged.")
    drift: bool = Field(..., description="Any feature drifted.")
    features: list[DriftFeature]
