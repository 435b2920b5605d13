"""``POST /v1/models/{name}/predict`` and ``POST /v1/models/{name}/explain``: one route
each for the models of every task.

The route finds the task of the model its path names (the registry's ``task`` of the
registered model, kept in memory: a model's task never changes), validates the body
with that task's request model and hands both to the task's predictor (or explainer).
The OpenAPI schema lists each task's request and response as a variant (``anyOf``: the
model's task picks one, and two tasks' bodies may look alike).
Nothing on the predict path computes anything for explanations.

A task whose models take files (:class:`aiweb.contract.FileInput`: images) gets them as
the raw body (``Content-Type: image/jpeg`` …) or as a ``multipart/form-data`` field; any
other task answers such a body 415. A task that draws its answers
(:class:`aiweb.contract.Renderer`) answers ``Accept: image/png`` with the drawing.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

import anyio.to_thread
import orjson
from fastapi import APIRouter, Body, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from aiweb.api.limits import is_json, media_type_of
from aiweb.errors import InvalidInputError, UnsupportedMediaTypeError
from aiweb.names import REF_REGEX
from aiweb.registry.entities import ModelRef
from aiweb.registry.service import RegistryService
from aiweb.rollout.router import Compare, RolloutRouter
from aiweb.security.auth import scoped

#: the most characters of a user id (``user_id`` of a predict body, ``X-User-ID``)
MAX_USER_ID = 256

#: ``user_id``, added to every task's predict body by the route (not by the task)
USER_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_USER_ID,
    "description": "Who the predictions are for (also header `X-User-ID`): under a "
    "sticky rollout, the same user meets the same version for the whole rollout.",
}

#: the predict route's paths (for the input limits: the raw image bodies they take)
PREDICT_PATH = re.compile(r"/v1/models/[^/]+/predict")

#: ``predictor(ref, body) -> response``: a task's answer for one of its models
PredictFn = Callable[[str, Any], Awaitable[Mapping[str, Any]]]

#: ``render(ref, body, media_type) -> (content, answer)``: the answer drawn
RenderFn = Callable[[str, Any, str], Awaitable[tuple[bytes, Mapping[str, Any]]]]


@dataclass(frozen=True)
class FileBody:
    """How a task's models take a file as the body (:class:`aiweb.contract.FileInput`).

    Attributes:
        media_types: raw body types accepted.
        field: the multipart field holding the file.
        to_request: ``to_request(data, media_type) -> body`` for the predictor.
    """

    media_types: frozenset[str]
    field: str
    to_request: Callable[[bytes, str], Any]


@dataclass(frozen=True)
class Rendered:
    """An answer drawn: ``content`` in ``media_type``, drawing ``answer``."""

    content: bytes
    media_type: str
    answer: Mapping[str, Any]


@dataclass(frozen=True)
class ExplainTarget:
    """How one registry task's models explain their answers.

    Attributes:
        request: the body model; the explain route validates the body with it.
        response: the response model (documentation only, as for predictions).
        explain: the task's explainer, ``explainer(ref, body) -> response``.
    """

    request: type[BaseModel]
    response: type[BaseModel]
    explain: PredictFn


@dataclass(frozen=True)
class PredictTarget:
    """How one registry task's models predict (and explain).

    Attributes:
        request: the body model; the route validates the body with it.
        response: the response model (documentation only: predictors answer plain
            mappings, serialised with orjson without a validation pass).
        predict: the task's predictor.
        explain: how its models explain their answers, or ``None`` when they do not
            (the explain route answers 422).
        compare: whether two versions' answers agree (a rollout's agreement gate), or
            ``None`` when the task's answers are not compared.
        preload: loads the version a reference names ahead of its first request, or
            ``None`` (loaded on first use).
        file: how its models take a file as the body, or ``None`` (JSON only).
        renders: media types the answer can be drawn as (``Accept``), by ``render``.
        render: draws the answer, or ``None``.
    """

    request: type[BaseModel]
    response: type[BaseModel]
    predict: PredictFn
    explain: ExplainTarget | None = None
    compare: Compare | None = None
    preload: Callable[[str], Awaitable[None]] | None = None
    file: FileBody | None = None
    renders: tuple[str, ...] = ()
    render: RenderFn | None = None


class ModelRouter:
    """Routes a model reference to the predictor of its task.

    Args:
        registry: tells a model's task (read once per model name, then kept until
            the registry publishes a change of that model: deleted, its name may come
            back with another task).
        targets: ``{registry task: target}`` of the installed tasks that predict.
        use_instead: ``{registry task: routes}`` of the installed tasks whose models are
            used elsewhere (:attr:`aiweb.contract.Task.use_instead`), named in the 422.
    """

    def __init__(
        self,
        registry: RegistryService,
        targets: Mapping[str, PredictTarget],
        use_instead: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.targets = dict(targets)
        self.use_instead = dict(use_instead or {})
        self._task_of: dict[str, str] = {}
        registry.on_alias_moved(self._forget)  # a deleted model's name may come back

    async def _forget(self, name: str) -> None:
        self._task_of.pop(name, None)

    async def _task(self, ref: str) -> tuple[str, str]:
        """``(model name, its registry task)`` of ``ref``."""
        try:
            name = ModelRef.parse(ref).name
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        task = self._task_of.get(name)
        if task is None:
            model = await anyio.to_thread.run_sync(self.registry.get_model, name)
            task = model.task
            self._task_of[name] = task
        return name, task

    async def preload(self, ref: str) -> None:
        """Load the version ``ref`` names ahead of its first request, when its task
        preloads (a rollout's candidate; see :attr:`PredictTarget.preload`); nothing for
        a model whose task does not answer the predict route.

        Raises:
            ModelNotFound, ModelVersionNotFound, ModelNotReadyError …: as its predictor.
        """
        try:
            target = await self.target(ref)
        except InvalidInputError:
            return
        if target.preload is not None:
            await target.preload(ref)

    async def explain_target(self, ref: str) -> ExplainTarget:
        """How the model ``ref`` names explains its answers.

        Raises:
            InvalidInputError: a malformed reference, or a model of a task whose models
                are not explained (422, naming the tasks whose models are).
            ModelNotFound: no model of that name (404).
        """
        name, task = await self._task(ref)
        target = self.targets.get(task)
        if target is None or target.explain is None:
            self._task_of.pop(name, None)  # cheap to re-read; a task may be installed later
            explaining = sorted(t for t, v in self.targets.items() if v.explain is not None)
            raise InvalidInputError(
                f"model {name!r} is a {task!r} model, whose answers are not explained by "
                f"/v1/models/{{name}}/explain (tasks whose are: {', '.join(explaining) or 'none'})"
            )
        return target.explain

    async def target(self, ref: str) -> PredictTarget:
        """The target serving the model ``ref`` names.

        Raises:
            InvalidInputError: a malformed reference, or a model of a task whose models
                do not answer the predict route (422).
            ModelNotFound: no model of that name (404).
        """
        name, task = await self._task(ref)
        target = self.targets.get(task)
        if target is None:
            self._task_of.pop(name, None)  # cheap to re-read; a task may be installed later
            # Permanent (a model's task never changes): a 4xx, never a retryable 503.
            serving = ", ".join(sorted(self.targets)) or "none"
            instead = self.use_instead.get(task)
            use = f"; use {instead.replace('{name}', name)}" if instead else ""
            raise InvalidInputError(
                f"model {name!r} is a {task!r} model, which does not answer "
                f"/v1/models/{{name}}/predict (tasks that do: {serving}){use}"
            )
        return target


#: ``(request model, response model)`` of one task's predictions
Variant = tuple[type[BaseModel], type[BaseModel]]


def _request_schema(variants: Sequence[Variant], *, user_id: bool = False) -> dict[str, Any]:
    models = list(dict.fromkeys(request for request, _ in variants))
    schemas = [m.model_json_schema() for m in models]
    if user_id:
        for schema in schemas:
            schema.setdefault("properties", {})["user_id"] = USER_ID_SCHEMA
    # the model's task picks the variant, not the body's shape: two tasks' bodies may
    # look alike, so anyOf
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


#: the errors both model routes answer (besides the scope's 401/403/429)
_MODEL_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown model, alias or version."},
    413: {"description": "Too many inputs, or a body over the size limit."},
}


def predict_router(
    variants: Sequence[Variant],
    model_router: Callable[[Request], ModelRouter],
    explain_variants: Sequence[Variant] = (),
) -> APIRouter:
    """The predict and explain routes, documented with ``variants``.

    Args:
        variants: every installed task's request and response models (the OpenAPI
            variants of the body and the answer).
        model_router: finds the :class:`ModelRouter` of a request's app.
        explain_variants: the same for the explain route, of the tasks that explain.
    """
    router = APIRouter(prefix="/v1/models", tags=["predict"])

    async def predict(
        router_: ModelRouter, name: str, body: Any, request: Request
    ) -> Mapping[str, Any] | Rendered:
        user_id = request.headers.get("x-user-id")
        media_type = media_type_of(request.headers.get("content-type"))
        if media_type is not None and not is_json(media_type):
            target = await router_.target(name)
            if user_id is not None:
                _check_user_id(user_id, ("header", "x-user-id"))
            validated = await _file_body(target, name, media_type, body, request)
        else:
            if isinstance(body, dict) and "user_id" in body:
                body = dict(body)
                user_id = body.pop("user_id")
                _check_user_id(user_id, ("body", "user_id"))
            elif user_id is not None:
                _check_user_id(user_id, ("header", "x-user-id"))
            target = await router_.target(name)
            validated = _validated(target.request, body)
        drawn = _wanted(request.headers.get("accept"), target.renders)

        async def answer(ref: str) -> Mapping[str, Any] | Rendered:
            if drawn is None or target.render is None:
                return await target.predict(ref, validated)
            content, answered = await target.render(ref, validated, drawn)
            return Rendered(content, drawn, answered)

        rollouts: RolloutRouter | None = getattr(request.app.state, "rollout_router", None)
        route = rollouts.route(name, user_id) if rollouts is not None else None
        if route is None:
            return await answer(name)
        assert rollouts is not None
        try:
            answered = await answer(route.ref)
        except Exception as exc:
            # a client's mistake (4xx) is not the version's failure
            rollouts.answered(route, error=getattr(exc, "status", 500) >= 500)
            raise
        rollouts.answered(route, error=False)
        served = answered.answer if isinstance(answered, Rendered) else answered
        rollouts.also_score(route, target.predict, validated, served, target.compare)
        return answered

    async def explain(
        router_: ModelRouter, name: str, body: Any, request: Request
    ) -> Mapping[str, Any] | Rendered:
        target = await router_.explain_target(name)
        return await target.explain(name, _validated(target.request, body))

    _model_route(
        router,
        "predict",
        predict,
        variants,
        model_router,
        {
            422: {"description": "Invalid body or a text over the length limit."},
            503: {"description": "The model's queue is full; retry after Retry-After."},
        },
        """Predict with a model's ``production`` version (or the alias or version
        named). A text classifier takes 1 to 256 texts and answers, for each, a
        prediction id, the label and the probability of every class; outputs align
        with ``inputs`` by index.""",
    )
    _model_route(
        router,
        "explain",
        explain,
        explain_variants,
        model_router,
        {
            422: {
                "description": "Invalid body, a text over the length limit, an unknown "
                "`target` class, or a model whose answers are not explained."
            },
            503: {"description": "The model cannot be loaded now; retry after Retry-After."},
        },
        """Explain a model's answers (its ``production`` version, or the alias or version
        named): for each input, the contribution of each of its features (words with
        their character offsets, columns …, as the model's task defines them) to the
        logit of ``target`` (default: the answered class), sorted by absolute weight, at
        most ``top_k`` (all when 0). ``exact`` says whether ``base_value`` + the
        contributions add up to ``logit`` exactly or approximate it (``method`` names
        how they were computed). Explanations align with ``inputs`` by index.""",
    )
    return router


async def _file_body(
    target: PredictTarget, name: str, media_type: str, body: Any, request: Request
) -> Any:
    """The predictor's body from a file sent raw or as a multipart field.

    Raises:
        UnsupportedMediaTypeError: the model's task takes JSON only, or not this type (415).
        InvalidInputError: a multipart body without the file field, or not parseable (422).
    """
    file: FileBody | None = target.file
    if file is None:
        raise UnsupportedMediaTypeError(
            f"model {name!r} takes a JSON body (Content-Type: application/json), not {media_type}"
        )
    if media_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8)
        except MultiPartException as exc:
            raise InvalidInputError(f"the multipart body cannot be read: {exc.message}") from None
        upload = form.get(file.field)
        if not isinstance(upload, UploadFile):
            raise InvalidInputError(
                f"the multipart body has no file field {file.field!r} (curl -F {file.field}=@FILE)"
            )
        data = await upload.read()
        given = (upload.content_type or "application/octet-stream").split(";", 1)[0].lower()
        return file.to_request(data, given)
    if media_type not in file.media_types:
        accepted = ", ".join(sorted(file.media_types))
        raise UnsupportedMediaTypeError(
            f"model {name!r} takes JSON, {accepted} or multipart/form-data "
            f"(field {file.field!r}), not {media_type}"
        )
    return file.to_request(body if isinstance(body, bytes) else b"", media_type)


def _wanted(accept: str | None, renders: Sequence[str]) -> str | None:
    """Which of ``renders`` the ``Accept`` header asks for by name, preferred over JSON
    (a higher or equal ``q``; ``*/*`` and ``image/*`` alone never choose a drawing), or
    ``None``: answer JSON."""
    if not accept or not renders:
        return None
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media.lower()] = q
    json_q = max(weights.get("application/json", 0.0), weights.get("*/*", 0.0))
    for media in renders:
        q = weights.get(media, 0.0)
        if q > 0 and q >= json_q:
            return media
    return None


def _check_user_id(user_id: Any, loc: tuple[str, str]) -> None:
    """A user id is a string of 1 to :data:`MAX_USER_ID` characters (422 otherwise)."""
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_USER_ID:
        raise RequestValidationError(
            [
                {
                    "type": "string_type" if not isinstance(user_id, str) else "string_length",
                    "loc": loc,
                    "msg": f"a user id is a string of 1 to {MAX_USER_ID} characters",
                    "input": user_id if isinstance(user_id, str | int | float | None) else None,
                }
            ]
        )


def _validated(model: type[BaseModel], body: Any) -> BaseModel:
    """``body`` validated as ``model``; errors located in the body (422)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


def _model_route(
    router: APIRouter,
    action: str,
    answer: Callable[[ModelRouter, str, Any, Request], Awaitable[Mapping[str, Any] | Rendered]],
    variants: Sequence[Variant],
    model_router: Callable[[Request], ModelRouter],
    errors: dict[int | str, dict[str, Any]],
    description: str,
) -> None:
    """``POST /{name}/<action>`` on ``router`` (scope ``predict``): the body documented
    with ``variants``, answered by ``answer(model router, name, body, request)`` as JSON,
    with ``X-Model-Version`` when the answer has a ``version``."""
    kwargs = scoped("predict")
    kwargs["responses"] = {**kwargs["responses"], **_MODEL_ERRORS, **errors}
    if variants:
        kwargs["openapi_extra"] = {
            **kwargs["openapi_extra"],
            "requestBody": _request_schema(variants, user_id=action == "predict"),
        }
        responses = tuple(dict.fromkeys(response for _, response in variants))
        # several tasks answer: the 200 is any of their response models (anyOf of the
        # components, each under its own name)
        answered: Any = responses[0] if len(responses) == 1 else Union[responses]  # noqa: UP007
        kwargs["responses"][200] = {"model": answered}

    async def endpoint(
        name: Annotated[
            str,
            Path(
                description="`sentiment`, `sentiment@staging` or `sentiment:3`.",
                max_length=80,
                pattern=REF_REGEX,
            ),
        ],
        body: Annotated[Any, Body()],
        request: Request,
        response: Response,
    ) -> Response:
        answered = await answer(model_router(request), name, body, request)
        if isinstance(answered, Rendered):
            out = Response(answered.content, media_type=answered.media_type)
            answered = answered.answer
        else:
            out = Response(orjson.dumps(answered), media_type="application/json")
        out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
        version = answered.get("version")
        if isinstance(version, int):  # which version answered (a rollout may choose)
            out.headers["X-Model-Version"] = str(version)
        return out

    endpoint.__name__ = action  # the operation id and summary, as a def named so gives
    endpoint.__doc__ = inspect.cleandoc(description)
    router.post(f"/{{name}}/{action}", **kwargs)(endpoint)
