"""``POST /v1/models/{name}/explain`` end to end, in-process, on every database: the answer's
shape and additivity, ``target`` and ``top_k``, occlusion for a classifier on (tiny, real
ONNX) embedding features, the predict route's errors and limits, the ``predict`` scope
(also before the body is read), and a model whose task has no explainer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import LABELS, NEGATIVE_TEXT, POSITIVE_TEXT, open_registry, register_versions
from sklearn.linear_model import LogisticRegression

from aiweb.app import create_app
from aiweb.classification.embedding_features import ARTIFACT_FORMAT as HEAD_FORMAT
from aiweb.classification.embedding_features import EmbeddingRef, EmbeddingTextClassifier
from aiweb.config import Settings
from aiweb.embeddings.install import register_exported
from conftest import TINY_LABELS, TINY_TEXTS, create_key
from tiny_embedder import tiny_embedder, write_export

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}
EXAMPLE = "not a good movie, but the acting was superb"
FIELDS = {
    "label",
    "scores",
    "target",
    "method",
    "exact",
    "base_value",
    "contributions",
    "logit",
    "omitted",
    "skipped_words",
    "out_of_scope",
}


def register_embedding_classifier(settings: Settings, tmp_path: Path) -> None:
    """``minilm`` (a tiny embedder, feature-extraction) and ``intent`` (a classifier on
    its vectors, format ``skops-head``) in the settings' registry."""
    registry, engine = open_registry(settings)
    try:
        result = register_exported(registry, write_export(tmp_path / "export"), include_int8=False)
        version = result.fp32
        embedder = tiny_embedder()
        clf = LogisticRegression(C=10.0, max_iter=500).fit(
            embedder.embed(TINY_TEXTS * 2).vectors, TINY_LABELS * 2
        )
        model = EmbeddingTextClassifier(clf, embedder, EmbeddingRef.of(version, embedder.dim))
        registry.register_version(
            "intent",
            "text-classification",
            artifact=model.to_bytes(),
            artifact_format=HEAD_FORMAT,
            labels=list(LABELS),
            signature={"inputs": {"type": "array", "items": {"type": "string"}}},
            lineage={"embedding_model": model.embedding.to_json()},
            evaluation={},
            alias="production",
            actor="tests",
        )
    finally:
        engine.dispose()


@pytest.fixture
def client(
    settings: Settings, tiny_model_bytes: bytes, auth_headers: dict[str, str], tmp_path: Path
) -> Iterator[TestClient]:
    """``sentiment`` (TF-IDF, versions 1 and 2), ``minilm`` and ``intent`` (embeddings)."""
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    register_embedding_classifier(settings, tmp_path)
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def explain(client: TestClient, ref: str, body: object) -> httpx.Response:
    return client.post(f"/v1/models/{ref}/explain", json=body)


def assert_problem(resp: httpx.Response, status: int, contains: str = "") -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert contains in body["detail"], body["detail"]


def test_explain_shape_and_additivity(client: TestClient) -> None:
    resp = explain(client, "sentiment", {"inputs": [EXAMPLE, POSITIVE_TEXT], "top_k": 0})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"model", "version", "explanations"}
    assert (body["model"], body["version"]) == ("sentiment", 1)
    predicted = client.post(
        "/v1/models/sentiment/predict", json={"inputs": [EXAMPLE, POSITIVE_TEXT]}
    ).json()["predictions"]
    assert set(predicted[0]) == {"id", "label", "scores"}  # nothing explained on predict
    for text, e, p in zip([EXAMPLE, POSITIVE_TEXT], body["explanations"], predicted, strict=True):
        assert set(e) == FIELDS
        assert (e["method"], e["exact"], e["skipped_words"]) == ("linear", True, 0)
        assert e["label"] == p["label"] == e["target"]
        assert e["scores"] == pytest.approx(p["scores"])
        assert e["omitted"] == {"count": 0, "weight": 0.0}
        total = e["base_value"] + sum(c["weight"] for c in e["contributions"])
        assert total == pytest.approx(e["logit"], abs=1e-6)
        for c in e["contributions"]:
            assert set(c) == {"feature", "start", "end", "weight"}
            assert text[c["start"] : c["end"]] == c["feature"]
        weights = [abs(c["weight"]) for c in e["contributions"]]
        assert weights == sorted(weights, reverse=True)
    assert body["explanations"][1]["label"] == "positive"


