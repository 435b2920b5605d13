"""The dashboard's assistant pages over HTTP (no browser; the Chromium check with a
visitor's widget is ``test_widget_browser.py``): the assistants and the operator inbox,
a test chat, and an operator taking a conversation, replying, handing it back and
closing it — through the same service as ``POST /v1/conversations/{id}/…``, so the
visitor's socket gets the reply. On every database."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_assistant_api import CONFIG, _next, fit_intents, register_models
from test_dashboard import Dash

from aiweb.app import create_app
from aiweb.classification.model import TextClassifier
from aiweb.config import Settings
from aiweb.entities.model import EntityModel
from conftest import create_key
from screening_helpers import tiny_skills_model


@pytest.fixture(scope="module")
def models() -> tuple[TextClassifier, EntityModel]:
    return fit_intents(), tiny_skills_model()


@pytest.fixture
def dash(settings: Settings, models: tuple[TextClassifier, EntityModel]) -> Iterator[Dash]:
    register_models(settings, *models)
    key = create_key(settings, ("admin",), name="boss")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        assert (
            client.put(
                "/v1/assistants/helpdesk", json=CONFIG, headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 201
        )
        yield Dash(client, key, settings)


def test_the_inbox_lists_handed_over_conversations_and_an_operator_answers(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    api = {"Authorization": f"Bearer {dash.admin_key}"}
    page = dash.client.get("/assistants")
    assert page.status_code == 200
    assert 'data-assistant="helpdesk"' in page.text
    assert "Nobody is waiting for a person." in page.text
    handed = dash.client.post(
        "/v1/assistants/helpdesk/messages", json={"text": "can i talk to a human"}, headers=api
    ).json()
    cid = handed["conversation_id"]
    inbox = dash.client.get("/assistants/inbox", headers={"HX-Request": "true"})
    assert f'data-conversation="{cid}"' in inbox.text
    assert "<strong>1</strong> waiting" in inbox.text

    with dash.client.websocket_connect(f"/v1/assistants/helpdesk/ws?key={dash.admin_key}") as ws:
        ws.send_json({"type": "resume", "conversation_id": cid, "after": 2})
        assert _next(ws, "status")["status"] == "waiting_for_agent"
        conversation = dash.client.get(f"/conversations/{cid}")
        assert conversation.status_code == 200
        assert "can i talk to a human" in conversation.text
        token = dash.csrf(f"/conversations/{cid}")
        r = dash.client.post(
            f"/conversations/{cid}/reply",
            data={"csrf_token": token, "text": "Hi, Sam <b>here</b>."},
            follow_redirects=False,
        )
        assert r.status_code == 303
        pushed = _next(ws, "message")["message"]
        assert (pushed["role"], pushed["text"]) == ("agent", "Hi, Sam <b>here</b>.")
        assert _next(ws, "status")["status"] == "agent"
    page = dash.client.get(f"/conversations/{cid}").text
    assert "Hi, Sam &lt;b&gt;here&lt;/b&gt;." in page  # escaped
    assert "Sent." in page
    # only the actions that change something: the operator has it, so no Take
    assert 'data-testid="take"' not in page
    assert 'data-testid="release"' in page
    assert 'data-testid="close"' in page
    stored = dash.client.get(f"/v1/conversations/{cid}", headers=api).json()
    assert stored["status"] == "agent"
    assert stored["operator"] == "dashboard:boss"
    assert stored["messages"][-1]["author"] == "dashboard:boss"
    for action, status in (("release", "bot"), ("close", "closed")):
        r = dash.client.post(
            f"/conversations/{cid}/{action}",
            data={"csrf_token": dash.csrf(f"/conversations/{cid}")},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert dash.client.get(f"/v1/conversations/{cid}", headers=api).json()["status"] == status
    closed = dash.client.get(f"/conversations/{cid}").text
    assert 'id="reply-form"' not in closed
    assert 'data-testid="close"' not in closed
    assert 'data-testid="take"' in closed  # taking it reopens it
    # a closed conversation takes no reply (a stale page's form): a readable message
    r = dash.client.post(
        f"/conversations/{cid}/reply",
        data={"csrf_token": dash.csrf(f"/conversations/{cid}"), "text": "late"},
    )
    assert r.status_code == 200
    assert re.search(r'class="flash error"[^>]*>[^<]*closed', r.text)
    # without the session's CSRF token nothing happens
    r = dash.client.post(f"/conversations/{cid}/take", data={"csrf_token": "x"})
    assert r.status_code == 403
    assert dash.client.get("/conversations/" + "0" * 32).status_code == 404


def test_a_test_chat_answers_and_says_why(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    page = dash.client.get("/assistants/helpdesk")
    assert page.status_code == 200
    assert '"intents_model": "intents"' in html.unescape(page.text)
    token = dash.csrf("/assistants/helpdesk")
    r = dash.client.post(
        "/assistants/helpdesk/test",
        data={"csrf_token": token, "text": "i want to send money"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section id="test-chat"')
    assert "How much?" in r.text
    assert "slot_prompt · transfer" in r.text
    cid = re.search(r'name="conversation_id" value="([0-9a-f]{32})"', r.text)
    assert cid
    r = dash.client.post(
        "/assistants/helpdesk/test",
        data={"csrf_token": token, "text": "$80", "conversation_id": cid.group(1)},
        headers={"HX-Request": "true"},
    )
    assert "To whom?" in r.text
    assert r.text.count('class="chat-visitor"') == 2
    r = dash.client.post(
        "/assistants/helpdesk/test",
        data={"csrf_token": token, "text": "   "},
        headers={"HX-Request": "true"},
    )
    assert 'class="flash error"' in r.text
    assert dash.client.get("/assistants/nobody").status_code == 404
