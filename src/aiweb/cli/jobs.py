"""``aiweb jobs submit|list|show|cancel|wait|result``, ``aiweb worker``, ``aiweb scheduler``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    note_database,
    out,
    parse_key_values,
    print_json,
    redact_url,
    resolve_prefix,
)

if TYPE_CHECKING:
    from aiweb.jobs.env import JobEnv
    from aiweb.jobs.service import JobService
    from aiweb.jobs.types import JobTypes

app = typer.Typer(
    help="Background jobs: training and batch prediction, run by `aiweb serve` or `aiweb worker`.",
    no_args_is_help=True,
)


@contextmanager
def open_jobs(types: JobTypes | None = None) -> Iterator[tuple[JobEnv, JobService]]:
    """Settings from the environment, the migrated database, and the job service.

    Args:
        types: the installed job types, to submit jobs; ``None`` to only read and cancel
            them (the tasks, and their heavy imports, are then not loaded).
    """
    from aiweb.config import get_settings
    from aiweb.jobs.celery_app import make_dispatcher
    from aiweb.jobs.env import build_job_env
    from aiweb.jobs.service import JobService
    from aiweb.jobs.types import JobTypes

    settings = get_settings()
    note_database(settings)
    env = build_job_env(settings, migrate=True)
    try:
        service = JobService(
            env.jobs,
            make_dispatcher(settings),
            env.registry,
            env.datasets,
            settings,
            types if types is not None else JobTypes(()),
        )
        yield env, service
    finally:
        env.close()


def _job_json(job: Any) -> str:
    from aiweb.jobs.schemas import JobOut

    return JobOut.of(job).model_dump_json(indent=2)


def resolve_job_id(env: JobEnv, given: str) -> str:
    """The job id that ``given`` (a full id or a unique prefix) names.

    Raises:
        InvalidInputError: ``given`` is a prefix of several job ids (listed).
    """
    from aiweb.db.orm import SqlJob
    from aiweb.db.session import make_session_factory

    return resolve_prefix(make_session_factory(env.engine), [SqlJob.id], given, "job")


def resolve_dataset_id(env: JobEnv, given: str) -> str:
    """The uploaded dataset id that ``given`` (a full id or a unique prefix) names.

    Raises:
        InvalidInputError: ``given`` is a prefix of several dataset ids (listed).
    """
    from aiweb.db.orm import SqlDataset
    from aiweb.db.session import make_session_factory

    return resolve_prefix(make_session_factory(env.engine), [SqlDataset.id], given, "dataset")


#: Job fields that name an uploaded dataset (a unique id prefix is completed).
DATASET_FIELDS = ("dataset_id", "eval_dataset_id")


@app.command("submit")
@friendly_errors
def submit(
    type_: str = typer.Argument(..., metavar="TYPE", help="train or batch-predict."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="A job field KEY=VALUE (JSON values allowed), e.g. --set model=sentiment "
        "--set dataset_id=… --set 'params={\"C\": 4}'.",
    ),
    body: str | None = typer.Option(None, "--json", help="All fields as one JSON object."),
    wait_: bool = typer.Option(False, "--wait", help="Wait with a progress bar."),
) -> None:
    """Submit a job; prints its id (stdout). A dataset id may be given as a unique prefix."""
    from pydantic import ValidationError

    from aiweb.errors import InvalidInputError
    from aiweb.jobs.types import JobTypes
    from aiweb.tasks import job_types

    fields: dict[str, Any] = json.loads(body) if body else {}
    fields.update(parse_key_values(set_, "--set", strings=(*DATASET_FIELDS, "model")))
    fields["type"] = type_
    types = JobTypes(job_types())
    with open_jobs(types) as (env, service):
        for field in DATASET_FIELDS:
            if isinstance(fields.get(field), str):
                fields[field] = resolve_dataset_id(env, fields[field])
        try:
            spec = types.parse(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][1:]) or 'job'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidInputError(f"invalid {type_} job: {problems}") from None
        job = service.submit(spec, actor="cli")
        err.print(f"submitted {job.type} job [bold]{job.id}[/]", highlight=False)
        out.print(job.id, highlight=False)
        if wait_:
            _wait(env, job.id, timeout=None)


@app.command("list")
@friendly_errors
def list_cmd(
    status: str | None = typer.Option(None, help="pending, running, succeeded, failed …"),
    type_: str | None = typer.Option(None, "--type", help="Job type."),
    limit: int = typer.Option(20, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Recent jobs, newest first."""
    from aiweb.jobs.schemas import JobOut

    with open_jobs() as (env, _service):
        page = env.jobs.page(status=status, type_=type_, limit=limit)
    if as_json:
        jobs = [JobOut.of(job).model_dump(mode="json") for job in page.jobs]
        print_json({"jobs": jobs, "total": page.total})
        return
    table = Table(id_column("id"), "type", "status", "progress", "message", "created", title="jobs")
    for job in page.jobs:
        table.add_row(
            job.id,
            job.type,
            job.status,
            f"{job.progress:.0%}",
            (job.error or job.message)[:60],
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        )
    out.print(table)
    err.print(f"{len(page.jobs)} of {page.total} job(s)")


