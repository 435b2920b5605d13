"""The installed tasks: the one list that ``create_app``, the job runners, the scheduler,
the Celery worker, the migrations and the CLI are built from.

A task is one package of a known shape (:class:`aiweb.contract.Task`); adding one is one
line in :data:`INSTALLED`. Order matters only where a task uses a service another one
provides (the embedding pool): the provider comes first. See ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import MetaData

from aiweb.assistant.task import TASK as ASSISTANT
from aiweb.classification.task import TASK as CLASSIFICATION
from aiweb.contract import Task
from aiweb.db.base import Base
from aiweb.embeddings.task import TASK as EMBEDDINGS
from aiweb.entities.task import TASK as ENTITIES
from aiweb.jobs.erasure import erase_job_type
from aiweb.jobs.types import JobType, Prune
from aiweb.recommendations.task import TASK as RECOMMENDATIONS
from aiweb.rollout.service import RolloutQuality
from aiweb.search.task import TASK as SEARCH
from aiweb.tabular.task import TASK as TABULAR
from aiweb.vision.task import TASK as VISION

#: every installed task, providers before their users
INSTALLED: tuple[Task, ...] = (
    EMBEDDINGS,
    CLASSIFICATION,
    RECOMMENDATIONS,
    SEARCH,
    TABULAR,
    ENTITIES,
    VISION,
    ASSISTANT,  # built on classification, entities and search: after them
)


def installed() -> tuple[Task, ...]:
    """The installed tasks (:data:`INSTALLED`)."""
    return INSTALLED


def job_types(tasks: Sequence[Task] | None = None) -> list[JobType]:
    """Every job type of ``tasks`` (default: the installed ones), and the core's
    ``privacy-erase`` job, which calls their erasure hooks (:attr:`Task.erase_user`):
    the jobs engine knows no task, it is given these."""
    tasks = INSTALLED if tasks is None else tuple(tasks)
    hooks = {task.name: task.erase_user for task in tasks if task.erase_user is not None}
    return [job_type for task in tasks for job_type in task.job_types] + [erase_job_type(hooks)]


def rollout_quality(tasks: Sequence[Task] | None = None) -> dict[str, RolloutQuality]:
    """``{registry task: its live quality}`` of ``tasks`` (default: the installed ones)
    whose rollouts are judged on their own metric (:attr:`Task.rollout_quality`)."""
    tasks = INSTALLED if tasks is None else tuple(tasks)
    return {
        model_task: task.rollout_quality
        for task in tasks
        if task.rollout_quality is not None
        for model_task in task.model_tasks
    }


def pruners(tasks: Sequence[Task] | None = None) -> dict[str, Prune]:
    """``{task: prune}`` of ``tasks`` (default: the installed ones) that keep rows of
    their own that expire (:attr:`Task.prune`): the scheduler tick runs them."""
    tasks = INSTALLED if tasks is None else tuple(tasks)
    return {task.name: task.prune for task in tasks if task.prune is not None}


def metadata() -> MetaData:
    """The one metadata of every table: the core's and each installed task's (their
    tables join :data:`aiweb.db.base.Base.metadata` when their modules are imported, as
    this module's imports do)."""
    for task in INSTALLED:
        for table in task.tables:
            assert table.metadata is Base.metadata, f"{table.name} is not on Base.metadata"
    return Base.metadata


def is_derived_table(name: str) -> bool:
    """Whether ``name`` is a table an installed task makes at run time, outside the
    migrations (the migration check leaves it alone)."""
    return any(task.derived_table is not None and task.derived_table(name) for task in INSTALLED)
