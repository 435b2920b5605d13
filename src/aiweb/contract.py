"""The task contract: how a task package describes itself to the rest of aiweb.

A *task* (text classification, recommendations, search, sentence embeddings …) is one
package that owns one kind of model end to end: its API shapes, runtime, loader, jobs,
routes and tables. It exposes one :class:`Task`, and :mod:`aiweb.tasks` lists the
installed ones. ``create_app``, the job runners, the scheduler, the Celery worker, the
migrations and the CLI are built from that list; the layers below (registry, jobs,
serving, db …) never import a task.

The pieces a task gives:

- ``routers``: its HTTP routes (FastAPI routers), included in the app as they are.
- ``job_types``: its background job types (:class:`aiweb.jobs.types.JobType`): the body
  ``POST /v1/jobs`` accepts, its check at submit, its handler.
- ``tables``: its SQLAlchemy tables (on :data:`aiweb.db.base.Base.metadata`), and
  ``derived_table`` for tables it makes at run time, outside the migrations.
- ``start``: builds its long-lived services in the app's lifespan from the shared ones
  (:class:`TaskContext`) and returns a :class:`TaskRuntime`: what it puts on
  ``app.state``, how it predicts, whether it is ready, how it stops.
- ``predict``: the request and response shapes of ``POST /v1/models/{name}/predict``
  for its models (:class:`PredictShapes`), and ``model_tasks``: the registry task names
  its model versions carry (``text-classification``), which route a model to it. Its
  ``compare`` tells a rollout whether two versions answered alike (the agreement gate).
  Its ``file`` (:class:`FileInput`) lets its models take a file as the body instead of
  JSON (an image as ``image/jpeg``, or as a multipart field), and its ``renders`` the
  media types other than JSON its answer can be drawn as (``Accept: image/png``), drawn
  by ``TaskRuntime.renderer``.
- ``erase_user``: deletes what it keeps about one user id (interactions, cached
  lists …) for the ``privacy-erase`` job (GDPR Art. 17), when it keeps anything.
- ``explain``: the request and response shapes of ``POST /v1/models/{name}/explain``
  for its models (:class:`ExplainShapes`), with ``TaskRuntime.explainer`` answering it:
  why a model gave its answer, as contributions of the input's features (words,
  columns …) to the logit of one class. The route finds the task exactly as the predict
  route does, so a new task plugs in by setting these two, without touching the
  route. A task
  that explains must also predict (the two share the model routing).

An explanation answers the fields of :class:`Explanation` (the common part; a task may
add its own, as text classification adds ``out_of_scope``): each contribution is one
feature of the input with its weight in logit units of the explained class, and
``base_value + Σ weights = logit`` holds exactly when ``exact`` is true.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, Table

from aiweb.config import Settings
from aiweb.images.service import ImageService
from aiweb.jobs.erasure import EraseUser
from aiweb.jobs.service import JobService
from aiweb.jobs.types import JobType, Prune
from aiweb.monitoring.feedback import SpanLabel
from aiweb.monitoring.prediction_log import PredictionLogger
from aiweb.registry.service import RegistryService
from aiweb.registry.store import DeletionGuard
from aiweb.rollout.router import Compare
from aiweb.rollout.service import RolloutQuality
from aiweb.serving.cache import PredictionCache
from aiweb.serving.oip import TensorAdapter

T = TypeVar("T")

#: ``(model, version, batch_size, seconds)``: a model call, for the metrics
BatchHook = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class Readiness:
    """One task's part of ``/readyz``.

    Attributes:
        ready: every ``production`` alias of its models is served.
        loaded: ``name:version`` of every loaded model version.
        failed: ``{"name@alias": reason}`` of aliases whose target could not be loaded.
    """

    ready: bool
    loaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Predictor(Protocol):
    """Answers ``POST /v1/models/{name}/predict`` for a task's models."""

    async def __call__(self, ref: str, body: Any) -> Mapping[str, Any]:
        """Predict with the model ``ref`` names (``name``, ``name@alias``, ``name:3``).

        Args:
            ref: the model reference from the path.
            body: the request body, already validated as the task's
                :attr:`PredictShapes.request` model.

        Returns:
            The JSON response (a mapping ``orjson`` can serialise).

        Raises:
            AiwebError: a problem to answer (404 unknown model, 413, 422, 503 …).
        """
        ...


