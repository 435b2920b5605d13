"""The chat widget (``GET /widget.js``) in Debian's Chromium, on a page of another origin
(``http://127.0.0.2``) whose Content-Security-Policy allows nothing but the widget's
script and socket (``default-src 'none'``, so no inline style either).

A real uvicorn serves aiweb; the page embeds the one-line script tag with a publishable
chat key for the page's origin. The visitor opens the widget from the keyboard, gets an
answer from the help collection with its source as a link, fills a two-slot intent,
asks for a person, and sees the reply of an operator (a second browser, in the
dashboard's inbox) arrive — once while connected, once after the connection dropped
(through a TCP relay the test cuts) and came back. A
phone-sized page shows the panel full-screen. Any console error or CSP violation fails
the test; screenshots go to ``test-artifacts/widget/``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, login, open_page
from helpers import free_port, live_server
from playwright.sync_api import Browser, Page, expect
from test_assistant_api import CONFIG, HELP, fit_intents, register_models
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from screening_helpers import tiny_skills_model

ARTIFACTS = TEST_ARTIFACTS / "widget"

pytestmark = pytest.mark.e2e

PAGE_HOST = "127.0.0.2"


class Relay:
    """A TCP relay from a port of 127.0.0.1 to ``target``: the browser reaches aiweb
    through it, and :meth:`cut` drops every open connection (a network drop) while new
    ones are still let through."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Drop every open connection; returns how many sockets were closed."""
        with self._lock:
            dropped, self._open = self._open, []
        for s in dropped:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        return len(dropped)

    def close(self) -> None:
        self._listener.close()
        self.cut()


def host_page(aiweb: str, key: str, port: int) -> ThreadingHTTPServer:
    """A shop's page on ``http://127.0.0.2:<port>/`` embedding the widget, served with
    a CSP that allows only the widget's script and its socket."""
    ws = aiweb.replace("http://", "ws://")
    csp = (
        f"default-src 'none'; script-src {aiweb}/widget.js; connect-src {ws}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Shop</title></head><body><h1>A shop</h1>"
        "<p>Page text with its own <button id=page-button>button</button>.</p>"
        f'<script src="{aiweb}/widget.js" data-assistant="helpdesk" data-key="{key}" '
        'data-title="Help" async></script></body></html>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((PAGE_HOST, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Iterator[dict[str, Any]]:
    settings, admin = admin_settings(tmp_path_factory, "widget")
    register_models(settings, fit_intents(), tiny_skills_model(), minilm=minilm_dir)
    with live_server(settings, name="widget-e2e") as port:
        relay = Relay(port)
        aiweb = f"http://127.0.0.1:{relay.port}"
        page_port = free_port()
        page_url = f"http://{PAGE_HOST}:{page_port}"
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        )
        assert api.put("/v1/collections/help", json={}).status_code == 201
        r = api.post("/v1/collections/help/documents", json={"documents": HELP})
        assert r.status_code == 200, r.text
        config = {**CONFIG, "faq_collection": "help"}
        assert api.put("/v1/assistants/helpdesk", json=config).status_code == 201
        key = {"name": "shop", "scopes": ["chat"], "assistants": ["helpdesk"]}
        r = api.post("/v1/keys", json={**key, "origins": [page_url]})
        assert r.status_code == 201, r.text
        page_server = host_page(aiweb, r.json()["secret"], page_port)
        # the same page on another port: another origin, which the key does not list
        stranger_port = free_port()
        stranger = host_page(aiweb, r.json()["secret"], stranger_port)
        yield {
            "api": api,
            "page": page_url,
            "stranger_page": f"http://{PAGE_HOST}:{stranger_port}",
            "aiweb_port": port,
            "relay": relay,
            "dashboard": {"url": f"http://127.0.0.1:{port}", "key": admin},
        }
        for server in (page_server, stranger):
            server.shutdown()
            server.server_close()
        relay.close()
        api.close()


browser = browser_fixture(ARTIFACTS)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def bot_says(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.locator("li.msg.bot").last).to_contain_text(text)


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    box.fill(text)
    box.press("Enter")


