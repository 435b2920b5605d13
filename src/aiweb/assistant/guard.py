"""Keep the registry from deleting a model an assistant answers with.

:func:`in_use` is a :data:`aiweb.registry.store.DeletionGuard`: in the transaction that
deletes a whole model, it refuses (409) while an assistant names it as its
``intents_model`` or ``entities_model`` — its next turn would fail. Deleting one version
is left to the registry's own rules (an assistant follows the model's aliases). The app
registers it with the other tasks' guards (:attr:`aiweb.contract.Task.deletion_guard`),
and the CLI with its registry. A light module: it imports only the assistant's table.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from aiweb.assistant.orm import SqlAssistant
from aiweb.errors import ConflictError

__all__ = ["in_use"]


def in_use(session: Session, name: str, version: int | None) -> None:
    """Refuse to delete model ``name`` (``version`` ``None``) while an assistant uses it.

    Raises:
        ConflictError: naming the assistants and what to change first.
    """
    if version is not None:
        return
    users = sorted(
        assistant
        for assistant, config in session.execute(select(SqlAssistant.name, SqlAssistant.config))
        if name in (config.get("intents_model"), config.get("entities_model"))
    )
    if users:
        raise ConflictError(
            f"model {name!r} answers for assistant(s) {', '.join(users)}; change their "
            "config (PUT /v1/assistants/NAME) or delete them first"
        )
