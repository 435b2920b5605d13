"""Slot extractors (aiweb.assistant.extractors) and the assistant config's static checks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiweb.assistant.config import AssistantConfig, template_fields
from aiweb.assistant.extractors import (
    EntitySpan,
    extract,
    from_entities,
    parse_extractor,
)

NOW = datetime(2026, 12, 6, 10, 30)  # a Sunday


def values(spec: str, text: str, *, asked: bool = False) -> list[Any]:
    return [f.value for f in extract(parse_extractor(spec), text, now=NOW, asked=asked)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want 3", [3]),
        ("1,200.5 and -3", [1200.5, -3]),
        ("twenty five of them", [25]),
        ("a hundred and two", [102]),
        ("two thousand three hundred", [2300]),
        ("version 4.5.6 and 12abc", []),  # not numbers a person gives as a value
        ("a cat and an apple", []),
        ("9" * 40, []),  # too large to keep exact
    ],
)
def test_numbers(text: str, expected: list[Any]) -> None:
    assert values("number", text) == expected


@pytest.mark.parametrize(
    ("text", "amount", "currency", "shown"),
    [
        ("send $50 to Ann", 50.0, "USD", "$50.00"),
        ("50 dollars", 50.0, "USD", "$50.00"),
        ("€20.50", 20.5, "EUR", "€20.50"),
        ("20 EUR please", 20.0, "EUR", "€20.00"),
        ("1,200 usd", 1200.0, "USD", "$1,200.00"),
        ("300 CHF", 300.0, "CHF", "300.00 CHF"),
    ],
)
def test_money(text: str, amount: float, currency: str, shown: str) -> None:
    (found,) = extract(parse_extractor("money"), text, now=NOW)
    assert found.value == {"amount": amount, "currency": currency}
    assert found.text == shown
    assert currency.lower() in text.lower() or text[found.start] in "$€" or "dollars" in text


def test_a_bare_number_is_money_only_when_the_slot_was_asked_for() -> None:
    assert values("money", "50") == []
    assert values("money", "50", asked=True) == [{"amount": 50.0, "currency": None}]
    assert values("money", "$50.123") == []  # not an amount of money


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("next friday", "2026-12-11"),
        ("on 12 March 2027", "2027-03-12"),
        ("2027-01-15", "2027-01-15"),
        ("in 3 days", "2026-12-09"),
        ("tomorrow at noon", "2026-12-07"),
        ("march 3rd", "2027-03-03"),  # the next one, not the past one
    ],
)
def test_dates(text: str, expected: str) -> None:
    assert values("date", text) == [expected]


@pytest.mark.parametrize(
    "text", ["I have a second question", "now", "in", "42", "make it $80", "I am 80"]
)
def test_words_that_are_not_dates(text: str) -> None:
    assert values("date", text) == []


def test_email_and_choice() -> None:
    assert values("email", "mail Ann.Lee+x@Example.co.uk.") == ["Ann.Lee+x@Example.co.uk"]
    assert values("email", "not@an-address and a@b") == []
    assert values("choice:small|Medium|large", "a LARGE one") == ["large"]
    assert values("choice:small|Medium|large", "medum please") == ["Medium"]  # misspelt
    assert values("choice:new york|paris", "to New York") == ["new york"]
    assert values("choice:new york|paris", "to York") == []
    assert values("choice:yes|no", "nothing") == []  # a word holding an option is not it


def test_entity_spans_of_the_label() -> None:
    spans = [EntitySpan("PERSON", "Ann", 8, 11), EntitySpan("ORG", "ACME", 0, 4)]
    found = from_entities(parse_extractor("entities:PERSON"), spans)
    assert [(f.value, f.start, f.end) for f in found] == [("Ann", 8, 11)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("money:usd", "takes no argument"),
        ("phone", "unknown extractor"),
        ("choice:", "choice:a|b|c"),
        ("choice:a||b", "choice:a|b|c"),
        ("choice:a|A", "repeated"),
        ("entities:", "entities:PERSON"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_extractor(spec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(
        st.characters(codec=None, exclude_categories=()) | st.sampled_from("$€ 0123456789.,-"),
        max_size=300,
    ),
    spec=st.sampled_from(["number", "money", "date", "email", "choice:yes|no|maybe"]),
    asked=st.booleans(),
)
def test_any_text_gives_spans_inside_it_and_json_values(text: str, spec: str, asked: bool) -> None:
    """Lone surrogates, NUL bytes and any other code point: no exception, each value a
    JSON value from a span of the message."""
    for found in extract(parse_extractor(spec), text, now=NOW, asked=asked):
        assert 0 <= found.start < found.end <= len(text)
        json.dumps(found.value, allow_nan=False)


# ---- the config ------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "intents_model": "intents",
    "responses": {
        "balance": "Your balance is shown under Accounts.",
        "transfer": "Sending {amount} to {recipient}.",
    },
    "slots": {
        "transfer": [
            {"name": "amount", "extractor": "money", "prompt": "How much?"},
            {"name": "recipient", "extractor": "entities:PERSON", "prompt": "{amount} to whom?"},
        ]
    },
    "entities_model": "people",
}


def config(**changes: Any) -> AssistantConfig:
    return AssistantConfig.model_validate({**BASE, **changes})


def test_the_issue_example_validates_and_keeps_its_fields() -> None:
    example = AssistantConfig.model_json_schema()["examples"][0]
    parsed = AssistantConfig.model_validate(example)
    assert parsed.public()["handoff"]["after_fallbacks"] == 2
    assert parsed.referenced_labels() == {"PERSON"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"responses": {"transfer": "Sending {amount} to {whom}."}}, r"names \['whom'\]"),
        ({"responses": {**BASE["responses"], "balance": "You have {amount}."}}, "has no slots"),
        ({"responses": {"transfer": "{amount.__class__}", "balance": "x"}}, "not a slot name"),
        ({"responses": {"transfer": "{amount!r} {recipient}"}}, "not a slot name"),
        ({"responses": {"transfer": "{} {recipient}"}}, "not a slot name"),
        ({"responses": {"transfer": "{amount"}}, "write {{ for a brace"),
        ({"responses": {"balance": "x"}}, "no response to give"),
        ({"entities_model": None}, "needs entities_model"),
        ({"fallback": "Sorry {name}"}, "names a slot"),
        ({"min_confidence": float("nan")}, "finite number"),
        ({"min_confidence": 1.5}, "less than or equal to 1"),
        ({"handoff": {"webhook_url": "ftp://desk.example"}}, "http"),
        ({"handoff": {"after_fallbacks": 0}}, "greater than or equal to 1"),
        ({"intents_model": "Bad Name"}, "pattern"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_config_errors_name_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**changes)


def test_a_prompt_names_only_the_slots_asked_before_it() -> None:
    slots = [
        {"name": "amount", "extractor": "money", "prompt": "How much for {recipient}?"},
        {"name": "recipient", "extractor": "entities:PERSON", "prompt": "To whom?"},
    ]
    with pytest.raises(ValidationError, match="only the slots before it"):
        config(slots={"transfer": slots})


def test_template_fields() -> None:
    assert template_fields("Sending {amount} to {recipient} {{literal}}") == ["amount", "recipient"]
    assert template_fields("no fields") == []
