"""Feedback on entity predictions as a corrected entity list, over HTTP: the predicted
spans kept in the prediction log, ``correct`` as the exact match of the lists, the
counts of the predicted spans against the corrected ones, the label of the corrected
list, live accuracy (the performance route, the dashboard's series and the rollout
gate's SQL) as the share of predictions whose spans were exactly right, label feedback
on an entity prediction as before, a corrected list for a model of another task refused,
hostile bodies answered with 4xx problems, never a 5xx; the Python client's
``feedback(entities=…)`` against a live server; the migration that adds the columns — on
every database.

The model is the tiny spaCy model of ``test_entities_api`` (skills and cities).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, live_server, open_registry, register_tiny
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text
from test_entities_api import KNOWN, NAME, dataset, register

from aiweb.app import create_app
from aiweb.classification.model import TextClassifier
from aiweb.client import Client
from aiweb.config import Settings
from aiweb.db.migrate import alembic_config, current_revision, head_revision, upgrade
from aiweb.db.orm import SqlFeedback, SqlPrediction
from aiweb.db.session import make_engine, make_session_factory
from aiweb.entities.model import EntityModel, fit
from aiweb.entities.service import drift_reference
from aiweb.monitoring.feedback import correct_sql
from aiweb.monitoring.stats import PredictionStats

SKILLS_TEXT = "experience with Docker and Rust required"
EMPTY_TEXT = "nothing to see here today ."


@pytest.fixture(scope="module")
def model() -> EntityModel:
    return fit(dataset(0, 200), dev=dataset(1, 40), epochs=10, seed=0, patience=3)


@pytest.fixture(scope="module")
def reference(model: EntityModel) -> dict[str, Any]:
    texts = [e.text for e in dataset(2, 60)]
    return drift_reference(texts, model.extract(texts), labels=model.labels)


@pytest.fixture
def client(
    settings: Settings,
    auth_headers: dict[str, str],
    model: EntityModel,
    reference: dict[str, Any],
    tiny_model: TextClassifier,
) -> Iterator[TestClient]:
    """The app on a fresh database (every database) serving ``skills:1`` and a text
    classifier ``sentiment:1``."""
    register(settings, model, reference, 1)
    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "sentiment", tiny_model.to_bytes())
    finally:
        engine.dispose()
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def predict(client: TestClient, texts: list[str]) -> list[dict[str, Any]]:
    resp = client.post(f"/v1/models/{NAME}/predict", json={"inputs": texts})
    assert resp.status_code == 200, resp.text
    client.app.state.prediction_logger.flush()  # type: ignore[attr-defined]
    predictions: list[dict[str, Any]] = resp.json()["predictions"]
    return predictions


def spans_of(prediction: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: e[k] for k in ("start", "end", "label")} for e in prediction["entities"]]


def feedback(client: TestClient, pid: str, body: Any) -> Any:
    return client.post(f"/v1/predictions/{pid}/feedback", json=body)


def problem(resp: Any, status: int = 422) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    detail: str = resp.json()["detail"]
    return detail


def test_corrected_entity_lists_are_stored_compared_and_counted(client: TestClient) -> None:
    known, skills, empty, labelled = predict(client, [KNOWN, SKILLS_TEXT, EMPTY_TEXT, KNOWN])
    predicted = spans_of(known)
    assert predicted == [
        {"start": 21, "end": 27, "label": "skill"},
        {"start": 39, "end": 45, "label": "location"},
    ]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        logged = conn.execute(
            select(SqlPrediction.spans).where(SqlPrediction.id == known["id"])
        ).scalar_one()
    assert logged == [[21, 27, "skill"], [39, 45, "location"]]

    # exactly right, sent in another order: correct, 2 true positives
    resp = feedback(client, known["id"], {"entities": predicted[::-1], "comment": "ok"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["correct"] is True
    assert body["counts"] == {"true_positives": 2, "false_positives": 0, "false_negatives": 0}
    assert body["entities"] == body["predicted_entities"] == predicted
    assert (body["label"], body["predicted_label"]) == ("skill", "skill")  # tie: first in text
    assert body["comment"] == "ok"

    # one span one character short and one missed: wrong, counted
    found = spans_of(skills)
    assert len(found) >= 1
    first = found[0]
    corrected = [
        {**first, "end": first["end"] - 1},
        *found[1:],
        {"start": 0, "end": 10, "label": "skill"},
    ]
    resp = feedback(client, skills["id"], {"entities": corrected})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["correct"] is False
    assert body["counts"] == {
        "true_positives": len(found) - 1,
        "false_positives": 1,
        "false_negatives": 2,
    }
    assert body["entities"][0] == {"start": 0, "end": 10, "label": "skill"}  # text order

    # no entity predicted, none there: correct; its label is "none"
    resp = feedback(client, empty["id"], {"entities": []})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert spans_of(empty) == []
    assert (body["correct"], body["label"], body["entities"]) == (True, "none", [])
    assert body["counts"] == {"true_positives": 0, "false_positives": 0, "false_negatives": 0}

    # a label on an entity prediction works as before (label == predicted_label)
    resp = feedback(client, labelled["id"], {"label": "location"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["correct"], body["entities"], body["counts"]) == (False, None, None)

    # live accuracy: right 2 (known, empty) of 4; the labels are compared for macro-F1
    windows = client.get(f"/v1/models/{NAME}/versions/1/performance").json()["windows"]
    assert windows["24h"]["n"] == 4
    assert windows["24h"]["accuracy"] == pytest.approx(0.5)
    with engine.connect() as conn:
        right = conn.execute(
            select(func.sum(correct_sql())).where(SqlFeedback.model == NAME)
        ).scalar_one()
        rows = {
            r.prediction_id: r
            for r in conn.execute(select(SqlFeedback).where(SqlFeedback.model == NAME)).all()
        }
    assert int(right) == 2  # the rollout gate's count
    series = PredictionStats(make_session_factory(engine)).accuracy_series(NAME, 1, days=1)
    assert (series["accuracy"], series["n"]) == ([0.5], [4])
    assert rows[known["id"]].spans == [[21, 27, "skill"], [39, 45, "location"]]
    assert rows[known["id"]].correct is True
    assert rows[labelled["id"]].spans is None

    # a second answer replaces the first (200), and accuracy follows
    resp = feedback(client, known["id"], {"entities": predicted[:1]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["correct"] is False
    assert resp.json()["counts"]["false_positives"] == 1
    windows = client.get(f"/v1/models/{NAME}/versions/1/performance").json()["windows"]
    assert windows["24h"]["accuracy"] == pytest.approx(0.25)


def test_bad_corrections_get_422_and_store_nothing(client: TestClient) -> None:
    (known,) = predict(client, [KNOWN])
    pid = known["id"]
    n = len(KNOWN)
    refused = {
        "overlap": [
            {"start": 0, "end": 6, "label": "skill"},
            {"start": 5, "end": 9, "label": "skill"},
        ],
        "overlap ": [
            {"start": 21, "end": 27, "label": "skill"},
            {"start": 21, "end": 27, "label": "location"},
        ],
        "empty": [{"start": 6, "end": 6, "label": "skill"}],
        "empty ": [{"start": 9, "end": 3, "label": "skill"}],
        "past the text": [{"start": 0, "end": n + 1, "label": "skill"}],
        "not one of": [{"start": 0, "end": 6, "label": "person"}],
    }
    for why, spans in refused.items():
        assert why.strip() in problem(feedback(client, pid, {"entities": spans})), why
    assert problem(feedback(client, pid, {"value": 1.0})).startswith(f"{NAME}:1 predicts a label")
    # a corrected list for a model whose predictions are not spans
    sentiment = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
    other = sentiment.json()["predictions"][0]["id"]
    client.app.state.prediction_logger.flush()  # type: ignore[attr-defined]
    detail = problem(feedback(client, other, {"entities": [{"start": 0, "end": 1, "label": "a"}]}))
    assert "text-classification" in detail
    assert "not spans" in detail
    assert feedback(client, other, {"label": "positive"}).status_code == 201
    unknown = feedback(client, str(uuid.uuid4()), {"entities": []})
    assert problem(unknown, 404)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(select(SqlFeedback.prediction_id)).scalars().all() == [other]


def raw(client: TestClient, pid: str, text: str) -> Any:
    return client.post(
        f"/v1/predictions/{pid}/feedback",
        content=text.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json"},
    )


def test_hostile_bodies_get_4xx_problems(client: TestClient) -> None:
    (known,) = predict(client, [KNOWN])
    pid = known["id"]
    span = {"start": 0, "end": 6, "label": "skill"}
    bodies: list[Any] = [
        {"entities": [span, dict(span)]},  # uniqueItems
        {"entities": [span], "label": "skill"},
        {"entities": [span], "value": 1.0},
        {"entities": None},
        {"entities": span},
        {"entities": [{**span, "start": 2**63}]},
        {"entities": [{**span, "end": 10**30}]},
        {"entities": [{**span, "end": -(2**70)}]},
        {"entities": [{**span, "end": 2**31}]},
        {"entities": [{**span, "start": "0"}]},
        {"entities": [{**span, "start": 0.5}]},
        {"entities": [{**span, "start": True}]},
        {"entities": [{**span, "label": ""}]},
        {"entities": [{**span, "label": "x" * 256}]},
        {"entities": [{**span, "label": "sk\x00ill"}]},
        {"entities": [{**span, "label": None}]},
        {"entities": [{**span, "score": 0.5}]},
        {"entities": [{"start": i, "end": i + 1, "label": "skill"} for i in range(1001)]},
    ]
    for body in bodies:
        resp = feedback(client, pid, body)
        assert 400 <= resp.status_code < 500, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    texts = [
        '{"entities": [{"start": 0, "end": NaN, "label": "skill"}]}',
        '{"entities": [{"start": 0, "end": Infinity, "label": "skill"}]}',
        '{"entities": [{"start": 0, "end": 6, "label": "\\ud800"}]}',
        '{"entities": [{"start": 0, "end": 6, "label": "\ud800"}]}',
        '{"entities": [{"start": 0, "end": 6, "label": "\\u0000"}]}',
        '{"entities": [{"start": 0, "end": 6e400, "label": "skill"}]}',
        '{"entities": [{"start": 0, "end": 1' + "0" * 5000 + ', "label": "skill"}]}',
        '{"entities": [' * 2000,
    ]
    for body_text in texts:
        resp = raw(client, pid, body_text)
        assert 400 <= resp.status_code < 500, (body_text[:80], resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SqlFeedback)).scalar_one() == 0


def test_generated_entity_lists_get_2xx_or_4xx_never_5xx(client: TestClient) -> None:
    (known,) = predict(client, [KNOWN])
    pid = known["id"]
    ints = st.one_of(
        st.integers(-5, len(KNOWN) + 5),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=3),
        st.none(),
    )
    labels = st.one_of(
        st.sampled_from(["skill", "location", "person"]),
        st.text(max_size=300),
        st.integers(),
        st.none(),
    )
    span = st.fixed_dictionaries({"start": ints, "end": ints, "label": labels})
    bodies = st.one_of(
        st.fixed_dictionaries({"entities": st.lists(span, max_size=5)}),
        st.dictionaries(
            st.sampled_from(["entities", "label", "value", "comment"]),
            st.one_of(st.lists(span, max_size=3), st.text(max_size=5), st.integers()),
            max_size=3,
        ),
    )

    @hsettings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body: dict[str, Any]) -> None:
        resp = raw(client, pid, json.dumps(body))
        assert resp.status_code in (200, 201, 422), resp.text
        if resp.status_code >= 400:
            assert resp.headers["content-type"] == "application/problem+json"
        else:
            answer = resp.json()
            assert answer["correct"] == (answer["entities"] == answer["predicted_entities"])

    check()


def test_migration_0016_marks_earlier_label_feedback_and_goes_back(database_url: str) -> None:
    """Feedback written before 0016 gets ``correct = (label = predicted_label)`` (values
    keep NULL); the downgrade drops the three columns and the upgrade adds them again."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0015")
        now = datetime.now(UTC)
        rows = [("a", "pos", "pos", None), ("b", "neg", "pos", None), ("c", "3", "2", 3.0)]
        with engine.begin() as conn:
            for pid, label, predicted, value in rows:
                conn.execute(
                    text(
                        "INSERT INTO feedback (prediction_id, model, version, predicted_label, "
                        "label, value, submitted_by, predicted_at, created_at) VALUES "
                        "(:pid, 'm', 1, :predicted, :label, :value, 'tests', :now, :now)"
                    ),
                    {
                        "pid": pid,
                        "predicted": predicted,
                        "label": label,
                        "value": value,
                        "now": now,
                    },
                )
        upgrade(engine)
        with engine.connect() as conn:
            query = text("SELECT prediction_id, correct FROM feedback")
            got: dict[str, Any] = {row[0]: row[1] for row in conn.execute(query)}
        assert {k: None if v is None else bool(v) for k, v in got.items()} == {
            "a": True,
            "b": False,
            "c": None,
        }
        cfg = alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0015")
        columns = {c["name"] for c in inspect(engine).get_columns("feedback")}
        assert {"correct", "spans"}.isdisjoint(columns)
        assert "spans" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
        upgrade(engine)
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


def test_the_python_client_sends_a_corrected_list(
    settings: Settings,
    admin_key: str,
    model: EntityModel,
    reference: dict[str, Any],
) -> None:
    register(settings, model, reference, 1)
    with (
        live_server(settings, "entity-feedback") as port,
        Client(f"http://127.0.0.1:{port}", api_key=admin_key) as sdk,
    ):
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/{NAME}/predict",
            json={"inputs": [KNOWN]},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert resp.status_code == 200, resp.text
        known = resp.json()["predictions"][0]
        answer = sdk.feedback(known["id"], entities=spans_of(known)[:1], comment="one missed")
    assert answer.correct is False
    assert answer.counts is not None
    assert (answer.counts.true_positives, answer.counts.false_positives) == (1, 1)
    assert answer.entities is not None
    assert [(e.start, e.end, e.label) for e in answer.entities] == [(21, 27, "skill")]
    assert answer.comment == "one missed"
