"""Datasets published as plain files (CLINC150, Banking77, Twitter airline, and the
token-classification sets WNUT 2017, SkillSpan, job_description_entities): downloaded from
a real local HTTP server serving the shared files, checked against the recorded sha256,
then read from the cache; a clear error when they cannot be fetched."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.datasets import skillspan, wnut17
from aiweb.entities.data import load_dataset
from aiweb.errors import DatasetUnavailableError
from conftest import data_home


class Files(BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def shared() -> Path:
    home = data_home()
    if home is None or not (home / "banking77").is_dir():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return home


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    Files.routes = {}
    Files.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", data_home=None)


def serve(prefix: str, files: dict[str, bytes]) -> None:
    Files.routes.update({f"{prefix}/{name}": data for name, data in files.items()})


def test_banking77_files_download_then_cache(shared: Path, server: str, settings: Settings) -> None:
    names = ("train.csv", "test.csv", "categories.json")
    serve("/banking_data", {n: (shared / "banking77" / n).read_bytes() for n in names})
    path = datasets.locate("banking77", settings, url=f"{server}/banking_data/", progress=False)
    assert path == settings.datasets_cache_dir / "banking77"
    assert sorted(p.name for p in path.iterdir()) == sorted(names)
    assert sorted(Files.hits) == sorted(f"/banking_data/{n}" for n in names)
    Files.routes.clear()  # the cache must be enough from now on
    data = datasets.load("banking77", settings, url=f"{server}/banking_data/", progress=False)
    assert len(data.train) == 10_003
    assert len(Files.hits) == 3


def test_clinc150_download_is_reduced_and_checked(
    shared: Path, server: str, settings: Settings
) -> None:
    # the shared file stands in for upstream data_full.json (reducing it is the identity)
    serve(
        "/data",
        {
            "data_full.json": (shared / "clinc150" / "data_full_train_val.json").read_bytes(),
            "domains.json": (shared / "clinc150" / "domains.json").read_bytes(),
        },
    )
    path = datasets.locate("clinc150", settings, url=f"{server}/data", progress=True)
    assert sorted(p.name for p in path.iterdir()) == ["data_full_train_val.json", "domains.json"]
    data = datasets.load("clinc150", settings)
    assert (len(data.train), data.eval and len(data.eval)) == (15_100, 3_100)


def test_a_changed_file_is_refused(shared: Path, server: str, settings: Settings) -> None:
    tweets = (shared / "twitter_airline_sentiment" / "Tweets.csv").read_bytes()
    serve("/t", {"Tweets.csv": tweets.replace(b"@VirginAmerica", b"@VirginAmerikA", 1)})
    with pytest.raises(DatasetUnavailableError, match=r"Tweets\.csv has sha256") as excinfo:
        datasets.locate("twitter_airline_sentiment", settings, url=f"{server}/t", progress=False)
    assert "AIWEB_DATA_HOME" in str(excinfo.value)
    cache = settings.datasets_cache_dir
    assert not (cache / "twitter_airline_sentiment").exists()
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_a_missing_file_names_the_url(server: str, settings: Settings) -> None:
    with pytest.raises(DatasetUnavailableError, match="HTTP 404") as excinfo:
        datasets.locate("banking77", settings, url=f"{server}/nothing/", progress=False)
    assert f"{server}/nothing/" in str(excinfo.value)


def test_an_upstream_file_without_the_splits_is_refused(server: str, settings: Settings) -> None:
    serve("/bad", {"data_full.json": b'{"train": []}', "domains.json": b"{}"})
    with pytest.raises(DatasetUnavailableError, match="no key val, oos_train, oos_val"):
        datasets.locate("clinc150", settings, url=f"{server}/bad", progress=False)


@pytest.fixture
def ner_shared() -> Path:
    home = data_home()
    if home is None or not (home / "wnut17").is_dir() or not (home / "skillspan").is_dir():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return home


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_wnut17_downloads_then_reads_the_cache(
    ner_shared: Path, server: str, settings: Settings
) -> None:
    shared = ner_shared
    Files.routes = {f"/w/{n}": (shared / "wnut17" / n).read_bytes() for n in wnut17.FILES}
    data = load_dataset("wnut17", settings, url=f"{server}/w/", progress=False)
    assert datasets.locate("wnut17", settings) == settings.datasets_cache_dir / "wnut17"
    assert sorted(Files.hits) == sorted(f"/w/{n}" for n in wnut17.FILES)
    assert [len(data.splits[s]) for s in ("train", "dev", "test")] == [3394, 1009, 1287]
    Files.routes.clear()  # the cache must be enough from now on
    again = load_dataset("wnut17", settings, url=f"{server}/w/", progress=False)
    assert again.sha256() == data.sha256()
    assert len(Files.hits) == len(wnut17.FILES)


def test_a_changed_skillspan_file_is_refused(
    ner_shared: Path, server: str, settings: Settings
) -> None:
    shared = ner_shared
    Files.routes = {f"/s/{n}": (shared / "skillspan" / n).read_bytes() for n in skillspan.FILES}
    name = "skillspan_tech_test.conll"
    Files.routes[f"/s/{name}"] = Files.routes[f"/s/{name}"].replace(b"B-Skill", b"I-Skill", 1)
    with pytest.raises(DatasetUnavailableError, match=r"skillspan_tech_test\.conll has sha256"):
        load_dataset("skillspan", settings, url=f"{server}/s", progress=False)
    assert not (settings.datasets_cache_dir / "skillspan").exists()


def test_missing_data_gives_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", data_home=tmp_path / "empty-data-home")
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(DatasetUnavailableError) as excinfo:
        load_dataset("job_description_entities", settings, url=url, progress=False)
    message = str(excinfo.value)
    assert "Cannot download dataset 'job_description_entities'" in message
    assert "connection failed" in message
    assert "AIWEB_DATA_HOME to a folder containing job_description_entities/testset.txt" in message
    assert f"AIWEB_DATA_HOME={settings.data_home} has no complete job_description_entities/" in (
        message
    )