@dataclass(frozen=True)
class FileInput:
    """How a task's models take a file as the predict body, besides a JSON one.

    The route accepts the file as the raw body, with one of ``media_types`` as its
    ``Content-Type``, or as the field ``field`` of a ``multipart/form-data`` body; the
    input limits bound its size (``AIWEB_LIMITS__MAX_IMAGE_BYTES`` for images). What
    the bytes are is the task's to tell (its ``to_request`` may sniff them): the media
    type is passed along, not trusted.

    Attributes:
        media_types: the raw body types accepted (``image/jpeg`` …).
        field: the multipart field holding the file.
        to_request: ``to_request(data, media_type) -> body`` builds the body handed to
            the predictor in place of a validated JSON body; raises an
            :class:`~aiweb.errors.AiwebError` (a 4xx) for bytes it refuses.
    """

    media_types: frozenset[str]
    field: str
    to_request: Callable[[bytes, str], Any]


class Renderer(Protocol):
    """Answers the predict route with the answer drawn (``Accept: image/png``)."""

    async def __call__(
        self, ref: str, body: Any, media_type: str
    ) -> tuple[bytes, Mapping[str, Any]]:
        """Predict as :class:`Predictor` does and draw the answer.

        Args:
            ref: the model reference from the path.
            body: the validated body (or the one :attr:`FileInput.to_request` built).
            media_type: the one of :attr:`PredictShapes.renders` the client accepts.

        Returns:
            ``(content, answer)``: the drawing's bytes in ``media_type``, and the JSON
            answer it draws (its ``version`` becomes ``X-Model-Version``).
        """
        ...


@dataclass(frozen=True)
class PredictShapes:
    """The shapes of a task's predictions.

    Attributes:
        request: the body model (pydantic); the route validates the body with it.
        response: the response model (pydantic), for the OpenAPI schema.
        compare: ``compare(served, other) -> (compared, agreed)`` of two versions'
            answers to the same body (:data:`aiweb.rollout.router.Compare`; a rollout's
            agreement gate), e.g. :func:`agreement_of`; ``None``: the task's answers
            are not compared (the gate stays inconclusive).
        file: how its models take a file as the body (:class:`FileInput`), or ``None``
            (JSON only: any other body type is answered 415).
        renders: media types besides JSON the answer can be drawn as
            (:attr:`TaskRuntime.renderer`), asked for with ``Accept``.
    """

    request: type[BaseModel]
    response: type[BaseModel]
    compare: Compare | None = None
    file: FileInput | None = None
    renders: tuple[str, ...] = ()


def agreement_of(*keys: str) -> Compare:
    """A :data:`~aiweb.rollout.router.Compare` for answers shaped ``{"predictions":
    [output, …]}`` (aligned by index): an output pair is compared on the first of
    ``keys`` both outputs have (``"label"``; ``"anomaly"`` …) and agrees when the two
    values are equal. Outputs with none of the keys (a regression's ``value``) are not
    compared.

    Returns:
        ``compare(served, other) -> (compared, agreed)``, both ``int``.
    """

    def compare(served: Mapping[str, Any], other: Mapping[str, Any]) -> tuple[int, int]:
        a, b = served.get("predictions"), other.get("predictions")
        if not isinstance(a, list) or not isinstance(b, list):
            return 0, 0
        compared = agreed = 0
        for x, y in zip(a, b, strict=False):
            if not isinstance(x, Mapping) or not isinstance(y, Mapping):
                continue
            key = next((k for k in keys if k in x and k in y), None)
            if key is not None:
                compared += 1
                agreed += x[key] == y[key]
        return compared, agreed

    return compare


class Explainer(Protocol):
    """Answers ``POST /v1/models/{name}/explain`` for a task's models."""

    async def __call__(self, ref: str, body: Any) -> Mapping[str, Any]:
        """Explain the answers of the model ``ref`` names (``name``, ``name@alias``,
        ``name:3``) to the inputs of ``body``.

        Args:
            ref: the model reference from the path.
            body: the request body, already validated as the task's
                :attr:`ExplainShapes.request` model.

        Returns:
            The JSON response (a mapping ``orjson`` can serialise), shaped as the task's
            :attr:`ExplainShapes.response` (``{"model", "version", "explanations"}``,
            one :class:`Explanation` per input, aligned by index).

        Raises:
            AiwebError: a problem to answer (404 unknown model, 413, 422 — also for a
                model this explainer cannot explain —, 503 …).
        """
        ...


