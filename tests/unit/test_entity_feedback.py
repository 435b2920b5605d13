"""Feedback as a corrected entity list, without I/O: the span comparison (exact match,
counts), the checks of one text's spans, live accuracy from the ``correct`` flags, and
the request body's rules (in the model and in its JSON schema)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aiweb.entities.service import NO_ENTITY, text_label
from aiweb.entities.task import TASK
from aiweb.errors import InvalidInputError
from aiweb.monitoring.feedback import Span, check_spans, span_counts, window_metrics
from aiweb.monitoring.schemas import MAX_FEEDBACK_SPANS, FeedbackRequest

PY = Span(0, 6, "skill")
BERLIN = Span(20, 26, "location")


def test_counts_are_exact_matches_of_start_end_and_label() -> None:
    assert span_counts([PY, BERLIN], [PY, BERLIN]) == {
        "true_positives": 2,
        "false_positives": 0,
        "false_negatives": 0,
    }
    # one character short, and the wrong type: each is a false positive and a false negative
    assert span_counts([Span(0, 5, "skill"), Span(20, 26, "skill")], [PY, BERLIN]) == {
        "true_positives": 0,
        "false_positives": 2,
        "false_negatives": 2,
    }
    assert span_counts([], [PY]) == {
        "true_positives": 0,
        "false_positives": 0,
        "false_negatives": 1,
    }
    assert span_counts([PY], []) == {
        "true_positives": 0,
        "false_positives": 1,
        "false_negatives": 0,
    }
    assert span_counts([], []) == {"true_positives": 0, "false_positives": 0, "false_negatives": 0}


_spans = st.lists(
    st.builds(Span, st.integers(0, 30), st.integers(1, 40), st.sampled_from(["a", "b"])),
    max_size=8,
)


@given(_spans, _spans)
def test_counts_add_up_to_both_lists(predicted: list[Span], truth: list[Span]) -> None:
    c = span_counts(predicted, truth)
    assert c["true_positives"] + c["false_positives"] == len(set(predicted))
    assert c["true_positives"] + c["false_negatives"] == len(set(truth))
    assert (c["false_positives"] == c["false_negatives"] == 0) == (set(predicted) == set(truth))


def test_check_spans_sorts_and_refuses_bad_lists() -> None:
    assert check_spans([BERLIN, PY], text_chars=26, labels=["skill", "location"]) == [PY, BERLIN]
    assert check_spans([]) == []
    assert check_spans([Span(0, 3, "a"), Span(3, 5, "a")]) == [Span(0, 3, "a"), Span(3, 5, "a")]
    bad: list[tuple[list[Span], str]] = [
        ([Span(3, 3, "a")], "empty"),
        ([Span(4, 3, "a")], "empty"),
        ([Span(-1, 3, "a")], "empty"),
        ([Span(0, 4, "a"), Span(3, 6, "b")], "overlap"),
        ([Span(0, 10, "a"), Span(2, 4, "a")], "overlap"),  # nested
        ([Span(0, 4, "a"), Span(0, 4, "b")], "overlap"),  # same place, two types
        ([Span(0, 27, "skill")], "past the text"),
        ([Span(0, 2, "person")], "not one of"),
    ]
    for spans, why in bad:
        with pytest.raises(InvalidInputError, match=why):
            check_spans(spans, text_chars=26, labels=["skill", "location", "a", "b"])


def test_accuracy_counts_the_correct_flags_and_f1_the_labels() -> None:
    # three span feedbacks: the first exactly right, the second of the right label but
    # with a span off, the third wrong in label too; one label feedback (no flag)
    truth = ["skill", "skill", "location", "skill"]
    predicted = ["skill", "skill", "skill", "skill"]
    got = window_metrics(truth, predicted, [True, False, False, None])
    assert got["n"] == 4
    assert got["accuracy"] == pytest.approx(2 / 4)  # the None compares labels: right
    labels_only = window_metrics(truth, predicted)
    assert labels_only["accuracy"] == pytest.approx(3 / 4)
    assert got["macro_f1"] == labels_only["macro_f1"]


def test_the_entities_task_gives_its_span_label() -> None:
    assert TASK.span_label is text_label
    assert text_label([Span(0, 2, "a"), Span(3, 5, "b"), Span(6, 8, "b")]) == "b"
    assert text_label([Span(0, 2, "a"), Span(3, 5, "b")]) == "a"  # tie: first in the text
    assert text_label([]) == NO_ENTITY


def _body(**fields: Any) -> FeedbackRequest:
    return FeedbackRequest.model_validate(fields)


def test_request_takes_exactly_one_truth() -> None:
    spans = [{"start": 0, "end": 6, "label": "skill"}]
    assert _body(entities=spans).entities is not None
    assert _body(entities=[]).entities == []
    for fields in (
        {},
        {"label": "a", "entities": spans},
        {"value": 1.0, "entities": spans},
        {"entities": None},
    ):
        with pytest.raises(ValidationError, match="exactly one"):
            _body(**fields)


@pytest.mark.parametrize(
    "span",
    [
        {"start": -1, "end": 2, "label": "a"},
        {"start": 0, "end": 0, "label": "a"},
        {"start": 0, "end": 2**31, "label": "a"},
        {"start": 0, "end": 2, "label": ""},
        {"start": 0, "end": 2, "label": "x" * 256},
        {"start": "0", "end": 2, "label": "a"},
        {"start": 0.5, "end": 2, "label": "a"},
        {"start": 0, "end": float("nan"), "label": "a"},
        {"start": True, "end": 2, "label": "a"},
        {"start": 0, "end": 2, "label": 3},
        {"start": 0, "end": 2},
        {"start": 0, "end": 2, "label": "a", "score": 1.0},
    ],
)
def test_request_refuses_bad_spans(span: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _body(entities=[span])


def test_request_takes_integers_as_json_schema_does() -> None:
    body = _body(entities=[{"start": 0.0, "end": 6.0, "label": "skill"}])
    assert body.entities is not None
    assert (body.entities[0].start, body.entities[0].end) == (0, 6)
    assert type(body.entities[0].end) is int
    for end in (6.5, float("inf"), 1e300, "6", True, None):
        with pytest.raises(ValidationError):
            _body(entities=[{"start": 0, "end": end, "label": "skill"}])


def test_request_refuses_repeats_and_too_many_spans() -> None:
    span = {"start": 0, "end": 2, "label": "a"}
    for again in (dict(span), {"start": 0.0, "end": 2.0, "label": "a"}):
        with pytest.raises(ValidationError, match="twice"):
            _body(entities=[span, again])
    many = [{"start": i, "end": i + 1, "label": "a"} for i in range(MAX_FEEDBACK_SPANS + 1)]
    with pytest.raises(ValidationError):
        _body(entities=many)
    assert len(_body(entities=many[:-1]).entities or []) == MAX_FEEDBACK_SPANS


def test_schema_states_the_rules() -> None:
    schema = FeedbackRequest.model_json_schema()
    assert schema["oneOf"] == [
        {"required": ["label"]},
        {"required": ["value"]},
        {"required": ["entities"]},
        {"required": ["boxes"]},
        {"required": ["text"]},
    ]
    entities = schema["properties"]["entities"]
    assert entities["type"] == "array"
    assert entities["uniqueItems"] is True
    assert entities["maxItems"] == MAX_FEEDBACK_SPANS
    assert "default" not in entities
    assert "anyOf" not in entities
    span = schema["$defs"]["FeedbackSpan"]
    assert span["additionalProperties"] is False
    assert set(span["required"]) == {"start", "end", "label"}
    assert span["properties"]["start"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 2**31 - 1,
        "title": "Start",
        "description": "First character.",
    }
    assert span["properties"]["end"]["minimum"] == 1
    assert span["properties"]["label"]["minLength"] == 1
    assert span["properties"]["label"]["maxLength"] == 255
    for example in schema["examples"]:
        FeedbackRequest.model_validate(example)
