"""Liveness and readiness probes (open: no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aiweb.api.deps import LoaderDep

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Production models not loaded yet."}})
async def readyz(loader: LoaderDep) -> Any:
    """Ready when every model's ``production`` version is loaded and warm."""
    status = loader.status()
    return JSONResponse(status, status_code=200 if status["ready"] else 503)
