"""The artifact store never reads or writes outside its root."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aiweb.errors import UnsafeArtifactPath
from aiweb.registry.artifacts import LocalArtifactStore


def test_round_trip_and_digest(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    digest = store.write_bytes("models/spam/1/model.skops", b"payload")
    assert digest == hashlib.sha256(b"payload").hexdigest()
    assert store.read_bytes("models/spam/1/model.skops") == b"payload"
    assert store.exists("models/spam/1/model.skops")
    assert not list((tmp_path / "artifacts" / "models" / "spam" / "1").glob(".tmp-*"))


@pytest.mark.parametrize(
    "uri",
    [
        "../outside",
        "models/../../outside",
        "/etc/passwd",
        "models\\..\\..\\outside",
        "models//x",
        "",
        "models/./../../x",
        "..",
        "models/x\x00.skops",
    ],
)
def test_paths_leaving_the_store_are_refused(tmp_path: Path, uri: str) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    with pytest.raises(UnsafeArtifactPath):
        store.write_bytes(uri, b"x")
    with pytest.raises(UnsafeArtifactPath):
        store.read_bytes(uri)
    assert not (tmp_path / "outside").exists()


def test_encoded_separators_stay_literal(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    store.write_bytes("models/%2e%2e%2fx", b"x")  # a file with that odd name, inside
    assert (tmp_path / "artifacts" / "models" / "%2e%2e%2fx").is_file()


def test_symlinks_out_of_the_store_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_bytes(b"top secret")
    store = LocalArtifactStore(tmp_path / "artifacts")
    (store.root / "models").mkdir()
    (store.root / "models" / "link").symlink_to(secret)
    with pytest.raises(UnsafeArtifactPath, match="leaves"):
        store.read_bytes("models/link/key")
    with pytest.raises(UnsafeArtifactPath):
        store.write_bytes("models/link/new", b"x")
    assert not (secret / "new").exists()
