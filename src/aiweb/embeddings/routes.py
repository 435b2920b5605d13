"""``POST /v1/models/{name}/embed``: sentence embeddings, micro-batched across requests."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Request, Response

from aiweb.api.deps import SettingsDep
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.embeddings.schemas import EmbedRequest, EmbedResponse
from aiweb.errors import InvalidInputError, PayloadTooLargeError
from aiweb.names import REF_REGEX
from aiweb.security.auth import scoped

router = APIRouter(prefix="/v1/models", tags=["embeddings"])

_EMBED = scoped("predict")
_EMBED["responses"] = {
    **_EMBED["responses"],
    404: {"description": "Unknown model, alias or version, or the embedder is not installed."},
    413: {"description": "Too many inputs, or a body over the size limit."},
    422: {"description": "Invalid body, a text over the length limit, or not an embedder."},
    503: {"description": "The embedder's queue is full; retry after Retry-After."},
}


@router.post("/{name}/embed", response_model=EmbedResponse, **_EMBED)
async def embed(
    name: Annotated[
        str,
        Path(
            description="`minilm`, `minilm@int8` or `minilm:1`.",
            max_length=80,
            pattern=REF_REGEX,
        ),
    ],
    body: EmbedRequest,
    request: Request,
    settings: SettingsDep,
    response: Response,
) -> Response:
    """Embed 1 to 256 texts with a `feature-extraction` model (``aiweb embeddings
    install`` registers `minilm`). Concurrent requests are batched into shared model
    calls. Texts over 256 word pieces are truncated, and ``truncated`` says which."""
    inputs = body.inputs
    limit = settings.embeddings.max_inputs
    if len(inputs) > limit:
        raise PayloadTooLargeError(
            f"{len(inputs)} inputs in one request; the limit is {limit} "
            "(AIWEB_EMBEDDINGS__MAX_INPUTS)"
        )
    max_chars = settings.serving.max_text_chars
    for i, text in enumerate(inputs):
        if len(text) > max_chars:
            raise InvalidInputError(
                f"inputs[{i}] has {len(text)} characters; the limit is {max_chars} "
                "(AIWEB_SERVING__MAX_TEXT_CHARS)"
            )
    pool: EmbedderPool = request.app.state.embedders
    version, result = await pool.embed(name, inputs)
    content = orjson.dumps(
        {
            "model": version.name,
            "version": version.version,
            "dim": int(result.vectors.shape[1]),
            "embeddings": result.vectors,
            "truncated": result.truncated,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    out = Response(content, media_type="application/json")
    out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
    out.headers["X-Model"] = version.name
    out.headers["X-Model-Version"] = str(version.version)
    return out
