"""One turn of a conversation: the assistant's policy, apart from models, storage and
transport.

:func:`respond` takes the assistant's config, the conversation's :class:`State` and the
visitor's message, asks a :class:`Brain` (the intents model, the help collection, the
entity model) only what the turn needs, and returns the :class:`Reply` and the new state.
The order, as ``docs/assistant.md`` tells it:

1. A conversation with a person (``waiting_for_agent`` or ``agent``) gets no bot reply:
   the message is for the operator.
2. A visitor asking for a person (``"can I talk to a human?"``) is handed over.
3. While an intent is filling its slots, the message is read for the slot just asked
   for (and any other slot of the intent: a visitor may give several at once, or
   correct one already given: ``"actually, $80"``, ``"change the amount to 80"``). A
   message that fills nothing and is confidently another intent starts that intent;
   otherwise the slot is asked for again.
4. Otherwise the intents model answers. An intent among ``handoff.intents`` hands over;
   an intent with a response fills its slots from the message, asks for the first
   missing one (in the config's order), and once all are there answers with its
   template.
5. Out of scope, below ``min_confidence``, or an intent without a response: the help
   collection's best passage, when its score clears the collection's calibrated
   threshold (the brain decides), answers with its document as the source.
6. Otherwise the fallback; ``handoff.after_fallbacks`` fallbacks in a row hand over.

Any reply but a fallback resets the count of fallbacks in a row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from aiweb.assistant.config import AssistantConfig, SlotConfig
from aiweb.assistant.extractors import EntitySpan, Found, extract, from_entities

__all__ = [
    "REPLY_TYPES",
    "STATUSES",
    "Brain",
    "IntentGuess",
    "Passage",
    "Reply",
    "State",
    "asks_for_a_person",
    "respond",
]

#: What a reply is (``type`` in the API): ``agent`` replies come from an operator.
REPLY_TYPES = ("intent", "faq", "slot_prompt", "fallback", "handoff", "agent")
ReplyType = Literal["intent", "faq", "slot_prompt", "fallback", "handoff", "agent"]
#: Who answers a conversation: the bot, nobody yet (a person was asked for), a person
#: (an operator took it), or nobody (closed; a new message gives it back to the bot).
STATUSES = ("bot", "waiting_for_agent", "agent", "closed")
Status = Literal["bot", "waiting_for_agent", "agent", "closed"]
HandoffReason = Literal["intent", "fallbacks", "asked"]


@dataclass(frozen=True)
class IntentGuess:
    """The intents model's answer for one message.

    Attributes:
        label: the top intent (the model's out-of-scope label when it rejected the text).
        confidence: its probability, in [0, 1].
        out_of_scope: the model's calibrated rejection said out of scope.
        prediction_id: the logged prediction (feedback on the turn goes to it).
        version: the model version that answered, as ``name:N``.
    """

    label: str
    confidence: float
    out_of_scope: bool = False
    prediction_id: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Passage:
    """The help collection's answer: a passage that cleared the collection's threshold.

    Attributes:
        text: the passage, the reply's text.
        document_id: the document it is from (the reply's source).
        score: the search score the threshold was applied to.
        title: the document's title, when it has one.
        url: a link to the document, when its metadata gives one.
    """

    text: str
    document_id: str
    score: float
    title: str | None = None
    url: str | None = None


class Brain(Protocol):
    """The models a turn may ask; each method is called at most once per turn."""

    async def classify(self, text: str) -> IntentGuess:
        """The intents model's answer for ``text``."""
        ...

    async def answer(self, text: str) -> Passage | None:
        """The help collection's best passage for ``text`` when it clears the threshold,
        else ``None`` (also when the assistant has no collection)."""
        ...

    async def entities(self, text: str) -> list[EntitySpan]:
        """The entity model's spans in ``text`` (``[]`` when the assistant has none)."""
        ...


@dataclass
class State:
    """What the assistant remembers of a conversation between turns (stored as JSON).

    Attributes:
        status: see :data:`STATUSES`.
        intent: the intent whose slots are being filled, or ``None``.
        slots: the slots filled so far: name → ``{"value": JSON, "text": str}``.
        asked: the slot last asked for, or ``None``.
        fallbacks: fallback replies in a row.
    """

    status: Status = "bot"
    intent: str | None = None
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: str | None = None
    fallbacks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "intent": self.intent,
            "slots": self.slots,
            "asked": self.asked,
            "fallbacks": self.fallbacks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> State:
        data = data or {}
        status = data.get("status", "bot")
        return cls(
            status=status if status in STATUSES else "bot",
            intent=data.get("intent"),
            slots=dict(data.get("slots") or {}),
            asked=data.get("asked"),
            fallbacks=int(data.get("fallbacks") or 0),
        )

    def forget_intent(self) -> None:
        self.intent, self.slots, self.asked = None, {}, None


@dataclass
class Reply:
    """The assistant's answer to one message (the API's reply, and why).

    Attributes:
        text: what to show the visitor.
        type: see :data:`REPLY_TYPES`.
        intent: the intent the turn is about (``None`` for FAQ answers and fallbacks
            from an out-of-scope message).
        confidence: the intents model's probability for it, when it was asked.
        slots: the intent's slot values so far (name → JSON value).
        sources: the passages the reply quotes: ``{"document_id", "score", "title",
            "url"}``.
        handoff: why the conversation went to a person, on a ``handoff`` reply.
        prediction_id: the intents model's logged prediction, when it was asked.
        version: the intents model version that answered, as ``name:N``.
    """

    text: str
    type: ReplyType
    intent: str | None = None
    confidence: float | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    handoff: HandoffReason | None = None
    prediction_id: str | None = None
    version: str | None = None

    def public(self) -> dict[str, Any]:
        """The reply as the API gives it."""
        return {
            "reply": self.text,
            "type": self.type,
            "intent": self.intent,
            "confidence": self.confidence,
            "slots": self.slots,
            "sources": self.sources,
        }


_PERSON = (
    r"(?:a |an |the |some )?(?:real |live |actual )?"
    r"(?:human|person|people|agent|operator|representative|rep|someone|somebody|staff)\b"
)
_ASKS_FOR_A_PERSON = re.compile(
    rf"\b(?:(?:talk|speak|chat|connect|transfer)(?: me)? (?:to|with) {_PERSON}"
    rf"|(?:get|want|need|give) me {_PERSON}"
    rf"|(?:i |we )?(?:want|need|would like|'d like) (?:to (?:talk|speak) to )?{_PERSON}"
    rf"|^\W*(?:human|agent|operator|representative|person)\W*$)",
    re.IGNORECASE,
)


def asks_for_a_person(text: str) -> bool:
    """Whether ``text`` asks for a person (``"talk to a human"``, ``"agent please"`` as
    the whole message, ``"I want a real person"``): English phrasings only; an intent
    among ``handoff.intents`` covers the rest."""
    return bool(_ASKS_FOR_A_PERSON.search(text[:500]))


def _confident(guess: IntentGuess, config: AssistantConfig) -> bool:
    return not guess.out_of_scope and guess.confidence >= config.min_confidence


def _mentioned(slot: SlotConfig, text: str) -> bool:
    words = slot.name.replace("_", " ")
    return re.search(rf"(?<!\w){re.escape(words)}(?!\w)", text, re.IGNORECASE) is not None


async def _fill(
    slots: list[SlotConfig],
    state: State,
    text: str,
    brain: Brain,
    now: datetime,
) -> list[str]:
    """Fill ``state.slots`` from ``text``; returns the names filled or corrected.

    The slot asked for (or named in the message) reads first; a span of the message
    fills one slot only; a value for a slot already filled replaces it (a correction).
    """
    order = sorted(
        slots,
        key=lambda s: (s.name != state.asked and not _mentioned(s, text), slots.index(s)),
    )
    spans: list[EntitySpan] | None = None
    used: list[Found] = []
    changed: list[str] = []
    for slot in order:
        extractor = slot.parsed
        asked = slot.name == state.asked or _mentioned(slot, text)
        if extractor.kind == "entities":
            if spans is None:
                spans = await brain.entities(text)
            found = from_entities(extractor, spans)
        else:
            found = extract(extractor, text, now=now, asked=asked)
        fresh = [f for f in found if not any(f.overlaps(u) for u in used)]
        if not fresh:
            continue
        value = fresh[0]
        used.append(value)
        state.slots[slot.name] = {"value": value.value, "text": value.text}
        changed.append(slot.name)
    return changed


def _render(template: str, state: State) -> str:
    return template.format_map({name: filled["text"] for name, filled in state.slots.items()})


def _values(state: State) -> dict[str, Any]:
    return {name: filled["value"] for name, filled in state.slots.items()}


def _progress(config: AssistantConfig, state: State, guess: IntentGuess | None) -> Reply:
    """Ask for the first missing slot of ``state.intent``, or answer once all are filled."""
    intent = state.intent
    assert intent is not None
    common: dict[str, Any] = {
        "intent": intent,
        "confidence": guess.confidence if guess else None,
        "prediction_id": guess.prediction_id if guess else None,
        "version": guess.version if guess else None,
    }
    for slot in config.slots_of(intent):
        if slot.name not in state.slots:
            state.asked = slot.name
            prompt = _render(slot.prompt, state)
            slots = _values(state)
            return Reply(prompt, "slot_prompt", slots=slots, **common)
    text = _render(config.responses[intent], state)
    slots = _values(state)
    state.forget_intent()
    return Reply(text, "intent", slots=slots, **common)


def _handoff(
    config: AssistantConfig, state: State, reason: HandoffReason, guess: IntentGuess | None
) -> Reply:
    state.status = "waiting_for_agent"
    state.forget_intent()
    state.fallbacks = 0
    return Reply(
        config.handoff.message,
        "handoff",
        intent=guess.label if guess and reason == "intent" else None,
        confidence=guess.confidence if guess else None,
        handoff=reason,
        prediction_id=guess.prediction_id if guess else None,
        version=guess.version if guess else None,
    )


async def respond(
    config: AssistantConfig,
    state: State,
    text: str,
    brain: Brain,
    *,
    now: datetime,
) -> Reply | None:
    """The assistant's reply to the visitor's ``text`` (see the module docstring).

    Args:
        config: the assistant.
        state: the conversation's state; updated in place.
        text: the visitor's message (already checked: length, Unicode).
        brain: the models (asked only what the turn needs).
        now: the visitor's "now", for relative dates.

    Returns:
        The reply, or ``None`` when a person answers the conversation (the message is
        theirs to read).
    """
    if state.status in ("waiting_for_agent", "agent"):
        return None
    if state.status == "closed":
        state.status = "bot"
        state.forget_intent()
        state.fallbacks = 0
    if asks_for_a_person(text):
        return _handoff(config, state, "asked", None)

    guess: IntentGuess | None = None
    if state.intent is not None and state.intent in config.slots:
        if await _fill(config.slots_of(state.intent), state, text, brain, now):
            state.fallbacks = 0
            return _progress(config, state, None)
        guess = await brain.classify(text)
        if not (_confident(guess, config) and guess.label != state.intent):
            state.fallbacks = 0
            return _progress(config, state, None)  # the same slot, asked again
        state.forget_intent()  # the visitor moved on to another intent
    if guess is None:
        guess = await brain.classify(text)

    if _confident(guess, config):
        if guess.label in config.handoff.intents:
            return _handoff(config, state, "intent", guess)
        if guess.label in config.responses:
            state.fallbacks = 0
            state.intent, state.slots, state.asked = guess.label, {}, None
            if config.slots_of(guess.label):
                await _fill(config.slots_of(guess.label), state, text, brain, now)
            return _progress(config, state, guess)

    passage = await brain.answer(text)
    if passage is not None:
        state.fallbacks = 0
        return Reply(
            passage.text,
            "faq",
            intent=None,
            confidence=guess.confidence,
            sources=[
                {
                    "document_id": passage.document_id,
                    "score": passage.score,
                    "title": passage.title,
                    "url": passage.url,
                }
            ],
            prediction_id=guess.prediction_id,
            version=guess.version,
        )
    state.fallbacks += 1
    limit = config.handoff.after_fallbacks
    if limit is not None and state.fallbacks >= limit:
        return _handoff(config, state, "fallbacks", guess)
    return Reply(
        config.fallback,
        "fallback",
        confidence=guess.confidence,
        prediction_id=guess.prediction_id,
        version=guess.version,
    )
