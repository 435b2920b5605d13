"""Token-classification models end to end, in-process: a tiny spaCy model trained here on
a synthetic set (skills and cities, a few seconds), registered with its drift reference,
served by ``POST /v1/models/{name}/predict``: the answer's shape and version header,
offsets that slice the input for any Unicode (emoji, combining marks, tabs, newlines,
right-to-left text), the prediction log (label, counts, length, drift bins), the drift
route, the metrics, the 4xx answers to hostile bodies (never a 5xx), a model of another
task refused by the entity service, and how a rollout compares two versions' answers.
The first test runs on every database; the others on SQLite."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.orm import SqlPrediction
from aiweb.entities.data import Example, Span
from aiweb.entities.model import EntityModel, fit
from aiweb.entities.service import (
    ENTITIES_FEATURE,
    LENGTH_FEATURE,
    NO_ENTITY,
    EntityService,
    drift_reference,
    text_label,
)
from aiweb.entities.task import TASK, compare_entities
from aiweb.errors import InvalidInputError, PayloadTooLargeError
from aiweb.monitoring.drift import assign_bins, numeric_profile
from aiweb.monitoring.prediction_log import PredictionLogger
from aiweb.tasks import installed
from conftest import create_key

NAME = "skills"
SKILLS = ["Python", "Kubernetes", "PostgreSQL", "React", "Docker", "Terraform", "GraphQL", "Rust"]
CITIES = ["Berlin", "Lagos", "Osaka", "Quito", "Lima", "Oslo", "Cairo", "Hanoi"]
#: ``{skill}``/``{skill2}``/``{city}`` are filled in; the rest is context
TEMPLATES = [
    "we need {skill} skills in {city} .",
    "senior engineer with {skill} , based in {city}",
    "experience with {skill} and {skill2} required",
    "the office in {city} is closed today",
    "nothing to see here today .",
    "{skill} developer wanted",
]
#: texts the trained model answers with entities (checked by the first test)
KNOWN = "senior engineer with Python , based in Berlin"


def example(rng: random.Random) -> Example:
    """One sentence of :data:`TEMPLATES`, its skills and city as spans."""
    template = rng.choice(TEMPLATES)
    values = {
        "skill": (rng.choice(SKILLS), "skill"),
        "skill2": (rng.choice(SKILLS), "skill"),
        "city": (rng.choice(CITIES), "location"),
    }
    text, spans = "", []
    for piece in template.split(" "):
        if text:
            text += " "
        key = piece.strip("{}")
        if piece.startswith("{") and key in values:
            word, label = values[key]
            spans.append(Span(len(text), len(text) + len(word), label))
            text += word
        else:
            text += piece
    return Example(text, tuple(spans))


def dataset(seed: int, n: int) -> list[Example]:
    rng = random.Random(seed)
    return [example(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def model() -> EntityModel:
    return fit(dataset(0, 200), dev=dataset(1, 40), epochs=10, seed=0, patience=3)


@pytest.fixture(scope="module")
def reference(model: EntityModel) -> dict[str, Any]:
    texts = [e.text for e in dataset(2, 60)]
    return drift_reference(texts, model.extract(texts), labels=model.labels)


def register(settings: Settings, model: EntityModel, reference: dict[str, Any], count: int) -> None:
    """``count`` versions of :data:`NAME` (the first is production), and a text
    classifier ``sentiment`` when asked for."""
    registry, engine = open_registry(settings)
    try:
        for i in range(count):
            registry.register_version(
                NAME,
                "token-classification",
                artifact=model.to_bytes(),
                artifact_format="spacy",
                labels=list(model.labels),
                signature={"inputs": {"type": "array", "items": {"type": "string"}}},
                lineage={"dataset": "synthetic", "tag": str(i + 1)},
                evaluation={"drift_reference": reference},
                actor="tests",
            )
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_settings(settings: Settings) -> Settings:
    if not settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("SQLite only: the first test of this module runs on every database")
    return settings


@pytest.fixture
def client(
    sqlite_settings: Settings,
    auth_headers: dict[str, str],
    model: EntityModel,
    reference: dict[str, Any],
) -> Iterator[TestClient]:
    register(sqlite_settings, model, reference, 2)
    with TestClient(create_app(sqlite_settings), headers=auth_headers) as c:
        yield c


def predict(client: TestClient, ref: str, inputs: list[str]) -> Any:
    resp = client.post(f"/v1/models/{ref}/predict", json={"inputs": inputs})
    assert resp.status_code == 200, resp.text
    return resp.json()


def check_offsets(texts: list[str], body: dict[str, Any]) -> int:
    """Every entity slices its input; returns how many there are."""
    assert len(body["predictions"]) == len(texts)
    count = 0
    for text, prediction in zip(texts, body["predictions"], strict=True):
        previous_end = 0
        for entity in prediction["entities"]:
            assert set(entity) == {"text", "label", "start", "end", "score"}
            assert previous_end <= entity["start"] < entity["end"] <= len(text)
            assert text[entity["start"] : entity["end"]] == entity["text"], (text, entity)
            assert 0.0 <= entity["score"] <= 1.0
            previous_end = entity["end"]
            count += 1
    return count


# -- end to end, every database ----------------------------------------------------------
def test_predict_log_drift_and_metrics(
    settings: Settings,
    auth_headers: dict[str, str],
    model: EntityModel,
    reference: dict[str, Any],
) -> None:
    assert TASK in installed()
    register(settings, model, reference, 1)
    texts = [KNOWN, "experience with Docker and Rust required", "nothing to see here", ""]
    with TestClient(create_app(settings), headers=auth_headers) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert f"{NAME}:1" in ready.json()["loaded"]
        resp = client.post(f"/v1/models/{NAME}/predict", json={"inputs": texts})
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-model-version"] == "1"
        body = resp.json()
        assert (body["model"], body["version"]) == (NAME, 1)
        assert check_offsets(texts, body) >= 3
        first = [(e["text"], e["label"]) for e in body["predictions"][0]["entities"]]
        assert first == [("Python", "skill"), ("Berlin", "location")]
        assert body["predictions"][3]["entities"] == []
        ids = [p["id"] for p in body["predictions"]]
        assert len(set(ids)) == len(ids)

        client.app.state.prediction_logger.flush()  # type: ignore[attr-defined]
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            query = select(SqlPrediction).where(SqlPrediction.id.in_(ids))
            rows = {r.id: r for r in conn.execute(query).all()}
        assert set(rows) == set(ids)
        for text, prediction in zip(texts, body["predictions"], strict=True):
            row = rows[prediction["id"]]
            entities = prediction["entities"]
            assert (row.model, row.version) == (NAME, 1)
            assert row.label == text_label([_Labelled(e["label"]) for e in entities])
            assert row.scores == {
                label: float(sum(e["label"] == label for e in entities))
                for label in {e["label"] for e in entities}
            }
            assert row.input_chars == len(text)
            assert row.input_sha256 == hashlib.sha256(text.encode()).hexdigest()
            assert row.input_text is None  # AIWEB_LOG_INPUTS is off
            assert set(row.drift_bins) == {LENGTH_FEATURE, ENTITIES_FEATURE}
            for feature, value in ((LENGTH_FEATURE, len(text)), (ENTITIES_FEATURE, len(entities))):
                profile = reference["binned_features"][feature]
                [expected] = assign_bins(profile, np.asarray([float(value)])).tolist()
                assert row.drift_bins[feature] == expected
                assert expected < len(profile["bins"]) - 1  # never the missing bin
        assert rows[ids[2]].label == NO_ENTITY
        assert rows[ids[0]].label == "skill"  # a tie: the type found first

        drift = client.get(f"/v1/models/{NAME}/drift", params={"window": "1h"})
        assert drift.status_code == 200, drift.text
        answer = drift.json()
        assert (answer["model"], answer["version"], answer["n"]) == (NAME, 1, len(texts))
        features = {f["name"]: f for f in answer["features"]}
        assert set(features) == {"predicted_label", LENGTH_FEATURE, ENTITIES_FEATURE}
        profile = reference["binned_features"][ENTITIES_FEATURE]
        assert features[ENTITIES_FEATURE]["bins"] == profile["bins"]
        assert answer["drift"] is False  # too few predictions to judge

        counted = {
            s.labels["label"]: s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples
            if s.name == "aiweb_predictions_total"
            and (s.labels["model"], s.labels["version"]) == (NAME, "1")
        }
        assert counted["skill"] >= 2, counted  # also counted by the other database's run
        assert counted[NO_ENTITY] >= 2, counted


class _Labelled:
    def __init__(self, label: str) -> None:
        self.label = label


# -- offsets -----------------------------------------------------------------------------
#: pieces a hostile text is made of: entity words, emoji (with ZWJ and skin tones),
#: combining marks, whitespace of every kind, right-to-left scripts, astral characters
PIECES = [
    *SKILLS,
    *CITIES,
    "with",
    "in",
    "\U0001f469\u200d\U0001f4bb",
    "\U0001f642",
    "\U0001f44d\U0001f3fd",
    "e\u0301",
    "n\u0303o",
    "\u0301",
    "\t",
    "\n",
    "\r\n",
    " ",
    "   ",
    "\u00a0",
    "\u2028",
    "\u200b",
    "\u05e9\u05dc\u05d5\u05dd",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u202e",
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522",
    "\u4e2d\u6587",
    ",",
    ".",
    "-",
]
_FREE = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=12,
)
hostile_texts = st.lists(st.one_of(st.sampled_from(PIECES), _FREE), max_size=16).map("".join)


def test_offsets_slice_the_input_for_any_unicode(client: TestClient) -> None:
    found = [0]

    @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile_texts, min_size=1, max_size=6))
    def check(texts: list[str]) -> None:
        body = predict(client, NAME, texts)
        found[0] += check_offsets(texts, body)

    check()
    fixed = [
        "\U0001f642 Python\twith\nKubernetes \U0001f469\u200d\U0001f4bb in Berlin",
        "e\u0301e\u0301 Docker in Osaka \u202e\u0634\u0643\u0631\u0627",
        "\t\n  React\r\nin Lima  ",
        "\U0001d518\U0001d52b\U0001d526 Terraform in Quito \u4e2d\u6587",
    ]
    assert check_offsets(fixed, predict(client, NAME, fixed)) >= 4
    assert found[0] > 0, "no entity in any generated text: the property was never exercised"


# -- versions ----------------------------------------------------------------------------
def test_version_header_names_the_version_that_answered(client: TestClient) -> None:
    for ref, version in ((NAME, 1), (f"{NAME}:2", 2), (f"{NAME}@production", 1)):
        resp = client.post(f"/v1/models/{ref}/predict", json={"inputs": [KNOWN]})
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-model-version"] == str(version)
        assert resp.json()["version"] == version
    missing = client.post(f"/v1/models/{NAME}:9/predict", json={"inputs": [KNOWN]})
    assert missing.status_code == 404


# -- hostile bodies ----------------------------------------------------------------------
def test_hostile_bodies_are_4xx_problems(client: TestClient, sqlite_settings: Settings) -> None:
    limits = sqlite_settings.serving
    url = f"/v1/models/{NAME}/predict"
    raw = {
        "lone surrogate": (b'{"inputs": ["Python \\ud800 in Berlin"]}', 422),
        "NUL": (b'{"inputs": ["Python \\u0000 in Berlin"]}', 422),
        "empty list": (b'{"inputs": []}', 422),
        "not a list": (b'{"inputs": "Python"}', 422),
        "a number": (b'{"inputs": [3]}', 422),
        "no inputs": (b"{}", 422),
        "an unknown field": (b'{"inputs": ["x"], "top_k": 3}', 422),
    }
    for what, (content, status) in raw.items():
        resp = client.post(url, content=content, headers={"Content-Type": "application/json"})
        assert resp.status_code == status, (what, resp.text)
        assert resp.headers["content-type"] == "application/problem+json", what
    too_many = client.post(url, json={"inputs": ["Python"] * (limits.max_inputs + 1)})
    assert too_many.status_code == 413, too_many.text
    assert "AIWEB_SERVING__MAX_INPUTS" in too_many.json()["detail"]
    at_limit = client.post(url, json={"inputs": ["a" * limits.max_text_chars]})
    assert at_limit.status_code == 200, at_limit.text
    too_long = client.post(url, json={"inputs": ["ok", "a" * (limits.max_text_chars + 1)]})
    assert too_long.status_code == 422, too_long.text
    assert "inputs[1]" in too_long.json()["detail"]
    with_user = client.post(url, json={"inputs": [KNOWN], "user_id": "u-1"})
    assert with_user.status_code == 200, with_user.text
    bad_user = client.post(url, json={"inputs": [KNOWN], "user_id": ""})
    assert bad_user.status_code == 422


def test_the_service_refuses_what_http_never_lets_through(client: TestClient) -> None:
    """Called directly (the CLI, jobs), the service answers the same problems."""
    service: EntityService = client.app.state.entities  # type: ignore[attr-defined]
    portal = client.portal
    assert portal is not None
    cases: dict[str, tuple[list[Any], type[Exception], str]] = {
        "lone surrogate": (["Python \ud800"], InvalidInputError, "lone surrogate"),
        "NUL": (["Python \x00"], InvalidInputError, "NUL"),
        "empty": ([], InvalidInputError, "at least one"),
        "not a text": ([b"Python"], InvalidInputError, "not a text"),
        "too many": (["x"] * 10_000, PayloadTooLargeError, "MAX_INPUTS"),
    }
    for what, (inputs, error, message) in cases.items():
        with pytest.raises(error, match=message):
            portal.call(service.predict, NAME, inputs)
        del what


def test_a_model_of_another_task_is_refused_by_the_entity_service(
    sqlite_settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    registry, engine = open_registry(sqlite_settings)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)
        service = EntityService(registry, sqlite_settings, PredictionLogger(engine))

        async def ask() -> None:
            try:
                await service.predict("sentiment", ["Python in Berlin"])
            finally:
                await service.aclose()

        with pytest.raises(InvalidInputError, match="'text-classification', not 'token-cl"):
            anyio.run(ask)
    finally:
        engine.dispose()
    # through the route, the text classifier answers: the model's task routes the body
    with TestClient(create_app(sqlite_settings), headers=auth_headers) as c:
        resp = c.post("/v1/models/sentiment/predict", json={"inputs": ["a wonderful film"]})
        assert resp.status_code == 200, resp.text
        assert "label" in resp.json()["predictions"][0]


def test_dashboard_pages_show_an_entity_model(
    sqlite_settings: Settings, model: EntityModel, reference: dict[str, Any]
) -> None:
    key = create_key(sqlite_settings, ("admin",), name="boss")
    register(sqlite_settings, model, reference, 1)
    with TestClient(create_app(sqlite_settings), base_url="http://testserver") as dash:
        token = re.search(r'name="csrf_token" value="([^"]+)"', dash.get("/login").text)
        assert token
        login = dash.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": key},
            follow_redirects=False,
        )
        assert login.status_code == 303
        for page in (
            "/",
            "/models",
            f"/models/{NAME}",
            f"/models/{NAME}/versions/1",
            "/playground",
        ):
            resp = dash.get(page)
            assert resp.status_code == 200, (page, resp.text[:500])
        assert "token-classification" in dash.get(f"/models/{NAME}").text


# -- the pieces --------------------------------------------------------------------------
def test_text_label_is_the_most_frequent_type_first_on_ties() -> None:
    def labels(*names: str) -> list[_Labelled]:
        return [_Labelled(n) for n in names]

    assert text_label([]) == NO_ENTITY
    assert text_label(labels("skill")) == "skill"
    assert text_label(labels("location", "skill", "skill")) == "skill"
    assert text_label(labels("location", "skill", "skill", "location")) == "location"
    assert text_label(labels("skill", "location")) == "skill"


def test_drift_reference_is_what_the_drift_service_reads() -> None:
    texts = ["Python in Berlin", "Rust and Go", "", "nothing"]
    found = [
        [_Labelled("skill"), _Labelled("location")],
        [_Labelled("skill"), _Labelled("skill")],
        [],
        [],
    ]
    ref = drift_reference(texts, found, labels=("location", "skill", "org"))
    assert ref["n"] == 4
    assert ref["labels"] == {"location": 0.0, "skill": 0.5, "org": 0.0, NO_ENTITY: 0.5}
    assert set(ref["binned_features"]) == {LENGTH_FEATURE, ENTITIES_FEATURE}
    assert ref["binned_features"][ENTITIES_FEATURE] == numeric_profile(
        np.asarray([2.0, 2.0, 0.0, 0.0])
    )
    assert ref["psi_threshold"] > 0
    assert ref["chi2_p_threshold"] > 0
    with pytest.raises(ValueError, match="3 texts but 4 predictions"):
        drift_reference(texts[:3], found)


def test_compare_entities_agrees_on_the_same_span_sets() -> None:
    def answer(*per_input: list[tuple[int, int, str]] | None) -> dict[str, Any]:
        return {
            "predictions": [
                {"id": str(i)}
                if spans is None
                else {
                    "id": str(i),
                    "entities": [
                        {"text": "x", "label": label, "start": s, "end": e, "score": 1.0}
                        for s, e, label in spans
                    ],
                }
                for i, spans in enumerate(per_input)
            ]
        }

    served = answer([(0, 6, "skill"), (10, 16, "location")], [], [(0, 4, "skill")], None)
    other = answer([(10, 16, "location"), (0, 6, "skill")], [], [(0, 3, "skill")], [])
    assert compare_entities(served, other) == (3, 2)  # order does not matter; None is skipped
    relabelled = answer([(0, 6, "tool"), (10, 16, "location")], [], [(0, 4, "skill")], None)
    assert compare_entities(served, relabelled) == (3, 2)
    assert compare_entities(served, {"detail": "error"}) == (0, 0)
    assert TASK.predict is not None
    assert TASK.predict.compare is compare_entities
