"""The assistant over HTTP and the CLI, on every database: configs checked against the
registry on save, scripted dialogues through ``POST /v1/assistants/{name}/messages``
(slots across turns, a correction, an entity slot, handoff by asking and after
fallbacks), the stored conversations with the model versions that answered, erasure,
and hostile messages answered with 4xx, never 5xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, wait_job
from test_webhooks import Receiver
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.assistant.config import HandoffConfig
from aiweb.classification.model import TextClassifier
from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.cli import app as cli_app
from aiweb.client.webhooks import WebhookSignatureError, verify_signature
from aiweb.config import Settings
from aiweb.embeddings.install import register_exported
from aiweb.entities.model import EntityModel
from aiweb.webhooks import SIGNATURE_HEADER
from screening_helpers import register as register_entities
from screening_helpers import tiny_skills_model

INTENTS = {
    "balance": [
        "what is my balance",
        "how much money do i have",
        "show my account balance",
        "check my balance please",
        "balance of my account",
        "how much is left on my account",
    ],
    "transfer": [
        "i want to send money",
        "transfer money to a friend",
        "send cash to someone",
        "make a transfer",
        "pay money to my friend",
        "i need to transfer funds",
    ],
    "course": [
        "i want to learn a language",
        "sign me up for a course",
        "which course should i take",
        "enrol me in a class",
        "i would like to study something",
        "book a training course",
    ],
    "speak_to_human": [
        "escalate this",
        "escalate my complaint",
        "i want to complain to a manager",
        "this is not helping, escalate",
        "file a complaint",
        "please escalate my case",
    ],
}

CONFIG: dict[str, Any] = {
    "intents_model": "intents",
    "fallback": "Sorry, I did not get that.",
    "responses": {
        "balance": "Your balance is shown under Accounts.",
        "transfer": "Sending {amount} to {recipient}.",
        "course": "Enrolled you in {skill}.",
    },
    "slots": {
        "transfer": [
            {"name": "amount", "extractor": "money", "prompt": "How much?"},
            {"name": "recipient", "extractor": "choice:alice|bob|carol", "prompt": "To whom?"},
        ],
        "course": [{"name": "skill", "extractor": "entities:Skill", "prompt": "Which skill?"}],
    },
    "entities_model": "skills",
    "handoff": {"intents": ["speak_to_human"], "after_fallbacks": 2},
    "min_confidence": 0.5,
}


CONFIG_HANDOFF_MESSAGE = HandoffConfig().message


def fit_intents() -> TextClassifier:
    """A hashed n-gram intents model on :data:`INTENTS`, 2¹⁴ columns per vectorizer: with
    the default 2¹⁹ its four classes' fit goes to a child process and takes 7 s, with
    2¹⁴ it fits here in a fraction of one (and 24 texts collide in neither)."""
    texts = [t for examples in INTENTS.values() for t in examples]
    labels = [label for label, examples in INTENTS.items() for _ in examples]
    return fit_text_classifier(texts * 3, labels * 3, TrainParams(C=20.0, n_features_log2=14))


def register_models(
    settings: Settings, intents: TextClassifier, skills: EntityModel, *, minilm: Path | None = None
) -> None:
    """``intents`` (production) and ``skills`` in the registry of ``settings``, and the
    exported MiniLM embedder from ``minilm`` when given (a help collection's model)."""
    settings.ensure_dirs()
    registry, engine = open_registry(settings)
    try:
        registry.register_version(
            "intents",
            "text-classification",
            artifact=intents.to_bytes(),
            artifact_format="skops",
            labels=list(intents.labels),
            signature={},
            lineage={"dataset": "tests"},
            evaluation={},
            alias="production",
            actor="tests",
        )
        if minilm is not None:
            register_exported(registry, minilm, include_int8=False, actor="tests")
    finally:
        engine.dispose()
    register_entities(settings, "skills", skills)


@pytest.fixture(scope="module")
def intents_model() -> TextClassifier:
    return fit_intents()


@pytest.fixture(scope="module")
def skills_model() -> EntityModel:
    return tiny_skills_model()


@pytest.fixture
def served(
    settings: Settings, intents_model: TextClassifier, skills_model: EntityModel
) -> Settings:
    register_models(settings, intents_model, skills_model)
    return settings


@pytest.fixture
def client(served: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(served), headers=auth_headers) as c:
        yield c


def say(client: TestClient, text: str, conversation_id: str | None = None) -> dict[str, Any]:
    r = client.post(
        "/v1/assistants/helpdesk/messages",
        json={"conversation_id": conversation_id, "text": text},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_config_is_saved_read_and_checked_against_the_registry(client: TestClient) -> None:
    r = client.put("/v1/assistants/helpdesk", json=CONFIG)
    assert r.status_code == 201, r.text
    assert r.json()["revision"] == 1
    secret = r.json()["webhook_secret"]  # shown once, at creation
    assert secret
    assert secret not in client.get("/v1/assistants/helpdesk").text
    r = client.put("/v1/assistants/helpdesk", json={**CONFIG, "min_confidence": 0.6})
    assert r.status_code == 200
    assert r.json()["revision"] == 2
    assert client.get("/v1/assistants/helpdesk").json()["config"]["min_confidence"] == 0.6
    assert [a["name"] for a in client.get("/v1/assistants").json()["assistants"]] == ["helpdesk"]

    def refused(config: dict[str, Any], status: int, *words: str) -> None:
        r = client.put("/v1/assistants/other", json=config)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        for word in words:
            assert word in r.json()["detail"], r.json()["detail"]

    refused({**CONFIG, "intents_model": "nothing"}, 404, "intents_model", "nothing")
    refused({**CONFIG, "intents_model": "skills"}, 409, "token-classification model")
    refused({**CONFIG, "entities_model": "intents"}, 409, "entities_model", "text-classification")
    responses = {**CONFIG["responses"], "refund": "Refunded."}
    refused({**CONFIG, "responses": responses}, 409, "'refund'")
    course = [{"name": "skill", "extractor": "entities:PERSON", "prompt": "Who?"}]
    refused({**CONFIG, "slots": {**CONFIG["slots"], "course": course}}, 409, "PERSON", "Skill")
    refused({**CONFIG, "faq_collection": "help"}, 404, "faq_collection", "help")
    r = client.put("/v1/assistants/other", json={**CONFIG, "responses": {"balance": "{x}"}})
    assert r.status_code == 422
    bad_slot = {"transfer": [{"name": "amount", "extractor": "colour", "prompt": "?"}]}
    assert client.put("/v1/assistants/other", json={**CONFIG, "slots": bad_slot}).status_code == 422
    assert client.get("/v1/assistants/other").status_code == 404

    assert client.delete("/v1/assistants/helpdesk").status_code == 204
    assert client.get("/v1/assistants/helpdesk").status_code == 404
    assert client.delete("/v1/assistants/helpdesk").status_code == 404


def test_a_two_slot_intent_across_turns_with_a_correction(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    first = say(client, "i want to send money")
    cid = first["conversation_id"]
    assert (first["type"], first["intent"], first["reply"]) == (
        "slot_prompt",
        "transfer",
        "How much?",
    )
    assert first["status"] == "bot"
    assert first["prediction_id"]
    second = say(client, "$80", cid)
    assert (second["type"], second["reply"]) == ("slot_prompt", "To whom?")
    assert second["slots"]["amount"]["amount"] == 80.0
    third = say(client, "actually $95", cid)  # a correction of the slot given before
    assert third["type"] == "slot_prompt"
    assert third["slots"]["amount"]["amount"] == 95.0
    done = say(client, "to bob", cid)
    assert done["type"] == "intent"
    assert done["intent"] == "transfer"
    assert "95" in done["reply"]
    assert "bob" in done["reply"]
    assert done["slots"]["recipient"] == "bob"
    # the form is over: the next message is a new question
    assert (
        say(client, "what is my balance", cid)["reply"] == "Your balance is shown under Accounts."
    )

    stored = client.get(f"/v1/conversations/{cid}").json()
    assert stored["message_count"] == 10
    assert stored["assistant"] == "helpdesk"
    roles = [m["role"] for m in stored["messages"]]
    assert roles == ["visitor", "bot"] * 5
    bot = [m for m in stored["messages"] if m["role"] == "bot"]
    assert {m["versions"]["intents"] for m in bot if m["versions"]} == {"intents:1"}
    assert bot[3]["type"] == "intent"
    assert bot[3]["slots"]["recipient"] == "bob"
    listed = client.get("/v1/conversations", params={"assistant": "helpdesk"}).json()
    assert [c["id"] for c in listed["conversations"]] == [cid]


def test_several_slots_in_one_message_and_an_entity_slot(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    both = say(client, "transfer 40 euros to carol")
    assert both["type"] == "intent", both
    assert both["slots"] == {"amount": {"amount": 40.0, "currency": "EUR"}, "recipient": "carol"}
    course = say(client, "sign me up for a course")
    assert (course["type"], course["reply"]) == ("slot_prompt", "Which skill?")
    skill = say(client, "we need Docker", course["conversation_id"])
    assert skill["type"] == "intent"
    assert skill["reply"] == "Enrolled you in Docker."
    stored = client.get(f"/v1/conversations/{course['conversation_id']}").json()
    assert stored["messages"][-1]["versions"]["entities"] == "skills:1"


def test_handoff_when_asked_and_after_fallbacks(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    asked = say(client, "can I talk to a human please?")
    assert asked["type"] == "handoff"
    assert asked["status"] == "waiting_for_agent"
    waiting = say(client, "hello? anyone there", asked["conversation_id"])
    assert waiting["reply"] is None
    assert waiting["status"] == "waiting_for_agent"
    by_intent = say(client, "please escalate my complaint")
    assert by_intent["type"] == "handoff"
    assert by_intent["intent"] == "speak_to_human"

    first = say(client, "zxq plorb")
    assert first["type"] == "fallback"
    assert first["reply"] == "Sorry, I did not get that."
    second = say(client, "vlimp gronk", first["conversation_id"])
    assert second["type"] == "handoff"
    assert second["status"] == "waiting_for_agent"
    waiting_list = client.get("/v1/conversations", params={"status": "waiting_for_agent"}).json()
    assert len(waiting_list["conversations"]) == 3
    assert client.get("/v1/conversations", params={"status": "lost"}).status_code == 422


def test_hostile_messages_get_4xx_never_5xx(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    url = "/v1/assistants/helpdesk/messages"
    for body, status in (
        ({"text": "x" * 10_000}, 422),
        ({"text": "   "}, 422),
        ({"text": ""}, 422),
        ({"text": 5}, 422),
        ({}, 422),
        ({"text": "hi", "conversation_id": "not-an-id"}, 422),
        ({"text": "hi", "conversation_id": "0" * 32}, 404),
        ({"text": "hi", "extra": 1}, 422),
    ):
        r = client.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    for raw in (b'{"text": "\\ud800 hi"}', b'{"text": "a\\u0000b"}', b'{"text": NaN}'):
        r = client.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
    # control characters and odd scripts are a message like any other
    odd = say(client, "\x07\x1b[31m what is my balance \u202e")
    assert odd["type"] in {"intent", "fallback"}
    assert client.post("/v1/assistants/nobody/messages", json={"text": "hi"}).status_code == 404


def test_a_conversation_of_another_assistant_is_not_found(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    assert client.put("/v1/assistants/shop", json=CONFIG).status_code == 201
    cid = say(client, "what is my balance")["conversation_id"]
    r = client.post("/v1/assistants/shop/messages", json={"conversation_id": cid, "text": "hi"})
    assert r.status_code == 404
    assert r.json()["type"].endswith("conversation-not-found")

    assert client.delete(f"/v1/conversations/{cid}").status_code == 204
    assert client.get(f"/v1/conversations/{cid}").status_code == 404
    assert client.delete(f"/v1/conversations/{cid}").status_code == 404


def test_scopes(served: Settings) -> None:
    from conftest import create_key

    predict = create_key(served, ("predict",), name="backend")
    with TestClient(create_app(served), headers={"Authorization": f"Bearer {predict}"}) as c:
        assert c.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 403
        assert c.get("/v1/conversations").status_code == 403
        assert c.post("/v1/assistants/helpdesk/messages", json={"text": "hi"}).status_code == 404


@pytest.fixture
def cli_env(served: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AIWEB_HOME", str(served.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", served.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return served


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_create_show_list_delete(cli_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "helpdesk.json"
    path.write_text(json.dumps(CONFIG), encoding="utf-8")
    code, _, err = cli("assistants", "create", "helpdesk", str(path))
    assert code == 0, err
    assert "created assistant helpdesk" in err
    assert "intents" in err
    code, out, _ = cli("assistants", "show", "helpdesk", "--json")
    assert code == 0
    assert json.loads(out)["config"]["intents_model"] == "intents"
    code, out, _ = cli("assistants", "list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["helpdesk"]

    path.write_text(json.dumps({**CONFIG, "intents_model": "skills"}), encoding="utf-8")
    code, _, err = cli("assistants", "create", "helpdesk", str(path))
    assert code == 1
    assert "token-classification model" in err
    path.write_text("{not json", encoding="utf-8")
    code, _, err = cli("assistants", "create", "helpdesk", str(path))
    assert code == 1
    assert "is not JSON" in err
    path.write_text(json.dumps({**CONFIG, "min_confidence": 2}), encoding="utf-8")
    code, _, err = cli("assistants", "create", "helpdesk", str(path))
    assert code == 1
    assert "min_confidence" in err

    code, _, err = cli("assistants", "delete", "helpdesk", "--yes")
    assert code == 0
    assert "0 conversations" in err
    code, _, err = cli("assistants", "show", "helpdesk")
    assert code == 1
    assert "no assistant is named" in err


HELP = [
    {
        "id": "pin",
        "text": "To change your PIN, open Cards, choose the card and tap Change PIN.",
        "metadata": {"title": "Changing your PIN", "url": "https://help.example/pin"},
    },
    {
        "id": "lost-card",
        "text": "If your card is lost or stolen, freeze it in the app and order a new one.",
        "metadata": {"title": "Lost or stolen cards", "url": "javascript:alert(1)"},
    },
    {
        "id": "fees",
        "text": "Transfers within the eurozone are free; other currencies cost 0.5%.",
        "metadata": {"title": "Fees"},
    },
    {
        "id": "hours",
        "text": "Our support team answers in the chat every day from 8am to 10pm.",
        "metadata": {},
    },
]


@pytest.fixture
def faq_client(
    served: Settings, minilm_dir: Path, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    registry, engine = open_registry(served)
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
    finally:
        engine.dispose()
    with TestClient(create_app(served), headers=auth_headers) as c:
        assert c.put("/v1/collections/help", json={}).status_code == 201
        yield c


def test_a_calibrated_help_collection_answers_what_no_intent_covers(
    faq_client: TestClient,
) -> None:
    client = faq_client
    # nothing to calibrate on yet: 409; the assistant is saved, the collection answers nothing
    r = client.post("/v1/collections/help/calibrate")
    assert r.status_code == 409
    assert "no documents" in r.json()["detail"]
    config = {**CONFIG, "faq_collection": "help"}
    assert client.put("/v1/assistants/helpdesk", json=config).status_code == 201
    assert say(client, "how can i change the pin of my card?")["type"] == "fallback"

    r = client.post("/v1/collections/help/documents", json={"documents": HELP})
    assert r.status_code == 200, r.text
    # saving the assistant calibrates a collection that has documents and no threshold
    assert client.put("/v1/assistants/helpdesk", json=config).status_code == 200
    collection = client.get("/v1/collections/help").json()
    threshold = collection["answer_threshold"]
    calibration = collection["calibration"]
    assert 0.0 < threshold < 1.0
    assert calibration["source"] == "packaged"
    assert calibration["questions"] >= 100
    assert calibration["quantile"] == 0.95
    assert calibration["revision"] == collection["revision"]
    assert calibration["similarities"]["p50"] <= threshold <= calibration["similarities"]["max"]

    answered = say(client, "how can i change the pin of my card?")
    assert answered["type"] == "faq", answered
    assert answered["reply"] == HELP[0]["text"]
    (source,) = answered["sources"]
    assert source["document_id"] == "pin"
    assert source["url"] == "https://help.example/pin"
    assert source["title"] == "Changing your PIN"
    assert source["score"] >= threshold
    stolen = say(client, "someone stole my card, what do i do?")
    assert stolen["type"] == "faq"
    assert stolen["sources"][0]["document_id"] == "lost-card"
    assert stolen["sources"][0]["url"] is None  # only http(s) links are given to a page
    off_topic = say(client, "what is the best topping for a pizza?")
    assert off_topic["type"] == "fallback", off_topic
    stored = client.get(f"/v1/conversations/{answered['conversation_id']}").json()
    assert stored["messages"][-1]["versions"]["faq_collection"].startswith("help@")

    # calibrated on the documents' own texts, nothing but a copy of one clears the bar
    texts = [d["text"] for d in HELP] * 5
    r = client.post("/v1/collections/help/calibrate", json={"questions": texts, "quantile": 1.0})
    assert r.status_code == 200, r.text
    assert r.json()["answer_threshold"] > 0.99
    assert r.json()["calibration"]["source"] == "given"
    assert say(client, "how can i change the pin of my card?")["type"] == "fallback"
    few = client.post("/v1/collections/help/calibrate", json={"questions": ["hi"] * 5})
    assert few.status_code == 422
    assert client.post("/v1/collections/nothing/calibrate").status_code == 404


def test_an_erasure_deletes_the_visitors_conversations(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    url = "/v1/assistants/helpdesk/messages"
    mine = client.post(url, json={"text": "what is my balance", "user_id": "visitor-7"}).json()
    client.post(url, json={"conversation_id": mine["conversation_id"], "text": "thanks"})
    other = client.post(url, json={"text": "what is my balance", "user_id": "visitor-8"}).json()
    stored = client.get(f"/v1/conversations/{mine['conversation_id']}").json()
    assert stored["user_id"] == "visitor-7"

    job = client.post("/v1/privacy/erase", json={"user_id": "visitor-7"}).json()
    job = wait_job(client, job["id"])
    assert job["status"] == "succeeded", job
    erased = job["result"]["erased"]
    assert erased["assistant.conversations"] == 1
    assert erased["assistant.messages"] == 4
    assert client.get(f"/v1/conversations/{mine['conversation_id']}").status_code == 404
    assert client.get(f"/v1/conversations/{other['conversation_id']}").status_code == 200


def test_an_operator_takes_replies_and_hands_back(served: Settings, client: TestClient) -> None:
    from conftest import create_key

    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    handed = say(client, "can i speak to a real person?")
    cid = handed["conversation_id"]
    seen = client.get(f"/v1/assistants/helpdesk/conversations/{cid}/messages").json()
    assert seen["status"] == "waiting_for_agent"
    assert [m["role"] for m in seen["messages"]] == ["visitor", "bot"]
    last = seen["messages"][-1]["seq"]

    # the operator's reply takes the conversation; the visitor's page sees it by polling
    r = client.post(
        f"/v1/conversations/{cid}/messages", json={"text": "Hi, I'm Sam. How can I help?"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "agent"
    assert r.json()["operator"] == "tests"
    waiting = say(client, "my card is blocked", cid)
    assert waiting["reply"] is None  # for the operator, not the bot
    new = client.get(
        f"/v1/assistants/helpdesk/conversations/{cid}/messages", params={"after": last}
    ).json()
    assert [(m["role"], m["type"]) for m in new["messages"]] == [
        ("agent", "agent"),
        ("visitor", None),
    ]
    assert new["messages"][0]["text"] == "Hi, I'm Sam. How can I help?"
    stored = client.get(f"/v1/conversations/{cid}").json()
    assert stored["messages"][2]["author"] == "tests"

    other = create_key(served, ("admin",), name="alex")
    for path in ("take", "messages"):
        r = client.post(
            f"/v1/conversations/{cid}/{path}",
            json={"text": "me too"},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert r.status_code == 409, r.text

    released = client.post(f"/v1/conversations/{cid}/release").json()
    assert released["status"] == "bot"
    assert released["operator"] is None
    assert say(client, "what is my balance", cid)["type"] == "intent"

    assert client.post(f"/v1/conversations/{cid}/close").json()["status"] == "closed"
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "still there?"})
    assert r.status_code == 409
    again = say(client, "what is my balance", cid)  # a closed conversation goes to the bot
    assert again["type"] == "intent"
    assert again["status"] == "bot"
    assert client.post(f"/v1/conversations/{'0' * 32}/take").status_code == 404
    assert client.post(f"/v1/conversations/{cid}/messages", json={"text": " "}).status_code == 422
    wrong = client.get(f"/v1/assistants/other/conversations/{cid}/messages")
    assert wrong.status_code == 404


def test_a_handoff_posts_a_signed_webhook(client: TestClient) -> None:
    receiver = Receiver()
    try:
        config = {**CONFIG, "handoff": {**CONFIG["handoff"], "webhook_url": receiver.url}}
        created = client.put("/v1/assistants/helpdesk", json=config)
        assert created.status_code == 201, created.text
        secret = created.json()["webhook_secret"]
        assert len(secret) >= 32
        again = client.put("/v1/assistants/helpdesk", json=config).json()
        assert again["webhook_secret"] is None  # shown once
        assert secret not in client.get("/v1/assistants/helpdesk").text

        say(client, "what is my balance")  # no handoff, no post
        first = say(client, "i want to send money", None)
        handed = say(client, "please escalate my complaint", first["conversation_id"])
        assert handed["type"] == "handoff"
        deadline = time.monotonic() + 20
        while not receiver.posts and time.monotonic() < deadline:
            time.sleep(0.1)
        ((body, headers),) = receiver.posts
        verify_signature(body, headers[SIGNATURE_HEADER], secret)
        event = json.loads(body)
        assert event["type"] == "assistant.handoff"
        data = event["data"]
        assert data["assistant"] == "helpdesk"
        assert data["conversation_id"] == first["conversation_id"]
        assert data["reason"] == "intent"
        assert data["intent"] == "speak_to_human"
        texts = [(m["role"], m["text"]) for m in data["messages"]]
        assert texts[0] == ("visitor", "i want to send money")
        assert texts[-2:] == [
            ("visitor", "please escalate my complaint"),
            ("bot", CONFIG_HANDOFF_MESSAGE),
        ]
        hooks = client.get("/v1/webhooks").json()["webhooks"]
        (hook,) = [h for h in hooks if h["name"].startswith("assistant-")]
        deliveries = client.get(f"/v1/webhooks/{hook['name']}/deliveries").json()["deliveries"]
        assert [(d["event"], d["status"]) for d in deliveries] == [("assistant.handoff", "sent")]

        # a new secret signs the next one; the old one no longer verifies
        rotated = client.post("/v1/assistants/helpdesk/secret").json()["webhook_secret"]
        assert rotated != secret
        say(client, "can i talk to a human?")
        deadline = time.monotonic() + 20
        while len(receiver.posts) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        body, headers = receiver.posts[1]
        verify_signature(body, headers[SIGNATURE_HEADER], rotated)
        with pytest.raises(WebhookSignatureError):
            verify_signature(body, headers[SIGNATURE_HEADER], secret)
        assert json.loads(body)["data"]["reason"] == "asked"

        # without a URL the assistant's webhook goes
        assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 200
        names = [h["name"] for h in client.get("/v1/webhooks").json()["webhooks"]]
        assert not [n for n in names if n.startswith("assistant-")]
    finally:
        receiver.close()


def test_retention_deletes_old_conversations(served: Settings, client: TestClient) -> None:
    from sqlalchemy import update

    from aiweb.assistant.orm import SqlConversation
    from aiweb.config import RetentionSettings
    from aiweb.db.base import utcnow
    from aiweb.jobs.env import build_job_env
    from aiweb.jobs.scheduler import housekeeping
    from aiweb.tasks import pruners

    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    old = say(client, "what is my balance")["conversation_id"]
    new = say(client, "what is my balance")["conversation_id"]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            update(SqlConversation)
            .where(SqlConversation.id == old)
            .values(updated_at=utcnow() - timedelta(days=100))
        )
    for days, expected in ((None, None), (120, 0), (90, 1)):
        retention = RetentionSettings(conversations_days=days)
        env = build_job_env(served.model_copy(update={"retention": retention}))
        try:
            pruned, _ = housekeeping(env, force=True, pruners=pruners())
        finally:
            env.close()
        assert pruned.get("assistant.conversations") == expected, (days, pruned)
    assert client.get(f"/v1/conversations/{old}").status_code == 404
    assert client.get(f"/v1/conversations/{new}").json()["message_count"] == 2


def test_a_model_an_assistant_answers_with_is_not_deleted(cli_env: Settings) -> None:
    from conftest import create_key

    key = create_key(cli_env, ("admin",), name="ops")
    with TestClient(create_app(cli_env), headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
        for model in ("intents", "skills"):
            r = c.delete(f"/v1/models/{model}")
            assert r.status_code == 409, r.text
            assert "helpdesk" in r.json()["detail"]
    code, _, err = cli("models", "delete", "intents", "--yes")
    assert code == 1
    assert "answers for assistant(s) helpdesk" in err
    code, _, err = cli("assistants", "delete", "helpdesk", "--yes")
    assert code == 0, err
    code, _, err = cli("models", "delete", "intents", "--yes")
    assert code == 0, err


def _next(ws: Any, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind`` (frames of other types are skipped)."""
    for _ in range(20):
        frame: dict[str, Any] = ws.receive_json()
        if frame["type"] == kind:
            return frame
        assert frame["type"] != "error", frame
    raise AssertionError(f"no {kind} frame")


def test_the_socket_gets_replies_and_the_operators_message(
    client: TestClient, admin_key: str
) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    with client.websocket_connect(f"/v1/assistants/helpdesk/ws?key={admin_key}") as ws:
        ws.send_json({"type": "message", "text": "what is my balance", "conversation_id": None})
        assert ws.receive_json() == {"type": "typing", "typing": True}
        turn = _next(ws, "turn")["turn"]
        assert turn["reply"] == "Your balance is shown under Accounts."
        cid = turn["conversation_id"]
        ws.send_json({"type": "message", "text": "can i talk to a human", "conversation_id": cid})
        handed = _next(ws, "turn")["turn"]
        assert handed["type"] == "handoff"
        r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "Sam here."})
        assert r.status_code == 200, r.text
        pushed = _next(ws, "message")
        while pushed["message"]["seq"] < 5:  # the handoff turn's own, forwarded after it
            pushed = _next(ws, "message")
        assert pushed["message"]["role"] == "agent"
        assert pushed["message"]["text"] == "Sam here."
        assert pushed["message"]["seq"] == 5
        assert _next(ws, "status")["status"] == "agent"
        ws.send_json({"type": "resume", "conversation_id": cid, "after": 3})
        seqs = [_next(ws, "message")["message"]["seq"] for _ in range(2)]
        assert seqs == [4, 5]
        ws.send_json({"type": "bogus"})
        assert _next(ws, "error")["status"] == 422
        ws.send_json({"type": "message", "text": "x" * 10_000, "conversation_id": cid})
        assert _next(ws, "error")["status"] == 422


def close_code(client: TestClient, url: str, headers: dict[str, str] | None = None) -> int:
    """The code a refused socket is closed with: it is accepted first, so that a browser
    sees the code (a handshake refused before it is accepted reaches it as 1006)."""
    from starlette.websockets import WebSocketDisconnect

    with (
        client.websocket_connect(url, headers=headers or {}) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    return closed.value.code


def test_a_socket_with_a_bad_key_is_refused(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    bad = {"Authorization": "Bearer aiw_not-a-key"}
    assert close_code(client, "/v1/assistants/helpdesk/ws", bad) == 4401
    assert close_code(client, "/v1/assistants/nobody/ws") == 4404


SHOP = {"Origin": "https://shop.example"}


def test_a_chat_key_talks_only_to_its_assistants_from_its_origins(
    client: TestClient,
) -> None:
    for name in ("helpdesk", "sales"):
        assert client.put(f"/v1/assistants/{name}", json=CONFIG).status_code == 201
    r = client.post(
        "/v1/keys",
        json={
            "name": "site",
            "scopes": ["chat"],
            "assistants": ["helpdesk"],
            "origins": ["HTTPS://Shop.example:443/", "http://127.0.0.2:8080"],
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["origins"] == ["http://127.0.0.2:8080", "https://shop.example"]
    assert created["assistants"] == ["helpdesk"]
    listed = {k["name"]: k for k in client.get("/v1/keys").json()["keys"]}
    assert listed["site"]["origins"] == created["origins"]
    # a publishable key has scope chat alone and names both its assistants and its origins
    for bad in (
        {"scopes": ["chat", "predict"], "assistants": ["helpdesk"], "origins": ["https://a.b"]},
        {"scopes": ["chat"], "assistants": ["helpdesk"]},
        {"scopes": ["chat"], "origins": ["https://a.b"]},
        {"scopes": ["predict"], "assistants": ["helpdesk"]},
        {"scopes": ["chat"], "assistants": ["helpdesk"], "origins": ["https://a.b/path"]},
    ):
        r = client.post("/v1/keys", json={"name": "bad", **bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"

    site = {"Authorization": f"Bearer {created['secret']}"}
    r = client.post(
        "/v1/assistants/helpdesk/messages", json={"text": "what is my balance"}, headers=site | SHOP
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    r = client.get(f"/v1/assistants/helpdesk/conversations/{cid}/messages", headers=site | SHOP)
    assert [m["seq"] for m in r.json()["messages"]] == [1, 2]
    refused = [
        client.post(
            "/v1/assistants/helpdesk/messages",
            json={"text": "hi"},
            headers=site | {"Origin": "https://evil.example"},
        ),
        client.post("/v1/assistants/helpdesk/messages", json={"text": "hi"}, headers=site),
        client.post("/v1/assistants/sales/messages", json={"text": "hi"}, headers=site | SHOP),
        client.get(f"/v1/assistants/sales/conversations/{cid}/messages", headers=site | SHOP),
        client.get("/v1/conversations", headers=site | SHOP),
        client.get("/v1/models", headers=site | SHOP),
        client.post(
            "/v1/models/intents/predict", json={"inputs": ["balance"]}, headers=site | SHOP
        ),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert "evil.example" in refused[0].json()["detail"]
    assert "Origin header" in refused[1].json()["detail"]

    url = f"/v1/assistants/helpdesk/ws?key={created['secret']}"
    assert close_code(client, url, {"Origin": "https://evil.example"}) == 4403
    assert close_code(client, url) == 4403
    assert close_code(client, f"/v1/assistants/sales/ws?key={created['secret']}", SHOP) == 4403
    with client.websocket_connect(url, headers={"Origin": "http://127.0.0.2:8080"}) as ws:
        ws.send_json({"type": "message", "text": "what is my balance", "conversation_id": cid})
        assert _next(ws, "turn")["turn"]["reply"] == "Your balance is shown under Accounts."


def test_a_chat_key_has_a_budget_per_conversation_and_per_address(
    served: Settings, admin_key: str
) -> None:
    from aiweb.config import RateLimitSettings

    settings = served.model_copy(
        update={"rate_limit": RateLimitSettings(chat="5/minute", conversation="3/minute")}
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {admin_key}"}) as c:
        assert c.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
        r = c.post(
            "/v1/keys",
            json={
                "name": "site",
                "scopes": ["chat"],
                "assistants": ["helpdesk"],
                "origins": ["https://shop.example"],
            },
        )
        site = {"Authorization": f"Bearer {r.json()['secret']}"} | SHOP

        def say_as(headers: dict[str, str], cid: str | None) -> Any:
            return c.post(
                "/v1/assistants/helpdesk/messages",
                json={"text": "what is my balance", "conversation_id": cid},
                headers=headers,
            )

        first = say_as(site, None)
        cid = first.json()["conversation_id"]
        # the first message started the conversation; 3 more in it, then the 4th refused
        assert [say_as(site, cid).status_code for _ in range(3)] == [200, 200, 200]
        r = say_as(site, cid)
        assert r.status_code == 429
        assert "'conversation'" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        # a new conversation has its own budget, the address does not: 5 a minute in all
        r = say_as(site, None)
        assert r.status_code == 429
        assert "'chat'" in r.json()["detail"]
        # the application's backend (here the admin key) is not held to a visitor's budgets
        for _ in range(5):
            assert say_as({}, cid).status_code == 200


def test_cli_creates_a_chat_key(cli_env: Settings) -> None:
    code, out, err = cli(
        "keys",
        "create",
        "site",
        "--scopes",
        "chat",
        "--assistants",
        "helpdesk",
        "--origins",
        "https://shop.example,http://localhost:3000",
    )
    assert code == 0, err
    assert out.strip().startswith("aiw_")
    assert "origins http://localhost:3000, https://shop.example" in err
    code, out, _ = cli("keys", "list", "--json")
    site = next(k for k in json.loads(out) if k["name"] == "site")
    assert site["scopes"] == ["chat"]
    assert site["assistants"] == ["helpdesk"]
    code, _, err = cli("keys", "create", "site2", "--scopes", "chat,predict", "--assistants", "x")
    assert code != 0
    assert "scope chat alone" in err


def test_the_widget_script_is_served_without_a_key(served: Settings) -> None:
    with TestClient(create_app(served)) as c:
        r = c.get("/widget.js")
        head = c.head("/widget.js")  # link checkers and curl -I
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == r.headers["content-length"]
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert "attachShadow" in r.text
    assert "innerHTML" not in r.text  # text is set as text, never parsed as HTML


def test_feedback_on_a_reply_feeds_the_intents_models_accuracy(client: TestClient) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    right = say(client, "what is my balance")
    cid = right["conversation_id"]
    assert right["seq"] == 2
    url = f"/v1/assistants/helpdesk/conversations/{cid}/messages"
    # a thumbs up on a reply the predicted intent chose: that intent was right
    r = client.post(f"{url}/2/feedback", json={"helpful": True})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "balance"
    assert r.json()["feedback"]["helpful"] is True
    # a fallback: the visitor names the intent the message was
    wrong = say(client, "zxq plorb", cid)
    assert wrong["type"] == "fallback"
    r = client.post(f"{url}/{wrong['seq']}/feedback", json={"helpful": False, "intent": "transfer"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "transfer"
    # a thumbs down alone names no label: stored, not counted
    r = client.post(f"{url}/2/feedback", json={"helpful": False})
    assert r.status_code == 200
    assert r.json()["label"] is None
    stored = client.get(f"/v1/conversations/{cid}").json()["messages"]
    assert stored[1]["feedback"]["helpful"] is False
    assert stored[3]["feedback"]["intent"] == "transfer"
    assert stored[0]["feedback"] is None

    window = {}
    for _ in range(50):  # the prediction log is written in batches
        window = client.get("/v1/models/intents/versions/1/performance").json()["windows"]["1h"]
        if window["n"] == 2:
            break
        time.sleep(0.1)
    assert window["n"] == 2  # balance was right (1 of 2), the fallback's guess was not
    assert window["accuracy"] == 0.5

    refused = {
        "visitor's message": (f"{url}/1/feedback", {"helpful": True}, 409),
        "no such message": (f"{url}/99/feedback", {"helpful": True}, 404),
        "not a label": (f"{url}/2/feedback", {"intent": "pizza"}, 422),
        "nothing said": (f"{url}/2/feedback", {}, 422),
        "null": (f"{url}/2/feedback", {"helpful": None}, 422),
        "a string": (f"{url}/2/feedback", {"helpful": "yes"}, 422),
        "other assistant": (
            f"/v1/assistants/sales/conversations/{cid}/messages/2/feedback",
            {"helpful": True},
            404,
        ),
    }
    for label, (path, body, status) in refused.items():
        r = client.post(path, json=body)
        assert r.status_code == status, (label, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_feedback_over_the_socket(client: TestClient, admin_key: str) -> None:
    assert client.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
    with client.websocket_connect(f"/v1/assistants/helpdesk/ws?key={admin_key}") as ws:
        ws.send_json({"type": "message", "text": "what is my balance", "conversation_id": None})
        turn = _next(ws, "turn")["turn"]
        cid = turn["conversation_id"]
        frame = {"type": "feedback", "conversation_id": cid, "seq": turn["seq"], "helpful": True}
        ws.send_json(frame)
        answer = _next(ws, "feedback")
        assert (answer["seq"], answer["label"]) == (2, "balance")
        ws.send_json({**frame, "helpful": "yes"})
        assert _next(ws, "error")["status"] == 422
        ws.send_json({**frame, "seq": 1})
        assert _next(ws, "error")["status"] == 409
