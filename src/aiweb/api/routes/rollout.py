"""Rollout routes under ``/v1/models/{name}/rollout`` (scope ``admin``). Routes hold no
queries: they call :class:`aiweb.rollout.RolloutService`."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request

from aiweb.api.problems import request_id
from aiweb.names import NAME_REGEX, check_name
from aiweb.rollout.router import RolloutRouter
from aiweb.rollout.schemas import RolloutReport, RolloutRequest
from aiweb.rollout.service import RolloutService
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/models", tags=["rollout"])

NamePath = Annotated[
    str, Path(description="Registered model name.", max_length=63, pattern=NAME_REGEX)
]


def _admin(responses: dict[int, dict[str, Any]]) -> dict[str, Any]:
    spec = scoped("admin")
    spec["responses"] = {**spec["responses"], **responses}
    return spec


async def _after_change(request: Request, name: str) -> None:
    """This process follows the change at once (the others within the refresh)."""
    rollouts: RolloutRouter = request.app.state.rollout_router
    await request.app.state.registry.alias_moved(name)
    await rollouts.follow(request.app.state.registry.alias_moved)


def _service(request: Request) -> RolloutService:
    service: RolloutService = request.app.state.rollouts
    return service


@router.put(
    "/{name}/rollout",
    **_admin(
        {
            404: {"description": "Unknown model or candidate version."},
            409: {
                "description": "No production version, a candidate that is not ready or "
                "is production, or a rollout of the model already running."
            },
        }
    ),
)
async def start_rollout(name: NamePath, body: RolloutRequest, request: Request) -> RolloutReport:
    """Start a rollout of version ``candidate`` against the version ``production``
    points at now (the baseline): ``shadow`` (the candidate scores copies, never
    answers), ``canary`` (it answers a growing share of users while every gate passes,
    then becomes ``production``; a failing gate rolls it back) or ``ab`` (a fixed split
    until someone promotes or aborts). Every serving process follows within
    twice ``AIWEB_ROLLOUT__REFRESH_S``; the scheduler tick judges the gates."""
    check_name(name)
    report = await anyio.to_thread.run_sync(
        lambda: _service(request).start(
            name, body, actor=actor(request), request_id=request_id(request)
        )
    )
    await _after_change(request, name)
    return RolloutReport.model_validate(report)


@router.get(
    "/{name}/rollout",
    **_admin({404: {"description": "Unknown model, or it never had a rollout."}}),
)
async def get_rollout(name: NamePath, request: Request) -> RolloutReport:
    """The model's latest rollout, measured now: each variant's requests, errors, p95
    latency and live accuracy (with its 95% interval), the agreement of the two
    versions, every gate's verdict, the decision behind the last move, and the
    history of moves."""
    check_name(name)
    report = await anyio.to_thread.run_sync(lambda: _service(request).report(name))
    return RolloutReport.model_validate(report)


@router.post(
    "/{name}/rollout/promote",
    **_admin(
        {
            404: {"description": "Unknown model, or it never had a rollout."},
            409: {"description": "Its latest rollout is not running."},
        }
    ),
)
async def promote_rollout(name: NamePath, request: Request) -> RolloutReport:
    """Make the running rollout's candidate ``production`` now (whatever its gates say)
    and end the rollout (audited as ``rollout.promoted``)."""
    check_name(name)
    report = await anyio.to_thread.run_sync(
        lambda: _service(request).promote(
            name, actor=actor(request), request_id=request_id(request)
        )
    )
    await _after_change(request, name)
    return RolloutReport.model_validate(report)


@router.post(
    "/{name}/rollout/abort",
    **_admin(
        {
            404: {"description": "Unknown model, or it never had a rollout."},
            409: {"description": "Its latest rollout is not running."},
        }
    ),
)
async def abort_rollout(name: NamePath, request: Request) -> RolloutReport:
    """End the running rollout: all traffic back on the baseline, which stays
    ``production`` (audited as ``rollout.aborted``)."""
    check_name(name)
    report = await anyio.to_thread.run_sync(
        lambda: _service(request).abort(name, actor=actor(request), request_id=request_id(request))
    )
    await _after_change(request, name)
    return RolloutReport.model_validate(report)
