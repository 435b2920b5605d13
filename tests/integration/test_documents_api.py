"""``/v1/documents`` through the real app on SQLite and PostgreSQL (the ``settings``
fixture): PDF, DOCX and text round-trip with their pages; every refusal is a 4xx problem
that stores nothing; list, get, text, delete; ``redact_pii`` stores no PII anywhere; and
the Python client."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import live_server
from sqlalchemy import select

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.orm import SqlDocument
from aiweb.db.session import make_engine, make_session_factory
from document_helpers import (
    DOCX_TYPE,
    docx_bomb,
    encrypted_pdf,
    hand_made_pdf,
    image_only_pdf,
    make_docx,
    make_pdf,
    truncated_pdf,
    zip_without_document,
)

PII = ("jane.doe@example.com", "+44 20 7946 0958", "github.com/janedoe", "https://jane.dev/cv")


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def upload(
    client: TestClient,
    content: bytes,
    name: str = "cv.pdf",
    ctype: str = "application/octet-stream",
    **form: str,
) -> Any:
    return client.post("/v1/documents", files={"file": (name, content, ctype)}, data=form)


def stored_files(settings: Settings) -> dict[str, bytes]:
    """Every file under ``documents/`` in the artifact store, by relative path."""
    root = settings.resolved_artifacts_dir / "documents"
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def rows(settings: Settings) -> list[SqlDocument]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as s:
            return list(s.scalars(select(SqlDocument)).all())
    finally:
        engine.dispose()


# -- round trips ------------------------------------------------------------------------


def test_pdf_round_trips_its_pages(client: TestClient, settings: Settings) -> None:
    pages = ["Jane Doe\nPython developer, café", "Experience\nACME 2019-2023", "References"]
    data = make_pdf(pages)
    r = upload(client, data, "Jane CV.pdf", "text/plain")  # the declared type is ignored
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/documents/{body['id']}"
    assert body["name"] == "Jane CV.pdf"
    assert body["media_type"] == "application/pdf"
    assert body["pages"] == 3
    assert body["chars"] == sum(len(p) for p in pages)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size_bytes"] == len(data)
    assert body["redacted"] is False
    assert body["redactions"] is None
    assert client.get(f"/v1/documents/{body['id']}").json() == body

    text = client.get(f"/v1/documents/{body['id']}/text").json()
    assert text["id"] == body["id"]
    assert [p["text"] for p in text["pages"]] == pages
    assert [p["page"] for p in text["pages"]] == [1, 2, 3]
    whole = "\f".join(p["text"] for p in text["pages"])
    for page in text["pages"]:
        assert whole[page["start"] : page["end"]] == page["text"]

    files = stored_files(settings)
    assert files[f"{body['id']}/original.pdf"] == data
    stored = json.loads(files[f"{body['id']}/pages.json"])
    assert stored["pages"] == text["pages"]


def test_docx_round_trips_paragraphs_tables_and_pages(client: TestClient) -> None:
    data = make_docx(
        [["Jane Doe", "Data engineer"], ["Experience", "ACME, 2019-2023"]],
        table=[["Skills", "Python"], ["Tools", "Docker"]],
    )
    r = upload(client, data, "cv.txt")  # the name's suffix is ignored too
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["media_type"] == DOCX_TYPE
    assert body["pages"] == 2
    text = client.get(f"/v1/documents/{body['id']}/text").json()
    assert [p["text"] for p in text["pages"]] == [
        "Jane Doe\nData engineer\nSkills\tPython\nTools\tDocker",
        "Experience\nACME, 2019-2023",
    ]


def test_text_round_trips(client: TestClient, settings: Settings) -> None:
    data = "Job: Python developer\r\nSkills: SQL, Docker\fPage two: über".encode()
    r = upload(client, data, "job.txt")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["media_type"], body["pages"]) == ("text/plain", 2)
    pages = client.get(f"/v1/documents/{body['id']}/text").json()["pages"]
    assert pages == [
        {"page": 1, "start": 0, "end": 41, "text": "Job: Python developer\nSkills: SQL, Docker"},
        {"page": 2, "start": 42, "end": 56, "text": "Page two: über"},
    ]
    assert stored_files(settings)[f"{body['id']}/original.txt"] == data


# -- refusals ---------------------------------------------------------------------------

REFUSALS = [
    ("encrypted", encrypted_pdf, 422, "encrypted"),
    ("truncated-pdf", truncated_pdf, 422, "truncated"),
    ("claims-10000-pages", lambda: hand_made_pdf(count=10_000), 413, "10,000 pages"),
    ("image-only", image_only_pdf, 422, "Upload it with scanned=true to keep it for OCR"),
    ("docx-zip-bomb", docx_bomb, 413, "zip bomb"),
    ("truncated-docx", lambda: make_docx([["cv"]])[:3000], 422, "truncated or malformed"),
    ("zip", zip_without_document, 415, "not a Word document"),
    ("legacy-doc", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, 415, "legacy"),
    ("png", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 415, "PNG"),
    ("latin-1-text", lambda: "café".encode("latin-1"), 422, "not UTF-8"),
    ("nul-text", lambda: b"abc\x00def", 422, "NUL byte"),
    ("utf-16-text", lambda: "hello".encode("utf-16"), 422, "UTF-16"),
    ("empty", lambda: b"", 422, "empty"),
    ("blank", lambda: b"  \n ", 422, "empty"),
]


@pytest.mark.parametrize(
    ("make", "status", "needle"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusals_are_problems_that_store_nothing(
    client: TestClient, settings: Settings, make: Any, status: int, needle: str
) -> None:
    r = upload(client, make(), "cv.pdf", "application/pdf")
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    assert needle in problem["detail"]
    if status == 415:
        assert "PDF, DOCX (Word 2007 or later) or UTF-8 plain text" in problem["detail"]
    assert client.get("/v1/documents").json()["total"] == 0
    assert stored_files(settings) == {}


def test_a_file_over_the_byte_limit_is_413(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_document_bytes": 2048})}
    )
    with TestClient(create_app(limited), headers=auth_headers) as c:
        assert upload(c, b"x" * 2048, "a.txt").status_code == 201
        r = upload(c, b"x" * 2049, "a.txt")
        assert r.status_code == 413
        assert "larger than 2,048 bytes (AIWEB_LIMITS__MAX_DOCUMENT_BYTES)" in r.json()["detail"]


def test_more_pages_than_the_limit_is_413(settings: Settings, auth_headers: dict[str, str]) -> None:
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_document_pages": 2})}
    )
    with TestClient(create_app(limited), headers=auth_headers) as c:
        assert upload(c, make_pdf(["a", "b"])).status_code == 201
        for data in (make_pdf(["a", "b", "c"]), make_docx([["a"], ["b"], ["c"]]), b"a\fb\fc"):
            r = upload(c, data)
            assert r.status_code == 413, r.text
            assert "3 pages; at most 2" in r.json()["detail"]
            assert "AIWEB_LIMITS__MAX_DOCUMENT_PAGES" in r.json()["detail"]


def test_upload_without_a_file_or_with_a_bad_flag_is_422(client: TestClient) -> None:
    r = client.post("/v1/documents", files={"other": ("a.txt", b"text", "text/plain")})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    r = upload(client, b"text", "a.txt", redact_pii="maybe")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "redact_pii"]
    # a boolean is true or false: not the 0/1, yes/no, on/off pydantic would also read,
    # nor an empty field, which FastAPI would read as absent
    for field, value in (
        ("redact_pii", "1"),
        ("scanned", "0"),
        ("scanned", "off"),
        ("scanned", ""),
    ):
        r = upload(client, b"text", "a.txt", **{field: value})
        assert r.status_code == 422, (field, value, r.text)
        assert r.json()["errors"][0]["loc"] == ["body", field]
        assert "true or false" in r.json()["errors"][0]["msg"]
    assert upload(client, b"text", "a.txt", scanned="false").status_code == 201


def test_the_upload_needs_the_train_scope(settings: Settings) -> None:
    from conftest import create_key

    key = create_key(settings, ("predict",), "reader")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as c:
        assert upload(c, b"text", "a.txt").status_code == 403
        assert c.get("/v1/documents").status_code == 403


# -- list, get, delete -------------------------------------------------------------------


def test_list_get_delete_and_404s(client: TestClient, settings: Settings) -> None:
    ids = [upload(client, f"document {i}".encode(), f"d{i}.txt").json()["id"] for i in range(3)]
    listed = client.get("/v1/documents").json()
    assert [d["id"] for d in listed["documents"]] == ids[::-1]  # newest first
    assert (listed["total"], listed["next_offset"]) == (3, None)
    page = client.get("/v1/documents?limit=2").json()
    assert [d["id"] for d in page["documents"]] == ids[:0:-1]
    assert page["next_offset"] == 2
    rest = client.get("/v1/documents?limit=2&offset=2").json()
    assert [d["id"] for d in rest["documents"]] == ids[:1]

    for method, path in [
        ("GET", "/v1/documents/nope"),
        ("GET", "/v1/documents/nope/text"),
        ("DELETE", "/v1/documents/nope"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json()["type"].endswith("/uploaded-document-not-found")

    r = client.delete(f"/v1/documents/{ids[0]}")
    assert r.status_code == 204
    assert client.get(f"/v1/documents/{ids[0]}").status_code == 404
    assert client.get(f"/v1/documents/{ids[0]}/text").status_code == 404
    assert client.get("/v1/documents").json()["total"] == 2
    assert not any(path.startswith(ids[0]) for path in stored_files(settings))
    assert {r.id for r in rows(settings)} == set(ids[1:])

    events = client.get("/v1/audit?limit=100").json()["events"]
    actions = [(e["action"], e["target"]) for e in events]
    assert ("document.delete", f"document:{ids[0]}") in actions
    assert sum(a == "document.upload" for a, _ in actions) == 3


# -- PII redaction ------------------------------------------------------------------------


def cv_lines() -> list[str]:
    return [
        "Jane Doe - data engineer",
        f"Contact: {PII[0]}, {PII[1]}",
        f"Code: {PII[2]} and {PII[3]}",
        "Skills: Python, SQL, Node.js/React; 2019-2023 at ACME",
    ]


@pytest.mark.parametrize("kind", ["pdf", "docx", "txt"])
def test_redact_pii_stores_no_pii_anywhere(
    client: TestClient, settings: Settings, kind: str
) -> None:
    lines = cv_lines()
    data = {
        "pdf": lambda: make_pdf(["\n".join(lines[:2]), "\n".join(lines[2:])]),
        "docx": lambda: make_docx([lines[:2], lines[2:]]),
        "txt": lambda: ("\n".join(lines[:2]) + "\f" + "\n".join(lines[2:])).encode(),
    }[kind]()
    r = upload(client, data, f"{PII[0]} cv.{kind}", redact_pii="true")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["redacted"] is True
    assert body["redactions"] == {"email": 1, "phone": 1, "url": 2}
    assert body["pages"] == 2
    assert PII[0] not in body["name"]
    assert "EMAIL" in body["name"]
    pages = client.get(f"/v1/documents/{body['id']}/text").json()["pages"]
    assert [p["text"] for p in pages] == [
        "Jane Doe - data engineer\nContact: [EMAIL], [PHONE]",
        "Code: [URL] and [URL]\nSkills: Python, SQL, Node.js/React; 2019-2023 at ACME",
    ]
    assert body["chars"] == sum(len(p["text"]) for p in pages)

    files = stored_files(settings)
    assert sorted(files) == [f"{body['id']}/pages.json"]  # no original file
    everything = b"".join(files.values()).decode()
    [row] = rows(settings)
    everything += " ".join(str(getattr(row, c.key)) for c in SqlDocument.__table__.columns)
    everything += json.dumps(client.get("/v1/audit?limit=100").json())
    for value in PII:
        assert value not in everything
    assert row.original_uri is None
    assert row.redacted is True


def test_without_redact_pii_the_text_is_kept_as_it_is(client: TestClient) -> None:
    data = "\n".join(cv_lines()).encode()
    body = upload(client, data, "cv.txt", redact_pii="false").json()
    assert body["redacted"] is False
    [page] = client.get(f"/v1/documents/{body['id']}/text").json()["pages"]
    assert all(value in page["text"] for value in PII)


# -- the Python client ------------------------------------------------------------------


def test_python_client(settings: Settings, admin_key: str, tmp_path: Path) -> None:
    from aiweb.client import Client
    from aiweb.client.errors import (
        DataFormatError,
        UnsupportedMediaTypeError,
        UploadedDocumentNotFound,
    )

    path = tmp_path / "cv.pdf"
    path.write_bytes(make_pdf(["Jane Doe", f"Mail {PII[0]}"]))
    with live_server(settings) as port, Client(f"http://127.0.0.1:{port}", api_key=admin_key) as c:
        document = c.upload_document(path)
        assert (document.name, document.pages, document.redacted) == ("cv.pdf", 2, False)
        assert c.document(document.id) == document
        assert [d.id for d in c.documents().documents] == [document.id]
        text = c.document_text(document.id)
        assert [p.text for p in text.pages] == ["Jane Doe", f"Mail {PII[0]}"]
        with path.open("rb") as fh:
            redacted = c.upload_document(fh, name="again.pdf", redact_pii=True)
        assert redacted.redactions == {"email": 1, "phone": 0, "url": 0}
        assert c.document_text(redacted.id).pages[1].text == "Mail [EMAIL]"
        zipped = tmp_path / "x.zip"
        zipped.write_bytes(zip_without_document())
        with pytest.raises(UnsupportedMediaTypeError):
            c.upload_document(zipped)
        bad = tmp_path / "bad.txt"
        bad.write_bytes(b"\xff\xfe\xfa")
        with pytest.raises(DataFormatError):
            c.upload_document(bad)
        c.delete_document(document.id)
        with pytest.raises(UploadedDocumentNotFound):
            c.document(document.id)


def test_client_models_match_the_server_schemas() -> None:
    from aiweb.client import models

    schemas = create_app().openapi()["components"]["schemas"]
    for schema_name, model in {
        "UploadedDocumentOut": models.Document,
        "UploadedDocumentList": models.DocumentList,
        "UploadedDocumentText": models.DocumentText,
        "UploadedDocumentPage": models.PageText,
    }.items():
        schema = schemas[schema_name]
        assert set(schema["properties"]) == set(model.model_fields), schema_name
        required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert required <= set(schema.get("required", [])), schema_name