@dataclass(frozen=True)
class ExplainShapes:
    """The shapes of a task's explanations.

    Attributes:
        request: the body model (pydantic); the route validates the body with it.
        response: the response model (pydantic), for the OpenAPI schema.
    """

    request: type[BaseModel]
    response: type[BaseModel]


class Contribution(BaseModel):
    """One feature of the input and its weight towards the explained class.

    Attributes:
        feature: the feature as the input has it: a word, a column name …
        start: for text, the offset of the word's first character in the input
            (``input[start:end] == feature``); ``None`` for features that are not spans.
        end: for text, the offset just past the word's last character; else ``None``.
        weight: its contribution, in logit units of the target class: positive pushes
            towards the target, negative away from it.
    """

    feature: str
    start: int | None = None
    end: int | None = None
    weight: float


class Omitted(BaseModel):
    """The contributions left out of a list cut at ``top_k``.

    Attributes:
        count: how many features were left out (0 when none was).
        weight: the sum of their weights, so that ``base_value + Σ listed weights +
            omitted.weight == logit`` still holds for an exact explanation.
    """

    count: int = 0
    weight: float = 0.0


class Explanation(BaseModel):
    """Why a model answered what it did for one input (the common fields).

    Attributes:
        label: the answered label (as the predict route answers it).
        scores: the probability of every class.
        target: the class explained.
        method: how the contributions were computed (``linear``: coefficient x feature
            value, exact; ``occlusion``: change of the logit when the feature is
            removed, approximate; ``tree``: TreeSHAP …).
        exact: whether ``base_value + Σ contributions == logit`` holds (to 1e-6).
        base_value: the target's logit with no feature (``linear``: the intercept;
            ``occlusion``: the logit with every explained feature removed).
        contributions: the features, by decreasing ``|weight|``, at most ``top_k``.
        omitted: the contributions left out by ``top_k``.
        logit: the target's logit for this input.
    """

    model_config = ConfigDict(extra="allow")

    label: str
    scores: dict[str, float]
    target: str
    method: str
    exact: bool
    base_value: float
    contributions: list[Contribution]
    omitted: Omitted = Field(default_factory=Omitted)
    logit: float


@dataclass
class TaskRuntime:
    """What a task's ``start`` built, owned by the app until shutdown.

    Attributes:
        state: attributes to set on ``app.state`` (the task's routes read them there).
        predictor: serves the predict route for the task's models, or ``None``.
        readiness: reports the task's part of ``/readyz``, or ``None`` when the task
            has no bearing on readiness.
        started: coroutine run after every task was started (loading and warming
            models, background refreshers), or ``None``.
        close: coroutine run at shutdown, in the reverse order of the tasks.
        explainer: serves the explain route for the task's models (with
            :attr:`Task.explain` giving its shapes), or ``None`` when its models are not
            explained (the route then answers 422).
        v2: its models over the Open Inference Protocol (KServe v2: ``/v2/models/{name}``
            metadata, ready and infer, over REST and gRPC): a
            :class:`~aiweb.serving.oip.TensorAdapter` giving a version's input and output
            tensors and mapping input tensors to its predict call and the answer to output
            tensors; ``None`` when its models are not served there (``/v2`` answers 400).
        preload: ``preload(ref)`` loads (and warms) the version ``ref`` names
            (``name:3``) ahead of its first request: each serving process calls it when
            it learns of a rollout, for the candidate; ``None``: loaded on first use.
        renderer: draws the answer (:class:`Renderer`) in one of
            :attr:`PredictShapes.renders`, or ``None``.
    """

    state: dict[str, object] = field(default_factory=dict)
    predictor: Predictor | None = None
    readiness: Callable[[], Readiness] | None = None
    started: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    explainer: Explainer | None = None
    v2: TensorAdapter | None = None
    preload: Callable[[str], Awaitable[None]] | None = None
    renderer: Renderer | None = None


