"""The Python SDK without a server: it imports no server module, its errors mirror the
server's tree, problems map to their classes, its models match the server's schemas, and
the retry rule."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import httpx
import pytest

from aiweb import errors as server
from aiweb.client import RetryPolicy, errors, models


def test_importing_the_client_loads_no_server_module() -> None:
    code = (
        "import sys, json, aiweb.client, aiweb.client.models, aiweb.client.errors\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    ours = {m for m in loaded if m == "aiweb" or m.startswith("aiweb.")}
    allowed = {"aiweb", "aiweb._version", "aiweb.errors"}
    assert {m for m in ours if not m.startswith("aiweb.client")} <= allowed
    heavy = {"fastapi", "starlette", "sqlalchemy", "sklearn", "numpy", "celery", "uvicorn"}
    assert not heavy & {m.split(".")[0] for m in loaded}


def _server_classes() -> list[type[server.AiwebError]]:
    return [
        c for c in vars(server).values() if inspect.isclass(c) and issubclass(c, server.AiwebError)
    ]


@pytest.mark.parametrize("cls", _server_classes(), ids=lambda c: c.__name__)
def test_every_server_error_has_its_client_class(cls: type[server.AiwebError]) -> None:
    mine = getattr(errors, cls.__name__)
    assert issubclass(mine, cls)
    assert issubclass(mine, errors.AiwebError)
    assert (mine.status, mine.slug, mine.title) == (cls.status, cls.slug, cls.title)
    for base in cls.__bases__:
        if base is not server.AiwebError and issubclass(base, server.AiwebError):
            assert issubclass(mine, getattr(errors, base.__name__))
    assert cls.__name__ in errors.__all__


def _answer(
    status: int, body: object, content_type: str = "application/problem+json"
) -> httpx.Response:
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return httpx.Response(
        status,
        content=content,
        headers={"content-type": content_type, "retry-after": "3"},
        request=httpx.Request("GET", "http://aiweb/v1/x"),
    )


@pytest.mark.parametrize(
    ("status", "slug", "expected"),
    [
        (404, "model-not-found", errors.ModelNotFound),
        (404, "embedding-model-not-installed", errors.EmbeddingModelNotInstalled),
        (404, "not-found", errors.NotFoundError),
        (422, "validation", errors.InvalidInputError),
        (422, "data-format", errors.DataFormatError),
        (503, "queue-full", errors.QueueFullError),
        (429, "rate-limited", errors.RateLimitedError),
        (401, "unauthorized", errors.UnauthorizedError),
        (405, "method-not-allowed", errors.AiwebError),
        (404, "some-future-slug", errors.NotFoundError),
        (503, "some-future-slug", errors.ServiceUnavailableError),
        (409, "model-not-found", errors.ConflictError),  # the status wins on a mismatch
    ],
)
def test_problem_type_picks_the_class(
    status: int, slug: str, expected: type[errors.AiwebError]
) -> None:
    body = {"type": f"/problems/{slug}", "title": "t", "status": status, "detail": "why"}
    exc = errors.error_from_response(_answer(status, body))
    assert type(exc) is expected
    assert exc.status == status
    assert exc.detail == "why"
    assert exc.problem == body
    assert exc.headers["retry-after"] == "3"


def test_an_answer_that_is_not_a_problem() -> None:
    exc = errors.error_from_response(_answer(502, b"<html>bad gateway</html>", "text/html"))
    assert type(exc) is errors.AiwebError  # a proxy's 502: no problem type to go by
    assert exc.status == 502
    assert exc.problem == {}
    assert "bad gateway" in exc.detail
    exc = errors.error_from_response(_answer(500, b"", "text/plain"))
    assert type(exc) is errors.AiwebError
    assert exc.status == 500


def test_retry_rule() -> None:
    policy = RetryPolicy(retries=2, backoff=0.1, max_wait=10)
    too_many = _answer(429, {})
    assert policy.wait_for_status(0, too_many) == 3.0
    assert policy.wait_for_status(2, too_many) is None  # retries spent
    assert policy.wait_for_status(0, _answer(500, {})) is None
    assert RetryPolicy(max_wait=2).wait_for_status(0, too_many) is None  # asks too much
    no_header = httpx.Response(503, request=httpx.Request("GET", "http://aiweb/"))
    wait = policy.wait_for_status(1, no_header)
    assert wait is not None
    assert 0.1 <= wait <= 0.2
    request = httpx.Request("POST", "http://aiweb/")
    refused = httpx.ConnectError("refused", request=request)
    broken = httpx.ReadError("reset", request=request)
    assert policy.wait_for_error(0, refused, idempotent=False) is not None
    assert policy.wait_for_error(0, broken, idempotent=True) is not None
    assert policy.wait_for_error(0, broken, idempotent=False) is None


def test_models_match_the_server_schemas() -> None:
    from aiweb.app import create_app

    schemas = create_app().openapi()["components"]["schemas"]
    names = {
        "PredictResponse": models.PredictResponse,
        "Prediction": models.Prediction,
        "ExplainResponse": models.ExplainResponse,
        "TextExplanation": models.TextExplanation,
        "Contribution": models.Contribution,
        "EmbedResponse": models.EmbedResponse,
        "Recommended": models.Recommended,
        "SimilarItem": models.SimilarItem,
        "ItemSummary": models.ItemSummary,
        "SearchOut": models.SearchResult,
        "HitOut": models.Hit,
        "CollectionOut": models.CollectionOut,
        "DatasetOut": models.Dataset,
        "DatasetList": models.DatasetList,
        "JobOut": models.Job,
        "JobList": models.JobList,
        "FeedbackResponse": models.Feedback,
        "SpanOut": models.FeedbackSpan,
        "SpanCounts": models.SpanCounts,
        "ModelOut": models.ModelSummary,
        "ModelDetail": models.ModelDetail,
        "ModelVersionOut": models.ModelVersion,
        "AliasEventOut": models.AliasEvent,
    }
    for schema_name, model in names.items():
        schema = schemas[schema_name]
        fields = set(model.model_fields)
        assert set(schema["properties"]) == fields, schema_name
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert required <= set(schema.get("required", [])), schema_name
