"""The Open Inference Protocol (KServe v2) over REST, ``/v2``: the
spec's requests verbatim, the protocol's ``{"error"}`` shape (also from the middlewares),
the same keys and scopes as ``/v1``, and the real ``tritonclient`` against a live server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import (
    LABELS,
    NEGATIVE_TEXT,
    POSITIVE_TEXT,
    live_server,
    open_registry,
    register_versions,
)

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.embeddings.install import register_exported
from conftest import create_key
from tiny_embedder import DIM, write_export

# the protocol's shapes; the registry under it is tested on PostgreSQL by the API tests: its
# PostgreSQL variant would add nothing (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

TEXTS = [POSITIVE_TEXT, NEGATIVE_TEXT]

#: the spec's infer request, as the KServe v2 REST docs write it
SPEC_INFER = {
    "id": "42",
    "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}],
    "outputs": [{"name": "label"}, {"name": "probabilities"}],
}


@pytest.fixture
def models(settings: Settings, tiny_model_bytes: bytes, tmp_path: Path) -> Settings:
    """``sentiment`` versions 1 (production) and 2, and the tiny embedder as ``minilm``."""
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    registry, engine = open_registry(settings)
    try:
        register_exported(registry, write_export(tmp_path / "export"), include_int8=False)
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def client(models: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(models), headers=auth_headers) as c:
        yield c


def assert_error(resp: httpx.Response, status: int, contains: str = "") -> str:
    """The protocol's error: ``{"error": "…"}`` as ``application/json``, nothing else."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert contains in body["error"], body["error"]
    return str(body["error"])


# -- health, server and model metadata ------------------------------------------------------
def test_health_and_server_metadata(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/v2/health/live", headers=anonymous).json() == {"live": True}
    ready = client.get("/v2/health/ready", headers=anonymous)
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    server = client.get("/v2", headers=anonymous).json()
    assert server["name"] == "aiweb"
    assert server["version"]
    assert server["extensions"] == []


def test_classifier_metadata(client: TestClient) -> None:
    for path in ("/v2/models/sentiment", "/v2/models/sentiment/versions/2"):
        resp = client.get(path)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "name": "sentiment",
            "versions": ["1", "2"],
            "platform": "aiweb_text-classification",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [-1, 2],
                    "parameters": {"classes": LABELS},
                },
                {"name": "id", "datatype": "BYTES", "shape": [-1]},
            ],
        }


def test_embedder_metadata_and_infer(client: TestClient) -> None:
    meta = client.get("/v2/models/minilm").json()
    assert meta["platform"] == "aiweb_feature-extraction"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    # the tiny test embedder has 16 dimensions; all-MiniLM-L6-v2 has 384 (its signature's dim)
    assert meta["outputs"][0] == {"name": "embedding", "datatype": "FP32", "shape": [-1, DIM]}
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}]}
    resp = client.post("/v2/models/minilm/infer", json=body)
    assert resp.status_code == 200, resp.text
    [embedding, truncated] = resp.json()["outputs"]
    assert (embedding["name"], embedding["datatype"], embedding["shape"]) == (
        "embedding",
        "FP32",
        [2, DIM],
    )
    assert truncated == {
        "name": "truncated",
        "datatype": "BOOL",
        "shape": [2],
        "data": [False, False],
    }
    v1 = client.post("/v1/models/minilm/embed", json={"inputs": TEXTS}).json()
    got = np.array(embedding["data"], dtype=np.float32).reshape(2, DIM)
    np.testing.assert_allclose(got, np.array(v1["embeddings"], dtype=np.float32), atol=1e-6)


def test_model_ready(client: TestClient) -> None:
    for path in ("/v2/models/sentiment/ready", "/v2/models/sentiment/versions/2/ready"):
        resp = client.get(path)
        assert (resp.status_code, resp.json()) == (200, {"name": "sentiment", "ready": True})
    assert_error(client.get("/v2/models/nope/ready"), 404, "nope")


# -- inference ---------------------------------------------------------------------------
def test_spec_infer_request_verbatim(client: TestClient) -> None:
    """The spec's request: ``id`` echoed, ``outputs`` selects; same answer as /v1."""
    resp = client.post("/v2/models/sentiment/infer", json=SPEC_INFER)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_name"] == "sentiment"
    assert body["model_version"] == "1"
    assert body["id"] == "42"
    label, proba = body["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2], "data": label["data"]}
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("probabilities", "FP32", [2, 2])
    assert proba["parameters"] == {"classes": LABELS}
    v1 = client.post("/v1/models/sentiment/predict", json={"inputs": TEXTS}).json()
    assert label["data"] == [p["label"] for p in v1["predictions"]] == ["positive", "negative"]
    expected = [p["scores"][c] for p in v1["predictions"] for c in LABELS]
    assert all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(proba["data"], expected, strict=True)
    )


