"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``,
``aiweb serve --grpc-port``): the real ``tritonclient.grpc`` against a live server (same
labels and scores as ``/v1``, the same keys and scopes, the status codes), typed
``contents`` requests, health checking and reflection; and the protobuf conversions."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import LABELS, NEGATIVE_TEXT, POSITIVE_TEXT, free_port, live_server, register_versions

from aiweb.app import create_app
from aiweb.cli.grpc_server import SERVICE, attach, infer_message, request_body
from aiweb.cli.serve import _grpc_settings
from aiweb.config import GrpcSettings, Settings
from aiweb.errors import InvalidInputError
from aiweb.serving.oip import OipError, parse_infer_request
from aiweb.serving.oip_grpc import grpc_predict_v2_pb2 as pb
from conftest import create_key

TEXTS = [POSITIVE_TEXT, NEGATIVE_TEXT]


# -- the protobuf conversions (no server) ---------------------------------------------------
def _raw_bytes(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_request_body_raw_and_typed_contents() -> None:
    raw = pb.ModelInferRequest(model_name="m", id="7")
    raw.inputs.add(name="text", datatype="BYTES", shape=[2])
    raw.raw_input_contents.append(_raw_bytes("héllo", ""))
    raw.outputs.add(name="label")
    body = request_body(raw)
    assert body["inputs"][0]["data"] == ["héllo", ""]
    assert body["id"] == "7"
    assert body["outputs"] == [{"name": "label", "parameters": {}}]
    parsed = parse_infer_request(body)
    assert parsed.inputs[0].shape == (2,)

    typed = pb.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    tensor.contents.fp32_contents.extend([0.5, 1.5])
    tensor.parameters["flag"].bool_param = True
    body = request_body(typed)
    assert body["inputs"][0]["data"] == [0.5, 1.5]
    assert body["inputs"][0]["parameters"] == {"flag": True}
    assert "id" not in body

    floats = pb.ModelInferRequest(model_name="m")
    floats.inputs.add(name="x", datatype="FP32", shape=[2])
    floats.raw_input_contents.append(struct.pack("<2f", 1.0, 2.0))
    assert request_body(floats)["inputs"][0]["data"] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x05\x00\x00\x00ab", "truncated"),
        (b"\x01\x00", "truncated"),
        (b"\x01\x00\x00\x00\xff", "UTF-8"),
    ],
)
def test_request_body_bad_raw_bytes(raw: bytes, message: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="text", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(raw)
    with pytest.raises(OipError, match=message):
        request_body(request)


def test_request_body_raw_count_and_odd_size() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP32", shape=[1])
    request.inputs.add(name="b", datatype="FP32", shape=[1])
    request.raw_input_contents.append(b"\x00\x00\x80\x3f")
    with pytest.raises(OipError, match="2 inputs"):
        request_body(request)
    request.raw_input_contents.append(b"\x00\x00\x80")
    with pytest.raises(OipError, match="not FP32"):
        request_body(request)


def test_infer_message_typed_contents_and_json_parameters() -> None:
    body = {
        "model_name": "sentiment",
        "model_version": "1",
        "id": "x",
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["positive"]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [1, 2],
                "data": [0.25, 0.75],
                "parameters": {"classes": LABELS},
            },
            {"name": "truncated", "datatype": "BOOL", "shape": [1], "data": [False]},
        ],
    }
    message = infer_message(body)
    assert (message.model_name, message.model_version, message.id) == ("sentiment", "1", "x")
    label, proba, flag = message.outputs
    assert list(label.contents.bytes_contents) == [b"positive"]
    assert list(proba.contents.fp32_contents) == [0.25, 0.75]
    assert list(proba.shape) == [1, 2]
    assert orjson.loads(proba.parameters["classes"].string_param) == LABELS
    assert list(flag.contents.bool_contents) == [False]
    assert not message.raw_output_contents


