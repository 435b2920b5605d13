"""``POST /v1/models/{name}/predict``."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Response

from aiweb.api.deps import PredictionsDep
from aiweb.classification.schemas import PredictRequest, PredictResponse
from aiweb.security.auth import scoped

router = APIRouter(prefix="/v1/models", tags=["predict"])


_PREDICT = scoped("predict")
_PREDICT["responses"] = {
    **_PREDICT["responses"],
    404: {"description": "Unknown model, alias or version."},
    413: {"description": "Too many inputs, or a body over the size limit."},
    422: {"description": "Invalid body or a text over the length limit."},
    503: {"description": "The model's queue is full; retry after Retry-After."},
}


@router.post("/{name}/predict", response_model=PredictResponse, **_PREDICT)
async def predict(
    name: Annotated[
        str,
        Path(
            description="`sentiment`, `sentiment@staging` or `sentiment:3`.",
            max_length=80,
        ),
    ],
    body: PredictRequest,
    predictions: PredictionsDep,
    response: Response,
) -> Response:
    """Classify 1 to 256 texts with a model's ``production`` version (or the alias or
    version named). Each prediction gets an id, label and the probability of every
    class; outputs align with ``inputs`` by index."""
    content = orjson.dumps(await predictions.predict(name, body.inputs))
    out = Response(content, media_type="application/json")
    out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
    return out
