"""Resume screening end to end, on SQLite and PostgreSQL (the ``settings`` fixture): a tiny
skills model trained here, two CVs generated as a PDF and a DOCX and uploaded through
``POST /v1/documents``, ``POST /v1/screenings`` -> 202 -> the ``screen`` job's result: the
matching CV ranks first, evidence offsets slice the document text, e-mail and phone never
reach the result; 404 and 422 at submit; and ``aiweb screen`` in process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.entities.model import EntityModel
from aiweb.registry.factory import build_registry
from document_helpers import DOCX_TYPE, make_docx, make_pdf
from screening_helpers import EMAIL, JOB, MATCHING, OTHER, PHONE, register, tiny_skills_model


@pytest.fixture(scope="module")
def skills_model() -> EntityModel:
    return tiny_skills_model()


@pytest.fixture
def client(
    settings: Settings, auth_headers: dict[str, str], skills_model: EntityModel
) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        register(settings, "skills", skills_model)
        yield c


def upload(client: TestClient, content: bytes, name: str, ctype: str) -> str:
    r = client.post("/v1/documents", files={"file": (name, content, ctype)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def finished(client: TestClient, location: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(location).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"the job did not finish in {timeout_s} s")


def test_the_matching_cv_ranks_first_and_pii_is_redacted(client: TestClient) -> None:
    good = upload(client, make_pdf(MATCHING), "jane.pdf", "application/pdf")
    other = upload(client, make_docx([OTHER]), "john.docx", DOCX_TYPE)
    r = client.post("/v1/screenings", json={"job_description": JOB, "document_ids": [other, good]})
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert location == f"/v1/jobs/{r.json()['id']}"
    assert r.json()["type"] == "screen"
    job = finished(client, location)
    assert job["status"] == "succeeded", job["error"]
    answer = client.get(f"{location}/result")  # the job writes no file: its result, JSON
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    result = answer.json()
    assert result == job["result"]
    assert job["links"]["result"] == f"{location}/result"
    assert {"Python", "SQL", "Docker"} <= set(result["job_description_skills"])
    first, second = result["candidates"]
    assert (first["document_id"], first["rank"]) == (good, 1)
    assert (second["document_id"], second["rank"]) == (other, 2)
    assert first["score"] > second["score"]
    assert {"Python", "SQL", "Docker"} <= set(first["matched_skills"])
    assert second["matched_skills"] == []
    assert result["similarity_method"] == "tfidf"  # no embedding model installed
    assert result["models"]["skills"] == "skills:1"
    assert result["formula"]["weights"] == {"coverage": 0.7, "similarity": 0.3}
    dumped = json.dumps(result)
    for secret in (EMAIL, PHONE, "7946"):
        assert secret not in dumped
    assert first["pii"]["email"] == 1
    assert first["pii"]["phone"] == 1
    # the evidence slices the document's text (pages joined by a form feed)
    pages = client.get(f"/v1/documents/{good}/text").json()["pages"]
    text = "\f".join(p["text"] for p in pages)
    assert first["evidence"]
    for e in first["evidence"]:
        mention = text[e["start"] : e["end"]]
        assert mention.casefold() == e["skill"].casefold(), (mention, e)
        page = pages[e["page"] - 1]
        assert page["start"] <= e["start"] < e["end"] <= page["end"]


def test_submit_errors_are_problems(
    client: TestClient, settings: Settings, tiny_model_bytes: bytes
) -> None:
    good = upload(client, b"Python and SQL", "cv.txt", "text/plain")

    def submit(**body: Any) -> Any:
        return client.post(
            "/v1/screenings", json={"job_description": JOB, "document_ids": [good], **body}
        )

    r = submit(document_ids=[good, "no-such-document"])
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "document_ids[1]" in r.json()["detail"]
    assert "no-such-document" in r.json()["detail"]
    r = submit(skills_model="nope")
    assert r.status_code == 404, r.text
    assert "skills_model" in r.json()["detail"]
    r = submit(entities_model="nope")
    assert r.status_code == 404, r.text
    registry, engine = build_registry(settings)
    try:
        registry.register_version(
            "sentiment",
            "text-classification",
            artifact=tiny_model_bytes,
            artifact_format="skops",
            labels=["negative", "positive"],
            signature={},
            lineage={},
            evaluation={},
        )
    finally:
        engine.dispose()
    r = submit(skills_model="sentiment")
    assert r.status_code == 422, r.text
    assert "token-classification" in r.json()["detail"]
    for body in (
        {"document_ids": [good, good]},
        {"document_ids": []},
        {"job_description": "  "},
        {"redact": False},
        {"skills_model": "Bad Name!"},
    ):
        r = submit(**body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # the same job through POST /v1/jobs
    r = client.post(
        "/v1/jobs", json={"type": "screen", "job_description": JOB, "document_ids": ["x"]}
    )
    assert r.status_code == 404, r.text
    assert client.get("/v1/jobs", params={"type": "screen"}).json()["total"] == 0


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.delenv("AIWEB_ARTIFACTS_URL", raising=False)
    return settings


def test_cli_screen(cli_env: Settings, skills_model: EntityModel, tmp_path: Path) -> None:
    from aiweb.cli import screen as screen_cli

    app = typer.Typer()
    screen_cli.register(app)
    app.command("noop")(lambda: None)  # a group, so the command is called by its name
    jd = tmp_path / "job.txt"
    jd.write_text(JOB)
    good, other = tmp_path / "jane.pdf", tmp_path / "john.docx"
    good.write_bytes(make_pdf(MATCHING))
    other.write_bytes(make_docx([OTHER]))
    result = CliRunner().invoke(
        app, ["screen", "--job-description", str(jd), str(other), str(good)]
    )
    assert result.exit_code == 1  # no skills model yet
    assert "skills_model" in result.stderr
    register(cli_env, "skills", skills_model)
    result = CliRunner().invoke(
        app, ["screen", "--job-description", str(jd), "--json", str(other), str(good)]
    )
    assert result.exit_code == 0, result.stderr
    ranking = json.loads(result.stdout)
    assert [c["rank"] for c in ranking["candidates"]] == [1, 2]
    assert {"Python", "SQL"} <= set(ranking["candidates"][0]["matched_skills"])
    assert EMAIL not in result.stdout
    best = ranking["candidates"][0]["document_id"]
    result = CliRunner().invoke(app, ["screen", "--job-description", str(jd), best[:8], str(other)])
    assert result.exit_code == 0, result.stderr
    assert "rank" in result.stdout
    assert "coverage" in result.stdout
    assert best in result.stdout
