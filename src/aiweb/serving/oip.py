"""The Open Inference Protocol (KServe v2) without a transport: tensors, model metadata,
and the pure functions that turn an infer request into a task's call and its answer into
an infer response.

The REST routes (:mod:`aiweb.api.oip`) are thin on top of this module, and a gRPC server
(``inference.GRPCInferenceService``) can reuse it as it is: it parses its protobuf into
the same :class:`Tensor` objects and hands them to the same :class:`TensorAdapter`.

A task whose models take tensor-shaped inputs gives a :class:`TensorAdapter` (its
``TaskRuntime.v2``): the metadata of a model version (inputs and outputs with datatype
and shape), whether it is ready, and ``infer``: the input tensors (already checked
against the metadata by :func:`check_inputs`) to the task's predict call, and its answer
to output tensors.

Errors are :class:`OipError` (status 400, or 404 for an unknown model); the transport
answers them in the protocol's shape, ``{"error": "…"}`` over REST.

Spec: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DATATYPES",
    "ERROR_SCHEMA",
    "InferRequest",
    "OipError",
    "Tensor",
    "TensorAdapter",
    "TensorAnswer",
    "TensorModel",
    "TensorSpec",
    "check_inputs",
    "infer_response",
    "is_oip_path",
    "metadata_response",
    "parse_infer_request",
]

#: The protocol's tensor datatypes.
DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    }
)

#: The OpenAPI schema of the protocol's error body (``components.schemas.OipError``).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "OipError",
    "description": "An Open Inference Protocol error.",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def is_oip_path(path: str) -> bool:
    """Whether a request path is the protocol's (``/v2``, ``/v2/…``): its errors are
    ``{"error": "…"}``, not problem details."""
    return path == "/v2" or path.startswith("/v2/")


_INTEGERS = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
_FLOATS = frozenset({"FP16", "FP32", "FP64"})


class OipError(Exception):
    """A request the protocol refuses: ``{"error": detail}`` with ``status``.

    Attributes:
        status: the HTTP status (400 bad request, 404 unknown model).
        detail: what is wrong, for the ``error`` member.
    """

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model, as the metadata lists it.

    Attributes:
        name: the tensor's name (``text``, ``label``, ``probabilities``).
        datatype: one of :data:`DATATYPES`.
        shape: the dimensions; ``-1`` is a variable one (the batch).
        parameters: extra facts (the class names of a probability output).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{"name", "datatype", "shape"[, "parameters"]}``, as the metadata answers it."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype}
        out["shape"] = list(self.shape)
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True)
class TensorModel:
    """The metadata of one model version (``GET /v2/models/{name}``).

    Attributes:
        name: the model's name.
        version: the version number the reference resolved to.
        platform: what serves it (``aiweb_text-classification``).
        inputs: its inputs.
        outputs: its outputs.
    """

    name: str
    version: int
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Tensor:
    """One tensor of a request or an answer.

    Attributes:
        name: its name.
        datatype: one of :data:`DATATYPES`.
        shape: its dimensions (no ``-1``).
        data: its elements, flat in row-major order (``str`` for ``BYTES``).
        parameters: its parameters.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorAnswer:
    """What a :class:`TensorAdapter` answered for one infer request.

    Attributes:
        model: the model's name.
        version: the version that answered.
        outputs: every output tensor, in the metadata's order.
    """

    model: str
    version: int
    outputs: tuple[Tensor, ...]


class TensorAdapter(Protocol):
    """A task's models over the Open Inference Protocol (``TaskRuntime.v2``)."""

    async def metadata(self, ref: str) -> TensorModel:
        """The metadata of the version ``ref`` names (``name``, ``name@alias``,
        ``name:3``).

        Raises:
            AiwebError: unknown model, alias or version (404) …
        """
        ...

    async def ready(self, ref: str) -> bool:
        """Whether the version ``ref`` names is loaded and can answer now (loading it
        if needed).

        Raises:
            AiwebError: unknown model, alias or version (404).
        """
        ...

    async def infer(self, ref: str, inputs: Mapping[str, Tensor]) -> TensorAnswer:
        """Answer ``inputs`` (by name, checked against :meth:`metadata` by
        :func:`check_inputs`) through the task's predict path (same micro-batching,
        prediction log and limits as ``/v1``).

        Raises:
            AiwebError: a problem (404, 413, 422, 503 …).
        """
        ...


# -- metadata ------------------------------------------------------------------------------


def metadata_response(model: TensorModel, versions: Sequence[int]) -> dict[str, Any]:
    """The body of ``GET /v2/models/{name}[/versions/{v}]``: ``name``, ``versions``
    (every registered version, as strings), ``platform``, ``inputs``, ``outputs``."""
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": model.platform,
        "inputs": [spec.as_dict() for spec in model.inputs],
        "outputs": [spec.as_dict() for spec in model.outputs],
    }


