"""Contract of every artifact store: the local directory and S3 through fsspec/s3fs.

The S3 store runs against moto's standalone server on 127.0.0.1 (a free port, one server
per session, one bucket, a fresh prefix per test), with fake credentials; nothing leaves
the machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from aiweb.classification.model import TextClassifier
from aiweb.config import Settings
from aiweb.db.migrate import upgrade
from aiweb.errors import UnsafeArtifactPath
from aiweb.registry import artifacts as artifacts_module
from aiweb.registry.artifacts import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
)

BUCKET = "aiweb-artifacts"
FAKE_KEY = "testing-key-id"
FAKE_SECRET = "testing-secret-value"
BLOCK_BYTES = 5 * 2**20  # the smallest S3 multipart part: big files go up in parts
BIG_BYTES = 12 * 2**20 + 123  # three parts, the last one short

# Fake credentials, no config files, no instance metadata, no proxy for loopback.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_KEY,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
AWS_ENV_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def _fake_aws_env(mp: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENV.items():
        mp.setenv(name, value)
    for name in AWS_ENV_UNSET:
        mp.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_aws_env(monkeypatch)


@pytest.fixture(scope="session")
def s3_options() -> Iterator[dict[str, Any]]:
    """Storage options of s3fs for a moto server on loopback, with :data:`BUCKET` in it."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as mp:
            _fake_aws_env(mp)
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=FAKE_KEY,
                aws_secret_access_key=FAKE_SECRET,
            ).create_bucket(Bucket=BUCKET)
        yield {
            "endpoint_url": endpoint,
            "key": FAKE_KEY,
            "secret": FAKE_SECRET,
            "client_kwargs": {"region_name": "us-east-1"},
            "default_block_size": BLOCK_BYTES,
        }
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def s3_client(s3_options: dict[str, Any]) -> Any:
    """A boto3 client on the moto server, to look at the bucket behind the store's back."""
    return boto3.client(
        "s3",
        endpoint_url=s3_options["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_SECRET,
    )


def bucket_keys(s3_client: Any, prefix: str = "") -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store on a fresh root: ``<tmp>/artifacts`` or ``s3://<bucket>/<random prefix>``."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    options = request.getfixturevalue("s3_options")
    return FsspecArtifactStore(f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", options)


def assert_no_leftovers(store: ArtifactStore, s3_client_factory: Any) -> None:
    """Nothing outside the store's root, no temporary files, no pending multipart uploads."""
    if isinstance(store, LocalArtifactStore):
        assert not list(store.root.rglob(".tmp-*"))
        assert not (store.root.parent / "outside").exists()
        return
    assert isinstance(store, FsspecArtifactStore)
    client = s3_client_factory()
    prefix = store.root.split("/", 1)[1] + "/"
    assert all(key.startswith("t-") for key in bucket_keys(client))  # every test's prefix
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    assert not uploads.get("Uploads")


@pytest.fixture
def no_leftovers(request: pytest.FixtureRequest) -> Any:
    def check(store: ArtifactStore) -> None:
        assert_no_leftovers(store, lambda: request.getfixturevalue("s3_client"))

    return check


# -- contract ----------------------------------------------------------------------------


def test_round_trip_and_digest(store: ArtifactStore, no_leftovers: Any) -> None:
    uri = "models/spam/1/model.skops"
    digest = store.write_bytes(uri, b"payload")
    assert digest == hashlib.sha256(b"payload").hexdigest()
    assert store.read_bytes(uri) == b"payload"
    assert store.exists(uri)
    assert store.size(uri) == len(b"payload")
    assert store.write_bytes(uri, b"replaced") == hashlib.sha256(b"replaced").hexdigest()
    assert store.read_bytes(uri) == b"replaced"
    assert store.write_bytes("models/empty", b"") == hashlib.sha256(b"").hexdigest()
    assert store.read_bytes("models/empty") == b""
    assert store.size("models/empty") == 0
    no_leftovers(store)


def test_dot_segments_map_to_the_same_artifact(store: ArtifactStore) -> None:
    store.write_bytes("models/./a/model.skops", b"x")
    assert store.read_bytes("models/a/model.skops") == b"x"


def test_put_and_get_a_big_file_streamed(
    store: ArtifactStore, tmp_path: Path, no_leftovers: Any
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(BIG_BYTES)
    source.write_bytes(data)
    uri = "models/big/1/model.skops"

    assert store.put_file(uri, source) == hashlib.sha256(data).hexdigest()
    assert store.size(uri) == BIG_BYTES
    assert store.exists(uri)

    target = tmp_path / "down" / "big.bin"  # the directory is created
    store.get_file(uri, target)
    assert target.read_bytes() == data
    target.write_bytes(b"stale")
    store.get_file(uri, target)  # replaces
    assert target.read_bytes() == data
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]
    no_leftovers(store)


def test_open_read_streams_in_chunks(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(BIG_BYTES)
    source.write_bytes(data)
    store.put_file("models/big", source)

    digest = hashlib.sha256()
    sizes = []
    with store.open_read("models/big") as fh:
        assert fh.readable()
        while chunk := fh.read(2**20):
            sizes.append(len(chunk))
            digest.update(chunk)
        assert fh.tell() == BIG_BYTES
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert max(sizes) == 2**20
    assert len(sizes) == BIG_BYTES // 2**20 + 1


def test_a_failed_upload_leaves_nothing(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftovers: Any
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(BIG_BYTES))
    store.write_bytes("models/a/model.skops", b"previous")

    def copy_then_fail(src: Any, dst: Any) -> str:
        dst.write(src.read(BLOCK_BYTES + 1))  # past the first multipart part
        raise OSError("disk went away")

    monkeypatch.setattr(artifacts_module, "_copy_hashing", copy_then_fail)
    with pytest.raises(OSError, match="disk went away"):
        store.put_file("models/a/model.skops", source)
    with pytest.raises(OSError, match="disk went away"):
        store.put_file("models/b/model.skops", source)
    assert store.read_bytes("models/a/model.skops") == b"previous"
    assert not store.exists("models/b/model.skops")
    no_leftovers(store)


def test_exists_size_delete(store: ArtifactStore) -> None:
    uri = "models/spam/1/model.skops"
    assert not store.exists(uri)
    store.write_bytes(uri, b"12345")
    assert store.exists(uri)
    assert store.size(uri) == 5
    assert not store.exists("models/spam")  # a "directory" is not an artifact
    store.delete(uri)
    assert not store.exists(uri)
    store.delete(uri)  # missing is fine
    store.delete("models/never/written")


def test_delete_tree_removes_one_directory_and_nothing_beside_it(store: ArtifactStore) -> None:
    kept = ["models/spam/30/model.skops", "models/spam3/1/model.skops", "models/spam/3.txt"]
    gone = ["models/spam/3/model.skops", "models/spam/3/model.onnx", "models/spam/3/x/y.json"]
    for uri in kept + gone:
        store.write_bytes(uri, b"x")
    assert store.delete_tree("models/spam/3") == 3
    assert [uri for uri in kept + gone if store.exists(uri)] == kept
    assert store.delete_tree("models/spam/3") == 0  # nothing there is fine
    assert store.delete_tree("models/never/written") == 0
    assert store.delete_tree("models/spam/3.txt") == 0  # a file is not a directory
    assert store.exists("models/spam/3.txt")
    assert store.delete_tree("models/spam") == 2
    assert store.exists("models/spam3/1/model.skops")
    assert not store.exists("models/spam/30/model.skops")


def test_delete_tree_on_s3_deletes_the_keys(
    store: ArtifactStore, request: pytest.FixtureRequest
) -> None:
    if not isinstance(store, FsspecArtifactStore):
        pytest.skip("S3 only")
    s3_client = request.getfixturevalue("s3_client")
    prefix = store.root.split("/", 1)[1]
    for i in range(5):
        store.write_bytes(f"datasets/d1/part-{i}.csv", b"x")
    store.write_bytes("datasets/d10/data.csv", b"x")
    assert store.delete_tree("datasets/d1") == 5
    assert bucket_keys(s3_client, prefix) == [f"{prefix}/datasets/d10/data.csv"]


def test_move_a_file(store: ArtifactStore, no_leftovers: Any) -> None:
    store.write_bytes("datasets/.pending-a/data.csv", b"new")
    assert store.move("datasets/.pending-a/data.csv", "datasets/a/data.csv") == 1
    assert store.read_bytes("datasets/a/data.csv") == b"new"
    assert not store.exists("datasets/.pending-a/data.csv")
    store.write_bytes("datasets/b.csv", b"newer")
    assert store.move("datasets/b.csv", "datasets/a/data.csv") == 1  # replaces
    assert store.read_bytes("datasets/a/data.csv") == b"newer"
    with pytest.raises(FileNotFoundError):
        store.move("datasets/b.csv", "datasets/c.csv")
    no_leftovers(store)


def test_move_a_directory_and_nothing_beside_it(store: ArtifactStore, no_leftovers: Any) -> None:
    moved = ["data.csv", "parts/1.csv", "parts/2.csv"]
    for name in moved:
        store.write_bytes(f"datasets/.pending-d1/{name}", name.encode())
    store.write_bytes("datasets/.pending-d10/data.csv", b"beside")
    assert store.move("datasets/.pending-d1", "datasets/d1") == 3
    assert [store.read_bytes(f"datasets/d1/{name}") for name in moved] == [
        name.encode() for name in moved
    ]
    assert not any(store.exists(f"datasets/.pending-d1/{name}") for name in moved)
    assert store.read_bytes("datasets/.pending-d10/data.csv") == b"beside"
    assert not store.exists("datasets/d10/data.csv")
    with pytest.raises(FileNotFoundError):
        store.move("datasets/.pending-d1", "datasets/d1")  # moved already
    with pytest.raises(FileNotFoundError):
        store.move("datasets/never", "datasets/d2")
    if isinstance(store, LocalArtifactStore):
        assert not (store.root / "datasets" / ".pending-d1").exists()
    no_leftovers(store)


def test_an_interrupted_move_is_finished_by_the_next(
    store: ArtifactStore, no_leftovers: Any
) -> None:
    # as a kill leaves an S3 move: data.csv copied (its source not deleted yet), the
    # part not copied; the target directory also holds a file the move does not touch
    store.write_bytes("datasets/.pending-x/data.csv", b"data")
    store.write_bytes("datasets/.pending-x/parts/1.csv", b"part")
    store.write_bytes("datasets/x/data.csv", b"data")
    store.write_bytes("datasets/x/notes.txt", b"kept")
    assert store.move("datasets/.pending-x", "datasets/x") == 2
    assert store.read_bytes("datasets/x/data.csv") == b"data"
    assert store.read_bytes("datasets/x/parts/1.csv") == b"part"
    assert store.read_bytes("datasets/x/notes.txt") == b"kept"
    assert not store.exists("datasets/.pending-x/data.csv")
    assert not store.exists("datasets/.pending-x/parts/1.csv")
    if isinstance(store, LocalArtifactStore):
        assert not (store.root / "datasets" / ".pending-x").exists()
    no_leftovers(store)


@pytest.mark.parametrize(
    ("src", "dst"), [("a/b", "a/b"), ("a/b", "a/b/c"), ("a/b/c", "a/b"), ("a/./b", "a/b")]
)
def test_move_onto_itself_is_refused(store: ArtifactStore, src: str, dst: str) -> None:
    store.write_bytes("a/b/c/d.csv", b"x")
    with pytest.raises(ValueError, match="cannot move"):
        store.move(src, dst)
    assert store.read_bytes("a/b/c/d.csv") == b"x"


@pytest.mark.parametrize("uri", ["models/missing.skops", "models"])
def test_missing_artifacts_raise_file_not_found(
    store: ArtifactStore, tmp_path: Path, uri: str
) -> None:
    store.write_bytes("models/other.skops", b"x")  # so that "models" is a "directory"
    with pytest.raises(FileNotFoundError):
        store.read_bytes(uri)
    with pytest.raises(FileNotFoundError):
        store.open_read(uri)
    with pytest.raises(FileNotFoundError):
        store.size(uri)
    with pytest.raises(FileNotFoundError):
        store.get_file(uri, tmp_path / "down" / "x")
    assert not (tmp_path / "down" / "x").exists()
    assert not store.exists(uri)


UNSAFE_URIS = [
    "../outside",
    "../x",
    "models/../../outside",
    "/etc/passwd",
    "/abs",
    "models\\..\\..\\outside",
    "a\\b",
    "a//b",
    "models/",
    "",
    ".",
    "./.",
    "models/./../../x",
    "..",
    "models/x\x00.skops",
]


@pytest.mark.parametrize("uri", UNSAFE_URIS)
def test_unsafe_uris_are_refused(
    store: ArtifactStore, tmp_path: Path, uri: str, no_leftovers: Any
) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    calls = [
        lambda: store.write_bytes(uri, b"x"),
        lambda: store.read_bytes(uri),
        lambda: store.exists(uri),
        lambda: store.open_read(uri),
        lambda: store.put_file(uri, source),
        lambda: store.get_file(uri, tmp_path / "down"),
        lambda: store.delete(uri),
        lambda: store.delete_tree(uri),
        lambda: store.size(uri),
        lambda: store.move(uri, "models/x"),
        lambda: store.move("models/x", uri),
    ]
    for call in calls:
        with pytest.raises(UnsafeArtifactPath):
            call()
    assert not (tmp_path / "down").exists()
    no_leftovers(store)


def test_encoded_separators_stay_literal(store: ArtifactStore) -> None:
    store.write_bytes("models/%2e%2e%2fx", b"x")
    assert store.read_bytes("models/%2e%2e%2fx") == b"x"
    assert not store.exists("x")
    if isinstance(store, LocalArtifactStore):
        assert (store.root / "models" / "%2e%2e%2fx").is_file()


# -- S3 specifics ------------------------------------------------------------------------


def test_s3_keys_live_under_the_prefix(s3_options: dict[str, Any], s3_client: Any) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = FsspecArtifactStore(f"s3://{BUCKET}/{prefix}/", s3_options)
    assert store.description == f"s3://{BUCKET}/{prefix}"
    assert FAKE_SECRET not in store.description
    store.write_bytes("models/a/1/model.skops", b"x")
    assert bucket_keys(s3_client, prefix) == [f"{prefix}/models/a/1/model.skops"]


def test_an_s3_url_without_a_bucket_is_refused(s3_options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no bucket"):
        FsspecArtifactStore("s3://", s3_options)


# -- choosing the store from settings ------------------------------------------------------


def test_open_artifact_store_by_settings(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    base = Settings(home=tmp_path / "home")
    default = open_artifact_store(base)
    assert isinstance(default, LocalArtifactStore)
    assert default.root == (tmp_path / "home" / "artifacts").resolve()

    as_path = open_artifact_store(base.model_copy(update={"artifacts_url": str(tmp_path / "p")}))
    assert isinstance(as_path, LocalArtifactStore)
    assert as_path.description == str((tmp_path / "p").resolve())

    as_file_url = open_artifact_store(
        base.model_copy(update={"artifacts_url": f"file://{tmp_path / 'f'}"})
    )
    assert isinstance(as_file_url, LocalArtifactStore)
    assert as_file_url.root == (tmp_path / "f").resolve()

    on_s3 = open_artifact_store(
        base.model_copy(
            update={"artifacts_url": f"s3://{BUCKET}/settings", "artifacts_options": s3_options}
        )
    )
    assert isinstance(on_s3, FsspecArtifactStore)
    assert on_s3.description == f"s3://{BUCKET}/settings"


def test_settings_read_the_store_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWEB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIWEB_ARTIFACTS_URL", f"s3://{BUCKET}/env")
    monkeypatch.setenv(
        "AIWEB_ARTIFACTS_OPTIONS", '{"endpoint_url": "http://127.0.0.1:9", "key": "k"}'
    )
    settings = Settings()
    assert settings.artifacts_url == f"s3://{BUCKET}/env"
    assert settings.artifacts_options == {"endpoint_url": "http://127.0.0.1:9", "key": "k"}
    assert "endpoint_url" not in repr(settings)
    settings.ensure_dirs()
    assert settings.home.is_dir()
    assert not settings.resolved_artifacts_dir.exists()


def test_build_registry_on_s3_registers_and_reads_back(
    settings: Settings,
    s3_options: dict[str, Any],
    s3_client: Any,
    tiny_model_bytes: bytes,
) -> None:
    from aiweb.registry.factory import build_registry

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    settings = settings.model_copy(
        update={"artifacts_url": f"s3://{BUCKET}/{prefix}", "artifacts_options": s3_options}
    )
    registry, engine = build_registry(settings)
    try:
        upgrade(engine)
        assert isinstance(registry.artifacts, FsspecArtifactStore)
        version = registry.register_version(
            "sentiment",
            "text-classification",
            artifact=tiny_model_bytes,
            artifact_format="skops",
            labels=["negative", "positive"],
            signature={},
            lineage={},
            evaluation={},
        )
        assert version.status == "ready"
        assert version.artifact_uri == "models/sentiment/1/model.skops"
        assert version.artifact_sha256 == hashlib.sha256(tiny_model_bytes).hexdigest()

        stored = registry.get_version("sentiment", 1)
        assert stored.artifact_uri is not None
        data = registry.artifacts.read_bytes(stored.artifact_uri)
        assert data == tiny_model_bytes
        model = TextClassifier.from_bytes(data)
        assert model.predict_proba(["a wonderful film"]).shape == (1, 2)

        assert bucket_keys(s3_client, prefix) == [f"{prefix}/models/sentiment/1/model.skops"]
        body = s3_client.get_object(Bucket=BUCKET, Key=f"{prefix}/{stored.artifact_uri}")["Body"]
        assert body.read() == tiny_model_bytes
        assert not settings.resolved_artifacts_dir.exists()  # nothing written locally
    finally:
        engine.dispose()


def test_pending_datasets_on_s3_are_rolled_forward(
    settings: Settings, s3_options: dict[str, Any], s3_client: Any, tmp_path: Path
) -> None:
    """A kill between a dataset row's commit and its move, on S3: the sweep (and a
    reader) move the pending object into place; a pending one without a row is left to
    the bucket's lifecycle rules."""
    from aiweb.datasets.service import DatasetService
    from aiweb.db.session import make_engine, make_session_factory
    from aiweb.jobs.litter import GRACE_S, sweep

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = FsspecArtifactStore(f"s3://{BUCKET}/{prefix}", s3_options)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        datasets = DatasetService(make_session_factory(engine), store, settings)
        data = b"text,label\nhi,a\nho,b\n"

        uploaded = datasets.upload(_Body(data), "a.csv")
        assert bucket_keys(s3_client, prefix) == [f"{prefix}/{uploaded.artifact_uri}"]

        committed = datasets.commit(datasets.stage(_Body(data), "b.csv"))  # killed here
        read = datasets.commit(datasets.stage(_Body(data), "c.csv"))  # killed here too
        orphan = datasets.stage(_Body(data), "d.csv")  # killed before the commit
        assert f"{prefix}/datasets/.pending-{committed.id}/data.csv" in bucket_keys(
            s3_client, prefix
        )
        with datasets.open(read) as fh:  # a reader rolls its dataset forward
            assert fh.read() == data

        counts = sweep(settings, make_session_factory(engine), store, now=time.time() + GRACE_S)
        assert counts["rolled_forward"] == 1
        assert counts["pending_datasets"] == 0  # only a local store is cleaned
        assert bucket_keys(s3_client, prefix) == sorted(
            f"{prefix}/{uri}"
            for uri in (
                uploaded.artifact_uri,
                committed.artifact_uri,
                read.artifact_uri,
                orphan.pending_uri,
            )
        )
        assert store.read_bytes(committed.artifact_uri) == data
    finally:
        engine.dispose()


class _Body:  # a file-like upload body
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        chunk, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return chunk