def test_infer_defaults_parameters_and_nested_data(client: TestClient) -> None:
    body = {
        "parameters": {"binary_data_output": False},
        "inputs": [
            {
                "name": "text",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"content_type": "str"},
                "data": [[POSITIVE_TEXT], [NEGATIVE_TEXT]],
            }
        ],
    }
    resp = client.post("/v2/models/sentiment/versions/2/infer", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert "id" not in out
    assert out["model_version"] == "2"
    assert [o["name"] for o in out["outputs"]] == ["label", "probabilities", "id"]
    ids = out["outputs"][2]["data"]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    alias = client.post("/v2/models/sentiment@production/infer", json=body).json()
    assert alias["model_version"] == "1"


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, "FP32"),
        (
            {"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}]},
            "shape",
        ),
        (
            {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
            "3 elements",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "STRING", "data": ["a"]}]},
            "datatype",
        ),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [1]}]}, "BYTES"),
        (
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            "image",
        ),
        ({"inputs": []}, "inputs"),
        ({"input": "x"}, "inputs"),
        ([1, 2], "object"),
        ({**SPEC_INFER, "outputs": [{"name": "logits"}]}, "logits"),
        ({**SPEC_INFER, "id": 42}, "id"),
    ],
)
def test_bad_requests_are_400(client: TestClient, body: Any, contains: str) -> None:
    assert_error(client.post("/v2/models/sentiment/infer", json=body), 400, contains)


def test_errors_in_the_protocols_shape(
    client: TestClient, models: Settings, tiny_model_bytes: bytes
) -> None:
    assert_error(client.get("/v2/models/nope"), 404, "nope")
    assert_error(client.post("/v2/models/nope/infer", json=SPEC_INFER), 404, "nope")
    assert_error(client.get("/v2/models/sentiment/versions/9"), 404, "9")
    assert_error(client.get("/v2/models/Not%20a%20name"), 400)
    assert_error(client.get("/v2/nowhere"), 404)
    assert_error(client.delete("/v2/models/sentiment"), 405)
    # the input limits middleware, before any route code
    assert_error(client.post("/v2/models/sentiment/infer", content=b"{bad"), 422, "JSON")
    big = {
        "inputs": [
            {
                "name": "text",
                "shape": [1],
                "datatype": "BYTES",
                "data": ["a" * models.limits.max_body_bytes],
            }
        ]
    }
    assert_error(client.post("/v2/models/sentiment/infer", json=big), 413, "bytes")
    # the predict path's own limits (AIWEB_SERVING__MAX_INPUTS)
    many = ["good"] * (models.serving.max_inputs + 1)
    body = {"inputs": [{"name": "text", "shape": [len(many)], "datatype": "BYTES", "data": many}]}
    assert_error(client.post("/v2/models/sentiment/infer", json=body), 413, "MAX_INPUTS")


@pytest.mark.parametrize(
    "content_type", ["", "application/x-www-form-urlencoded", "application/octet-stream"]
)
def test_body_is_json_whatever_its_type(client: TestClient, content_type: str) -> None:
    """tritonclient sends its JSON with no Content-Type, curl -d as a form: the
    protocol's bodies are JSON."""
    import orjson

    resp = client.post(
        "/v2/models/sentiment/infer",
        content=orjson.dumps(SPEC_INFER),
        headers={"Content-Type": content_type},
    )
    assert resp.status_code == 200, resp.text


def test_keys_and_scopes(client: TestClient, models: Settings) -> None:
    train_key = create_key(models, ("train",), name="trainer")
    predict_key = create_key(models, ("predict",), name="predictor")
    none = {"Authorization": ""}
    # no key: 401 on GET (the route's dependency) and POST (the pre-auth middleware)
    assert_error(client.get("/v2/models/sentiment", headers=none), 401, "API key")
    assert_error(client.post("/v2/models/sentiment/infer", json=SPEC_INFER, headers=none), 401)
    bad = {"Authorization": "Bearer nope"}
    assert_error(client.post("/v2/models/sentiment/infer", json=SPEC_INFER, headers=bad), 401)
    # wrong scope: 403
    wrong = {"X-API-Key": train_key, "Authorization": ""}
    assert_error(client.get("/v2/models/sentiment/ready", headers=wrong), 403, "predict")
    assert_error(client.post("/v2/models/sentiment/infer", json=SPEC_INFER, headers=wrong), 403)
    # the predict scope, as X-API-Key or Bearer
    for headers in (
        {"X-API-Key": predict_key, "Authorization": ""},
        {"Authorization": f"Bearer {predict_key}"},
    ):
        resp = client.post("/v2/models/sentiment/infer", json=SPEC_INFER, headers=headers)
        assert resp.status_code == 200, resp.text


