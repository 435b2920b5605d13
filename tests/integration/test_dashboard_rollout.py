"""The dashboard's rollout page over HTTP (no browser), on a real rollout: the page shows
the report's numbers, gates and timeline; promote and abort go through the rollout
service with the dashboard user as the actor, this process follows at once, and both
refuse a form without the CSRF token or without the rollout the page showed.

The browser test (test_dashboard_rollout_browser.py) draws the charts and clicks through
the confirmation.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import LABELS, NEGATIVE_TEXT, POSITIVE_TEXT, TASK, open_registry, register_tiny
from test_dashboard import PASSWORD, Dash, users

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.dashboard import views
from conftest import create_key

PREDICT = "/v1/models/sentiment/predict"
ROLLOUT = "/v1/models/sentiment/rollout"
PAGE = "/models/sentiment/rollout"
TRUTH = {POSITIVE_TEXT: "positive", NEGATIVE_TEXT: "negative"}
USERS = 40
# a canary at 50% that neither steps (a day per step) nor ends (gates need 10,000
# samples to pass, and two copies of one model never fail one) while a test runs
CANARY = {
    "candidate": 2,
    "traffic": 0.5,
    "steps": [0.5, 1.0],
    "step_every": "1d",
    "gates": {"min_samples": 10_000, "max_latency_p95_ms": 5000, "min_agreement": 0.5},
}


class Rollouts(Dash):
    """The dashboard client, with the API's admin headers."""

    @property
    def api(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def report(self) -> dict[str, Any]:
        response = self.client.get(ROLLOUT, headers=self.api)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def start(self, **changes: Any) -> dict[str, Any]:
        response = self.client.put(ROLLOUT, json={**CANARY, **changes}, headers=self.api)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def traffic(self, users: int = USERS) -> list[int]:
        """``users`` users each send one clear text and its true label; the versions that
        answered, once the counts reached the rollout's row."""
        versions = []
        for i in range(users):
            text = POSITIVE_TEXT if i % 2 else NEGATIVE_TEXT
            answer = self.client.post(
                PREDICT, json={"inputs": [text], "user_id": f"user-{i}"}, headers=self.api
            )
            assert answer.status_code == 200, answer.text
            versions.append(answer.json()["version"])
            pid = answer.json()["predictions"][0]["id"]
            feedback = self.client.post(
                f"/v1/predictions/{pid}/feedback", json={"label": TRUTH[text]}, headers=self.api
            )
            assert feedback.status_code == 201, feedback.text
        deadline = time.monotonic() + 30
        while True:  # each process adds its counts at its next refresh
            report = self.report()
            counted = sum(v["requests"] for v in report["variants"].values())
            feedback_n = sum(v["feedback_n"] for v in report["variants"].values())
            if counted >= users and feedback_n >= users:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
        return versions

    def production(self) -> int:
        model = self.client.get("/v1/models/sentiment", headers=self.api).json()
        return int(model["aliases"]["production"])

    def audit(self, action: str) -> list[dict[str, Any]]:
        response = self.client.get("/v1/audit", params={"action": action}, headers=self.api)
        events: list[dict[str, Any]] = response.json()["events"]
        return events


@pytest.fixture
def dash(settings: Settings, tiny_model_bytes: bytes) -> Iterator[Rollouts]:
    # aliases are re-read every 30 s only: what changes at once is this process's doing
    serving = settings.serving.model_copy(update={"alias_refresh_s": 30.0})
    settings = settings.model_copy(update={"serving": serving})
    key = create_key(settings, ("admin",), name="boss")
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model_bytes, alias="production", tag="one")
    register_tiny(registry, "sentiment", tiny_model_bytes, tag="two")
    engine.dispose()
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        d = Rollouts(client, key, settings)
        d.login(token=key)
        yield d


