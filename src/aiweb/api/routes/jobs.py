"""``/v1/jobs`` and ``/v1/models/{name}/schedule``. Routes call services only.

The routes are built by :func:`router` from the installed job types, which give the bodies
``POST /v1/jobs`` and ``PUT /v1/models/{name}/schedule`` accept.
"""

# no ``from __future__ import annotations``: FastAPI reads the body annotations, which are
# built from the job types inside router(), from the functions themselves

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import anyio.to_thread
from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from aiweb.api.deps import JobEnvDep, JobsDep, next_offset
from aiweb.api.problems import request_id
from aiweb.errors import ConflictError, JobFileNotFound
from aiweb.jobs.scheduler import start_run
from aiweb.jobs.schemas import JobList, JobOut
from aiweb.jobs.types import JobTypes
from aiweb.names import NAME_REGEX, check_name
from aiweb.security.auth import actor, scoped

JobIdPath = Annotated[str, Path(description="Job id.", max_length=64)]
NamePath = Annotated[
    str, Path(description="Registered model name.", max_length=63, pattern=NAME_REGEX)
]

_RESULT = scoped("train")
_RESULT["responses"] = {
    **_RESULT["responses"],
    200: {
        "content": {
            "text/csv": {},
            "application/x-ndjson": {},
            "application/json": {"schema": {"type": "object", "additionalProperties": True}},
        },
        "description": "The job's output file (a batch prediction's CSV, JSON Lines when "
        "the result's `format` is `jsonl`), or, for a job that writes none, its result as "
        "JSON.",
    },
    409: {"description": "The job has not succeeded."},
}


#: media types of a job's files, by the suffix of their names (others: octet-stream)
FILE_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "png": "image/png",
}
#: a file's path under its job's directory: up to 4 names of letters, digits and ``._-``
#: (a name of dots only, ``..``, is refused by the route)
_FILE_PATH = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,3}$"

_FILES = scoped("train")
_FILES["responses"] = {
    **_FILES["responses"],
    200: {
        "content": {"image/png": {}, "application/x-ndjson": {}, "text/csv": {}},
        "description": "The file.",
    },
    404: {"description": "No such job, or no such file of it."},
}


def _stream(stream: Any) -> Iterator[bytes]:
    with stream:
        while block := stream.read(256 * 1024):
            yield block


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model: str
    cron: str
    timezone: str
    training: dict[str, Any]
    promotion: dict[str, Any]
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None
    updated_at: datetime


