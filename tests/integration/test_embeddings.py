"""Sentence embeddings: the real export (``aiweb embeddings install``), the onnxruntime
embedder, the embed route and micro-batching."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.embeddings import OnnxEmbedder
from aiweb.embeddings.install import register_exported
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.registry.entities import ModelVersion
from aiweb.registry.factory import build_registry
from conftest import MinilmInstall, create_key

LONG_TAIL_A = " ".join(["alpha"] * 400)
LONG_TAIL_B = " ".join(["omega"] * 400)


@pytest.fixture(scope="module")
def embedder(minilm_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_dir(minilm_dir)


# -- the install command -----------------------------------------------------------------
def test_install_exports_checks_and_registers(minilm_install: MinilmInstall) -> None:
    out = minilm_install.stdout
    assert "check on 1000 sentences" in out
    assert "fp32 ONNX vs sentence-transformers" in out
    settings = Settings(home=minilm_install.home)
    registry, engine = build_registry(settings)
    try:
        model = registry.get_model("minilm")
        assert model.task == "feature-extraction"
        versions = {v.lineage["precision"]: v for v in registry.list_versions("minilm")}
    finally:
        engine.dispose()
    fp32 = versions["fp32"]
    check = fp32.evaluation["check"]
    assert check["n_sentences"] == 1000
    assert check["cosine"]["fp32_vs_sentence_transformers"]["min"] >= 0.999
    int8_min = min(
        check["cosine"]["int8_vs_sentence_transformers"]["min"],
        check["cosine"]["int8_vs_fp32"]["min"],
    )
    # the rule of the issue: int8 is registered exactly when its minimum reaches 0.98
    assert ("int8" in versions) == (int8_min >= 0.98) == check["int8_passed"]
    assert model.aliases["fp32"] == fp32.version
    if "int8" in versions:
        assert model.aliases["int8"] == versions["int8"].version
        assert model.aliases["production"] == versions["int8"].version
        assert "int8: minimum cosine" in out
        assert ": registered" in out
    else:
        assert model.aliases["production"] == fp32.version
    assert fp32.signature["dim"] == 384
    assert fp32.signature["max_tokens"] == 256


def test_int8_export_quantizes_every_matmul_weight(minilm_install: MinilmInstall) -> None:
    """The first plan (block-wise 8-bit for the early feed-forward MatMuls, per-channel
    dynamic for the rest) passes the check here, and leaves no fp32 weight MatMul."""
    import onnx

    from aiweb.embeddings.export import quantization_plans

    settings = Settings(home=minilm_install.home)
    registry, engine = build_registry(settings)
    try:
        fp32 = next(v for v in registry.list_versions("minilm") if v.lineage["precision"] == "fp32")
    finally:
        engine.dispose()
    check = fp32.evaluation["check"]
    plans = quantization_plans(minilm_install.export_dir / "model.onnx")
    assert check["int8_passed"]
    assert check["int8_quantized"] == plans[0].description
    assert len(plans[0].blockwise) == 6  # two feed-forward MatMuls in each of layers 0-2
    graph = onnx.load(str(minilm_install.export_dir / "model-int8.onnx")).graph
    weights = {init.name for init in graph.initializer}
    ops = [node.op_type for node in graph.node]
    float_weight_matmuls = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any(name in weights for name in node.input)
    ]
    assert float_weight_matmuls == []
    assert ops.count("MatMulNBits") == 6
    assert ops.count("MatMulInteger") == 30  # 6 layers x 6 weight MatMuls, 6 block-wise


def test_install_again_is_a_no_op(minilm_install: MinilmInstall) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIWEB_DATABASE_URL"}
    env["AIWEB_HOME"] = str(minilm_install.home)
    aiweb = Path(sys.executable).with_name("aiweb")
    proc = subprocess.run(
        [str(aiweb), "embeddings", "install"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "already installed" in proc.stderr
    registry, engine = build_registry(Settings(home=minilm_install.home))
    try:
        assert len(registry.list_versions("minilm")) in (1, 2)  # nothing new
    finally:
        engine.dispose()


# -- the embedder ------------------------------------------------------------------------
def test_vectors_are_unit_float32_and_order_independent(embedder: OnnxEmbedder) -> None:
    texts = ["short", "a much longer sentence about cards and banks and money", "", "mid size"]
    batch = embedder.embed(texts)
    assert batch.vectors.dtype == np.float32
    assert batch.vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(batch.vectors, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(texts):  # padding in a batch changes nothing
        alone = embedder.embed([text]).vectors[0]
        np.testing.assert_allclose(batch.vectors[i], alone, atol=2e-5)
    assert embedder.embed([]).vectors.shape == (0, 384)


def test_similar_sentences_are_closer(embedder: OnnxEmbedder) -> None:
    v = embedder.embed(
        ["How do I reset my password?", "I forgot my password", "The weather is sunny today"]
    ).vectors
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3


def test_long_texts_are_truncated_at_256_word_pieces(embedder: OnnxEmbedder) -> None:
    head = "my card has not arrived yet"
    long_a = head + " " + LONG_TAIL_A + " and the zebra ate it"
    long_b = head + " " + LONG_TAIL_A + " " + LONG_TAIL_B
    result = embedder.embed([head, long_a, long_b])
    assert result.truncated == [False, True, True]
    assert embedder.count_tokens([long_a])[0] > 256
    # only the first 256 pieces count: two texts that differ after them embed the same
    np.testing.assert_allclose(result.vectors[1], result.vectors[2], atol=1e-5)
    assert not np.allclose(result.vectors[0], result.vectors[1], atol=1e-3)


def test_pool_answers_a_seen_reference_without_the_registry_and_follows_an_alias_move(
    settings: Settings, minilm_dir: Path
) -> None:
    """A reference resolved before is answered from memory; once older than
    ``refresh_s`` it is renewed in the background, so a moved alias is followed soon
    after, and no request waits on the registry for it."""
    if not (minilm_dir / "model-int8.onnx").is_file():
        pytest.skip("the int8 export did not pass its check here")
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, include_int8=True, actor="tests")
        pool = EmbedderPool(registry, settings.embeddings, refresh_s=60.0)
        calls: list[object] = []
        resolve = pool.resolve

        def counting(ref: object) -> ModelVersion:
            calls.append(ref)
            return resolve(ref)  # type: ignore[arg-type]

        pool.resolve = counting  # type: ignore[method-assign]

        async def scenario() -> None:
            version, _ = await pool.embed(None, ["one"])
            assert version.version == 2  # production: int8
            for _ in range(5):
                await pool.embed(None, ["again"])
            assert len(calls) == 1  # answered from memory
            registry.set_alias("minilm", "production", 1, actor="tests")
            pool.refresh_s = 0.2
            await asyncio.sleep(0.3)
            version, _ = await pool.embed(None, ["stale"])
            assert version.version == 2  # answered at once; renewed behind it
            for _ in range(100):
                if not pool.background.running():
                    break
                await asyncio.sleep(0.02)
            version, _ = await pool.embed(None, ["moved"])
            assert version.version == 1
            assert len(calls) == 2
            await pool.aclose()

        asyncio.run(scenario())
    finally:
        engine.dispose()


# -- the route ---------------------------------------------------------------------------
@pytest.fixture
def client(
    settings: Settings, minilm_dir: Path, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
    finally:
        engine.dispose()
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def test_embed_route(client: TestClient, embedder: OnnxEmbedder) -> None:
    texts = ["Where is my card?", "hello " + LONG_TAIL_A]
    resp = client.post("/v1/models/minilm/embed", json={"inputs": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["model"], body["version"], body["dim"]) == ("minilm", 1, 384)
    assert (resp.headers["X-Model"], resp.headers["X-Model-Version"]) == ("minilm", "1")
    vectors = np.array(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, embedder.embed(texts).vectors, atol=1e-6)
    assert body["truncated"] == [False, True]
    assert client.post("/v1/models/minilm:1/embed", json={"inputs": ["x"]}).status_code == 200
    assert client.post("/v1/models/minilm@fp32/embed", json={"inputs": ["x"]}).status_code == 200


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"inputs": []}, 422),
        ({"inputs": [1, 2]}, 422),
        ({"inputs": "not a list"}, 422),
        ({"texts": ["x"]}, 422),
        ({"inputs": ["x"] * 257}, 413),
        ({"inputs": ["x" * 10_001]}, 422),
    ],
)
def test_bad_input_is_a_problem(client: TestClient, payload: object, status: int) -> None:
    resp = client.post("/v1/models/minilm/embed", json=payload)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_unknown_model_not_an_embedder_and_keys(
    client: TestClient, settings: Settings, tiny_model_bytes: bytes
) -> None:
    resp = client.post("/v1/models/nope/embed", json={"inputs": ["x"]})
    assert resp.status_code == 404
    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    resp = client.post("/v1/models/sentiment/embed", json={"inputs": ["x"]})
    assert resp.status_code == 422
    assert "not an embedding model" in resp.json()["detail"]
    assert (
        client.post(
            "/v1/models/minilm/embed", json={"inputs": ["x"]}, headers={"Authorization": ""}
        ).status_code
        == 401
    )
    predict_only = create_key(settings, ("predict",), name="web-app")
    resp = client.post(
        "/v1/models/minilm/embed",
        json={"inputs": ["x"]},
        headers={"Authorization": f"Bearer {predict_only}"},
    )
    assert resp.status_code == 200


def test_not_installed_says_how_to_install(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        resp = c.post("/v1/models/minilm/embed", json={"inputs": ["x"]})
    assert resp.status_code == 404
    assert resp.json()["type"].endswith("/embedding-model-not-installed")
    assert "aiweb embeddings install" in resp.json()["detail"]


@hsettings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    texts=st.lists(
        # NUL is refused at the edge (422, test_hostile_values); every other text embeds
        st.text(st.characters(exclude_characters="\x00"), max_size=300),
        min_size=1,
        max_size=4,
    )
)
def test_any_text_embeds(client: TestClient, texts: list[str]) -> None:
    resp = client.post("/v1/models/minilm/embed", json={"inputs": texts})
    assert resp.status_code == 200, resp.text
    vectors = np.array(resp.json()["embeddings"])
    assert vectors.shape == (len(texts), 384)
    assert np.all(np.isfinite(vectors))


# -- micro-batching ------------------------------------------------------------------------
def test_concurrent_requests_share_model_calls(settings: Settings, minilm_dir: Path) -> None:
    registry, engine = open_registry(settings)
    sizes: list[int] = []
    try:
        register_exported(registry, minilm_dir, include_int8=False, actor="tests")
        pool = EmbedderPool(
            registry,
            settings.embeddings,
            on_batch=lambda _name, _version, size, _seconds: sizes.append(size),
        )
        texts = [f"question number {i} about my account" for i in range(32)]
        direct = pool.get(pool.resolve(None)).embed(texts).vectors

        async def run() -> list[np.ndarray]:
            results = await asyncio.gather(*(pool.embed(None, [t]) for t in texts))
            await pool.aclose()
            return [r.vectors[0] for _v, r in results]

        got = asyncio.run(run())
    finally:
        engine.dispose()
    np.testing.assert_allclose(np.stack(got), direct, atol=2e-5)
    assert sum(sizes) == 32
    assert max(sizes) > 1  # requests waiting together ran as one call