def text_of(page: str) -> str:
    """The page's text: tags dropped, entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def rows(page: str, table: str) -> list[list[str]]:
    """The body rows of the table ``id=table`` as lists of cell texts."""
    match = re.search(rf'<table id="{table}"[^>]*>(.*?)</table>', page, re.S)
    assert match, table
    body = match.group(1).split("<tbody>", 1)[1]
    return [
        [text_of(cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_the_page_shows_a_running_rollout_with_its_real_numbers(dash: Rollouts) -> None:
    dash.start()
    dash.traffic()
    report = dash.report()
    page = dash.client.get(PAGE)
    assert page.status_code == 200
    text = text_of(page.text)
    assert " style=" not in page.text
    for tag in re.findall(r"<script[^>]*>", page.text):
        assert "src=" in tag, tag

    # the header: state badge, mode, baseline -> candidate, traffic
    assert re.search(r'class="badge big info" id="rollout-state">running<', page.text)
    assert "canary" in text
    assert "v1 → v2" in text
    assert "50% of traffic to v2" in text

    # baseline and candidate side by side: the report's numbers
    b, c = report["variants"]["baseline"], report["variants"]["candidate"]
    assert b["requests"] + c["requests"] == USERS
    assert b["requests"] > 0  # 40 users, about half of them on v2
    assert c["requests"] > 0
    table = {row[0]: row[1:] for row in rows(page.text, "rollout-variants")}
    assert table["Requests answered"] == [str(b["requests"]), str(c["requests"])]
    assert table["Server errors"] == ["0", "0"]
    assert table["Error rate"] == ["0.0%", "0.0%"]
    assert table["With feedback"] == [str(b["feedback_n"]), str(c["feedback_n"])]
    assert table["Predictions logged"] == [str(b["predictions"]), str(c["predictions"])]
    p95 = table["p95 model latency"]
    assert p95 == [f"{b['latency_p95_ms']:.1f} ms", f"{c['latency_p95_ms']:.1f} ms"]
    low, high = c["live_accuracy_ci"]
    accuracy = table["Live accuracy 95% interval"]
    assert accuracy[1] == f"100.0% {low * 100:.1f}% to {high * 100:.1f}%"
    assert c["live_accuracy"] == 1.0

    # the gate table: every gate, its result and its reason, word for word
    gates = {row[0]: row for row in rows(page.text, "rollout-gates")}
    assert list(gates) == [g["gate"] for g in report["gates"]]
    for gate in report["gates"]:
        row = gates[gate["gate"]]
        assert row[1] == gate["result"]
        assert row[5] == str(gate["n"])
        assert row[6] == gate["reason"], gate
    assert gates["max_latency_p95_ms"][2] == "5000.0 ms"
    assert gates["min_accuracy_delta"][2] == "-2.0 pts"
    assert gates["min_agreement"][2] == "50%"
    assert "needed" in gates["max_error_rate"][6]  # 10,000 samples asked for

    # agreement (canary requests scored by both: a min_agreement gate is set)
    assert "Agreement:" in text
    # the charts' data: the traffic steps and both variants' intervals
    specs = re.findall(r"data-spec='([^']*)'", page.text)
    assert len(specs) == 2
    assert '"stepped": true' in html.unescape(specs[0])
    assert '"type": "interval"' in html.unescape(specs[1])

    # the timeline, and the buttons (a running rollout, an admin session)
    timeline = rows(page.text, "rollout-timeline")
    assert [r[1] for r in timeline] == ["started"]
    assert timeline[0][2] == "50%"
    for verb in ("promote", "abort"):
        form = re.search(
            rf'<form method="post" action="{PAGE}/{verb}"[^>]*>(.*?)</form>', page.text, re.S
        )
        assert form, verb
        assert "data-confirm=" in form.group(0)
        assert 'name="csrf_token"' in form.group(1)
        assert f'name="rollout" value="{report["id"]}"' in form.group(1)
    # it refreshes itself while running
    assert f'hx-get="{PAGE}/live"' in page.text
    live = dash.client.get(f"{PAGE}/live")
    assert live.status_code == 200
    assert "<html" not in live.text
    assert 'hx-trigger="every 5s"' in live.text

    # the model's page links to it, with a badge of the running rollout
    model = dash.client.get("/models/sentiment").text
    assert f'href="{PAGE}"' in model
    assert "rollout running: 50% to v2" in text_of(model)


def test_promote_from_the_dashboard_moves_production_at_once_and_is_audited(
    dash: Rollouts,
) -> None:
    started = dash.start()
    dash.traffic(10)
    page = dash.client.post(
        f"{PAGE}/promote", data={"csrf_token": dash.csrf(PAGE), "rollout": started["id"]}
    )
    assert page.status_code == 200
    assert "Promoted sentiment v2 to production (was v1); the rollout ended." in text_of(page.text)
    assert 'id="rollout-state">promoted<' in page.text
    assert dash.production() == 2
    report = dash.report()
    assert (report["state"], report["traffic"]) == ("promoted", 1.0)
    assert report["history"][-1]["actor"] == "dashboard:boss"
    # this process answers with the new production at once (no refresh period waited)
    answers = {
        dash.client.post(
            PREDICT, json={"inputs": ["fine"], "user_id": f"u{i}"}, headers=dash.api
        ).json()["version"]
        for i in range(30)
    }
    assert answers == {2}
    (event,) = dash.audit("rollout.promoted")
    assert event["actor"] == "dashboard:boss"
    assert event["after"]["candidate"] == 2
    # ended: no buttons, no polling; the timeline says who, newest first
    assert f"{PAGE}/promote" not in page.text
    assert f"{PAGE}/abort" not in page.text
    assert "hx-trigger" not in page.text
    timeline = rows(page.text, "rollout-timeline")
    assert [r[1] for r in timeline] == ["promoted", "started"]
    assert timeline[0][3] == "dashboard:boss"
    assert timeline[0][4] == "manual"
    assert "Start another" in page.text
    assert "aiweb rollout start sentiment --candidate N" in text_of(page.text)  # none newer
    assert "rollout running" not in text_of(dash.client.get("/models/sentiment").text)
    # a second promote finds nothing running
    again = dash.client.post(
        f"{PAGE}/promote", data={"csrf_token": dash.csrf(PAGE), "rollout": started["id"]}
    )
    assert "No rollout of sentiment is running" in again.text
    assert len(dash.audit("rollout.promoted")) == 1


def test_abort_from_the_dashboard_keeps_the_baseline_and_is_audited(dash: Rollouts) -> None:
    started = dash.start()
    page = dash.client.post(
        f"{PAGE}/abort", data={"csrf_token": dash.csrf(PAGE), "rollout": started["id"]}
    )
    assert page.status_code == 200
    assert "Aborted the rollout of sentiment v2: all traffic is back on v1." in text_of(page.text)
    assert 'id="rollout-state">aborted<' in page.text
    assert dash.production() == 1
    assert dash.report()["state"] == "aborted"
    answers = {
        dash.client.post(
            PREDICT, json={"inputs": ["fine"], "user_id": f"u{i}"}, headers=dash.api
        ).json()["version"]
        for i in range(30)
    }
    assert answers == {1}  # half of these users were on v2 a moment ago
    (event,) = dash.audit("rollout.aborted")
    assert event["actor"] == "dashboard:boss"
    assert f"{PAGE}/abort" not in page.text


def test_promote_and_abort_refuse_forms_without_csrf_or_the_rollout_shown(
    dash: Rollouts,
) -> None:
    started = dash.start()
    csrf = dash.csrf(PAGE)
    for verb in ("promote", "abort"):
        refused = [
            dash.client.post(f"{PAGE}/{verb}", data={"rollout": started["id"]}),
            dash.client.post(
                f"{PAGE}/{verb}", data={"csrf_token": "not-the-token", "rollout": started["id"]}
            ),
            dash.client.post(
                f"{PAGE}/{verb}",
                data={"csrf_token": csrf, "rollout": started["id"]},
                headers={"Origin": "https://evil.example"},
            ),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403]
        assert "Form expired" in refused[0].text
        # a form that does not name the rollout the page showed (no confirmation of which)
        for shown in ("", "0" * 32):
            r = dash.client.post(f"{PAGE}/{verb}", data={"csrf_token": csrf, "rollout": shown})
            assert r.status_code == 200
            assert "not the rollout the page showed" in text_of(r.text)
    # logged out: the login page, and nothing changed
    outsider = TestClient(dash.client.app, base_url="http://testserver")
    r = outsider.post(f"{PAGE}/promote", data={"rollout": started["id"]}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert outsider.get(PAGE, follow_redirects=False).status_code == 303
    assert dash.report()["state"] == "running"
    assert dash.production() == 1
    assert dash.audit("rollout.promoted") == dash.audit("rollout.aborted") == []


def test_a_password_user_sees_the_buttons_too(dash: Rollouts) -> None:
    """Every dashboard login is an admin (an admin key, or a dashboard user), as for the
    model page's promote and roll back buttons."""
    service, engine = users(dash.settings)
    try:
        service.create("ops", PASSWORD)
    finally:
        engine.dispose()  # type: ignore[attr-defined]
    started = dash.start()
    dash.client.post("/logout", data={"csrf_token": dash.csrf()})
    assert dash.login(username="ops", password=PASSWORD).status_code == 303  # type: ignore[attr-defined]
    page = dash.client.get(PAGE).text
    assert f"{PAGE}/abort" in page
    dash.client.post(
        f"{PAGE}/abort", data={"csrf_token": dash.csrf(PAGE), "rollout": started["id"]}
    )
    assert dash.audit("rollout.aborted")[0]["actor"] == "dashboard:ops"


