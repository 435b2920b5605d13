"""The assistant as an installed task (:mod:`aiweb.tasks`): so far its tables (migration
0019); its routes, services and jobs join this description as they are built."""

from __future__ import annotations

from aiweb.assistant.orm import SqlAssistant, SqlConversation, SqlMessage
from aiweb.contract import Task, tables_of

__all__ = ["TASK"]

TASK = Task(name="assistant", tables=tables_of(SqlAssistant, SqlConversation, SqlMessage))
