"""locate() / load() downloading from a real local HTTP server, then reading the cache."""

from __future__ import annotations

import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.errors import DatasetUnavailableError

SST2_TRAIN = "sentence\tlabel\nhide new secretions \t0\nit 's a `` charming '' film \t1\n"
SST2_DEV = "sentence\tlabel\nunflinchingly bleak \t0\n"
SMS = "ham\tsee you at &lt;#&gt;\nspam\tWIN \x92now\x92\n"


def build_zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


ROUTES: dict[str, bytes] = {
    # GLUE layout, with the unlabeled test split and a macOS resource fork to ignore
    "/SST-2.zip": build_zip(
        {
            "__MACOSX/SST-2/._train.tsv": "junk",
            "SST-2/train.tsv": SST2_TRAIN,
            "SST-2/dev.tsv": SST2_DEV,
            "SST-2/test.tsv": "index\tsentence\n0\tunlabeled\n",
        }
    ),
    # UCI layout (member at the root, next to the readme); another mirror nests it
    "/sms.zip": build_zip({"readme": "SMS Spam Collection v.1", "SMSSpamCollection": SMS}),
    "/nested-sms.zip": build_zip({"smsspamcollection/SMSSpamCollection": SMS}),
    "/no-member.zip": build_zip({"readme": "nothing here"}),
    "/not-a-zip": b"<html><body>Please log in</body></html>",
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        body = ROUTES.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.hits = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.running = True

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined, no-any-return]

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # Never route the loopback requests through a proxy configured in the environment.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = Server()
    yield srv
    srv.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", data_home=None)


def leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.datasets_cache_dir.iterdir() if p.name.startswith("."))


def test_sst2_download_extract_then_cache(server: Server, settings: Settings) -> None:
    url = f"{server.base}/SST-2.zip"
    path = datasets.locate("sst2", settings, url=url, progress=False)
    assert path == settings.datasets_cache_dir / "sst2"
    assert sorted(p.name for p in path.iterdir()) == ["dev.tsv", "train.tsv"]
    assert (path / "train.tsv").read_text() == SST2_TRAIN
    assert leftovers(settings) == []
    assert server.hits == ["/SST-2.zip"]

    server.stop()  # the cache must be enough from now on
    assert datasets.fetch("sst2", settings, url=url, progress=False) == path
    assert datasets.locate("sst2", settings) == path  # canonical URL, not contacted
    loaded = datasets.load("sst2", settings, url=url, progress=False)
    assert loaded.train.texts == ["hide new secretions", "it 's a `` charming '' film"]
    assert loaded.eval is not None
    assert loaded.eval.labels == ["negative"]
    assert loaded.labels == ["negative", "positive"]


@pytest.mark.parametrize("route", ["/sms.zip", "/nested-sms.zip"])
def test_sms_download_with_progress_bar(server: Server, settings: Settings, route: str) -> None:
    loaded = datasets.load("sms_spam", settings, url=server.base + route, progress=True)
    assert loaded.train.texts == ["see you at <#>", "WIN \u2019now\u2019"]
    assert loaded.train.labels == ["ham", "spam"]
    cache = settings.datasets_cache_dir / "sms_spam_collection"
    assert sorted(p.name for p in cache.iterdir()) == ["SMSSpamCollection"]
    server.stop()
    assert datasets.load("sms_spam", settings, url=server.base + route).sha256() == loaded.sha256()


def test_partial_cache_is_completed(server: Server, settings: Settings) -> None:
    cache = settings.datasets_cache_dir / "sst2"
    cache.mkdir(parents=True)
    (cache / "train.tsv").write_text("sentence\tlabel\nmine \t1\nmine too \t0\n")
    datasets.locate("sst2", settings, url=f"{server.base}/SST-2.zip", progress=False)
    assert (cache / "train.tsv").read_text().startswith("sentence\tlabel\nmine")  # kept
    assert (cache / "dev.tsv").read_text() == SST2_DEV
    assert leftovers(settings) == []


def assert_helpful(exc: DatasetUnavailableError, url: str, settings: Settings) -> None:
    message = str(exc)
    first_line = message.splitlines()[0]
    assert url in first_line
    assert "AIWEB_DATA_HOME" in message
    assert str(settings.datasets_cache_dir / "sst2") in message
    assert "sst2/train.tsv" in message
    assert "Traceback" not in message
    assert exc.__cause__ is None
    assert exc.__suppress_context__
    assert not (settings.datasets_cache_dir / "sst2").exists()
    if settings.datasets_cache_dir.exists():
        assert leftovers(settings) == []


def test_closed_port(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/SST-2.zip"
    with pytest.raises(DatasetUnavailableError, match="connection failed") as excinfo:
        datasets.locate("sst2", settings, url=url, progress=False)
    assert_helpful(excinfo.value, url, settings)
    assert excinfo.value.status == 502


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("/missing.zip", "HTTP 404"),
        ("/not-a-zip", "not a valid zip archive"),
        ("/no-member.zip", "no member named 'train.tsv'"),
    ],
)
def test_bad_responses(server: Server, settings: Settings, route: str, reason: str) -> None:
    url = server.base + route
    with pytest.raises(DatasetUnavailableError, match=reason) as excinfo:
        datasets.load("sst2", settings, url=url, progress=False)
    assert_helpful(excinfo.value, url, settings)


def test_data_home_without_files_is_mentioned(server: Server, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", data_home=tmp_path / "empty")
    url = f"{server.base}/missing.zip"
    with pytest.raises(DatasetUnavailableError, match="has no complete sst2/ folder"):
        datasets.locate("sst2", settings, url=url, progress=False)


def test_unsupported_url(settings: Settings) -> None:
    with pytest.raises(DatasetUnavailableError, match=re.escape("ftp://example.invalid/x.zip")):
        datasets.locate("sst2", settings, url="ftp://example.invalid/x.zip", progress=False)
