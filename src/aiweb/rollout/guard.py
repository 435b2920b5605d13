"""Keep the registry from deleting what a running rollout serves.

:func:`in_the_way` is a :data:`aiweb.registry.store.DeletionGuard`: in the transaction
that deletes a model or a version, it refuses (409) while a running rollout uses it —
its users would meet a version that is gone — and, when the whole model goes, deletes
the model's ended rollouts with it (their history names versions that no longer exist).
:func:`guard_registry` registers it; every process that opens a registry to change it
(the app, the job runners and workers, the CLI) calls it. A light module: the CLI imports
it on every registry command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from aiweb.db.orm import SqlRollout
from aiweb.errors import ConflictError

if TYPE_CHECKING:
    from aiweb.registry.service import RegistryService


def in_the_way(session: Session, name: str, version: int | None) -> None:
    """Refuse to delete model ``name`` (``version`` ``None``) or its version ``version``
    while a running rollout uses it; with the model, delete its ended rollouts.

    Raises:
        ConflictError: naming the rollout's versions and how to end it.
    """
    row = session.execute(
        select(SqlRollout.baseline, SqlRollout.candidate).where(SqlRollout.active_model == name)
    ).first()
    if row is not None and (version is None or version in (row.baseline, row.candidate)):
        what = f"{name}:{version}" if version is not None else f"model {name!r}"
        raise ConflictError(
            f"{what} is in a running rollout ({name}:{row.baseline} against "
            f"{name}:{row.candidate}); promote or abort it first "
            f"(POST /v1/models/{name}/rollout/abort)"
        )
    if version is None:  # the model goes: its ended rollouts (history) with it
        session.execute(
            delete(SqlRollout)
            .where(SqlRollout.model == name)
            .execution_options(synchronize_session=False)
        )


def guard_registry(registry: RegistryService) -> RegistryService:
    """Register :func:`in_the_way` with ``registry`` (idempotent); returns ``registry``."""
    registry.guard_deletions(in_the_way)
    return registry