@app.command("show")
@friendly_errors
def show(
    job_id: str = typer.Argument(..., help="Job id, or a unique prefix of it."),
    _as_json: bool = typer.Option(
        True, "--json", help="Print JSON (the default; accepted as on every `show`)."
    ),
) -> None:
    """One job as JSON (stdout): the keys of ``GET /v1/jobs/{id}``."""
    with open_jobs() as (env, _service):
        job = env.jobs.get(resolve_job_id(env, job_id))
    typer.echo(_job_json(job))


@app.command("cancel")
@friendly_errors
def cancel(job_id: str = typer.Argument(..., help="Job id, or a unique prefix of it.")) -> None:
    """Cancel a job (a running one stops at its next step)."""
    with open_jobs() as (env, service):
        job = service.cancel(resolve_job_id(env, job_id), actor="cli")
    err.print(f"job {job.id}: {job.status}{' (stopping)' if job.cancel_requested else ''}")


@app.command("wait")
@friendly_errors
def wait(
    job_id: str = typer.Argument(..., help="Job id, or a unique prefix of it."),
    timeout: float | None = typer.Option(None, help="Give up after this many seconds."),
) -> None:
    """Follow a job with a live progress bar; exit 0 when it succeeds, 1 otherwise."""
    with open_jobs() as (env, _service):
        _wait(env, resolve_job_id(env, job_id), timeout=timeout)


def _wait(env: JobEnv, job_id: str, *, timeout: float | None) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    hinted = False
    with Progress(
        TextColumn("[bold]{task.fields[status]:>9}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("", total=1.0, status="…")
        while True:
            job = env.jobs.get(job_id)
            bar.update(task, completed=job.progress, description=job.message, status=job.status)
            if job.terminal:
                break
            waited = time.monotonic() - started
            if job.status == "pending" and waited > 10 and not hinted:
                hinted = True
                where = "`aiweb worker`" if env.settings.broker_url else "`aiweb serve`"
                bar.console.print(f"[yellow]still pending: is {where} running?[/]")
            if timeout is not None and waited > timeout:
                err.print(f"[yellow]gave up after {timeout:.0f} s; job is {job.status}[/]")
                raise typer.Exit(2)
            time.sleep(0.5)
    if job.status == "succeeded":
        typer.echo(json.dumps(job.result, indent=2))
        return
    err.print(f"[bold red]job {job.status}:[/] {escape(job.error or '')}", highlight=False)
    raise typer.Exit(1)


@app.command("result")
@friendly_errors
def result(
    job_id: str = typer.Argument(..., help="Job id, or a unique prefix of it."),
    output: Path = typer.Option(..., "--output", "-o", help="Write the result file here."),
) -> None:
    """Download a finished job's output file (a batch prediction's CSV)."""
    from aiweb.errors import ConflictError

    with open_jobs() as (env, _service):
        job = env.jobs.get(resolve_job_id(env, job_id))
        uri = (job.result or {}).get("artifact_uri")
        if job.status != "succeeded" or not uri:
            raise ConflictError(f"job {job.id} is {job.status} and has no result file")
        env.registry.artifacts.get_file(uri, output)
    err.print(f"wrote {output} ({(job.result or {}).get('rows', '?')} rows)")


def _celery_settings() -> Any:
    from aiweb.config import get_settings
    from aiweb.errors import InvalidInputError

    settings = get_settings()
    if not settings.broker_url:
        raise InvalidInputError(
            "AIWEB_BROKER_URL is not set: without a broker, `aiweb serve` runs jobs itself. "
            "Set it to redis://… or amqp://… to run jobs on workers."
        )
    return settings


@friendly_errors
def worker(
    concurrency: int = typer.Option(0, help="Jobs at once (processes); 0 = one per core."),
    pool: str = typer.Option("prefork", help="Celery pool: prefork, solo or threads."),
    loglevel: str = typer.Option("INFO", help="Log level."),
) -> None:
    """Run a Celery worker for aiweb's jobs (production mode, AIWEB_BROKER_URL)."""
    import os

    from aiweb.jobs.celery_app import make_celery
    from aiweb.jobs.env import build_job_env
    from aiweb.jobs.types import JobTypes
    from aiweb.tasks import job_types, pruners, rollout_quality

    settings = _celery_settings()
    build_job_env(settings, migrate=True).close()  # schema current before any task
    # the job types, with their handlers' imports (scikit-learn, implicit, onnxruntime …),
    # once, before the pool forks, not in each child while its first job's lease runs
    celery = make_celery(settings, JobTypes(job_types(), rollout_quality(), pruners()))
    n = concurrency or max(1, len(os.sched_getaffinity(0)))
    err.print(f"aiweb worker: {n} {pool} process(es) on {redact_url(settings.broker_url)}")
    celery.worker_main(
        [
            "worker",
            f"--concurrency={n}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--queues={settings.jobs.queue}",
            f"--hostname=aiweb-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@friendly_errors
def scheduler(loglevel: str = typer.Option("INFO", help="Log level.")) -> None:
    """Run Celery beat: checks retraining schedules and recovers lost jobs (production mode)."""
    from aiweb.jobs.celery_app import make_celery

    settings = _celery_settings()
    settings.ensure_dirs()
    celery = make_celery(settings)
    err.print(
        f"aiweb scheduler: ticking every {settings.jobs.scheduler_interval_s:g} s on "
        f"{redact_url(settings.broker_url)}"
    )
    celery.start(
        [
            "beat",
            f"--loglevel={loglevel}",
            f"--schedule={settings.home / 'celerybeat-schedule'}",
        ]
    )
