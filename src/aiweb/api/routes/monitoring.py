"""``GET /metrics`` (open to loopback clients, otherwise an admin key; configurable),
feedback on predictions and live performance per model version."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from aiweb.api.deps import DriftDep, FeedbackDep
from aiweb.monitoring.feedback import Box, Span
from aiweb.monitoring.metrics import render
from aiweb.monitoring.schemas import (
    DriftResponse,
    FeedbackRequest,
    FeedbackResponse,
    PerformanceResponse,
)
from aiweb.names import INT32_MAX, NAME_REGEX, REF_REGEX
from aiweb.security.auth import actor, bearer_scheme, client_address, header_scheme, require, scoped
from aiweb.security.secrets import is_loopback

router = APIRouter(tags=["monitoring"])

_require_admin = require("admin")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        401: {"description": "Not a loopback client, and no valid key."},
        403: {"description": "The key lacks scope 'admin'."},
    },
    # the key is optional (loopback scrapes, AIWEB_AUTH__METRICS_PUBLIC_ON_LOOPBACK): an
    # empty security requirement says so, next to the two ways of sending one
    openapi_extra={"security": [{}]},
)
async def metrics(
    request: Request,
    response: Response,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    header_key: str | None = Depends(header_scheme),
) -> Response:
    """Prometheus metrics. Loopback clients need no key while
    ``AIWEB_AUTH__METRICS_PUBLIC_ON_LOOPBACK`` is true (the default); everyone else needs
    an ``admin`` key."""
    settings = request.app.state.settings
    if not (settings.auth.metrics_public_on_loopback and is_loopback(client_address(request))):
        await _require_admin(request, response, bearer, header_key)
    body, content_type = await anyio.to_thread.run_sync(
        render, request.app.state.metrics_collectors
    )
    return Response(body, media_type=content_type)


_FEEDBACK = scoped("predict")
_FEEDBACK["responses"] = {
    **_FEEDBACK["responses"],
    200: {"description": "Earlier feedback on this prediction was replaced."},
    404: {"description": "No such prediction."},
    422: {
        "description": "Not a label of the prediction's model version, a label for a "
        "prediction of a number (or a value for one of a label), a corrected list of "
        "spans for a model whose predictions are not spans, spans that overlap, are "
        "empty, lie past the end of the text or have a label the version does not "
        "have, or a bad body."
    },
    503: {
        "description": "The prediction is not logged yet and too many feedback requests "
        "already wait for theirs; send it again after ``Retry-After`` seconds."
    },
}


@router.post(
    "/v1/predictions/{prediction_id}/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    **_FEEDBACK,
)
async def post_feedback(
    prediction_id: Annotated[str, Path(max_length=64, description="A prediction's id.")],
    body: FeedbackRequest,
    request: Request,
    response: Response,
    feedback: FeedbackDep,
) -> dict[str, Any]:
    """Say which label a served prediction should have had — or, for a prediction of a
    number, which value (``{"value": 129500.0}``), or for a prediction of spans
    (entities), the corrected list of spans (``{"entities": [{"start": 0, "end": 6,
    "label": "ORG"}]}``), for a prediction of boxes in an image the corrected boxes
    (``{"boxes": [{"label": "face", "x": 10, "y": 20, "width": 64, "height": 64}]}``), or
    for text read from an image the corrected text (``{"text": "…"}``) — (201; 200 when it
    replaces earlier feedback on the same prediction). Stored before the answer; it feeds
    the version's live accuracy, or live RMSE and MAE (``GET …/versions/{version}/performance``).

    Feedback on spans is correct when the predicted spans equal the corrected ones
    exactly (entity-level exact match, as CoNLL-2003 scores); the answer counts the
    predicted spans against the corrected ones (true and false positives, false
    negatives: precision and recall), and its ``label`` is the label the corrected list
    is logged under.

    A prediction served a moment ago may not be logged yet (the log is written in
    batches): the request then waits for it, up to about twice the log's flush interval,
    without holding a server thread; 404 after that. When too many requests wait already,
    503 with ``Retry-After`` at once."""
    spans = (
        None if body.entities is None else [Span(e.start, e.end, e.label) for e in body.entities]
    )
    boxes = (
        None
        if body.boxes is None
        else [Box(b.label, b.x, b.y, b.width, b.height) for b in body.boxes]
    )
    created, out = await feedback.submit(
        prediction_id,
        body.label,
        body.comment,
        actor(request),
        value=body.value,
        spans=spans,
        boxes=boxes,
        text=body.text,
    )
    if not created:
        response.status_code = 200
    return out


_PERFORMANCE = scoped("predict")
_PERFORMANCE["responses"] = {
    **_PERFORMANCE["responses"],
    404: {"description": "Unknown model or version."},
}


@router.get(
    "/v1/models/{name}/versions/{version}/performance",
    response_model=PerformanceResponse,
    **_PERFORMANCE,
)
async def get_performance(
    name: Annotated[str, Path(max_length=63, pattern=NAME_REGEX)],
    version: Annotated[int, Path(ge=1, le=INT32_MAX)],
    feedback: FeedbackDep,
) -> dict[str, Any]:
    """Live accuracy and macro-F1 (RMSE and MAE for a model that predicts numbers) of a
    model version over the last hour, day and week, from the feedback on its predictions
    (windows by prediction time)."""
    return await anyio.to_thread.run_sync(feedback.performance, name, version)


#: what :func:`aiweb.monitoring.drift.parse_window` accepts: 1 to 9999 minutes (``m``),
#: hours (``h``) or days (``d``), at most 90 days (2160h)
WINDOW_PATTERN = (
    r"^(?:[1-9][0-9]{0,3}m|(?:[1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    r"|(?:[1-9]|[1-8][0-9]|90)d)$"
)

_DRIFT = scoped("predict")
_DRIFT["responses"] = {
    **_DRIFT["responses"],
    404: {"description": "Unknown model, alias or version."},
    409: {"description": "The version has no reference profile (retrain it)."},
    422: {"description": "A bad window."},
}


@router.get("/v1/models/{name}/drift", response_model=DriftResponse, **_DRIFT)
async def get_drift(
    name: Annotated[
        str,
        Path(
            max_length=80,
            pattern=REF_REGEX,
            description="`sentiment`, `sentiment@staging` or `sentiment:3`.",
        ),
    ],
    drift: DriftDep,
    window: Annotated[
        str,
        Query(
            max_length=8,
            pattern=WINDOW_PATTERN,
            description="30m, 24h, 7d …: 1 to 9999 minutes, hours or days, at most 90 days.",
        ),
    ] = "24h",
) -> dict[str, Any]:
    """Compare the model version's predictions of the last ``window`` with the reference
    profile of its evaluation data: PSI of each profiled feature — the text length and
    out-of-vocabulary rate of text inputs, or each input column in bins (with the shares
    of missing values and unseen categories) — drift above 0.2; chi-square test of the
    predicted-label distribution (drift when p < 0.01).
    Nothing is flagged below ``min_n`` predictions."""
    return await anyio.to_thread.run_sync(drift.drift, name, window)
