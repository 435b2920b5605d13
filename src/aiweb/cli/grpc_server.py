"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

``aiweb serve --grpc-port 8001`` (or ``AIWEB_GRPC__PORT``) runs a ``grpc.aio`` server in
the event loop of the app (started after the app's lifespan has loaded the models,
stopped before it closes them), on the same host as HTTP. It reuses the REST side's
:class:`~aiweb.api.oip.OipService` (so the same task adapters, micro-batching,
prediction log and limits) and the same key check, scopes and rate limits
(:func:`aiweb.security.auth.authorize`).

RPCs (the proto is ``aiweb/serving/oip_grpc/grpc_predict_v2.proto``, KServe's):

- ``ServerLive``, ``ServerReady``, ``ServerMetadata``: open, as ``/v2/health/*``.
- ``ModelReady``, ``ModelMetadata``, ``ModelInfer``: scope ``predict``; the key is sent as
  metadata ``authorization: Bearer <key>`` or ``x-api-key: <key>``. ``name`` is a model
  name or reference (``sentiment@staging``); ``version`` a version number.
- ``ModelInfer``: input tensors as the typed ``contents`` fields, or
  ``raw_input_contents`` (what ``tritonclient.grpc`` sends: ``BYTES`` as 4-byte
  little-endian lengths and bytes, numbers little-endian). Outputs come the same way:
  typed ``contents`` for a typed request, ``raw_output_contents`` for a raw one (as
  Triton answers; ``tritonclient.grpc`` reads numbers only from there). An output's
  ``parameters`` that are not a bool, int or string (the ``classes`` of
  ``probabilities``) are JSON-encoded string parameters.

Errors are gRPC status codes with the REST error's text: ``INVALID_ARGUMENT`` (400, 413,
422), ``UNAUTHENTICATED`` (401), ``PERMISSION_DENIED`` (403), ``NOT_FOUND`` (404),
``FAILED_PRECONDITION`` (409), ``RESOURCE_EXHAUSTED`` (429), ``UNAVAILABLE`` (503),
``INTERNAL`` otherwise.

Also served: gRPC health checking (``grpc.health.v1.Health``; ``""`` and
``inference.GRPCInferenceService`` are ``SERVING`` once the models are loaded) and
server reflection (``grpc.reflection.v1alpha``). TLS when ``AIWEB_GRPC__TLS_CERT_FILE``
and ``AIWEB_GRPC__TLS_KEY_FILE`` are set.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import orjson
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiweb import __version__
from aiweb.errors import AiwebError
from aiweb.security.auth import authorize, request_token
from aiweb.serving.batching import BATCH_WAIT_S
from aiweb.serving.oip import OipError, infer_response, parse_infer_request
from aiweb.serving.oip_grpc import grpc_predict_v2_pb2 as pb

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aiweb.api.oip import OipService
    from aiweb.config import GrpcSettings

__all__ = ["SERVICE", "GrpcInferenceService", "attach", "start"]

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
"""The protocol's service name."""

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}

#: datatype → (``InferTensorContents`` field, ``struct`` format of one raw element)
_FIELDS: dict[str, tuple[str, str]] = {
    "BOOL": ("bool_contents", "?"),
    "INT8": ("int_contents", "b"),
    "INT16": ("int_contents", "h"),
    "INT32": ("int_contents", "i"),
    "INT64": ("int64_contents", "q"),
    "UINT8": ("uint_contents", "B"),
    "UINT16": ("uint_contents", "H"),
    "UINT32": ("uint_contents", "I"),
    "UINT64": ("uint64_contents", "Q"),
    "FP16": ("", "e"),  # raw only (the proto has no 16-bit field)
    "FP32": ("fp32_contents", "f"),
    "FP64": ("fp64_contents", "d"),
    "BYTES": ("bytes_contents", ""),
}


def _peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` → ``127.0.0.1``; ``ipv6:[::1]:5000`` → ``::1``."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or "unknown"
    if kind == "ipv4":
        return rest.rpartition(":")[0] or "unknown"
    return rest or "unknown"


def _decode_bytes(raw: bytes, where: str) -> list[str]:
    out: list[str] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise OipError(f"{where}: raw BYTES content is truncated")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise OipError(f"{where}: raw BYTES content is truncated")
        out.append(_text(raw[at : at + size], where))
        at += size
    return out


def _text(value: bytes, where: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise OipError(f"{where}: BYTES elements must be UTF-8 text") from None


def _raw_data(datatype: str, raw: bytes, where: str) -> list[Any]:
    if datatype == "BYTES":
        return _decode_bytes(raw, where)
    fmt = _FIELDS[datatype][1]
    size = struct.calcsize(fmt)
    if len(raw) % size:
        raise OipError(f"{where}: raw content of {len(raw)} bytes is not {datatype} elements")
    values = list(struct.unpack(f"<{len(raw) // size}{fmt}", raw))
    if datatype in ("FP16", "FP32", "FP64"):
        return [float(v) for v in values]
    return values


def _parameter(value: pb.InferParameter) -> Any:
    choice = value.WhichOneof("parameter_choice")
    return None if choice is None else getattr(value, choice)


def _parameters(values: Any) -> dict[str, Any]:
    return {key: _parameter(value) for key, value in values.items()}


def _set_parameters(target: Any, values: Any) -> None:
    for key, value in values.items():
        param = target[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:  # lists and objects (the class names): JSON text
            param.string_param = orjson.dumps(value).decode()


def request_body(message: pb.ModelInferRequest) -> dict[str, Any]:
    """The JSON body of the REST infer request that ``message`` means (for
    :func:`~aiweb.serving.oip.parse_infer_request`, which checks it).

    Raises:
        OipError: raw contents that do not match the inputs, or undecodable (400).
    """
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise OipError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(message.inputs):
        where = f"input {tensor.name!r}"
        datatype = tensor.datatype
        if datatype not in _FIELDS:
            data: list[Any] = []  # parse_infer_request names the bad datatype
        elif raw:
            if tensor.HasField("contents"):
                raise OipError(f"{where}: give contents or raw_input_contents, not both")
            data = _raw_data(datatype, raw[i], where)
        elif datatype == "FP16":
            raise OipError(f"{where}: FP16 tensors are sent as raw_input_contents")
        else:
            values = list(getattr(tensor.contents, _FIELDS[datatype][0]))
            data = [_text(v, where) for v in values] if datatype == "BYTES" else values
        inputs.append(
            {
                "name": tensor.name,
                "datatype": datatype,
                "shape": list(tensor.shape),
                "parameters": _parameters(tensor.parameters),
                "data": data,
            }
        )
    body: dict[str, Any] = {"inputs": inputs, "parameters": _parameters(message.parameters)}
    if message.id:
        body["id"] = message.id
    if message.outputs:
        body["outputs"] = [
            {"name": out.name, "parameters": _parameters(out.parameters)} for out in message.outputs
        ]
    return body


def _raw(datatype: str, data: list[Any]) -> bytes:
    if datatype == "BYTES":
        parts = [v.encode() if isinstance(v, str) else bytes(v) for v in data]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    return struct.pack(f"<{len(data)}{_FIELDS[datatype][1]}", *data)


def infer_message(body: dict[str, Any], *, raw: bool = False) -> pb.ModelInferResponse:
    """The ``ModelInferResponse`` of the REST infer response ``body``
    (:func:`~aiweb.serving.oip.infer_response`).

    Args:
        body: the REST response.
        raw: answer every output as ``raw_output_contents`` (little-endian; ``BYTES`` as
            4-byte lengths and bytes), as Triton does when the request sent raw inputs
            (``tritonclient.grpc`` reads numbers only from there); else typed ``contents``
            (``FP16``, which has no typed field, is raw in both cases).
    """
    out = pb.ModelInferResponse(
        model_name=body["model_name"], model_version=body["model_version"], id=body.get("id", "")
    )
    raw = raw or any(t["datatype"] == "FP16" for t in body["outputs"])
    for tensor in body["outputs"]:
        datatype, data = tensor["datatype"], tensor["data"]
        message = out.outputs.add(name=tensor["name"], datatype=datatype, shape=tensor["shape"])
        _set_parameters(message.parameters, tensor.get("parameters", {}))
        if raw:
            out.raw_output_contents.append(_raw(datatype, data))
        elif datatype == "BYTES":
            message.contents.bytes_contents.extend(
                v.encode() if isinstance(v, str) else bytes(v) for v in data
            )
        else:
            getattr(message.contents, _FIELDS[datatype][0]).extend(data)
    return out


class GrpcInferenceService:
    """The RPCs of ``inference.GRPCInferenceService`` on the app's state.

    Args:
        state: ``app.state`` once the lifespan has started (``oip``, ``readiness``,
            ``settings``, ``keys``, ``rate_limiter``).
        batch_wait_ms: how long a micro-batch holding a ``ModelInfer`` call waits for
            more (``GrpcSettings.batch_wait_ms``).
    """

    def __init__(self, state: Any, batch_wait_ms: float = 2.0) -> None:
        self.state = state
        self.batch_wait_s = batch_wait_ms / 1000.0

    @property
    def oip(self) -> OipService:
        service: OipService = self.state.oip
        return service

    async def _authorize(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        authorization = metadata.get("authorization")
        x_api_key = metadata.get("x-api-key")
        token = request_token(
            authorization if isinstance(authorization, str) else None,
            x_api_key if isinstance(x_api_key, str) else None,
        )
        await authorize(self.state, _peer_host(context.peer()), token, "predict")

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        """Always live while the server answers."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        """Ready as ``/readyz``: every production model loaded."""
        return pb.ServerReadyResponse(ready=bool(self.state.readiness()["ready"]))

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        """``name`` aiweb, its ``version``, no extensions."""
        return pb.ServerMetadataResponse(name="aiweb", version=__version__, extensions=[])

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelReadyResponse:
        """Whether the model's version is loaded (scope ``predict``)."""
        await self._authorize(context)
        ref = self.oip.ref(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=await self.oip.ready(ref))

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelMetadataResponse:
        """The model's metadata as ``GET /v2/models/{name}`` (scope ``predict``)."""
        await self._authorize(context)
        body = await self.oip.metadata(self.oip.ref(request.name, request.version or None))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=body["name"],
            versions=body["versions"],
            platform=body["platform"],
            inputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in body["inputs"]
            ],
            outputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in body["outputs"]
            ],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        """Inference as ``POST /v2/models/{name}/infer`` (scope ``predict``, its rate
        limit, micro-batching and prediction log). Its micro-batch waits up to
        ``AIWEB_GRPC__BATCH_WAIT_MS`` for more calls under load
        (:data:`aiweb.serving.batching.BATCH_WAIT_S`)."""
        await self._authorize(context)
        ref = self.oip.ref(request.model_name, request.model_version or None)
        adapter = await self.oip.adapter(ref)  # an unknown model is NOT_FOUND first
        parsed = parse_infer_request(request_body(request))
        # calls reach the micro-batcher one at a time: let their batches wait for more
        wait = BATCH_WAIT_S.set(self.batch_wait_s)
        try:
            answer = await self.oip.run(ref, parsed, adapter)
        finally:
            BATCH_WAIT_S.reset(wait)
        raw = bool(request.raw_input_contents)
        return infer_message(infer_response(parsed, answer), raw=raw)


def _handler(
    method: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(request, context)
        except OipError as exc:
            await context.abort(
                _CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), exc.detail
            )
        except AiwebError as exc:
            code = _CODES.get(exc.status, grpc.StatusCode.INTERNAL)
            trailing = tuple(
                (key.lower(), value)
                for key, value in exc.headers.items()
                if key.lower() == "retry-after" or key.lower().startswith("ratelimit")
            )
            await context.abort(code, exc.detail, trailing_metadata=trailing)

    return call


_REQUESTS: dict[str, tuple[type[Message], type[Message]]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


def generic_handler(service: GrpcInferenceService) -> grpc.GenericRpcHandler:
    """The handlers of :data:`SERVICE`'s RPCs on ``service`` (no generated stubs)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _handler(getattr(service, name)),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in _REQUESTS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start(state: Any, host: str, settings: GrpcSettings) -> grpc.aio.Server:
    """Start the gRPC server on ``host:settings.port`` in the running event loop.

    With ``--workers N`` every worker calls this on the same port: gRPC binds with
    ``SO_REUSEPORT`` (its default on Linux), and the kernel spreads the connections.

    Raises:
        RuntimeError: the port cannot be bound.
        OSError: a TLS file cannot be read.
    """
    assert settings.port is not None
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1),
    ]
    server = grpc.aio.server(options=options)
    service = GrpcInferenceService(state, settings.batch_wait_ms)
    server.add_generic_rpc_handlers((generic_handler(service),))
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server, pb.POOL
    )
    address = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
    if settings.tls_cert_file and settings.tls_key_file:
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())]
        )
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    await server.start()
    for name in ("", SERVICE):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC (Open Inference Protocol) serving on %s", address)
    return server


def attach(app: FastAPI, host: str, settings: GrpcSettings) -> FastAPI:
    """Run the gRPC server with ``app``: started when its lifespan has loaded the models,
    stopped (with a grace of ``settings.grace_s``) before the lifespan closes them.
    Nothing when ``settings.port`` is ``None``. Returns ``app``."""
    if settings.port is None:
        return app
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            server = await start(application.state, host, settings)
            try:
                yield state
            finally:
                await server.stop(settings.grace_s)

    app.router.lifespan_context = lifespan
    return app
