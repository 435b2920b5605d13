"""The OpenAPI document states what every request is held to (aiweb.api.openapi_facts)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from aiweb.api import problems, queries
from aiweb.api.limits import INT64_MAX, INT64_MIN
from aiweb.api.openapi_facts import (
    JSON_VALUE,
    NO_NUL,
    SETTING_BOUNDS,
    document_facts,
    setting_value,
)
from aiweb.app import create_app
from aiweb.config import Settings


def _openapi(**settings: Any) -> dict[str, Any]:
    home = Path("/nonexistent/aiweb-openapi-facts")
    return create_app(Settings(home=home, database_url="sqlite://", **settings)).openapi()


def test_a_setting_sets_the_bound_it_names() -> None:
    top_k = _openapi()["components"]["schemas"]["SearchIn"]["properties"]["top_k"]
    assert top_k["maximum"] == 100
    assert top_k[SETTING_BOUNDS] == {"maximum": "AIWEB_SEARCH__MAX_TOP_K"}
    raised = _openapi(search={"max_top_k": 500})["components"]["schemas"]["SearchIn"]
    assert raised["properties"]["top_k"]["maximum"] == 500


def test_setting_value_reads_nested_settings() -> None:
    settings = Settings(search={"max_top_k": 7})
    assert setting_value(settings, "AIWEB_SEARCH__MAX_TOP_K") == 7
    with pytest.raises(KeyError):
        setting_value(settings, "AIWEB_SEARCH__NO_SUCH")


def test_body_strings_integers_and_free_values_are_what_a_column_holds() -> None:
    schema = {
        "paths": {
            "/v1/x/{id}": {
                "post": {
                    "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/In"}}
                        }
                    },
                    "responses": {},
                }
            }
        },
        "components": {
            "schemas": {
                "In": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z]+$"},
                        "text": {"type": "string"},
                        "loose": {"type": "string", "pattern": "a.c"},
                        "n": {"type": "integer", "minimum": 1},
                        "meta": {"type": "object", "additionalProperties": True},
                        "any": {"title": "Any"},
                    },
                }
            }
        },
    }
    document_facts(schema, Settings())
    props = schema["components"]["schemas"]["In"]["properties"]
    assert props["name"]["pattern"] == "^[a-z]+$"  # excludes NUL already
    assert props["text"]["pattern"] == NO_NUL
    assert props["loose"]["allOf"] == [{"pattern": NO_NUL}]
    assert props["n"] == {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
    assert props["meta"]["additionalProperties"] == JSON_VALUE
    assert props["meta"]["propertyNames"] == {"pattern": NO_NUL}
    assert props["any"] == {"title": "Any", **JSON_VALUE}
    param = schema["paths"]["/v1/x/{id}"]["post"]["parameters"][0]
    assert param["schema"]["pattern"] == NO_NUL
    value = schema["components"]["schemas"]["JsonValue"]
    assert {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX} in value["anyOf"]
    assert re.search(NO_NUL, "a\x00b") is None


def test_the_served_document_names_state_dependent_answers() -> None:
    doc = _openapi()
    similar = doc["paths"]["/v1/items/{item_id}/similar"]["get"]["responses"]
    assert {"404", "409"} <= set(similar)
    upload = doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert "text/csv" in upload["multipart/form-data"]["encoding"]["file"]["contentType"]
    jobs = doc["components"]["schemas"]["TrainJobSpec"]
    assert [b["required"] for b in jobs["oneOf"]] == [["dataset_id"], ["dataset"]]


def test_a_one_value_query_parameter_given_twice_is_refused() -> None:
    app = FastAPI()
    problems.install(app)
    queries.install(app)

    @app.get("/q")
    async def q(
        one: str | None = None, many: Annotated[list[str] | None, Query()] = None
    ) -> dict[str, Any]:
        return {"one": one, "many": many}

    client = TestClient(app)
    assert client.get("/q?one=a&many=b&many=c").json() == {"one": "a", "many": ["b", "c"]}
    r = client.get("/q?one=a&one=b")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["query", "one"]
