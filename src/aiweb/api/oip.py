"""The Open Inference Protocol (KServe v2) over REST: ``/v2``.

Routes (the protocol's, kept exactly):

- ``GET /v2``: server metadata (``name``, ``version``, ``extensions``); open.
- ``GET /v2/health/live``, ``GET /v2/health/ready``: liveness and readiness (as
  ``/livez`` and ``/readyz``); open. Not ready: 503.
- ``GET /v2/models/{name}[/versions/{version}]``: a model's metadata: ``name``,
  ``versions``, ``platform``, ``inputs`` and ``outputs`` (``name``, ``datatype``,
  ``shape``, ``parameters``); scope ``predict``.
- ``GET /v2/models/{name}[/versions/{version}]/ready``: 200 when loaded, else 503;
  scope ``predict``.
- ``POST /v2/models/{name}[/versions/{version}]/infer``: inference on JSON tensors;
  scope ``predict``, the predict route's rate limit, micro-batching and prediction log.

``{name}`` is a model name, or a reference as ``/v1`` takes it (``sentiment@staging``,
``sentiment:3``); without a version or alias the ``production`` alias answers. Errors
are ``{"error": "…"}`` (``application/json``): 400 malformed request, datatype or shape,
or a model whose task is not served over ``/v2``; 401, 403, 429 as ``/v1``; 404 unknown
model or version; 413, 422 (limits); 503 (not loaded, queue full).

The protocol itself (parsing, checks, the response) is :mod:`aiweb.serving.oip`;
:class:`OipService` finds the task of a model and its adapter, and is what a gRPC
server calls too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from aiweb import __version__
from aiweb.api.health import ReadinessFn
from aiweb.errors import AiwebError
from aiweb.names import NAME_REGEX, REF_REGEX
from aiweb.registry.entities import ModelRef
from aiweb.registry.service import RegistryService
from aiweb.security.auth import scoped
from aiweb.serving.oip import (
    InferRequest,
    OipError,
    TensorAdapter,
    TensorAnswer,
    TensorModel,
    check_inputs,
    infer_response,
    metadata_response,
    parse_infer_request,
)

__all__ = ["OipService", "router"]


class OipService:
    """The protocol's operations on the installed tasks' models (transport-free).

    Args:
        registry: tells a model's task, its versions.
        adapters: ``{registry task: adapter}`` of the tasks whose models are served.
        metadata_ttl_s: how long the metadata of a reference is kept (the inputs of an
            infer request are checked against it); an alias moved in this process
            drops it at once.
    """

    def __init__(
        self,
        registry: RegistryService,
        adapters: Mapping[str, TensorAdapter],
        metadata_ttl_s: float = 1.0,
    ) -> None:
        self.registry = registry
        self.adapters = dict(adapters)
        self.metadata_ttl_s = metadata_ttl_s
        self._task_of: dict[str, str] = {}
        self._metadata: dict[str, tuple[float, TensorModel]] = {}
        registry.on_alias_moved(self._forget)

    async def _forget(self, name: str) -> None:
        self._task_of.pop(name, None)
        for ref in [r for r in self._metadata if ModelRef.parse(r).name == name]:
            self._metadata.pop(ref, None)

    @staticmethod
    def ref(name: str, version: str | None = None) -> str:
        """The model reference of a path's ``name`` and ``version``.

        Raises:
            OipError: a version that is not a positive integer, or given with a
                reference that already names an alias or version (400).
        """
        if version is None:
            return name
        if not version.isdigit() or not 0 < int(version) < 10**9:
            raise OipError(f"invalid version {version[:20]!r}: use a positive integer")
        if "@" in name or ":" in name:
            raise OipError(f"{name!r} names an alias or version already; drop /versions/")
        return f"{name}:{int(version)}"

    async def adapter(self, ref: str) -> TensorAdapter:
        """The adapter of the task of the model ``ref`` names.

        Raises:
            OipError: a malformed reference, or a model of a task not served over
                ``/v2`` (400).
            ModelNotFound: no such model (404).
        """
        try:
            name = ModelRef.parse(ref).name
        except (ValueError, AiwebError) as exc:
            raise OipError(str(exc)) from None
        task = self._task_of.get(name)
        if task is None:
            model = await anyio.to_thread.run_sync(self.registry.get_model, name)
            task = model.task
            self._task_of[name] = task
        adapter = self.adapters.get(task)
        if adapter is None:
            self._task_of.pop(name, None)
            served = ", ".join(sorted(self.adapters)) or "none"
            raise OipError(
                f"model {name!r} is a {task!r} model, which is not served over /v2 "
                f"(tasks that are: {served})"
            )
        return adapter

    async def model(self, ref: str) -> TensorModel:
        """The metadata of the version ``ref`` names (kept ``metadata_ttl_s``)."""
        kept = self._metadata.get(ref)
        now = time.monotonic()
        if kept is not None and now - kept[0] < self.metadata_ttl_s:
            return kept[1]
        model = await (await self.adapter(ref)).metadata(ref)
        if len(self._metadata) > 10_000:
            self._metadata.clear()
        self._metadata[ref] = (now, model)
        return model

    async def metadata(self, ref: str) -> dict[str, Any]:
        """The body of the model metadata answer (:func:`metadata_response`)."""
        model = await self.model(ref)
        versions = await anyio.to_thread.run_sync(self.registry.list_versions, model.name)
        return metadata_response(model, sorted(v.version for v in versions))

    async def ready(self, ref: str) -> bool:
        """Whether the version ``ref`` names is loaded and answers."""
        return await (await self.adapter(ref)).ready(ref)

    async def infer(self, ref: str, body: Any) -> dict[str, Any]:
        """Answer an infer request's JSON ``body`` with the model ``ref`` names.

        Raises:
            OipError: a malformed request, or tensors the model does not take (400).
            AiwebError: what the task's predict path raises (404, 413, 422, 503 …).
        """
        adapter = await self.adapter(ref)  # an unknown model is a 404 whatever the body
        request = parse_infer_request(body)
        return infer_response(request, await self.run(ref, request, adapter))

    async def run(
        self, ref: str, request: InferRequest, adapter: TensorAdapter | None = None
    ) -> TensorAnswer:
        """Answer a parsed infer request (what a gRPC server calls with the
        :class:`~aiweb.serving.oip.InferRequest` it built from its protobuf).

        Raises:
            OipError: tensors the model does not take (400), a model not served (400).
            AiwebError: what the task's predict path raises (404, 413, 422, 503 …).
        """
        adapter = adapter or await self.adapter(ref)
        inputs = check_inputs(await self.model(ref), request)
        return await adapter.infer(ref, inputs)


# -- the REST routes --------------------------------------------------------------------------

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

_ERROR = {"description": 'An error: `{"error": "…"}`.'}
_NAME = Path(
    description="A model name (`sentiment`), or a reference (`sentiment@staging`, `sentiment:3`).",
    max_length=80,
    pattern=REF_REGEX,
)
_PLAIN_NAME = Path(description="A model name (`sentiment`).", max_length=80, pattern=NAME_REGEX)
_VERSION = Path(description="A version number (`3`).", max_length=9, pattern=r"^[1-9][0-9]*$")

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BYTES", "FP32", "FP64", "INT64", "BOOL"]},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
                    "outputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "parameters": {"type": "object"},
                            },
                        },
                    },
                },
            },
            "example": {
                "id": "42",
                "inputs": [
                    {
                        "name": "text",
                        "shape": [2],
                        "datatype": "BYTES",
                        "data": ["a wonderful film", "a dull mess"],
                    }
                ],
                "outputs": [{"name": "label"}, {"name": "probabilities"}],
            },
        }
    },
}


def _scoped(**responses: Any) -> dict[str, Any]:
    kwargs = scoped("predict")
    kwargs["responses"] = {
        **kwargs["responses"],
        400: {"description": "Malformed request, or a model not served over /v2."},
        404: {"description": "Unknown model, alias or version."},
        **{int(k[1:]): v for k, v in responses.items()},
    }
    return kwargs


def _service(request: Request) -> OipService:
    service: OipService = request.app.state.oip
    return service


def _json(body: Any, response: Response | None = None, status: int = 200) -> Response:
    out = Response(orjson.dumps(body), status_code=status, media_type="application/json")
    if response is not None:
        out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
    return out


@router.get("")
async def server_metadata() -> dict[str, Any]:
    """Server metadata: ``name``, ``version``, ``extensions`` (none)."""
    return {"name": "aiweb", "version": __version__, "extensions": []}


@router.get("/health/live")
async def live() -> dict[str, bool]:
    """The server is up (as ``/livez``)."""
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "Not ready yet."}})
async def ready(request: Request) -> Any:
    """The server is ready: every model's ``production`` version is loaded (as
    ``/readyz``); 503 ``{"error"}`` until then."""
    readiness: ReadinessFn = request.app.state.readiness
    if readiness()["ready"]:
        return {"ready": True}
    return JSONResponse({"error": "not ready: production models are loading"}, 503)


async def _metadata(request: Request, response: Response, ref: str) -> Response:
    return _json(await _service(request).metadata(ref), response)


async def _model_ready(request: Request, response: Response, ref: str) -> Response:
    if await _service(request).ready(ref):
        return _json({"name": ModelRef.parse(ref).name, "ready": True}, response)
    return _json({"error": f"model {ref!r} is not loaded yet"}, response, 503)


async def _infer(request: Request, response: Response, ref: str) -> Response:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OipError("the request body is not JSON") from None
    return _json(await _service(request).infer(ref, body), response)


@router.get("/models/{name}", **_scoped())
async def model_metadata(
    name: Annotated[str, _NAME], request: Request, response: Response
) -> Response:
    """A model's metadata (its ``production`` version, or the alias or version named)."""
    return await _metadata(request, response, OipService.ref(name))