def test_target_and_top_k(client: TestClient) -> None:
    resp = explain(client, "sentiment:2", {"inputs": [EXAMPLE], "target": "negative", "top_k": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 2
    [e] = body["explanations"]
    assert e["target"] == "negative"
    assert len(e["contributions"]) == 3
    assert e["omitted"]["count"] > 0
    total = e["base_value"] + sum(c["weight"] for c in e["contributions"])
    assert total + e["omitted"]["weight"] == pytest.approx(e["logit"], abs=1e-6)
    # the two classes' logits of a binary model are opposite log-odds
    [other] = explain(client, "sentiment:2", {"inputs": [EXAMPLE], "target": "positive"}).json()[
        "explanations"
    ]
    assert other["logit"] == pytest.approx(-e["logit"], abs=1e-9)
    # default top_k is 10
    [d] = explain(client, "sentiment", {"inputs": [EXAMPLE]}).json()["explanations"]
    assert len(d["contributions"]) == 10


def test_occlusion_for_embedding_features(client: TestClient) -> None:
    resp = explain(client, "intent", {"inputs": [EXAMPLE, NEGATIVE_TEXT, ""], "top_k": 0})
    assert resp.status_code == 200, resp.text
    explanations = resp.json()["explanations"]
    for text, e in zip([EXAMPLE, NEGATIVE_TEXT, ""], explanations, strict=True):
        assert (e["method"], e["exact"], e["skipped_words"]) == ("occlusion", False, 0)
        for c in e["contributions"]:
            assert text[c["start"] : c["end"]] == c["feature"]
    assert len(explanations[0]["contributions"]) >= 8  # words the tiny embedder knows
    assert explanations[2]["contributions"] == []


def test_errors_as_for_predict(client: TestClient) -> None:
    assert_problem(explain(client, "nope", {"inputs": ["x"]}), 404, "nope")
    assert_problem(explain(client, "sentiment:9", {"inputs": ["x"]}), 404, "9")
    assert_problem(explain(client, "sentiment@staging", {"inputs": ["x"]}), 404, "staging")
    assert_problem(explain(client, "Bad%20Name", {"inputs": ["x"]}), 422)
    assert_problem(explain(client, "sentiment:0", {"inputs": ["x"]}), 422)
    assert_problem(explain(client, "sentiment", {"inputs": []}), 422)
    assert_problem(explain(client, "sentiment", {"texts": ["x"]}), 422)
    assert_problem(explain(client, "sentiment", {"inputs": [1]}), 422)
    assert_problem(explain(client, "sentiment", {"inputs": ["a" * 10_001]}), 422, "10000")
    assert explain(client, "sentiment", {"inputs": ["a" * 10_000]}).status_code == 200
    assert_problem(explain(client, "sentiment", {"inputs": ["x"] * 33}), 413, "32")
    assert explain(client, "sentiment", {"inputs": ["x"] * 32}).status_code == 200
    assert_problem(explain(client, "sentiment", {"inputs": ["x"], "target": "nope"}), 422, "class")
    for top_k in (-1, "10", True, 1.5, 2**40):
        assert_problem(explain(client, "sentiment", {"inputs": ["x"], "top_k": top_k}), 422)
    for raw in (b'{"inputs": ["a\\u0000b"]}', b'{"inputs": ["\\ud800"]}', b'{"inputs": ['):
        resp = client.post(
            "/v1/models/sentiment/explain",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert_problem(resp, 422)
    # a model whose task has no explainer (the embedding model itself)
    assert_problem(explain(client, "minilm", {"inputs": ["x"]}), 422, "not explained")


def test_scope_predict(settings: Settings, client: TestClient) -> None:
    predict_only = create_key(settings, ("predict",), "explainer")
    train_only = create_key(settings, ("train",), "trainer")
    body = {"inputs": [EXAMPLE]}
    ok = client.post(
        "/v1/models/sentiment/explain",
        json=body,
        headers={"Authorization": f"Bearer {predict_only}"},
    )
    assert ok.status_code == 200, ok.text
    denied = client.post(
        "/v1/models/sentiment/explain",
        json=body,
        headers={"Authorization": f"Bearer {train_only}"},
    )
    assert_problem(denied, 403, "predict")
    no_key = client.post("/v1/models/sentiment/explain", json=body, headers={"Authorization": ""})
    assert_problem(no_key, 401)
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{name}/explain"]["post"]
    assert operation["x-required-scope"] == "predict"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    variants = schema.get("anyOf", [schema])  # one body per task that explains
    assert len(variants) >= 1
    for variant in variants:
        assert set(variant["properties"]) == {"inputs", "target", "top_k"}