@dataclass
class TaskContext:
    """The process's shared services, handed to every task's ``start`` in list order.

    A task may offer one of its services to the tasks after it with :meth:`provide`
    (the sentence-embedding pool, which every task that embeds its inputs shares); they
    take it with :meth:`get`.

    Attributes:
        settings: the configuration.
        engine: the database.
        registry: model versions, aliases and artifacts.
        jobs: submits background jobs.
        prediction_log: the prediction log writer.
        prediction_cache: the prediction cache, or ``None`` when it is off.
        on_batch: the metrics hook for model calls.
        images: the stored images (:mod:`aiweb.images`), decoded safely.
    """

    settings: Settings
    engine: Engine
    registry: RegistryService
    jobs: JobService
    prediction_log: PredictionLogger
    prediction_cache: PredictionCache | None
    on_batch: BatchHook | None = None
    images: ImageService | None = None
    _provided: dict[type, object] = field(default_factory=dict)

    def provide(self, service: object) -> None:
        """Offer ``service`` to the tasks started after this one, under its type."""
        self._provided[type(service)] = service

    def get(self, kind: type[T]) -> T:
        """The service of type ``kind`` an earlier task provided.

        Raises:
            LookupError: no task started before this one provided it (a task listed
                after the one that needs it, in :mod:`aiweb.tasks`).
        """
        service = self._provided.get(kind)
        if not isinstance(service, kind):
            raise LookupError(
                f"no installed task provides a {kind.__name__}: list the task that does "
                "before the one that needs it in aiweb.tasks"
            )
        return service


def tables_of(*orm_classes: type) -> tuple[Table, ...]:
    """The tables of declarative ORM classes (``Sql*``), for :attr:`Task.tables`."""
    tables = tuple(getattr(cls, "__table__", None) for cls in orm_classes)
    for cls, table in zip(orm_classes, tables, strict=True):
        if not isinstance(table, Table):
            raise TypeError(f"{cls.__name__} is not a mapped ORM class with a table")
    return tables  # type: ignore[return-value]


@dataclass(frozen=True)
class Task:
    """One task package's description of itself (see the module docstring).

    Attributes:
        name: the task's name, as the registry names its models' task
            (``text-classification``, ``recommendation``, ``feature-extraction``) or,
            for a task without models, its own (``search``).
        model_tasks: the registry task names of the model versions it serves.
        routers: its HTTP routes.
        job_types: its background job types.
        tables: its database tables.
        derived_table: tells the tables it makes at run time (outside the migrations),
            so the migration check leaves them alone.
        start: builds its services in the app's lifespan.
        predict: the shapes of its predictions, when its models answer the predict route.
        use_instead: for a task whose models do not answer the predict route, the routes
            that use them (``{name}`` stands for the model's name); a model of the task
            sent to the predict route gets a 422 that names them.
        erase_user: deletes what the task keeps about one user (GDPR Art. 17) and counts
            it: ``erase_user(env, user_id) -> {what: count}`` (:data:`EraseUser`), run by
            the ``privacy-erase`` job (``POST /v1/privacy/erase``); ``None`` when the task
            keeps nothing tied to a user id.
        deletion_guard: refuses, in the registry's transaction, to delete a model (or a
            version) the task is built on (:data:`aiweb.registry.store.DeletionGuard`);
            the app registers it (the assistant's: a model an assistant answers with).
        prune: deletes the task's own rows older than their retention window
            (``prune(env) -> {what: count}``, :data:`aiweb.jobs.types.Prune`), run by the
            scheduler tick's housekeeping every ``AIWEB_RETENTION__INTERVAL_S``; ``None``
            when it keeps no rows that expire.
        explain: the shapes of its explanations, when its models answer the explain
            route (:attr:`TaskRuntime.explainer`).
        rollout_quality: the live quality a rollout of its models is judged on instead
            of the accuracy from label feedback (:class:`aiweb.rollout.service.RolloutQuality`;
            recommendations: the click-through rate of the lists served), ``None`` for
            the accuracy from feedback.
        span_label: for a task whose predictions are spans of the text (entities), the
            label it logs a list of spans under (:data:`aiweb.monitoring.feedback.SpanLabel`,
            spans in text order): feedback on its predictions may then be the corrected
            list of spans (``{"entities": [...]}``), whose label this gives; ``None``:
            its predictions are not spans (such feedback gets a 422).
    """

    name: str
    model_tasks: frozenset[str] = frozenset()
    routers: Sequence[APIRouter] = ()
    job_types: Sequence[JobType] = ()
    tables: Sequence[Table] = ()
    derived_table: Callable[[str], bool] | None = None
    start: Callable[[TaskContext], Awaitable[TaskRuntime]] | None = None
    predict: PredictShapes | None = None
    use_instead: str | None = None
    erase_user: EraseUser | None = None
    explain: ExplainShapes | None = None
    rollout_quality: RolloutQuality | None = None
    span_label: SpanLabel | None = None
    prune: Prune | None = None
    deletion_guard: DeletionGuard | None = None
