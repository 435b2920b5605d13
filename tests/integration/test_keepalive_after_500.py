"""A 500 closes its keep-alive connection cleanly (``Connection: close``), so the
client's next request goes out on a new connection instead of failing on a reset one.

The real app (``create_app``) with one extra route that raises, built in the test (no
production route crashes on purpose), served by uvicorn in a thread; an
``http.client.HTTPConnection`` sends several requests over one keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from helpers import live_server, standalone_settings

from aiweb.app import create_app


def test_a_500_closes_the_connection_and_the_next_request_works(tmp_path: Path) -> None:
    settings = standalone_settings(tmp_path / "home")
    app = create_app(settings)

    @app.get("/crash-for-test")
    async def crash() -> None:
        raise RuntimeError("boom")

    with live_server(settings, "uvicorn-keepalive", app=app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/livez")
            first = conn.getresponse()
            first.read()
            assert first.status == 200
            assert not first.will_close  # a keep-alive connection

            conn.request("GET", "/crash-for-test")
            crashed = conn.getresponse()
            body = json.loads(crashed.read())
            assert crashed.status == 500
            assert crashed.getheader("Content-Type") == "application/problem+json"
            assert body["type"] == "/problems/internal-error"
            assert "boom" not in json.dumps(body)
            assert crashed.getheader("Connection") == "close"
            assert crashed.will_close

            # the same client object: http.client reconnects because it was told to
            for _ in range(3):
                conn.request("GET", "/livez")
                again = conn.getresponse()
                again.read()
                assert again.status == 200
        finally:
            conn.close()