# -- infer request -------------------------------------------------------------------------


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request.

    Attributes:
        id: the request's ``id``, echoed in the response (``None`` when absent).
        inputs: the input tensors, in the request's order.
        outputs: the names of the outputs asked for (``None``: all of them).
        parameters: the request's ``parameters``.
    """

    id: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[str, ...] | None
    parameters: Mapping[str, Any]


def _flatten(data: Any, into: list[Any]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, into)
    else:
        into.append(data)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OipError(f"{where}parameters must be an object")
    return value


def _element_ok(datatype: str, value: Any) -> bool:
    if datatype == "BYTES":
        return isinstance(value, str)
    if datatype == "BOOL":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if datatype in _INTEGERS:
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def _tensor(raw: Any, i: int) -> Tensor:
    where = f"inputs[{i}]"
    if not isinstance(raw, dict):
        raise OipError(f"{where} must be an object with name, shape, datatype and data")
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str) or not name:
        raise OipError(f"{where}.name must be a non-empty string")
    where = f"input {name!r}"
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise OipError(f"{where}: datatype must be one of {', '.join(sorted(DATATYPES))}")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise OipError(f"{where}: shape must be a non-empty list of non-negative integers")
    if "data" not in raw:
        raise OipError(f"{where}: data is missing (only JSON tensor data is accepted)")
    params = _parameters(raw.get("parameters"), f"{where}: ")
    if "binary_data_size" in params:
        raise OipError(f"{where}: binary tensor data is not supported; send JSON data")
    flat: list[Any] = []
    _flatten(raw["data"], flat)
    expected = math.prod(shape)
    if len(flat) != expected:
        raise OipError(f"{where}: shape {shape} holds {expected} elements, data has {len(flat)}")
    for value in flat:
        if not _element_ok(datatype, value):
            raise OipError(f"{where}: element {value!r} is not of datatype {datatype}")
    return Tensor(name, datatype, tuple(shape), flat, params)


def parse_infer_request(body: Any) -> InferRequest:
    """Parse the JSON body of ``POST /v2/models/{name}/infer``.

    ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?,
    "data"}], "outputs"?: [{"name", "parameters"?}]}``; ``data`` may be flat or nested
    (row-major).

    Raises:
        OipError: 400, naming what is malformed.
    """
    if not isinstance(body, dict):
        raise OipError("the request body must be a JSON object with inputs")
    rid = body.get("id")
    if rid is not None and not isinstance(rid, str):
        raise OipError("id must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise OipError("inputs must be a non-empty list of tensors")
    tensors = tuple(_tensor(raw, i) for i, raw in enumerate(inputs))
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise OipError("inputs name the same tensor twice")
    outputs: tuple[str, ...] | None = None
    raw_outputs = body.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise OipError("outputs must be a list of {name}")
        wanted: list[str] = []
        for i, out in enumerate(raw_outputs):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise OipError(f"outputs[{i}] must be an object with a name")
            _parameters(out.get("parameters"), f"outputs[{i}].")
            wanted.append(out["name"])
        outputs = tuple(dict.fromkeys(wanted))
    return InferRequest(rid, tensors, outputs, _parameters(body.get("parameters"), ""))


def check_inputs(model: TensorModel, request: InferRequest) -> dict[str, Tensor]:
    """The request's inputs by name, checked against the model's metadata: every input
    given once, with its datatype and a shape that fits its own (``-1`` is any size), and
    every output asked for known.

    Raises:
        OipError: 400, naming the input or output.
    """
    specs = {spec.name: spec for spec in model.inputs}
    given = {t.name: t for t in request.inputs}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise OipError(
            f"unknown input {unknown[0]!r}; model {model.name!r} takes {', '.join(specs)}"
        )
    for name, spec in specs.items():
        tensor = given.get(name)
        if tensor is None:
            raise OipError(f"input {name!r} is missing")
        if tensor.datatype != spec.datatype:
            raise OipError(
                f"input {name!r} has datatype {tensor.datatype}; the model takes {spec.datatype}"
            )
        if len(tensor.shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, tensor.shape, strict=True)
        ):
            raise OipError(
                f"input {name!r} has shape {list(tensor.shape)}; the model takes "
                f"{list(spec.shape)} (-1: any size)"
            )
    if request.outputs is not None:
        known = [spec.name for spec in model.outputs]
        for name in request.outputs:
            if name not in known:
                raise OipError(
                    f"unknown output {name!r}; model {model.name!r} gives {', '.join(known)}"
                )
    return given


def infer_response(request: InferRequest, answer: TensorAnswer) -> dict[str, Any]:
    """The body of the infer response: ``model_name``, ``model_version``, ``id`` (the
    request's, when it had one), ``outputs`` (those asked for, else all):
    ``{"name", "datatype", "shape", "data"[, "parameters"]}`` with flat data."""
    wanted = request.outputs
    outputs = [
        t for t in answer.outputs if wanted is None or t.name in wanted
    ]  # the answer's order
    body: dict[str, Any] = {
        "model_name": answer.model,
        "model_version": str(answer.version),
    }
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = [
        {
            "name": t.name,
            "datatype": t.datatype,
            "shape": list(t.shape),
            "data": t.data,
            **({"parameters": dict(t.parameters)} if t.parameters else {}),
        }
        for t in outputs
    ]
    return body
