"""Job types: what the jobs engine runs, given to it by the installed tasks.

The engine (store, service, runner, scheduler, Celery app, routes) knows no task. Each
task lists its :class:`JobType` s (the ``JOB_TYPES`` of its ``jobs`` module),
:func:`aiweb.tasks.job_types` gathers them, and a :class:`JobTypes` built from that list
is handed to whatever needs it: the job service (the body of ``POST /v1/jobs`` and its
check at submit), the runners (the handler of a job), the scheduler and the routes.

Several types may share a ``type`` and be told apart by their body's ``task`` field
(``{"type": "train", "task": "..."}``). A body without ``task`` selects the type's
default variant: the one whose spec has its own task as the ``task`` field's default, or
the one registered without a task, whose spec has no ``task`` field (a type that had one
task before others joined it keeps answering bodies written for it unchanged).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, Discriminator, Tag, TypeAdapter

from aiweb.config import Settings
from aiweb.datasets.service import Dataset, DatasetService
from aiweb.datasets.tables import FORMAT_NAMES, semicolon_hint
from aiweb.documents.service import DocumentService
from aiweb.errors import DatasetNotFound, InvalidInputError, NotFoundError
from aiweb.jobs.context import JobContext
from aiweb.jobs.entities import Job
from aiweb.jobs.env import JobEnv
from aiweb.registry.service import RegistryService

#: the formats of uploaded files whose rows are records (what most jobs read)
TABLE_FILE_FORMATS = ("csv", "jsonl")

if TYPE_CHECKING:
    from aiweb.rollout.service import RolloutQuality

#: ``handler(env, ctx) -> result``: does the work of one job type; the result (JSON) is
#: stored on the job. Raise :class:`~aiweb.errors.AiwebError` for a permanent failure
#: (bad data …) and :class:`~aiweb.jobs.entities.TransientJobError` for one worth retrying.
Handler = Callable[[JobEnv, JobContext], dict[str, Any]]

#: ``check(ctx, spec) -> params``: checks a validated job body against what it refers to
#: (datasets, models, installed models) and returns the parameters to store on the job.
#: Raises :class:`~aiweb.errors.InvalidInputError` (422) or a not-found error (404).
Check = Callable[["CheckContext", Any], dict[str, Any]]

#: ``prune(env) -> {what: rows deleted}``: a task's retention (its own rows older than
#: their ``AIWEB_RETENTION__*`` window, in batches); run by the scheduler tick's
#: housekeeping every ``retention.interval_s``. A failure is logged, not raised further.
Prune = Callable[[JobEnv], Mapping[str, int]]

# typing's special forms, subscripted with types known only at run time
_annotated: Any = Annotated
_union: Any = Union


@dataclass(frozen=True)
class CheckContext:
    """What a job type's check sees at submit.

    Attributes:
        registry: models, versions and aliases the job refers to.
        datasets: uploaded datasets the job refers to.
        settings: the configuration.
        documents: uploaded documents the job refers to (built on first use).
    """

    registry: RegistryService
    datasets: DatasetService
    settings: Settings

    @functools.cached_property
    def documents(self) -> DocumentService:
        """Uploaded documents the job refers to (on the same database and artifact store)."""
        return DocumentService(self.datasets.sessions, self.registry.artifacts, self.settings)

    def dataset_columns(
        self,
        field: str,
        dataset_id: str,
        needed: Mapping[str, str],
        *,
        formats: Collection[str] = TABLE_FILE_FORMATS,
    ) -> Dataset:
        """Check that dataset ``dataset_id`` (given as ``field``) exists, is in one of
        ``formats`` and has the ``needed`` columns (``{"text_column": "text"}``).

        Returns:
            The dataset.

        Raises:
            DatasetNotFound: it does not exist (404).
            InvalidInputError: it is in another format, or lacks one of the columns (422).
        """
        try:
            dataset = self.datasets.get(dataset_id)
        except NotFoundError:
            raise DatasetNotFound(f"{field} {dataset_id[:64]!r} does not exist") from None
        if dataset.format not in formats:
            raise InvalidInputError(
                f"{field} {dataset_id} ({dataset.name}) is a "
                f"{FORMAT_NAMES.get(dataset.format, dataset.format)} file; this job reads "
                f"{' or '.join(FORMAT_NAMES.get(f, f) for f in formats)} files"
            )
        for what, column in needed.items():
            if column not in dataset.columns:
                raise InvalidInputError(
                    f"{what} {column!r} is not a column of dataset {dataset_id} "
                    f"({dataset.name}); its columns are: {', '.join(dataset.columns)}"
                    + (semicolon_hint(dataset.columns) if dataset.format == "csv" else "")
                )
        return dataset


@dataclass(frozen=True)
class JobType:
    """One kind of job a task runs.

    Attributes:
        type: the job's ``type`` (``train``, ``batch-predict``, ``index-documents``).
        handler: runs one attempt of such a job.
        spec: the body ``POST /v1/jobs`` accepts for it (a pydantic model whose ``type``
            field is ``type``), or ``None`` for a type only aiweb itself submits.
        check: checks a validated ``spec`` at submit and returns the parameters to
            store (required with ``spec``).
        task: when several types share ``type``: the value of the body's ``task`` field
            that selects this one (``spec`` then has a ``task`` field; the variant whose
            ``task`` field defaults to its own task is selected when the body has none).
            ``None``: the variant a body without ``task`` selects (at most one per
            ``type``, and then no variant of it has a default task). The job's stored
            ``params["task"]`` selects its handler the same way.
        schedule: the body of ``PUT /v1/models/{name}/schedule`` for this type (its
            training fields, ``cron``, ``timezone``, ``promotion``, ``enabled``), when
            such jobs can run as scheduled retraining; ``None`` when they cannot.
    """

    type: str
    handler: Handler
    spec: builtins.type[BaseModel] | None = None
    check: Check | None = None
    task: str | None = None
    schedule: builtins.type[BaseModel] | None = None

    def __post_init__(self) -> None:
        if self.spec is not None and self.check is None:
            raise ValueError(f"job type {self.type!r}: a spec needs its check")
        if self.task is not None and (self.spec is None or "task" not in self.spec.model_fields):
            raise ValueError(f"job type {self.type!r}: a task needs a spec with a task field")
        if self.schedule is not None and self.spec is None:
            raise ValueError(f"job type {self.type!r}: only a type with a spec can be scheduled")

    @property
    def schedulable(self) -> bool:
        """Whether such jobs can run as scheduled retraining."""
        return self.schedule is not None

    @property
    def default(self) -> bool:
        """Whether a body of this ``type`` without ``task`` selects this variant."""
        if self.task is None or self.spec is None:
            return False
        field = self.spec.model_fields["task"]
        return not field.is_required() and field.default == self.task


#: the tag of a type's variant registered without a task, in the union of its specs (it
#: shows in the error of a body whose ``task`` is none of the type's tasks)
NO_TASK = "(no task)"


def job_type(value: Any) -> str | None:
    """The ``type`` of a job body (``None`` when it has none)."""
    type_ = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return type_ if isinstance(type_, str) else None


def _task_discriminator(type_: str, default: str | None) -> Callable[[Any], str | None]:
    """The ``task`` of a body of job type ``type_`` (``default`` when it names none)."""

    def task_of(value: Any) -> str | None:
        task = value.get("task") if isinstance(value, dict) else getattr(value, "task", None)
        return task if isinstance(task, str) else default

    # pydantic names the function in its errors ("… using discriminator train_task()")
    task_of.__name__ = task_of.__qualname__ = f"{type_.replace('-', '_')}_task"
    return task_of


def _tagged_union(members: list[tuple[str, Any]], discriminator: Callable[[Any], Any]) -> Any:
    """``members`` (``(tag, annotation)``) as one annotation: a union told apart by
    ``discriminator``, or the only member as it is.

    Every member is tagged: a discriminator on a field cannot hold a member that is itself
    a union (pydantic then writes an OpenAPI discriminator mapping that is not a string).
    """
    if len(members) == 1:
        return members[0][1]
    tagged = tuple(_annotated[member, Tag(tag)] for tag, member in members)
    return _annotated[_union[tagged], Discriminator(discriminator)]


class JobTypes:
    """The installed job types, as the engine uses them.

    Args:
        types: every installed task's job types (:func:`aiweb.tasks.job_types`).
        rollout_quality: ``{registry task: its live quality}`` of the tasks that judge
            rollouts on their own metric (:func:`aiweb.tasks.rollout_quality`); the
            scheduler tick judges rollouts with it.
        pruners: ``{task: prune(env) -> {what: rows deleted}}``, the retention of the
            tasks that keep rows of their own (:attr:`aiweb.contract.Task.prune`); the
            scheduler tick's housekeeping runs them.

    Attributes:
        types: the job types, in the order given.
        body: the annotation of a ``POST /v1/jobs`` body: a union by ``type``, and within
            a type, by ``task``, in the order the types were given.
        schedule_body: the annotation of a ``PUT /v1/models/{name}/schedule`` body (a
            union by ``task``), or ``None`` when no type is schedulable.
        scheduled_type: the ``type`` of the jobs a schedule submits, or ``None``.

    Raises:
        ValueError: two types with the same ``type`` and ``task`` (two without a task
            included), a ``type`` with two defaults (two default tasks, or a default
            task and a variant without a task), with and without a spec, or schedulable
            types of two ``type`` s.
    """

    def __init__(
        self,
        types: Iterable[JobType],
        rollout_quality: Mapping[str, RolloutQuality] | None = None,
        pruners: Mapping[str, Prune] | None = None,
    ) -> None:
        self.types = tuple(types)
        self.rollout_quality = dict(rollout_quality or {})
        self.pruners = dict(pruners or {})
        by_type: dict[str, list[JobType]] = {}
        for job in self.types:
            by_type.setdefault(job.type, []).append(job)
        self._handlers: dict[str, dict[str | None, Handler]] = {}
        self._defaults: dict[str, str | None] = {}
        self._by_spec: dict[type[BaseModel], JobType] = {}
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        members: list[tuple[str, Any]] = []
        for type_, variants in by_type.items():
            tasks = [v.task for v in variants]
            if len(set(tasks)) < len(tasks):
                raise ValueError(f"job type {type_!r} is registered twice for one task")
            defaults = [v.task for v in variants if v.default]
            if len(defaults) + (None in tasks) > 1:
                what = defaults if None not in tasks else [*defaults, "one without a task"]
                raise ValueError(f"job type {type_!r} has two default tasks: {what}")
            self._defaults[type_] = defaults[0] if defaults else None
            self._handlers[type_] = {v.task: v.handler for v in variants}
            specs: list[tuple[str, Any]] = []
            for v in variants:
                if v.spec is not None:
                    specs.append((NO_TASK if v.task is None else v.task, v.spec))
                    self._by_spec[v.spec] = v
            if not specs:
                continue
            if len(specs) < len(variants):
                raise ValueError(f"job type {type_!r}: every task of it needs a spec, or none")
            default_tag = NO_TASK if None in tasks else self._defaults[type_]
            discriminator = _task_discriminator(type_, default_tag)
            annotation = _tagged_union(specs, discriminator)
            self._adapters[type_] = TypeAdapter(annotation)
            members.append((type_, annotation))
        self.body: Any = None
        self._body: TypeAdapter[Any] | None = None
        if members:
            self.body = _tagged_union(members, job_type)
            self._body = TypeAdapter(self.body)
        scheduled = [v for v in self.types if v.schedule is not None]
        kinds = {v.type for v in scheduled}
        if len(kinds) > 1:
            raise ValueError(f"schedulable job types of several types: {sorted(kinds)}")
        self.scheduled_type: str | None = scheduled[0].type if scheduled else None
        self.schedule_body: Any = None
        if self.scheduled_type is not None:
            self.schedule_body = _tagged_union(
                [(v.task or v.type, v.schedule) for v in scheduled],
                _task_discriminator(self.scheduled_type, self._defaults[self.scheduled_type]),
            )

    def parse(self, fields: Any, *, type_: str | None = None) -> BaseModel:
        """Validate a job body (a dict): against every job type, or with ``type_``
        against that type's specs only.

        Raises:
            pydantic.ValidationError: not a valid body.
            LookupError: ``type_`` has no spec, or no type has one.
        """
        adapter = self._body if type_ is None else self._adapters.get(type_)
        if adapter is None:
            raise LookupError(f"no job type {type_!r} is submitted with a body")
        spec = adapter.validate_python(fields)
        assert isinstance(spec, BaseModel)
        return spec

    def check(self, ctx: CheckContext, spec: BaseModel) -> tuple[str, dict[str, Any]]:
        """Check a validated job body with its type's check.

        Returns:
            ``(the job's type, the parameters to store)``.

        Raises:
            InvalidInputError, NotFoundError: what the check raises.
            LookupError: ``spec`` is not the body of an installed job type.
        """
        job = self._by_spec.get(type(spec))
        if job is None or job.check is None:
            raise LookupError(f"{type(spec).__name__} is not the body of an installed job type")
        return job.type, job.check(ctx, spec)

    def handler_for(self, job: Job) -> Handler | None:
        """The handler of ``job``: by its type and ``params["task"]`` (the type's default
        task when it names none, or none of its tasks); ``None`` for an unknown type."""
        handlers = self._handlers.get(job.type)
        if handlers is None:
            return None
        task = job.params.get("task")
        if isinstance(task, str) and task in handlers:
            return handlers[task]
        if None in handlers:
            return handlers[None]
        default = self._defaults[job.type]
        return handlers[default] if default is not None else None