def test_the_widget_answers_fills_slots_and_hands_over_on_a_strict_csp_page(
    browser: Browser, shop: dict[str, Any]
) -> None:
    api: httpx.Client = shop["api"]
    page, problems = open_page(browser)
    page.goto(shop["page"])
    launcher = page.get_by_role("button", name="Open chat: Help")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    # the launcher's style came from the widget's own sheet, which the CSP did not block
    assert launcher.evaluate("b => getComputedStyle(b).borderRadius") == "50%"
    host = page.locator("[data-aiweb-widget=helpdesk]")
    assert host.evaluate("h => getComputedStyle(h).position") == "fixed"
    # the widget's styles stay in its shadow root: the page's own button keeps its look
    page_button = page.locator("#page-button")
    assert page_button.evaluate("b => getComputedStyle(b).backgroundColor") != "rgb(31, 111, 235)"
    launcher.focus()
    page.keyboard.press("Enter")  # opened from the keyboard
    expect(page.get_by_role("button", name="Close chat: Help")).to_have_attribute(
        "aria-expanded", "true"
    )
    dialog = page.get_by_role("dialog", name="Help")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("textbox", name="Your message")).to_be_focused()

    # a question no intent covers: the help collection's answer, its source a link
    send(page, "how can i change the pin of my card?")
    expect(page.locator("li.msg.visitor").last).to_have_text("how can i change the pin of my card?")
    bot_says(page, HELP[0]["text"])
    link = page.locator("li.msg.bot").last.get_by_role("link", name="Changing your PIN")
    expect(link).to_have_attribute("href", "https://help.example/pin")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    # the visitor rates the answer: a thumbs up, stored on the reply (checked below)
    answer = page.locator("li.msg.bot").last
    answer.get_by_role("button", name="Helpful", exact=True).click()
    expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )

    # a two-slot intent, one prompt at a time
    send(page, "i want to send money")
    bot_says(page, "How much?")
    send(page, "$80")
    bot_says(page, "To whom?")
    send(page, "to bob")
    bot_says(page, re.compile(r"Sending .*80.* to bob\."))
    shot(page, "desktop-answers")

    # handed to a person, who replies (at once, over the open socket)
    send(page, "can i talk to a human please?")
    expect(page.get_by_role("status")).to_have_text("Waiting for a person to join…")
    # the handoff's own line is no answer to rate
    handoff = page.locator("li.msg.bot").last
    expect(handoff).to_contain_text("passing you to a person")
    expect(handoff.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)
    waiting = api.get("/v1/conversations", params={"status": "waiting_for_agent"}).json()
    (conversation,) = waiting["conversations"]
    cid = conversation["id"]
    faq_reply = api.get(f"/v1/conversations/{cid}").json()["messages"][1]
    assert faq_reply["type"] == "faq"
    assert faq_reply["feedback"]["helpful"] is True
    # an operator, in a browser of their own, sees it in the dashboard's inbox and replies
    operator, operator_problems = open_page(browser)
    login(operator, shop["dashboard"], "/assistants")
    row = operator.locator(f"tr[data-conversation='{cid}']")
    expect(row).to_contain_text("waiting")
    row.get_by_role("link").click()
    expect(operator.locator("#conversation-status")).to_have_text("waiting_for_agent")
    operator.fill("#reply-text", "Sam here, how can I help?")
    operator.get_by_role("button", name="Send reply").click()
    expect(operator.locator("#conversation-status")).to_have_text("agent")
    operator.screenshot(path=str(ARTIFACTS / "operator.png"))
    agent = page.locator("li.msg.agent").last
    expect(agent).to_contain_text("Sam here, how can I help?")
    expect(page.get_by_role("status")).to_have_text("You are talking with a person.")

    # the connection drops; the operator writes meanwhile; the widget reconnects and
    # resumes from the last message it showed
    assert shop["relay"].cut() >= 2
    operator.fill("#reply-text", "Still there?")
    operator.get_by_role("button", name="Send reply").click()
    expect(operator.locator("li.chat-agent").last).to_contain_text("Still there?")
    expect(page.locator("li.msg.agent").last).to_contain_text("Still there?", timeout=30_000)
    expect(page.locator("li.msg.agent")).to_have_count(2)  # each message shown once
    send(page, "yes, thanks")
    expect(page.locator("li.msg.visitor").last).to_have_text("yes, thanks")
    # the widget shows a line as it sends it; the server has it once the operator's
    # page does (it reaches that page without a reload)
    expect(operator.locator("li.chat-visitor").last).to_contain_text("yes, thanks")
    stored = api.get(f"/v1/conversations/{cid}").json()
    assert [m["text"] for m in stored["messages"]][-1] == "yes, thanks"
    shot(page, "desktop-handoff")

    # Escape closes the panel and gives the focus back to the launcher
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    assert problems == [], problems
    assert operator_problems == [], operator_problems


def test_the_widget_fills_a_phone_screen(browser: Browser, shop: dict[str, Any]) -> None:
    page, problems = open_page(browser, width=375, height=667)
    page.goto(shop["page"])
    page.get_by_role("button", name="Open chat: Help").click()
    dialog = page.get_by_role("dialog", name="Help")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 667)
    send(page, "what is my balance")
    bot_says(page, "Your balance is shown under Accounts.")
    shot(page, "phone")
    assert problems == [], problems


def test_a_refused_page_is_told_why_and_the_widget_stops_retrying(
    browser: Browser, shop: dict[str, Any]
) -> None:
    """The key does not list the page's origin: the real server accepts the socket and
    closes it with 4403 (a handshake refused before it is accepted reaches the browser as
    close code 1006 and the widget would retry forever), and the widget says why."""
    page, _ = open_page(browser)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(shop["stranger_page"])
    page.get_by_role("button", name="Open chat: Help").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Chat unavailable: this page may not use the chat"
    )
    page.wait_for_timeout(3000)  # the first retry would come after about a second
    assert len(sockets) == 1, sockets
    # a bad key: 4401 under the same real server, reason included
    url = f"ws://127.0.0.1:{shop['aiweb_port']}/v1/assistants/helpdesk/ws?key=aiw_bad"
    with connect(url, open_timeout=20) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401, closed.value.rcvd
