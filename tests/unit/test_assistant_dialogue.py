"""The assistant's turn policy (aiweb.assistant.dialogue) on scripted dialogues.

The brain here is a table of answers (the policy's contract with the models); the same
dialogues run against trained models in the assistant's integration tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.dialogue import (
    IntentGuess,
    Passage,
    Reply,
    State,
    asks_for_a_person,
    respond,
)
from aiweb.assistant.extractors import EntitySpan

NOW = datetime(2026, 12, 6, 10, 30)

CONFIG = AssistantConfig.model_validate(
    {
        "intents_model": "intents",
        "faq_collection": "help",
        "fallback": "Sorry, could you rephrase?",
        "responses": {
            "balance": "Your balance is shown under Accounts.",
            "transfer": "Sending {amount} to {recipient} on {day}.",
        },
        "slots": {
            "transfer": [
                {"name": "amount", "extractor": "money", "prompt": "How much?"},
                {
                    "name": "recipient",
                    "extractor": "entities:PERSON",
                    "prompt": "Whom should I send {amount} to?",
                },
                {"name": "day", "extractor": "date", "prompt": "When?"},
            ]
        },
        "entities_model": "people",
        "handoff": {"intents": ["speak_to_human"], "after_fallbacks": 2},
        "min_confidence": 0.5,
    }
)

NAMES = ("Ann", "Bob", "Carla")


@dataclass
class ScriptedBrain:
    """Intents by keyword (``transfer`` for "send"/"transfer", …), help passages by
    keyword, PERSON spans for a few first names; records what it was asked."""

    calls: list[str] = field(default_factory=list)

    async def classify(self, text: str) -> IntentGuess:
        self.calls.append("classify")
        lowered = text.lower()
        for words, label in (
            (("send", "transfer"), "transfer"),
            (("balance",), "balance"),
            (("manager",), "speak_to_human"),
        ):
            if any(w in lowered for w in words):
                return IntentGuess(label, 0.9, prediction_id="p1", version="intents:1")
        if "unsure" in lowered:
            return IntentGuess("balance", 0.3, version="intents:1")
        return IntentGuess("oos", 0.8, out_of_scope=True, version="intents:1")

    async def answer(self, text: str) -> Passage | None:
        self.calls.append("answer")
        if "fees" in text.lower():
            return Passage("Transfers are free within the EU.", "doc-7", 0.82, title="Fees")
        return None

    async def entities(self, text: str) -> list[EntitySpan]:
        self.calls.append("entities")
        spans = []
        for name in NAMES:
            start = text.find(name)
            if start >= 0:
                spans.append(EntitySpan("PERSON", name, start, start + len(name)))
        return spans


def run(*messages: str, state: State | None = None) -> tuple[list[Reply | None], State]:
    state = state or State()
    brain = ScriptedBrain()

    async def go() -> list[Reply | None]:
        return [await respond(CONFIG, state, m, brain, now=NOW) for m in messages]

    return asyncio.run(go()), state


def shown(replies: list[Reply | None]) -> list[tuple[str, str] | None]:
    return [(r.type, r.text) if r else None for r in replies]


def test_slots_asked_one_at_a_time_then_the_template() -> None:
    replies, state = run("I want to send money", "$50", "to Ann", "next friday")
    assert shown(replies) == [
        ("slot_prompt", "How much?"),
        ("slot_prompt", "Whom should I send $50.00 to?"),
        ("slot_prompt", "When?"),
        ("intent", "Sending $50.00 to Ann on 2026-12-11."),
    ]
    last = replies[-1]
    assert last is not None
    assert last.intent == "transfer"
    assert last.slots == {
        "amount": {"amount": 50.0, "currency": "USD"},
        "recipient": "Ann",
        "day": "2026-12-11",
    }
    assert state.intent is None  # done: the next message starts afresh
    assert state.slots == {}


def test_several_slots_in_one_message_and_a_bare_amount_when_asked() -> None:
    replies, _ = run("send 20 euros to Bob", "tomorrow")
    assert shown(replies) == [
        ("slot_prompt", "When?"),
        ("intent", "Sending €20.00 to Bob on 2026-12-07."),
    ]
    replies, _ = run("transfer please", "50", "Carla", "on 12 March 2027")
    assert shown(replies)[-1] == ("intent", "Sending 50.00 to Carla on 2027-03-12.")


def test_a_slot_already_given_can_be_corrected() -> None:
    replies, _ = run("send $50 to Ann", "actually make it $80", "change the amount to 90", "today")
    assert shown(replies) == [
        ("slot_prompt", "When?"),
        ("slot_prompt", "When?"),
        ("slot_prompt", "When?"),
        ("intent", "Sending 90.00 to Ann on 2026-12-06."),  # named slot: a bare number
    ]


def test_a_message_that_fills_nothing_asks_again_or_starts_another_intent() -> None:
    replies, state = run("send money", "hmm", "what is my balance")
    assert shown(replies) == [
        ("slot_prompt", "How much?"),
        ("slot_prompt", "How much?"),
        ("intent", "Your balance is shown under Accounts."),
    ]
    assert state.intent is None


def test_out_of_scope_goes_to_the_help_collection_with_its_source() -> None:
    brain = ScriptedBrain()
    state = State()
    reply = asyncio.run(respond(CONFIG, state, "what are your fees?", brain, now=NOW))
    assert reply is not None
    assert reply.public() == {
        "reply": "Transfers are free within the EU.",
        "type": "faq",
        "intent": None,
        "confidence": 0.8,
        "slots": {},
        "sources": [{"document_id": "doc-7", "score": 0.82, "title": "Fees", "url": None}],
    }
    assert brain.calls == ["classify", "answer"]


def test_low_confidence_is_not_trusted() -> None:
    replies, _ = run("unsure about fees")
    assert shown(replies) == [("faq", "Transfers are free within the EU.")]
    replies, _ = run("unsure")
    assert shown(replies) == [("fallback", "Sorry, could you rephrase?")]


def test_two_fallbacks_in_a_row_hand_over_and_the_bot_then_keeps_quiet() -> None:
    replies, state = run("blah", "what is my balance", "blah", "blah", "hello?")
    assert [r.type if r else None for r in replies] == [
        "fallback",
        "intent",  # resets the count
        "fallback",
        "handoff",
        None,  # a person answers now
    ]
    assert replies[3] is not None
    assert replies[3].handoff == "fallbacks"
    assert state.status == "waiting_for_agent"


@pytest.mark.parametrize(
    ("message", "reason"),
    [("I need to speak to a manager", "intent"), ("can I talk to a human?", "asked")],
)
def test_handoff_by_intent_or_by_asking(message: str, reason: str) -> None:
    replies, state = run("send money", message)
    assert replies[1] is not None
    assert replies[1].type == "handoff"
    assert replies[1].handoff == reason
    assert state.status == "waiting_for_agent"
    assert state.intent is None


def test_a_closed_conversation_goes_back_to_the_bot() -> None:
    replies, state = run("balance?", state=State(status="closed", fallbacks=1))
    assert shown(replies) == [("intent", "Your balance is shown under Accounts.")]
    assert state.status == "bot"
    assert state.fallbacks == 0


def test_models_are_asked_only_what_the_turn_needs() -> None:
    brain = ScriptedBrain()
    state = State()

    async def go() -> None:
        await respond(CONFIG, state, "send money", brain, now=NOW)
        brain.calls.clear()
        await respond(CONFIG, state, "$30", brain, now=NOW)  # fills the amount

    asyncio.run(go())
    assert brain.calls == ["entities"]  # no intent call for a slot answer


def test_state_round_trips_through_json() -> None:
    _, state = run("send $50")
    again = State.from_json(state.to_json())
    assert again == state
    assert State.from_json({"status": "hacked"}).status == "bot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can I talk to a human?", True),
        ("I want a real person", True),
        ("agent", True),
        ("connect me with an operator please", True),
        ("my travel agent booked it", False),
        ("humane society donation", False),
        # CLINC150 val: "rep" once matched the start of "replacement"
        ("my card was destroyed and i need a replacement", False),
        ("i need a rep", True),
        ("i want someone to call me back", True),
        ("we need staffing advice", False),
        ("", False),
    ],
)
def test_asks_for_a_person(text: str, expected: bool) -> None:
    assert asks_for_a_person(text) is expected
