"""An assistant's configuration (``PUT /v1/assistants/{name}``) and its static checks.

What can be checked without the registry is checked here, when the body is read (a 422
naming the field): extractor specs parse, slot names are identifiers and unique per
intent, every template names only slots declared for its intent (and uses no attribute,
index, conversion or format spec, so a template cannot reach into a value), the handoff
settings are in range. What needs the registry (the intents model exists and is a
text classifier, the collection exists, an ``entities:LABEL`` slot has an entity model
that knows ``LABEL``) is checked by the service on save.
"""

from __future__ import annotations

import re
import string
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aiweb.assistant.extractors import Extractor, parse_extractor
from aiweb.errors import InvalidInputError
from aiweb.names import NAME_REGEX
from aiweb.webhooks.service import check_url

__all__ = [
    "MAX_TEMPLATE",
    "AssistantConfig",
    "HandoffConfig",
    "SlotConfig",
    "template_fields",
]

#: Longest reply template, fallback or prompt (characters).
MAX_TEMPLATE = 2000
#: Most intents with a response or slots, most slots per intent.
MAX_INTENTS = 500
MAX_SLOTS = 20

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LABEL = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def template_fields(template: str) -> list[str]:
    """The slot names a reply template uses (``"Sending {amount} to {recipient}."`` →
    ``["amount", "recipient"]``); ``{{`` and ``}}`` are literal braces.

    Raises:
        ValueError: unbalanced braces, a positional field (``{}``, ``{0}``), or a field
            with attribute or index access, a conversion (``!r``) or a format spec
            (``:>10``).
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template {template[:80]!r}: {exc} (write {{{{ for a brace)") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _IDENTIFIER.fullmatch(name) or spec or conversion:
            raise ValueError(
                f"template {template[:80]!r}: {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not a slot name; write {{slot}}"
            )
        names.append(name)
    return names


def _text(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_TEMPLATE:
        raise ValueError(f"{what} is longer than {MAX_TEMPLATE} characters")
    if "\x00" in value:
        raise ValueError(f"{what} holds a NUL character")
    return value


class SlotConfig(BaseModel):
    """One slot of an intent: what to find in the messages, and how to ask for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., description="Identifier, as reply templates name it: {amount}.")
    extractor: str = Field(
        ...,
        description="number, money, date, email, choice:a|b|c or entities:LABEL "
        "(see docs/assistant.md).",
    )
    prompt: str = Field(..., description="What the assistant asks when the slot is missing.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("a slot name is a letter or _ then letters, digits or _ (≤ 63)")
        return value

    @field_validator("extractor")
    @classmethod
    def _extractor(cls, value: str) -> str:
        return parse_extractor(value).spec

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        _text(value, "prompt")
        template_fields(value)  # may name the slots before it (checked by the assistant)
        return value

    @property
    def parsed(self) -> Extractor:
        return parse_extractor(self.extractor)


class HandoffConfig(BaseModel):
    """When the conversation goes to a person, and whom to tell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intents: list[str] = Field(
        default_factory=list, max_length=50, description="Intents that ask for a person."
    )
    after_fallbacks: int | None = Field(
        2,
        ge=1,
        le=100,
        description="Hand over after this many fallback replies in a row; null: never.",
    )
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="Told of every handoff by a signed POST (HMAC-SHA256 of the body with "
        "the assistant's secret), retried with back-off; null: the dashboard inbox only.",
    )
    message: str = Field(
        "I'm passing you to a person; they will answer here shortly.",
        description="The reply that hands the conversation over.",
    )

    @field_validator("intents")
    @classmethod
    def _intents(cls, value: list[str]) -> list[str]:
        for label in value:
            if not _LABEL.fullmatch(label):
                raise ValueError("an intent is 1 to 200 characters without control characters")
        return list(dict.fromkeys(value))

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_url(value)
        except InvalidInputError as exc:  # its message says what is wrong
            raise ValueError(str(exc)) from None

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        return _text(value, "message")


class AssistantConfig(BaseModel):
    """An assistant: which models answer, what it says, when it hands over."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "intents_model": "intents",
                    "faq_collection": "help",
                    "fallback": "Sorry, I did not get that. Could you rephrase?",
                    "responses": {
                        "balance": "Your balance is shown under Accounts.",
                        "transfer": "Sending {amount} to {recipient}.",
                    },
                    "slots": {
                        "transfer": [
                            {"name": "amount", "extractor": "money", "prompt": "How much?"},
                            {
                                "name": "recipient",
                                "extractor": "entities:PERSON",
                                "prompt": "To whom?",
                            },
                        ]
                    },
                    "entities_model": "people",
                    "handoff": {
                        "intents": ["speak_to_human"],
                        "after_fallbacks": 2,
                        "webhook_url": None,
                    },
                    "min_confidence": 0.5,
                }
            ]
        },
    )

    intents_model: str = Field(
        ..., pattern=NAME_REGEX, description="A text-classification model: the intents."
    )
    faq_collection: str | None = Field(
        None,
        pattern=NAME_REGEX,
        description="A search collection answering what no intent covers; null: none.",
    )
    fallback: str = Field(
        "Sorry, I did not understand. Could you rephrase?",
        description="The reply when neither an intent nor the help collection answers.",
    )
    responses: dict[str, str] = Field(
        default_factory=dict,
        description="Reply template per intent; {slot} names a slot of that intent.",
    )
    slots: dict[str, list[SlotConfig]] = Field(
        default_factory=dict, description="The slots each intent fills before it answers."
    )
    entities_model: str | None = Field(
        None,
        pattern=NAME_REGEX,
        description="A token-classification model, for entities:LABEL slots.",
    )
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    min_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Below this probability an intent is not trusted: the help "
        "collection, then the fallback, answer.",
    )

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: str) -> str:
        _text(value, "fallback")
        if template_fields(value):
            raise ValueError("the fallback names a slot; it has none to fill")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.responses) > MAX_INTENTS or len(self.slots) > MAX_INTENTS:
            raise ValueError(f"at most {MAX_INTENTS} intents with responses or slots")
        for intent, slots in self.slots.items():
            if not _LABEL.fullmatch(intent):
                raise ValueError(f"slots: intent {intent[:80]!r} is not a label")
            if not slots or len(slots) > MAX_SLOTS:
                raise ValueError(f"slots.{intent}: 1 to {MAX_SLOTS} slots")
            names = [s.name for s in slots]
            if len(set(names)) != len(names):
                raise ValueError(f"slots.{intent}: a slot name is repeated")
            if intent not in self.responses:
                raise ValueError(
                    f"slots.{intent}: the intent has slots but no response to give once "
                    "they are filled; add responses.{intent}"
                )
            if any(s.parsed.kind == "entities" for s in slots) and self.entities_model is None:
                raise ValueError(
                    f"slots.{intent}: an entities: slot needs entities_model, the "
                    "token-classification model that finds them"
                )
            for i, slot in enumerate(slots):
                # slots are asked in order: when one is asked, the ones before it are filled
                unknown = set(template_fields(slot.prompt)) - set(names[:i])
                if unknown:
                    raise ValueError(
                        f"slots.{intent}.{slot.name}: the prompt names {sorted(unknown)}; a "
                        f"prompt may name only the slots before it "
                        f"({', '.join(names[:i]) or 'none'})"
                    )
        for intent, template in self.responses.items():
            if not _LABEL.fullmatch(intent):
                raise ValueError(f"responses: intent {intent[:80]!r} is not a label")
            _text(template, f"responses.{intent}")
            declared = {s.name for s in self.slots.get(intent, [])}
            unknown = set(template_fields(template)) - declared
            if unknown:
                raise ValueError(
                    f"responses.{intent} names {sorted(unknown)}, which "
                    + (f"are not slots of {intent!r}" if declared else f"{intent!r} has no slots")
                    + f" (declared: {', '.join(sorted(declared)) or 'none'})"
                )
        return self

    def slots_of(self, intent: str | None) -> list[SlotConfig]:
        """The slots of ``intent`` (none for an unknown one or ``None``)."""
        return list(self.slots.get(intent, [])) if intent is not None else []

    def referenced_labels(self) -> set[str]:
        """The entity labels the ``entities:`` slots name."""
        return {
            s.parsed.label
            for slots in self.slots.values()
            for s in slots
            if s.parsed.kind == "entities" and s.parsed.label is not None
        }

    def public(self) -> dict[str, Any]:
        """The config as JSON."""
        return self.model_dump(mode="json")