def test_unknown_model_is_a_404_page(dash: Rollouts) -> None:
    for path in ("/models/nope/rollout", "/models/nope/rollout/live"):
        r = dash.client.get(path)
        assert r.status_code == 404, path
        assert "nope" in r.text
    r = dash.client.post("/models/nope/rollout/promote", data={"csrf_token": dash.csrf()})
    assert "No rollout of nope is running" in r.text


def test_without_a_rollout_the_page_says_how_to_start_one(
    dash: Rollouts, tiny_model_bytes: bytes
) -> None:
    page = dash.client.get(PAGE)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "No rollout yet" in text
    assert "curl -X PUT http://testserver/v1/models/sentiment/rollout" in text
    assert '"candidate": 2' in text
    assert "aiweb rollout start sentiment --candidate 2" in text
    assert "/rollout/promote" not in page.text
    assert "hx-trigger" not in page.text
    assert dash.client.get(f"{PAGE}/live").status_code == 204
    model = dash.client.get("/models/sentiment").text
    assert f'href="{PAGE}"' in model
    assert "rollout-badge" not in model
    # a model whose only version is production: no candidate to suggest yet
    registry, engine = open_registry(dash.settings)
    try:
        register_tiny(registry, "fresh", tiny_model_bytes)
        registry.register_version(
            "draft",
            TASK,
            artifact=tiny_model_bytes,
            artifact_format="skops",
            labels=list(LABELS),
            signature={"inputs": {"type": "array", "items": {"type": "string"}}},
            lineage={"dataset": "tiny"},
            evaluation={"accuracy": 1.0},
            production_if_first=False,
            actor="tests",
        )
    finally:
        engine.dispose()
    fresh = text_of(dash.client.get("/models/fresh/rollout").text)
    assert "once a version other than production is ready" in fresh
    assert "aiweb rollout start fresh --candidate N" in fresh
    # a model without a production version: promote one first
    draft = text_of(dash.client.get("/models/draft/rollout").text)
    assert "draft has no production version" in draft
    assert "aiweb rollout start draft --candidate 1" in draft


