"""``/v1/privacy``: erase one user's data (GDPR Art. 17) as a background job."""

# no ``from __future__ import annotations``: FastAPI reads the body annotation
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiweb.api.deps import JobsDep
from aiweb.api.problems import request_id
from aiweb.jobs.erasure import submit_erasure
from aiweb.jobs.schemas import JobOut
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/privacy", tags=["privacy"])


class EraseRequest(BaseModel):
    """Whose data to erase."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(
        ...,
        min_length=1,
        max_length=255,
        description="The user id as your application sent it (interactions' `user_id`).",
        examples=["user-42"],
    )

    @field_validator("user_id")
    @classmethod
    def _storable(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
        return value


@router.post(
    "/erase",
    status_code=202,
    **scoped("admin"),
)
async def erase_user(
    body: Annotated[EraseRequest, Body()],
    request: Request,
    response: Response,
    service: JobsDep,
) -> JobOut:
    """Erase everything aiweb keeps about one user id: a ``privacy-erase`` job.

    It deletes what each installed task keeps about the user (recommendations: its
    interactions and cached lists) and reports the counts in its result
    (``{"subject", "erased": {"recommendation.interactions": n, …}, "total"}``). The job's
    parameters hold the user id only until it is done; the audit log records the
    erasure under a keyed digest of the id (``subject``), never the id itself.

    Answers 202 with the job and its ``Location`` (follow ``GET /v1/jobs/{id}``); 503
    (no job created) when the broker is unreachable.
    """
    job = await anyio.to_thread.run_sync(
        lambda: submit_erasure(
            service, body.user_id, actor=actor(request), request_id=request_id(request)
        )
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)