def router(types: JobTypes) -> APIRouter:
    """The jobs and schedules routes, for the job types ``types``.

    Args:
        types: the installed job types (:func:`aiweb.tasks.job_types`).
    """
    router = APIRouter(prefix="/v1", tags=["jobs"])
    if TYPE_CHECKING:  # the bodies are known at run time only
        JobBody: TypeAlias = Any
        ScheduleBody: TypeAlias = Any
    else:
        JobBody = types.body
        ScheduleBody = types.schedule_body

    @router.post("/jobs", status_code=202, **scoped("train"))
    async def submit_job(
        body: Annotated[JobBody, Body(description="The job: its `type` and parameters.")],
        request: Request,
        response: Response,
        service: JobsDep,
    ) -> JobOut:
        """Submit a background job (``train`` or ``batch-predict``).

        Answers 202 with the job record and its ``Location``; follow it with
        ``GET /v1/jobs/{id}``. 503 (no job created) when the broker is unreachable.
        """
        job = await anyio.to_thread.run_sync(
            lambda: service.submit(body, actor=actor(request), request_id=request_id(request))
        )
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        return JobOut.of(job)

    @router.get("/jobs", **scoped("train"))
    async def list_jobs(
        env: JobEnvDep,
        status: Annotated[
            Literal["pending", "running", "succeeded", "failed", "cancelled"] | None, Query()
        ] = None,
        type: Annotated[str | None, Query(max_length=32, description="Job type.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> JobList:
        """Jobs, newest first, filtered by status and type."""
        page = await anyio.to_thread.run_sync(
            lambda: env.jobs.page(status=status, type_=type, limit=limit, offset=offset)
        )
        return JobList(
            jobs=[JobOut.of(j) for j in page.jobs],
            total=page.total,
            limit=limit,
            offset=offset,
            next_offset=next_offset(offset, len(page.jobs), page.total),
        )

    @router.get("/jobs/{job_id}", **scoped("train"))
    async def get_job(job_id: JobIdPath, env: JobEnvDep) -> JobOut:
        """One job: status, progress, result or error."""
        return JobOut.of(await anyio.to_thread.run_sync(env.jobs.get, job_id))

    @router.post("/jobs/{job_id}/cancel", **scoped("train"))
    async def cancel_job(job_id: JobIdPath, request: Request, service: JobsDep) -> JobOut:
        """Cancel a job: at once when pending; a running job stops at its next step.
        409 when it already finished."""
        job = await anyio.to_thread.run_sync(
            lambda: service.cancel(job_id, actor=actor(request), request_id=request_id(request))
        )
        return JobOut.of(job)

    @router.get("/jobs/{job_id}/result", response_class=StreamingResponse, **_RESULT)
    async def job_result(job_id: JobIdPath, env: JobEnvDep) -> Response:
        """The result of a job that succeeded: its output file (a batch prediction's CSV),
        streamed, or, for a job that writes none, its result as JSON (the ``result`` of
        ``GET /v1/jobs/{id}``). 409 while the job has not succeeded."""
        job = await anyio.to_thread.run_sync(env.jobs.get, job_id)
        if job.status != "succeeded":
            raise ConflictError(f"job {job_id} is {job.status}; its result exists once it succeeds")
        result = job.result or {}
        uri = result.get("artifact_uri")
        if not uri:
            return JSONResponse(result)
        stream = await anyio.to_thread.run_sync(env.registry.artifacts.open_read, uri)
        suffix = "jsonl" if result.get("format") == "jsonl" else "csv"
        return StreamingResponse(
            _stream(stream),
            media_type=FILE_MEDIA_TYPES[suffix],
            headers={
                "Content-Disposition": f'attachment; filename="{job.type}-{job.id}.{suffix}"',
                "Content-Length": str(result["size_bytes"]),
            },
        )

    @router.get("/jobs/{job_id}/files/{path:path}", response_class=StreamingResponse, **_FILES)
    async def job_file(
        job_id: JobIdPath,
        path: Annotated[str, Path(max_length=255, pattern=_FILE_PATH)],
        env: JobEnvDep,
    ) -> Response:
        """A file a job wrote in its directory of the artifact store (``jobs/<id>/``):
        ``results.jsonl``, ``overlays/0001-….png`` … as the job's result lists them."""
        job = await anyio.to_thread.run_sync(env.jobs.get, job_id)
        if any(part.strip(".") == "" for part in path.split("/")):
            raise JobFileNotFound(f"job {job.id} has no file {path!r}")
        uri = f"jobs/{job.id}/{path}"
        artifacts = env.registry.artifacts
        if not await anyio.to_thread.run_sync(artifacts.exists, uri):
            raise JobFileNotFound(f"job {job.id} has no file {path!r}")
        stream = await anyio.to_thread.run_sync(artifacts.open_read, uri)
        suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        name = path.rsplit("/", 1)[-1]
        return StreamingResponse(
            _stream(stream),
            media_type=FILE_MEDIA_TYPES.get(suffix, "application/octet-stream"),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ---- scheduled retraining ------------------------------------------------------------

    if types.schedule_body is not None:

        @router.put("/models/{name}/schedule", **scoped("admin"))
        async def put_schedule(
            name: NamePath,
            body: Annotated[ScheduleBody, Body(description="When and how to retrain.")],
            request: Request,
            env: JobEnvDep,
            service: JobsDep,
        ) -> ScheduleOut:
            """Retrain ``name`` on a cron schedule; ``production`` moves to the new version only
            when the promotion rule holds. The audit log records every decision. A recommender's
            schedule says ``"task": "recommendation"`` and trains on the interactions stored."""
            check_name(name)
            training = body.model_dump(
                exclude={"cron", "timezone", "promotion", "enabled"}, exclude_none=True
            )
            promotion = body.promotion.model_dump()
            # checked as the training job it will submit
            spec = service.scheduled_spec(name, training, promotion)
            await anyio.to_thread.run_sync(service.check, spec)

            def put() -> Any:
                new, _before = env.schedules.put(
                    name,
                    cron=body.cron,
                    timezone=body.timezone,
                    training=training,
                    promotion=promotion,
                    enabled=body.enabled,
                    actor=actor(request),
                )
                env.registry.record(
                    actor(request),
                    "schedule.put",
                    f"model:{name}",
                    after={"cron": new.cron, "training": training, "promotion": new.promotion},
                    request_id=request_id(request),
                )
                return new

            return ScheduleOut.model_validate(await anyio.to_thread.run_sync(put))

    @router.get("/models/{name}/schedule", **scoped("train"))
    async def get_schedule(name: NamePath, env: JobEnvDep) -> ScheduleOut:
        """The retraining schedule of ``name`` (404 when it has none)."""
        return ScheduleOut.model_validate(await anyio.to_thread.run_sync(env.schedules.get, name))

    @router.delete("/models/{name}/schedule", status_code=204, **scoped("admin"))
    async def delete_schedule(name: NamePath, request: Request, env: JobEnvDep) -> Response:
        """Stop retraining ``name`` on a schedule."""

        def delete() -> None:
            gone = env.schedules.delete(name)
            env.registry.record(
                actor(request),
                "schedule.delete",
                f"model:{name}",
                after={"cron": gone.cron},
                request_id=request_id(request),
            )

        await anyio.to_thread.run_sync(delete)
        return Response(status_code=204)

    @router.post("/models/{name}/schedule/run", status_code=202, **scoped("admin"))
    async def run_schedule_now(
        name: NamePath, request: Request, response: Response, env: JobEnvDep, service: JobsDep
    ) -> JobOut:
        """Start the scheduled retraining of ``name`` now, without waiting for its time."""

        def run() -> Any:
            schedule = env.schedules.get(name)
            return start_run(env, service.dispatcher, service.types, schedule, actor=actor(request))

        job = await anyio.to_thread.run_sync(run)
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        return JobOut.of(job)

    return router