def test_the_traffic_chart_steps_through_the_history() -> None:
    """The step chart's points from a report's history (no database)."""
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def at(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).isoformat()

    report = {
        "started_at": start,
        "ended_at": None,
        "traffic": 0.25,
        "history": [
            {"at": at(0), "event": "started", "state": "running", "traffic": 0.1, "actor": "a"},
            {
                "at": at(30),
                "event": "step",
                "state": "running",
                "traffic": 0.25,
                "decision": {"gate": None, "result": "pass", "reason": "every gate passes"},
            },
            {
                "at": at(45),
                "event": "held",
                "state": "held",
                "traffic": 0.25,
                "decision": {"gate": "min_accuracy_delta", "result": "inconclusive", "reason": "x"},
            },
        ],
    }
    spec = views.traffic_chart(report, now=start + timedelta(minutes=60))
    line, *marks = spec["series"]
    assert line["stepped"] is True
    assert line["points"] == [[0.0, 0.1], [30.0, 0.25], [45.0, 0.25], [60.0, 0.25]]
    assert [m["name"] for m in marks] == ["started", "step", "held"]
    assert marks[1]["notes"] == ["stepped to 25%: every gate passes"]
    assert marks[0]["notes"] == ["started at 10% by a"]
    assert spec["x_label"].startswith("minutes since the start")
    view = views.rollout_view(
        {
            **report,
            "state": "held",
            "verdict": "inconclusive",
            "decision": None,
            "gates": [],
            "stepped_at": start,
            "updated_at": start,
            "variants": {
                "baseline": {"version": 1, "live_accuracy": None},
                "candidate": {"version": 2, "live_accuracy": None},
            },
        },
        now=start + timedelta(hours=5),
    )
    assert view["active"]
    assert view["badge"] == "warn"
    assert [e["event"] for e in view["timeline"]] == ["held", "step", "started"]
    assert view["timeline"][0]["actor"] == "automatic"
    assert view["accuracy_chart"] is None
    assert view["traffic_chart"]["x_label"].startswith("hours since the start")
    # a task judged on its own live quality (click-through rate): the chart shows it
    ctr = {"metric": "ctr", "value": 0.2, "ci": [0.1, 0.3], "n": 50}
    variants = {
        "baseline": {"version": 1, "live_accuracy": None, "quality": {**ctr, "value": 0.25}},
        "candidate": {"version": 2, "live_accuracy": None, "quality": ctr},
    }
    chart = views.accuracy_chart(variants)
    assert chart is not None
    assert chart["values"] == [0.25, 0.2]
    assert chart["ranges"] == [[0.1, 0.3], [0.1, 0.3]]
    assert chart["x_label"].startswith("ctr live")
    assert views.live_quality({"live_accuracy": 0.5, "live_accuracy_ci": [0.4, 0.6]}) == {
        "metric": "accuracy",
        "value": 0.5,
        "ci": [0.4, 0.6],
        "n": 0,
    }
