"""The JavaScript client (``clients/js``, npm package ``aiweb-client``) against a live
``aiweb serve`` (issue 27, item 5).

A real server process runs in a temporary home (SQLite, embedded job runner) with the
tiny ``sentiment`` model registered, an admin key and a predict-only key, and a low
predict budget (``AIWEB_RATE_LIMIT__PREDICT``) so that a real 429 with ``Retry-After``
can be provoked. Node's own test runner (``node --test clients/js/test/``) then runs the
client's tests with ``AIWEB_URL``, ``AIWEB_KEY``, ``AIWEB_LIMITED_KEY`` and
``AIWEB_MODEL``; this test passes when they all pass. A second test loads the module in
Chromium from another origin (allowed by ``AIWEB_CORS_ORIGINS``) and calls the server
from the page: the main module needs no Node-only API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from helpers import POSITIVE_TEXT, free_port, register_versions, standalone_settings

from conftest import create_key

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "clients" / "js"
CLI = Path(sys.executable).parent / "aiweb"
NODE = shutil.which("node")
PREDICT_BUDGET = "10 per 2 seconds"
CHROMIUM = Path("/usr/bin/chromium")


def node_major() -> int:
    if NODE is None:
        return 0
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"v(\d+)", out.stdout.strip())
    return int(match.group(1)) if match else 0


class Server:
    """The live server: its URL, keys and log."""

    def __init__(
        self, url: str, admin_key: str, limited_key: str, log: Path, page_port: int
    ) -> None:
        self.url = url
        self.page_port = page_port
        self.admin_key = admin_key
        self.limited_key = limited_key
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_bytes: bytes) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("js-client")
    home = tmp_path / "home"
    settings = standalone_settings(home)
    admin_key = create_key(settings, ("admin",), "js-admin")
    limited_key = create_key(settings, ("predict",), "js-limited")
    register_versions(settings, "sentiment", tiny_model_bytes, 1)

    # the browser test's page: another origin, on loopback too (Chromium lets only a
    # page on a local address fetch from 127.0.0.1: Local Network Access)
    page_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env.update(
        AIWEB_HOME=str(home),
        AIWEB_DATABASE_URL=settings.resolved_database_url,
        AIWEB_SECRET_KEY=uuid.uuid4().hex * 2,
        AIWEB_RATE_LIMIT__PREDICT=PREDICT_BUDGET,
        AIWEB_JOBS__POLL_INTERVAL_S="0.1",
        AIWEB_CORS_ORIGINS=json.dumps([f"http://127.0.0.1:{page_port}"]),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180  # importing the app has taken 25 s when loaded
            while True:
                assert proc.poll() is None, log_path.read_text(errors="replace")
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                try:
                    if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            yield Server(base_url, admin_key, limited_key, log_path, page_port)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def need(ok: bool, what: str) -> None:
    """Skip without ``what``; in CI (``$CI`` set) fail instead: CI must have it."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {what}")
        pytest.skip(f"{what} is not installed")


def test_js_client_against_a_live_server(server: Server) -> None:
    need(node_major() >= 20, "Node >= 20")
    node_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIWEB_", "NODE_"))}
    node_env.update(
        AIWEB_URL=server.url,
        AIWEB_KEY=server.admin_key,
        AIWEB_LIMITED_KEY=server.limited_key,
        AIWEB_MODEL="sentiment",
        NO_COLOR="1",
    )
    run = subprocess.run(
        [NODE or "node", "--test", "--test-reporter=tap", "test/"],
        cwd=JS_DIR,
        env=node_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:] + "\n--- server log ---\n" + server.output()[-4000:]
    counts = {k: int(v) for k, v in re.findall(r"^# (pass|fail|cancelled) (\d+)$", report, re.M)}
    assert counts.get("fail") == 0, report[-4000:]
    assert counts.get("cancelled") == 0, report[-4000:]
    # every live test ran: skipped are at most the type check (no node_modules) and the
    # collection search (no embedding model installed in the temporary home)
    skipped = re.findall(r"^\s*ok \d+ - (.*) # SKIP", report, re.M)
    assert all(t.startswith(("the .d.ts compiles", "search:")) for t in skipped), skipped
    assert counts.get("pass", 0) >= 12, report[-4000:]


BROWSER_SCRIPT = """async ([baseUrl, apiKey, text]) => {
  const { AiwebClient, NotFoundError, UnauthorizedError } = await import("/aiweb-client/index.js");
  const ai = new AiwebClient({ baseUrl, apiKey });
  const predicted = await ai.predict("sentiment", [text]);
  const explained = await ai.explain("sentiment", "a dull lifeless mess", { topK: 2 });
  const missing = await ai.predict("no-such-model", ["x"]).catch((e) => e);
  const dataset = await ai.uploadDataset("text,label\\na,b\\n", { filename: "page.csv" });
  const anonymous = await new AiwebClient({ baseUrl }).predict("sentiment", ["x"]).catch((e) => e);
  return {
    label: predicted.predictions[0].label,
    contributions: explained.explanations[0].contributions.length,
    missing: [missing instanceof NotFoundError, missing.status, missing.type],
    anonymous: [anonymous instanceof UnauthorizedError, anonymous.status],
    rows: dataset.rows,
  };
}"""


def test_js_client_in_a_browser(server: Server) -> None:
    """The module as a page on another origin loads it (no Node-only API) and calls the
    server across origins (AIWEB_CORS_ORIGINS), errors included."""
    need(CHROMIUM.exists(), "Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    module = (JS_DIR / "src" / "index.js").read_bytes()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/aiweb-client/index.js":
                body, kind = module, "text/javascript"
            else:
                body, kind = b"<!doctype html><title>app</title>", "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    pages = ThreadingHTTPServer(("127.0.0.1", server.page_port), Page)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.page_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # (the 404 and 401 asked for are logged as "Failed to load resource": expected)
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text)
                    if m.type == "error" and "Failed to load resource" not in m.text
                    else None
                ),
            )
            page.goto(f"{origin}/")
            try:
                result = page.evaluate(
                    BROWSER_SCRIPT, [server.url, server.admin_key, POSITIVE_TEXT]
                )
            except Exception as exc:
                raise AssertionError(f"{exc}\n{errors}\n{server.output()[-3000:]}") from exc
        finally:
            browser.close()
            pages.shutdown()
            pages.server_close()
    assert errors == []
    assert result == {
        "label": "positive",
        "contributions": 2,
        "missing": [True, 404, "/problems/model-not-found"],
        "anonymous": [True, 401],
        "rows": 1,
    }
