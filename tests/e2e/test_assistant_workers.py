"""Live handoff across processes: ``aiweb serve --workers 2`` with ``AIWEB_REDIS_URL``.

A visitor's sockets sit on whichever worker the kernel gave them; an operator's reply is
written by whichever worker (or server) its request reaches. Every reply must reach
every socket watching the conversation at once — through Redis pub/sub
(:mod:`aiweb.assistant.live`). Replies are sent both to the two-worker server (fresh
connections, so the kernel spreads them) and to a second ``aiweb serve`` on the same
database, which shares no memory with the sockets' processes at all.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack import REDIS_URL, base_env, create_admin_key, free_port, reachable, running, start_server
from websockets.sync.client import ClientConnection, connect

from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.config import Settings
from aiweb.db.migrate import upgrade
from aiweb.registry.factory import build_registry

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not reachable("127.0.0.1", 6379), reason="no Redis on 127.0.0.1:6379"),
]

INTENTS = {
    "balance": ["what is my balance", "how much money do i have", "show my account balance"],
    "speak_to_human": ["talk to a human", "i want a person", "let me speak to an agent"],
}
CONFIG = {
    "intents_model": "intents",
    "fallback": "Sorry?",
    "responses": {"balance": "Your balance is shown under Accounts."},
    "handoff": {"intents": ["speak_to_human"], "after_fallbacks": 2},
    "min_confidence": 0.3,
}


def register_intents(home: Path) -> None:
    texts = [t for examples in INTENTS.values() for t in examples]
    labels = [label for label, examples in INTENTS.items() for _ in examples]
    model = fit_text_classifier(texts * 4, labels * 4, TrainParams(C=20.0, n_features_log2=14))
    registry, engine = build_registry(Settings(home=home))
    try:
        upgrade(engine)
        registry.register_version(
            "intents",
            "text-classification",
            artifact=model.to_bytes(),
            artifact_format="skops",
            labels=list(model.labels),
            signature={},
            lineage={"dataset": "tests"},
            evaluation={},
            alias="production",
            actor="tests",
        )
    finally:
        engine.dispose()


def frames_until(ws: ClientConnection, done: Any, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The frames ``ws`` receives until ``done(frame)`` holds (or ``seconds`` pass)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
        seen.append(frame)
        if done(frame):
            break
    return seen


def test_an_operators_reply_reaches_the_visitors_sockets_on_every_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # a channel prefix of its own is not needed: conversation ids are random
    env = base_env(home, AIWEB_REDIS_URL=REDIS_URL, AIWEB_RATE_LIMIT__ENABLED="false")
    register_intents(home)
    key = create_admin_key(env)
    port, other_port = free_port(), free_port()
    with (
        running(start_server(env, home / "server.log", port, workers=2)),
        running(start_server(env, home / "other.log", other_port)),
    ):
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            assert api.put("/v1/assistants/helpdesk", json=CONFIG).status_code == 201
            turn = api.post(
                "/v1/assistants/helpdesk/messages", json={"text": "let me speak to an agent"}
            ).json()
        assert turn["type"] == "handoff", turn
        cid = turn["conversation_id"]

        # eight sockets on fresh connections, each watching the conversation
        url = f"ws://127.0.0.1:{port}/v1/assistants/helpdesk/ws?key={key}"
        with ExitStack() as opened:
            sockets = [opened.enter_context(connect(url, open_timeout=20)) for _ in range(8)]
            for ws in sockets:
                ws.send(json.dumps({"type": "resume", "conversation_id": cid, "after": 0}))
                frames = frames_until(ws, lambda f: f["type"] == "status")
                assert frames[-1] == {"type": "status", "status": "waiting_for_agent"}, frames
                assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [1, 2]

            # replies through the two-worker server (fresh connections) and the other one
            texts = []
            for i, target in enumerate([port] * 4 + [other_port]):
                text = f"reply {i} ({uuid.uuid4().hex[:6]})"
                r = httpx.post(
                    f"http://127.0.0.1:{target}/v1/conversations/{cid}/messages",
                    json={"text": text},
                    headers=headers,
                    timeout=30,
                )
                assert r.status_code == 200, r.text
                texts.append(text)
            for n, ws in enumerate(sockets):
                got: list[str] = []

                def last_reply(frame: dict[str, Any], got: list[str] = got) -> bool:
                    if frame["type"] == "message" and frame["message"]["role"] == "agent":
                        got.append(frame["message"]["text"])
                    return len(got) == len(texts)

                frames_until(ws, last_reply)
                assert got == texts, (n, got)  # each reply once, in order, on every socket
