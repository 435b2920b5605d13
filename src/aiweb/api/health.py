"""Liveness and readiness probes (open: no key needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])

#: ``() -> {"ready": bool, "loaded": [...], "failed": {...}}``, set on
#: ``app.state.readiness`` by the lifespan
ReadinessFn = Callable[[], dict[str, Any]]


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Production models not loaded yet."}})
async def readyz(request: Request) -> Any:
    """Ready when every model's ``production`` version is loaded and warm."""
    readiness: ReadinessFn = request.app.state.readiness
    status = readiness()
    return JSONResponse(status, status_code=200 if status["ready"] else 503)
