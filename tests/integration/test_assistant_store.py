"""Assistants, conversations and messages in the database (aiweb.assistant.store), on
SQLite and on PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import open_registry
from sqlalchemy.orm import Session, sessionmaker

from aiweb.assistant.config import AssistantConfig
from aiweb.assistant.dialogue import IntentGuess, Passage, Reply, State, respond
from aiweb.assistant.extractors import EntitySpan
from aiweb.assistant.store import (
    AssistantStore,
    agent_message,
    reply_message,
    visitor_message,
)
from aiweb.config import Settings
from aiweb.db.base import utcnow
from aiweb.db.session import make_session_factory
from aiweb.errors import AssistantNotFound, ConversationNotFound, StaleConversation

CONFIG = AssistantConfig.model_validate(
    {
        "intents_model": "intents",
        "responses": {"transfer": "Sending {amount}.", "balance": "See Accounts."},
        "slots": {"transfer": [{"name": "amount", "extractor": "money", "prompt": "How much?"}]},
    }
)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    _registry, engine = open_registry(settings)  # migrated
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> AssistantStore:
    return AssistantStore(sessions)


class Brain:
    async def classify(self, text: str) -> IntentGuess:
        label = "transfer" if "send" in text else "balance"
        return IntentGuess(label, 0.9, prediction_id=f"p-{text[:8]}", version="intents:1")

    async def answer(self, text: str) -> Passage | None:
        return None

    async def entities(self, text: str) -> list[EntitySpan]:
        return []


def turn(store: AssistantStore, conversation_id: str, text: str) -> Reply | None:
    """What the service does for one message: read, respond, record."""
    conversation = store.conversation(conversation_id)
    state = conversation.state
    reply = asyncio.run(respond(CONFIG, state, text, Brain(), now=utcnow()))
    messages: list[dict[str, Any]] = [visitor_message(text)]
    if reply is not None:
        messages.append(reply_message(reply, {"intents": "intents:1"}))
    store.record(conversation, state, messages)
    return reply


def test_put_get_list_and_update_an_assistant(store: AssistantStore) -> None:
    first, created = store.put("helpdesk", CONFIG, actor="admin-key")
    assert created
    assert first.revision == 1
    assert len(first.secret) >= 32
    changed = CONFIG.model_copy(update={"min_confidence": 0.7})
    second, created = store.put("helpdesk", changed, actor="admin-key")
    assert not created
    assert second.revision == 2
    assert second.secret == first.secret  # kept across config changes
    assert store.get("helpdesk").config.min_confidence == 0.7
    assert [a.name for a in store.assistants()] == ["helpdesk"]
    assert "secret" not in store.get("helpdesk").public()
    assert store.rotate_secret("helpdesk") != first.secret
    with pytest.raises(AssistantNotFound):
        store.get("nobody")


def test_a_dialogue_is_stored_turn_by_turn(store: AssistantStore) -> None:
    store.put("helpdesk", CONFIG, actor="a")
    conversation = store.start("helpdesk", origin="https://shop.example", user_id="u-1")
    assert turn(store, conversation.id, "send money") is not None
    reply = turn(store, conversation.id, "$20")
    assert reply is not None
    assert reply.text == "Sending $20.00."
    stored = store.conversation(conversation.id, messages=True)
    assert stored.message_count == 4
    assert [(m["seq"], m["role"], m["text"]) for m in stored.messages] == [
        (1, "visitor", "send money"),
        (2, "bot", "How much?"),
        (3, "visitor", "$20"),
        (4, "bot", "Sending $20.00."),
    ]
    answer = stored.messages[3]
    assert answer["type"] == "intent"
    assert answer["slots"] == {"amount": {"amount": 20.0, "currency": "USD"}}
    assert answer["versions"] == {"intents": "intents:1"}
    assert stored.messages[1]["prediction_id"] == "p-send mon"
    public = stored.public()
    assert public["origin"] == "https://shop.example"
    assert public["status"] == "bot"


def test_a_stale_writer_is_refused_and_loses_nothing(store: AssistantStore) -> None:
    store.put("helpdesk", CONFIG, actor="a")
    read = store.start("helpdesk")
    store.record(read, State(status="agent"), [agent_message("Hello, I am Eve.", "eve")])
    with pytest.raises(StaleConversation):  # a turn that read the conversation before
        store.record(read, State(), [visitor_message("hi")])
    fresh = store.conversation(read.id, messages=True)
    assert fresh.status == "agent"
    assert [m["text"] for m in fresh.messages] == ["Hello, I am Eve."]


def test_concurrent_turns_each_land_once(store: AssistantStore) -> None:
    """Eight writers on one conversation, each retrying on a stale read: every message is
    kept, numbered without gaps or repeats."""
    store.put("helpdesk", CONFIG, actor="a")
    conversation_id = store.start("helpdesk").id
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(200):
                read = store.conversation(conversation_id)
                try:
                    store.record(read, read.state, [visitor_message(f"message {i}")])
                    return
                except StaleConversation:
                    continue
            raise AssertionError("never got through")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = store.conversation(conversation_id, messages=True)
    assert sorted(m["seq"] for m in stored.messages) == list(range(1, 9))
    assert sorted(m["text"] for m in stored.messages) == sorted(f"message {i}" for i in range(8))


def test_list_by_status_and_page(store: AssistantStore) -> None:
    store.put("helpdesk", CONFIG, actor="a")
    store.put("sales", CONFIG, actor="a")
    ids = [store.start("helpdesk").id for _ in range(3)]
    other = store.start("sales")
    waiting = store.conversation(ids[1])
    store.record(waiting, State(status="waiting_for_agent"), [visitor_message("a person please")])
    assert [c.id for c in store.conversations(status="waiting_for_agent")] == [ids[1]]
    assert {c.id for c in store.conversations(assistant="helpdesk")} == set(ids)
    page = store.conversations(limit=2)
    assert len(page) == 2
    rest = store.conversations(limit=10, before=page[-1].updated_at)
    assert {c.id for c in page} | {c.id for c in rest} >= {*ids, other.id} - {page[-1].id}
    with pytest.raises(ConversationNotFound):  # the id is the other assistant's
        store.conversation(other.id, assistant="helpdesk")


def test_erase_prune_and_delete(store: AssistantStore) -> None:
    store.put("helpdesk", CONFIG, actor="a")
    one = store.start("helpdesk", user_id="u-1")
    turn(store, one.id, "what is my balance")
    two = store.start("helpdesk", user_id="u-2")
    turn(store, two.id, "balance")
    three = store.start("helpdesk")
    assert store.erase(one.id) == {"conversations": 1, "messages": 2}
    with pytest.raises(ConversationNotFound):
        store.conversation(one.id)
    assert store.erase_user("u-2") == {"conversations": 1, "messages": 2}
    assert store.prune(utcnow() - timedelta(days=1)) == 0  # all recent
    assert store.prune(utcnow() + timedelta(seconds=1), batch_rows=1) == 1
    with pytest.raises(ConversationNotFound):
        store.conversation(three.id)
    four = store.start("helpdesk")
    turn(store, four.id, "balance")
    assert store.delete("helpdesk") == {"conversations": 1, "messages": 2}
    with pytest.raises(ConversationNotFound):  # gone with its assistant
        store.conversation(four.id)
    with pytest.raises(AssistantNotFound):
        store.start("helpdesk")