def test_serve_grpc_settings_checks(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    assert _grpc_settings(settings, "127.0.0.1", None).port is None
    assert _grpc_settings(settings, "127.0.0.1", port).port == port
    with pytest.raises(InvalidInputError, match="HTTP port"):
        _grpc_settings(settings, "127.0.0.1", settings.port)
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    half = settings.model_copy(update={"grpc": GrpcSettings(tls_cert_file=cert)})
    with pytest.raises(InvalidInputError, match="both"):
        _grpc_settings(half, "127.0.0.1", port)
    missing = settings.model_copy(
        update={"grpc": GrpcSettings(tls_cert_file=cert, tls_key_file=tmp_path / "nope.pem")}
    )
    with pytest.raises(InvalidInputError, match="cannot read"):
        _grpc_settings(missing, "127.0.0.1", port)


# -- a live server --------------------------------------------------------------------------
@pytest.fixture
def models(settings: Settings, tiny_model_bytes: bytes) -> Settings:
    """``sentiment`` versions 1 (production) and 2."""
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    return settings


@pytest.fixture
def servers(models: Settings) -> Iterator[tuple[int, int]]:
    """``(http port, grpc port)`` of one live app serving both."""
    grpc_port = free_port()
    app = attach(create_app(models), "127.0.0.1", GrpcSettings(port=grpc_port))
    with live_server(models, "oip-grpc-live", app) as port:
        yield port, grpc_port


@pytest.mark.e2e
def test_tritonclient_grpc(models: Settings, admin_key: str, servers: tuple[int, int]) -> None:
    """``tritonclient.grpc`` as a KServe/Triton user runs it: same labels and scores as
    ``/v1/models/{name}/predict``; the status codes of the errors."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    http_port, grpc_port = servers
    headers = {"authorization": f"Bearer {admin_key}"}
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_server_metadata().name == "aiweb"
        assert client.is_model_ready("sentiment", headers=headers)
        assert client.is_model_ready("sentiment", "2", headers=headers)
        meta = client.get_model_metadata("sentiment", headers=headers)
        assert (meta.name, meta.platform) == ("sentiment", meta.platform)
        assert list(meta.versions) == ["1", "2"]
        assert (meta.inputs[0].name, meta.inputs[0].datatype) == ("text", "BYTES")
        assert list(meta.inputs[0].shape) == [-1]

        text = grpcclient.InferInput("text", [len(TEXTS)], "BYTES")
        text.set_data_from_numpy(np.array(TEXTS, dtype=np.object_))
        outputs = [
            grpcclient.InferRequestedOutput("label"),
            grpcclient.InferRequestedOutput("probabilities"),
        ]
        result = client.infer(
            "sentiment", [text], outputs=outputs, request_id="r-1", headers=headers
        )
        response = result.get_response()
        assert response.id == "r-1"
        assert [o.name for o in response.outputs] == ["label", "probabilities"]
        labels = [v.decode() for v in result.as_numpy("label")]
        proba = result.as_numpy("probabilities")
        assert proba is not None
        assert proba.dtype == np.float32
        assert proba.shape == (2, 2)
        classes = result.get_output("probabilities").parameters["classes"].string_param
        assert orjson.loads(classes) == LABELS

        v1 = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/models/sentiment/predict",
            json={"inputs": TEXTS},
            headers=headers,
        ).json()
        assert labels == [p["label"] for p in v1["predictions"]]
        expected = np.array(
            [[p["scores"][c] for c in LABELS] for p in v1["predictions"]], dtype=np.float32
        )
        np.testing.assert_allclose(proba, expected, atol=1e-6)

        # the key as x-api-key, and a version
        again = client.infer(
            "sentiment", [text], model_version="2", headers={"x-api-key": admin_key}
        )
        assert again.get_response().model_version == "2"

        def status(call: object) -> str:
            with pytest.raises(InferenceServerException) as caught:
                call()  # type: ignore[operator]
            return str(caught.value.status())

        assert status(lambda: client.infer("sentiment", [text])) == "StatusCode.UNAUTHENTICATED"
        bad_key = {"authorization": "Bearer aiw_000000000000_" + "x" * 43}
        assert (
            status(lambda: client.infer("sentiment", [text], headers=bad_key))
            == "StatusCode.UNAUTHENTICATED"
        )
        train_only = {"x-api-key": create_key(models, ("train",), name="trainer")}
        assert (
            status(lambda: client.infer("sentiment", [text], headers=train_only))
            == "StatusCode.PERMISSION_DENIED"
        )
        assert (
            status(lambda: client.get_model_metadata("nope", headers=headers))
            == "StatusCode.NOT_FOUND"
        )
        assert (
            status(lambda: client.infer("nope", [text], headers=headers)) == "StatusCode.NOT_FOUND"
        )
        assert (
            status(lambda: client.infer("sentiment", [text], model_version="9", headers=headers))
            == "StatusCode.NOT_FOUND"
        )
        wide = grpcclient.InferInput("text", [1, 2], "BYTES")
        wide.set_data_from_numpy(np.array([TEXTS], dtype=np.object_))
        assert (
            status(lambda: client.infer("sentiment", [wide], headers=headers))
            == "StatusCode.INVALID_ARGUMENT"
        )
        numbers = grpcclient.InferInput("text", [2], "FP32")
        numbers.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
        assert (
            status(lambda: client.infer("sentiment", [numbers], headers=headers))
            == "StatusCode.INVALID_ARGUMENT"
        )
    finally:
        client.close()


@pytest.mark.e2e
def test_typed_contents_health_and_reflection(admin_key: str, servers: tuple[int, int]) -> None:
    """A request with typed ``contents`` (not raw), the health service ``SERVING``, and
    reflection listing the service."""
    _, grpc_port = servers
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        infer = channel.unary_unary(
            f"/{SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        request = pb.ModelInferRequest(model_name="sentiment", id="typed")
        tensor = request.inputs.add(name="text", datatype="BYTES", shape=[2])
        tensor.contents.bytes_contents.extend(t.encode() for t in TEXTS)
        answer = infer(request, metadata=(("authorization", f"Bearer {admin_key}"),), timeout=30)
        assert answer.id == "typed"
        by_name = {o.name: o for o in answer.outputs}
        assert {b.decode() for b in by_name["label"].contents.bytes_contents} <= set(LABELS)
        scores = list(by_name["probabilities"].contents.fp32_contents)
        assert len(scores) == 4
        assert abs(sum(scores[:2]) - 1) < 1e-5
        assert orjson.loads(by_name["probabilities"].parameters["classes"].string_param) == LABELS
        assert not answer.raw_output_contents

        with pytest.raises(grpc.RpcError) as empty:
            infer(
                pb.ModelInferRequest(model_name="sentiment"), metadata=(("x-api-key", admin_key),)
            )
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        checker = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            reply = checker.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflector = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            reflector.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
            )
        )
        names = {s.name for s in replies[0].list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health"} <= names
        files = list(
            reflector.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]),
                timeout=10,
            )
        )
        assert files[0].file_descriptor_response.file_descriptor_proto


def _batch_stats(http_port: int) -> tuple[float, float]:
    """``(texts, model calls)`` of ``sentiment`` so far (``aiweb_batch_size`` on /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    total = calls = 0.0
    for line in text.splitlines():
        if 'model="sentiment"' not in line:
            continue
        if line.startswith("aiweb_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("aiweb_batch_size_count"):
            calls += float(line.rsplit(" ", 1)[1])
    return total, calls


@pytest.mark.e2e
def _concurrent_calls(models: Settings, admin_key: str, served: GrpcSettings) -> int:
    """48 concurrent one-text ``ModelInfer`` calls (the prediction cache off, so each
    runs the model); checks each gets its own text's answer and returns how many model
    calls ran them (``aiweb_batch_size``)."""
    from concurrent.futures import ThreadPoolExecutor

    uncached = models.model_copy(
        update={"cache": models.cache.model_copy(update={"enabled": False})}
    )
    app = attach(create_app(uncached), "127.0.0.1", served)
    metadata = (("authorization", f"Bearer {admin_key}"),)
    with (
        live_server(uncached, "oip-grpc-batch", app) as http_port,
        grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        infer = channel.unary_unary(
            f"/{SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )

        def one(text: str) -> tuple[str, list[float]]:
            request = pb.ModelInferRequest(model_name="sentiment")
            request.inputs.add(name="text", datatype="BYTES", shape=[1])
            request.inputs[0].contents.bytes_contents.append(text.encode())
            answer = infer(request, metadata=metadata, timeout=60)
            out = {o.name: o for o in answer.outputs}
            label = out["label"].contents.bytes_contents[0].decode()
            return label, list(out["probabilities"].contents.fp32_contents)

        alone = {text: one(text) for text in TEXTS}
        texts = [TEXTS[i % 2] for i in range(48)]
        before = _batch_stats(http_port)
        with ThreadPoolExecutor(len(texts)) as pool:
            together = list(pool.map(one, texts))
        after = _batch_stats(http_port)
        for text, (label, scores) in zip(texts, together, strict=True):
            assert label == alone[text][0]
            assert scores == pytest.approx(alone[text][1], abs=1e-6)
        texts_run, calls = after[0] - before[0], after[1] - before[1]
        assert texts_run == len(texts)
        return int(calls)


def test_concurrent_calls_share_model_calls(models: Settings, admin_key: str) -> None:
    """gRPC calls go through the model's micro-batcher as ``/v1``'s do: 48 concurrent
    calls take fewer model calls than calls, each answered for its own text."""
    calls = _concurrent_calls(models, admin_key, GrpcSettings(port=free_port()))
    assert 1 <= calls < 48


def test_batch_wait_gathers_the_calls(models: Settings, admin_key: str) -> None:
    """``AIWEB_GRPC__BATCH_WAIT_MS`` reaches the micro-batcher: with a wait longer than
    48 calls take to arrive, the first runs alone and a batch waits for nearly all the
    others (grpc.aio hands them over one at a time; without the wait, batches stay
    small). The wait is the setting's most, 1 s; on a loaded CI machine the 48 threads'
    calls once took longer than that to arrive (9 model calls), so the bound is 16 model
    calls for 48 calls: three calls a batch on average at least."""
    served = GrpcSettings(port=free_port(), batch_wait_ms=1000)
    assert _concurrent_calls(models, admin_key, served) <= 16


def test_infer_message_raw() -> None:
    body = {
        "model_name": "m",
        "model_version": "1",
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", "bé"]},
            {"name": "p", "datatype": "FP32", "shape": [2], "data": [0.5, 0.25]},
        ],
    }
    message = infer_message(body, raw=True)
    assert message.raw_output_contents[0] == _raw_bytes("a", "bé")
    assert struct.unpack("<2f", message.raw_output_contents[1]) == (0.5, 0.25)
    assert not message.outputs[0].HasField("contents")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM), made with cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.e2e
def test_tls(models: Settings, admin_key: str, tmp_path: Path) -> None:
    """With a certificate and key the server speaks TLS only; tritonclient with the CA
    infers over it."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    cert, key = _self_signed(tmp_path)
    grpc_port = free_port()
    tls = GrpcSettings(port=grpc_port, tls_cert_file=cert, tls_key_file=key)
    app = attach(create_app(models), "127.0.0.1", tls)
    with live_server(models, "oip-grpc-tls", app):
        client = grpcclient.InferenceServerClient(
            f"127.0.0.1:{grpc_port}", ssl=True, root_certificates=str(cert)
        )
        try:
            assert client.is_server_live()
            text = grpcclient.InferInput("text", [1], "BYTES")
            text.set_data_from_numpy(np.array([POSITIVE_TEXT], dtype=np.object_))
            result = client.infer("sentiment", [text], headers={"x-api-key": admin_key})
            assert result.as_numpy("label")[0].decode() in LABELS
        finally:
            client.close()
        plain = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            with pytest.raises(InferenceServerException):
                plain.is_server_live(client_timeout=5)
        finally:
            plain.close()


@pytest.mark.e2e
def test_rate_limit(models: Settings) -> None:
    """The key's ``predict`` budget counts gRPC calls too: over it, RESOURCE_EXHAUSTED
    with ``retry-after``."""
    limited = models.model_copy(
        update={
            "rate_limit": models.rate_limit.model_copy(
                update={"enabled": True, "predict": "2/minute"}
            )
        }
    )
    key = create_key(limited, ("predict",), name="limited")
    grpc_port = free_port()
    app = attach(create_app(limited), "127.0.0.1", GrpcSettings(port=grpc_port))
    with (
        live_server(limited, "oip-grpc-limit", app),
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        ready = channel.unary_unary(
            f"/{SERVICE}/ModelReady",
            request_serializer=pb.ModelReadyRequest.SerializeToString,
            response_deserializer=pb.ModelReadyResponse.FromString,
        )
        metadata = (("x-api-key", key),)
        for _ in range(2):
            assert ready(pb.ModelReadyRequest(name="sentiment"), metadata=metadata).ready
        with pytest.raises(grpc.RpcError) as over:
            ready(pb.ModelReadyRequest(name="sentiment"), metadata=metadata)
        assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailing = dict(over.value.trailing_metadata() or ())
        assert int(trailing["retry-after"]) > 0
