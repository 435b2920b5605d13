"""What /metrics reports after real requests, in one process."""

from __future__ import annotations

from fastapi.testclient import TestClient
from helpers import NEGATIVE_TEXT, POSITIVE_TEXT, open_registry, register_tiny
from prometheus_client.parser import text_string_to_metric_families

from aiweb.app import create_app
from aiweb.classification.model import TextClassifier
from aiweb.config import Settings


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    snapshot: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return snapshot.get((name, frozenset(labels.items())), 0.0)


def test_requests_inference_predictions_and_jobs_are_counted(
    settings: Settings, tiny_model: TextClassifier, auth_headers: dict[str, str]
) -> None:
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model.to_bytes())
    engine.dispose()
    route = "/v1/models/{name}/predict"
    with TestClient(create_app(settings), headers=auth_headers) as client:
        before = samples(client)
        texts = [POSITIVE_TEXT, NEGATIVE_TEXT, POSITIVE_TEXT + " indeed"]
        assert (
            client.post("/v1/models/sentiment/predict", json={"inputs": texts}).status_code == 200
        )
        assert client.post("/v1/models/nope/predict", json={"inputs": ["x"]}).status_code == 404
        assert client.post("/v1/models/sentiment/predict", json={"inputs": []}).status_code == 422
        assert client.get("/no/such/path/123").status_code == 404
        upload = client.post(
            "/v1/datasets", files={"file": ("rows.csv", b"id,text\n1,good\n2,bad\n", "text/csv")}
        )
        assert upload.status_code == 201, upload.text
        job = client.post(
            "/v1/jobs",
            json={"type": "batch-predict", "model": "sentiment", "dataset_id": upload.json()["id"]},
        )
        assert job.status_code == 202, job.text
        after = samples(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": route, "method": "POST", "status": "200"}
    assert delta("aiweb_http_requests_total", **ok) == 1
    assert delta("aiweb_http_requests_total", **{**ok, "status": "404"}) == 1
    assert delta("aiweb_http_requests_total", **{**ok, "status": "422"}) == 1
    assert delta("aiweb_http_request_duration_seconds_count", **ok) == 1
    assert delta("aiweb_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any("123" in dict(labels).get("route", "") for _, labels in after)  # no raw paths
    version = {"model": "sentiment", "version": "1"}
    assert delta("aiweb_batch_size_sum", **version) == 3
    assert delta("aiweb_inference_duration_seconds_count", **version) >= 1
    labels = tiny_model.predict_proba(texts).argmax(axis=1)
    for i, name in enumerate(tiny_model.labels):
        expected = int((labels == i).sum())
        assert delta("aiweb_predictions_total", **version, label=name) == expected
    jobs = sum(
        v
        for (name, lbls), v in after.items()
        if name == "aiweb_jobs_total" and ("type", "batch-predict") in lbls
    )
    assert jobs == 1