@router.get("/models/{name}/versions/{version}", **_scoped())
async def version_metadata(
    name: Annotated[str, _PLAIN_NAME],
    version: Annotated[str, _VERSION],
    request: Request,
    response: Response,
) -> Response:
    """The metadata of one version of a model."""
    return await _metadata(request, response, OipService.ref(name, version))


@router.get("/models/{name}/ready", **_scoped(_503={"description": "Not loaded yet."}))
async def model_ready(
    name: Annotated[str, _NAME], request: Request, response: Response
) -> Response:
    """200 ``{"name", "ready": true}`` when the model's version is loaded, else 503."""
    return await _model_ready(request, response, OipService.ref(name))


@router.get(
    "/models/{name}/versions/{version}/ready",
    **_scoped(_503={"description": "Not loaded yet."}),
)
async def version_ready(
    name: Annotated[str, _PLAIN_NAME],
    version: Annotated[str, _VERSION],
    request: Request,
    response: Response,
) -> Response:
    """200 ``{"name", "ready": true}`` when the version is loaded, else 503."""
    return await _model_ready(request, response, OipService.ref(name, version))


_INFER = _scoped(
    _413={"description": "Too many inputs, or a body over the size limit."},
    _422={"description": "A text over the length limit, or a body that is not JSON."},
    _503={"description": "The model's queue is full; retry after Retry-After."},
)
_INFER["openapi_extra"] = {**_INFER["openapi_extra"], "requestBody": _INFER_BODY}


@router.post("/models/{name}/infer", **_INFER)
async def infer(name: Annotated[str, _NAME], request: Request, response: Response) -> Response:
    """Inference: input tensors (JSON data) in, output tensors out; ``id`` is echoed,
    ``outputs`` selects outputs. The tensors a model takes and answers (names,
    datatypes, shapes) are in its metadata, ``GET /v2/models/{name}``; docs/oip.md
    lists them for every task."""
    return await _infer(request, response, OipService.ref(name))


@router.post("/models/{name}/versions/{version}/infer", **_INFER)
async def version_infer(
    name: Annotated[str, _PLAIN_NAME],
    version: Annotated[str, _VERSION],
    request: Request,
    response: Response,
) -> Response:
    """Inference with one version of a model (see ``/v2/models/{name}/infer``)."""
    return await _infer(request, response, OipService.ref(name, version))