def test_rate_limit_is_the_predict_budget(models: Settings) -> None:
    settings = models.model_copy(
        update={
            "rate_limit": models.rate_limit.model_copy(
                update={"enabled": True, "predict": "2/minute"}
            )
        }
    )
    key = create_key(settings, ("predict",), name="limited")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        for _ in range(2):
            assert c.post("/v2/models/sentiment/infer", json=SPEC_INFER).status_code == 200
        resp = c.post("/v2/models/sentiment/infer", json=SPEC_INFER)
        assert_error(resp, 429)
        assert "retry-after" in resp.headers
        assert_error(c.get("/v2/models/sentiment"), 429)


def test_infer_is_logged_like_predict(client: TestClient, models: Settings) -> None:
    """Each /v2 prediction id is a logged prediction: feedback on it is accepted."""
    out = client.post("/v2/models/sentiment/infer", json=SPEC_INFER | {"outputs": [{"name": "id"}]})
    [pid] = out.json()["outputs"][0]["data"][:1]
    resp = client.post(f"/v1/predictions/{pid}/feedback", json={"label": "positive"})
    assert resp.status_code in (200, 201, 202, 204), resp.text


def test_openapi_documents_the_error_shape(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["x-required-scope"] == "predict"
    for status in ("400", "401", "403", "404", "413", "429"):
        content = infer["responses"][status]["content"]
        assert content == {
            "application/json": {"schema": {"$ref": "#/components/schemas/OipError"}}
        }
    assert "/v2/health/live" in doc["paths"]


# -- the real client, against a live server -------------------------------------------------
#: tritonclient.http as a KServe/Triton user runs it, in a process of its own: it loads
#: gevent (through geventhttpclient), which must not share a process with grpc's and
#: the other tests' threads (a later gRPC test there crashed the pytest worker)
TRITON_HTTP_SCRIPT = """
import json, os, sys
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, key, texts = sys.argv[1], os.environ["AIWEB_KEY"], json.loads(sys.argv[2])
headers = {"Authorization": f"Bearer {key}"}
client = httpclient.InferenceServerClient(url=url)
out = {
    "live": client.is_server_live(headers=headers),
    "ready": client.is_server_ready(headers=headers),
    "model_ready": client.is_model_ready("sentiment", headers=headers),
    "version_ready": client.is_model_ready("sentiment", "2", headers=headers),
    "input": client.get_model_metadata("sentiment", headers=headers)["inputs"][0],
    "server": client.get_server_metadata(headers=headers)["name"],
}
text = httpclient.InferInput("text", [len(texts)], "BYTES")
text.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=False)
outputs = [
    httpclient.InferRequestedOutput("label", binary_data=False),
    httpclient.InferRequestedOutput("probabilities", binary_data=False),
]
result = client.infer("sentiment", [text], outputs=outputs, request_id="r-1", headers=headers)
proba = result.as_numpy("probabilities")
out["id"] = result.get_response()["id"]
out["labels"] = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
out["dtype"], out["proba"] = str(proba.dtype), proba.tolist()
for name, call in (
    ("unknown", lambda: client.get_model_metadata("nope", headers=headers)),
    ("no_key", lambda: client.infer("sentiment", [text])),
):
    try:
        call()
        out[name] = None
    except InferenceServerException as exc:
        out[name] = str(exc)
client.close()
print(json.dumps(out))
"""


@pytest.mark.e2e
def test_tritonclient_http(models: Settings, admin_key: str) -> None:
    """``tritonclient.http`` as a KServe/Triton user runs it: same labels and scores as
    ``/v1/models/{name}/predict``."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with live_server(models, "oip-live") as port:
        run = subprocess.run(
            [sys.executable, "-c", TRITON_HTTP_SCRIPT, f"127.0.0.1:{port}", json.dumps(TEXTS)],
            env={**os.environ, "AIWEB_KEY": admin_key},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout)
        v1 = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/sentiment/predict",
            json={"inputs": TEXTS},
            headers=headers,
        ).json()
    for check in ("live", "ready", "model_ready", "version_ready"):
        assert got[check] is True, check
    assert got["input"] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
    assert got["server"] == "aiweb"
    assert got["id"] == "r-1"
    assert got["labels"] == [p["label"] for p in v1["predictions"]]
    assert got["dtype"] == "float32"
    proba = np.array(got["proba"], dtype=np.float32)
    assert proba.shape == (2, 2)
    expected = np.array(
        [[p["scores"][c] for c in LABELS] for p in v1["predictions"]], dtype=np.float32
    )
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert "nope" in (got["unknown"] or "")  # None: no error was raised
    assert "API key" in (got["no_key"] or "")
