"""``POST /v1/screenings``: rank uploaded CVs against a job description in a ``screen``
job (:mod:`aiweb.entities.screening`; docs/screening.md).

Mount with ``app.include_router(router)``; the job goes through the app's job service
(``app.state.jobs``), checked at submit as ``POST /v1/jobs`` checks it.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from aiweb.api.deps import JobsDep
from aiweb.api.problems import request_id
from aiweb.entities.screening import ScreeningJobSpec, ScreeningRequest
from aiweb.jobs.schemas import JobOut
from aiweb.security.auth import actor, scoped

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["screening"])

_SUBMIT = scoped("train")
_SUBMIT["responses"] = {
    **_SUBMIT["responses"],
    202: {"description": "The `screen` job was submitted; follow its Location."},
    404: {"description": "A document, or the skills or entities model, does not exist."},
    422: {
        "description": "An invalid body (a blank or too long job description, no documents, "
        "more than 200, a repeated one), or a model that is not a token-classification model."
    },
    503: {"description": "A model version is not ready, or the job broker is unreachable."},
}


@router.post("/screenings", status_code=202, **_SUBMIT)
async def submit_screening(
    body: ScreeningRequest, request: Request, response: Response, service: JobsDep
) -> JobOut:
    """Rank uploaded CVs (``POST /v1/documents``) against a job description.

    Answers 202 with the ``screen`` job and its ``Location``; once it has succeeded, its
    ``result`` holds the ranking: ``{"job_description_skills", "candidates": [{"document_id",
    "rank", "score", "coverage", "similarity", "matched_skills", "missing_skills",
    "evidence": [{"skill", "page", "start", "end", "match", "snippet"}], "pii"}],
    "formula", "similarity_method", "models"}``. The score is ``0.7 * coverage + 0.3 *
    similarity`` (returned as ``formula``); it never uses names, photos, ages or
    addresses, and with ``redact_pii`` the result holds no e-mail address, phone number,
    URL or (with ``entities_model``) name.
    """
    spec = ScreeningJobSpec(type="screen", **body.model_dump())
    job = await anyio.to_thread.run_sync(
        lambda: service.submit(spec, actor=actor(request), request_id=request_id(request))
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)
