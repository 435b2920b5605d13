"""The dashboard's resume screening page and token-classification playground, over HTTP
(no browser; the Chromium check is ``test_dashboard_screening_browser.py``): CVs are
uploaded through the documents service with its limits (a refused file is a readable
message with its 4xx status, never a 500), a screening starts the same ``screen`` job as
``POST /v1/screenings``, the page polls it and shows the ranking with matched and
missing skills, and a candidate's CV shows its evidence highlighted at the job's offsets
with its PII masked. The playground highlights a model's entities by type, every piece
of the text escaped. The tiny skills model is ``test_screening``'s. On SQLite.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_screening import EMAIL, JOB, MATCHING, OTHER, PHONE, register, skills_model

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.dashboard import views
from aiweb.documents.service import Page
from aiweb.entities.model import EntityModel
from conftest import create_key
from document_helpers import DOCX_TYPE, make_docx, truncated_pdf

# rendering; the documents and screening jobs on PostgreSQL are tested by their API tests: its
# PostgreSQL variant would add nothing (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

__all__ = ["skills_model"]  # the fixture, imported for this module's tests

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
MARK_RE = re.compile(
    r'<mark class="evidence" title="[^"]*" data-skill="([^"]*)" '
    r'data-start="(\d+)" data-end="(\d+)">([^<]*)</mark>'
)
ENT_RE = re.compile(
    r'<mark class="ent (ent-\d)" title="[^"]*" data-label="([^"]*)" '
    r'data-start="(\d+)" data-end="(\d+)">([^<]*)</mark>'
)
ROW_RE = re.compile(r'<tr data-document="([^"]+)" data-rank="(\d+)">(.*?)</tr>', re.DOTALL)


@pytest.fixture
def key(settings: Settings) -> str:
    """An admin key (the dashboard's login, and the API calls that check its work)."""
    return create_key(settings, ("admin",), name="boss")


@pytest.fixture
def dash(settings: Settings, key: str, skills_model: EntityModel) -> Iterator[TestClient]:
    """A logged-in dashboard client on an app serving the skills model."""
    register(settings, "skills", skills_model)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        login = client.get("/login")
        token = CSRF_RE.search(login.text)
        assert token
        r = client.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": key},
            follow_redirects=False,
        )
        assert r.status_code == 303
        KEYS[client] = key
        yield client
        del KEYS[client]


def csrf(client: TestClient, path: str = "/screening") -> str:
    match = CSRF_RE.search(client.get(path).text)
    assert match, path
    return match.group(1)


KEYS: dict[TestClient, str] = {}
"""The admin key of each client's app, for the API calls that check the dashboard's work."""


def api(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[client]}"}


def upload(client: TestClient, *files: tuple[str, bytes, str], redact: bool = False) -> Any:
    data = {"csrf_token": csrf(client)}
    if redact:
        data["redact_pii"] = "1"
    return client.post(
        "/documents/upload",
        data=data,
        files=[("file", f) for f in files],
        follow_redirects=False,
    )


def documents(client: TestClient) -> dict[str, str]:
    """Name -> id of the uploaded documents, as the API lists them."""
    listed = client.get("/v1/documents", headers=api(client)).json()["documents"]
    return {d["name"]: d["id"] for d in listed}


def wait_for_ranking(client: TestClient, job_id: str, timeout_s: float = 60.0) -> str:
    """The screening's polled fragment once the job has finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(f"/screening/jobs/{job_id}/result", headers={"HX-Request": "true"})
        assert r.status_code == 200
        if 'data-status="pending"' not in r.text and 'data-status="running"' not in r.text:
            assert "hx-trigger" not in r.text  # polling stops with the job
            return r.text
        assert 'hx-trigger="every 1s"' in r.text  # polled while it runs
        time.sleep(0.1)
    raise AssertionError(f"the screening did not finish in {timeout_s} s")


def test_screening_uploads_ranks_and_highlights_the_evidence(dash: TestClient) -> None:
    page = dash.get("/screening")
    assert page.status_code == 200
    assert '<a href="/screening" aria-current="page">Screening</a>' in page.text
    assert 'id="no-documents"' in page.text
    assert 'id="redact-pii" value="1" checked' in page.text  # on by default

    r = upload(
        dash,
        ("jane.docx", make_docx([MATCHING]), DOCX_TYPE),
        ("john.txt", "\n".join(OTHER).encode(), "text/plain"),
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/screening"
    page = dash.get("/screening")
    assert "Uploaded 2 document(s): jane.docx, john.txt." in page.text
    ids = documents(dash)
    good, other = ids["jane.docx"], ids["john.txt"]
    for document_id in (good, other):
        assert f'name="document_ids" value="{document_id}" aria-label' in page.text

    r = dash.post(
        "/screening",
        data={
            "csrf_token": csrf(dash),
            "job_description": JOB,
            "document_ids": [other, good],
            "skills_model": "skills",
            "entities_model": "",
            "redact_pii": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    # the same job as POST /v1/screenings: a screen job, submitted by the dashboard user
    job = dash.get(f"/v1/jobs/{job_id}", headers=api(dash)).json()
    assert job["type"] == "screen"
    assert job["submitted_by"] == "dashboard:boss"
    assert job["params"]["document_ids"] == [other, good]
    assert job["params"]["redact_pii"] is True

    shown = dash.get(f"/screening/jobs/{job_id}")
    assert shown.status_code == 200
    assert html.escape(JOB, quote=False) in shown.text
    fragment = wait_for_ranking(dash, job_id)
    assert 'data-status="succeeded"' in fragment
    rows = ROW_RE.findall(fragment)
    assert [(d, int(rank)) for d, rank, _ in rows] == [(good, 1), (other, 2)]
    best, worst = rows[0][2], rows[1][2]
    assert ">jane.docx</a>" in best
    matched = re.findall(r'<span class="chip matched"[^>]*>([^<]+)</span>', best)
    assert {"Python", "SQL", "Docker"} <= set(matched)
    missing = re.findall(r'<span class="chip missing"[^>]*><del>([^<]+)</del></span>', worst)
    assert {"Python", "SQL", "Docker"} <= set(missing)
    assert 'class="chip matched"' not in worst
    result = dash.get(f"/v1/jobs/{job_id}/result", headers=api(dash)).json()
    scores = re.findall(r"<td>(\d\.\d{3})</td>", best)
    assert float(scores[0]) == pytest.approx(result["candidates"][0]["score"], abs=5e-4)

    # the candidate's CV: every highlight is the document's text at the job's offsets
    cv = dash.get(f"/screening/jobs/{job_id}/documents/{good}", headers={"HX-Request": "true"})
    assert cv.status_code == 200
    assert "<html" not in cv.text
    pages = dash.get(f"/v1/documents/{good}/text", headers=api(dash)).json()["pages"]
    text = "\f".join(p["text"] for p in pages)
    marks = MARK_RE.findall(cv.text)
    assert {"Python", "SQL", "Docker"} <= {m[0] for m in marks}
    for skill, start, end, shown_text in marks:
        assert html.unescape(shown_text) == text[int(start) : int(end)]
        assert shown_text.casefold() == skill.casefold()
    evidence = result["candidates"][0]["evidence"]
    assert {(e["start"], e["end"]) for e in evidence} == {(int(s), int(e)) for _, s, e, _ in marks}
    # the screening asked for redact_pii: contact details are masked in the view too
    assert EMAIL not in cv.text
    assert PHONE not in cv.text
    assert '<span class="pii">[EMAIL]</span>' in cv.text
    assert 'id="cv-masked"' in cv.text
    # without JavaScript the link leads to the page with the CV
    r = dash.get(f"/screening/jobs/{job_id}/documents/{good}", follow_redirects=False)
    assert r.status_code == 303
    full = dash.get(r.headers["location"])
    assert full.status_code == 200
    assert 'id="cv-view"' in full.text
    assert MARK_RE.search(full.text)
    # the recent screenings link to it
    assert f'href="/screening/jobs/{job_id}"' in dash.get("/screening").text


def test_a_cv_kept_only_redacted_shows_its_redacted_text(dash: TestClient) -> None:
    r = upload(dash, ("jane.txt", "\n".join(MATCHING).encode(), "text/plain"), redact=True)
    assert r.status_code == 303, r.text
    good = documents(dash)["jane.txt"]
    r = dash.post(
        "/screening",
        data={
            "csrf_token": csrf(dash),
            "job_description": JOB,
            "document_ids": [good],
            "skills_model": "skills",
        },  # redact_pii unticked
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    wait_for_ranking(dash, job_id)
    cv = dash.get(f"/screening/jobs/{job_id}?document={good}")
    assert cv.status_code == 200
    assert 'id="cv-redacted"' in cv.text  # why it shows [EMAIL]: the text kept is redacted
    assert 'id="cv-masked"' not in cv.text
    assert "[EMAIL]" in cv.text
    assert EMAIL not in cv.text
    assert MARK_RE.search(cv.text)


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 415, "is a PNG image"),
        ("empty.txt", b"", 422, "empty"),
        ("broken.pdf", truncated_pdf(), 422, ""),
        ("nul.txt", b"Python\x00SQL", 422, ""),
    ],
)
def test_a_refused_upload_is_a_readable_message(
    dash: TestClient, name: str, content: bytes, status: int, message: str
) -> None:
    r = upload(dash, ("good.txt", b"Python and SQL", "text/plain"), (name, content, "text/plain"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    errors = re.search(
        r'<div class="flash error" role="alert" id="upload-errors">(.*?)</div>', r.text, re.DOTALL
    )
    assert errors, r.text
    assert f"<li>{name}: " in errors.group(1)
    assert message.casefold() in errors.group(1).casefold()
    assert 'id="upload-ok">Uploaded 1 document(s): good.txt.' in r.text  # the other is kept
    assert set(documents(dash)) == {"good.txt"}


def test_upload_limits_and_checks(dash: TestClient, settings: Settings) -> None:
    limit = settings.limits.max_document_bytes
    r = upload(dash, ("big.txt", b"a" * (limit + 1), "text/plain"))
    assert r.status_code == 413, r.text
    assert "larger than" in r.text
    assert "AIWEB_LIMITS__MAX_DOCUMENT_BYTES" in r.text
    r = dash.post(
        "/documents/upload", data={"csrf_token": csrf(dash)}, files=[("file", ("", b"", ""))]
    )
    assert r.status_code == 422
    assert "Choose a file to upload." in r.text
    r = dash.post("/documents/upload", files=[("file", ("cv.txt", b"Python", "text/plain"))])
    assert r.status_code == 403  # no CSRF token: nothing stored
    assert documents(dash) == {}


def test_a_refused_screening_says_why(dash: TestClient) -> None:
    assert upload(dash, ("cv.txt", b"Python and SQL", "text/plain")).status_code == 303
    good = documents(dash)["cv.txt"]
    base = {"job_description": JOB, "document_ids": [good], "skills_model": "skills"}
    for change, status, message in (
        ({"document_ids": []}, 422, "Choose at least one CV."),
        ({"job_description": "   "}, 422, "Paste a job description."),
        ({"skills_model": "nope"}, 404, "skills_model"),
        ({"entities_model": "nope"}, 404, "entities_model"),
        ({"document_ids": [good, "no-such-document"]}, 404, "document_ids[1]"),
        ({"document_ids": [good, good]}, 422, "repeats document"),
        ({"skills_model": "Bad Name!"}, 422, "skills_model"),
    ):
        r = dash.post("/screening", data={**base, **change, "csrf_token": csrf(dash)})
        assert r.status_code == status, (change, r.text)
        assert r.headers["content-type"].startswith("text/html")
        error = re.search(r'id="screening-error">([^<]*)</p>', r.text)
        assert error, (change, r.text)
        assert message in html.unescape(error.group(1)), (change, r.text)
    # what was typed is kept
    assert html.escape(JOB, quote=False) in r.text
    r = dash.get("/v1/jobs", params={"type": "screen"}, headers=api(dash))  # nothing was submitted
    assert r.json()["total"] == 0
    assert dash.get("/screening/jobs/no-such-job").status_code == 404


def test_playground_highlights_entities_escaped(dash: TestClient) -> None:
    page = dash.get("/playground")
    assert 'id="entities-form"' in page.text
    assert "skills (v1, token-classification)" in page.text
    text = "<script>alert(1)</script> We need Python , SQL and Docker & <b>Kubernetes</b> ."
    r = dash.post(
        "/playground/entities",
        data={"model": "skills", "text": text, "csrf_token": csrf(dash, "/playground")},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    assert "<html" not in r.text
    assert "<script>" not in r.text
    assert "<b>" not in r.text
    assert "<script" not in r.text
    marks = ENT_RE.findall(r.text)
    assert {"Python", "SQL", "Docker"} <= {html.unescape(m[4]) for m in marks}
    for colour, label, start, end, shown in marks:
        assert html.unescape(shown) == text[int(start) : int(end)]
        assert colour == "ent-0"
        assert label == "Skill"
    # the highlighted text is the input, whole, in order
    body = re.search(r'id="entities-highlighted">(.*?)</p>', r.text, re.DOTALL)
    assert body
    assert html.unescape(re.sub(r"<[^>]+>", "", body.group(1))) == text
    # every '<' and '>' of the text is escaped: only the marks are tags
    escaped = re.sub(r'<mark class="ent [^"<>]*"[^<>]*>|</mark>', "", body.group(1))
    assert "<" not in escaped
    assert ">" not in escaped
    assert escaped.count("&lt;") == text.count("<")
    assert escaped.count("&gt;") == text.count(">")
    assert re.search(r'id="entities-legend"><mark class="ent ent-0" data-label="Skill">', r.text)
    assert len(re.findall(r"<tr><td>", r.text)) == len(marks)  # the table: one row each
    # without JavaScript: the whole page, with the status
    full = dash.post(
        "/playground/entities",
        data={"model": "skills", "text": "  ", "csrf_token": csrf(dash, "/playground")},
    )
    assert full.status_code == 422
    assert "Type a text to find entities in." in full.text
    unknown = dash.post(
        "/playground/entities",
        data={"model": "nope", "text": "Python", "csrf_token": csrf(dash, "/playground")},
    )
    assert unknown.status_code == 404


def test_highlight_survives_overlapping_and_out_of_order_spans() -> None:
    text = "a <i>b</i> & c"
    spans = [
        {"start": 11, "end": 14, "label": "Y"},  # out of order
        {"start": 2, "end": 10, "label": "X"},
        {"start": 5, "end": 6, "label": "Z"},  # inside X: left out
        {"start": 9, "end": 12, "label": "W"},  # overlaps X's end: left out
        {"start": 12, "end": 99, "label": "V"},  # past the end
        {"start": 3, "end": 3, "label": "U"},  # empty
        {"start": "2", "end": 4, "label": "T"},  # not an offset
    ]
    segments, skipped = views.highlight(text, spans)
    assert "".join(s["text"] for s in segments) == text
    assert [(s["text"], s["span"]["label"] if s["span"] else None) for s in segments] == [
        ("a ", None),
        ("<i>b</i>", "X"),
        (" ", None),
        ("& c", "Y"),
    ]
    assert skipped == 5
    assert views.highlight("", []) == ([{"text": "", "span": None}], 0)
    view = views.entities_view(text, [{**s, "text": "", "score": 1.0} for s in spans[:3]])
    assert [entry["label"] for entry in view["legend"]] == ["X", "Y", "Z"]
    assert [r["shown"] for r in view["rows"]] == [True, True, False]
    assert view["skipped"] == 1


def test_cv_view_masks_pii_and_places_evidence_by_page() -> None:
    pages = [Page(1, 0, 16, "mail a@b.io, SQL"), Page(2, 17, 28, "Python, SQL")]
    evidence = [
        {"skill": "SQL", "page": 1, "start": 13, "end": 16, "match": "normalised"},
        {"skill": "Python", "page": 2, "start": 17, "end": 23, "match": "text"},
        {"skill": "mail", "page": 1, "start": 5, "end": 11, "match": "text"},  # over PII
        {"skill": "SQL", "page": 3, "start": 40, "end": 43, "match": "text"},  # no page 3
    ]
    view = views.cv_view(pages, evidence, {1: [("email", 5, 11)]}, {"email": "[EMAIL]"})
    first, second = view["pages"]
    assert [(s["text"], s["span"] and s["span"]["kind"]) for s in first["segments"]] == [
        ("mail ", None),
        ("a@b.io", "pii"),
        (", ", None),
        ("SQL", "evidence"),
    ]
    assert second["segments"][0]["text"] == "Python"
    assert second["segments"][0]["span"]["doc_start"] == 17
    assert (view["highlighted"], view["skipped"]) == (2, 2)


def multipart(boundary: bytes, token: bytes, filename: bytes, content: bytes) -> bytes:
    """A raw upload form (bytes an HTTP client would not send, as an attacker can)."""
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + token + b"\r\n--" + boundary
        + b'\r\nContent-Disposition: form-data; name="redact_pii"\r\n\r\n\x00\r\n--' + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename
        + b'"\r\nContent-Type: text/plain\r\n\r\n' + content
        + b"\r\n--" + boundary + b"--\r\n"
    )  # fmt: skip


def test_hostile_values_never_give_a_5xx(dash: TestClient) -> None:
    token = csrf(dash).encode()
    for filename in (b"\xed\xa0\x80.txt", b"a\x00b.txt", b"../../etc/passwd", b"x" * 10_000):
        for content in (b"Python \xed\xa0\x80 SQL", b"Python\x00", b"Python and SQL"):
            r = dash.post(
                "/documents/upload",
                content=multipart(b"sweep", token, filename, content),
                headers={"Content-Type": "multipart/form-data; boundary=sweep"},
                follow_redirects=False,
            )
            assert r.status_code < 500, (filename[:20], content, r.text[:300])
    stored = documents(dash)
    assert stored  # the readable ones were kept, under safe names
    assert all("/" not in name and "\x00" not in name for name in stored)
    good = next(iter(stored.values()))
    valid = {
        b"job_description": JOB.encode(),
        b"document_ids": good.encode(),
        b"skills_model": b"skills",
        b"entities_model": b"",
        b"redact_pii": b"1",
    }
    for name in valid:
        for value in (b"%00", b"%ED%A0%80", b"x" * 10_000, b"..%2F", b"%2F"):
            fields = {**valid, name: value}
            body = b"&".join([b"csrf_token=" + token] + [k + b"=" + v for k, v in fields.items()])
            r = dash.post(
                "/screening",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                follow_redirects=False,
            )
            assert r.status_code < 500, (name, value[:20], r.text[:300])
    for path in (
        "/screening/jobs/{}",
        "/screening/jobs/x/documents/{}",
        "/screening/jobs/x?document={}",
    ):
        for value in ("%00", "%ED%A0%80", "x" * 10_000, "..%2F", "%2F", "-1"):
            r = dash.get(path.format(value), follow_redirects=False)
            assert r.status_code < 500, (path, value[:20], r.text[:300])
    for value in ("%00", "%ED%A0%80", "x" * 10_000, "..%2F", "%2F", "-1"):
        r = dash.post(
            f"/documents/{value}/delete",
            content=b"csrf_token=" + token,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert r.status_code < 500, ("delete", value[:20], r.text[:300])
    assert good in documents(dash).values()  # none of them named a stored document


def test_with_an_entities_model_names_stay_masked_or_the_text_hidden(
    dash: TestClient, settings: Settings, skills_model: EntityModel
) -> None:
    register(settings, "people", skills_model)  # a token-classification model (no person type)
    assert upload(dash, ("cv.txt", "\n".join(MATCHING).encode(), "text/plain")).status_code == 303
    good = documents(dash)["cv.txt"]
    r = dash.post(
        "/screening",
        data={
            "csrf_token": csrf(dash),
            "job_description": JOB,
            "document_ids": [good],
            "skills_model": "skills",
            "entities_model": "people",
            "redact_pii": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    assert "names by <code>people:1</code>" in wait_for_ranking(dash, job_id)
    cv = dash.get(f"/screening/jobs/{job_id}?document={good}")
    assert "the names <code>people:1</code> finds" in cv.text
    assert MARK_RE.search(cv.text)
    assert EMAIL not in cv.text
    # the entities model is gone: its names cannot be found again, so no text is shown
    assert dash.delete("/v1/models/people", headers=api(dash)).status_code == 204
    cv = dash.get(f"/screening/jobs/{job_id}?document={good}")
    assert cv.status_code == 200
    assert 'id="cv-hidden"' in cv.text
    assert not MARK_RE.search(cv.text)
    assert "Backend developer" not in cv.text
    assert 'id="cv-evidence"' in cv.text  # the evidence is still listed


def test_a_cv_is_deleted_from_the_screening_page(dash: TestClient) -> None:
    r = upload(dash, ("keep.txt", b"Python", "text/plain"), ("drop.txt", b"SQL", "text/plain"))
    assert r.status_code == 303, r.text
    ids = documents(dash)
    page = dash.get("/screening").text
    # each row's button submits a form of its own (outside the screening form, so that
    # it is never that form's default button), after a confirmation
    drop = ids["drop.txt"]
    assert f'<button type="submit" class="link danger small" form="delete-{drop}"' in page
    assert (
        f'<form method="post" action="/documents/{drop}/delete" id="delete-{drop}" '
        'data-confirm="Delete drop.txt? Its file and its text are removed.">'
    ) in page
    start = page.index('id="screening-form"')
    screening_form = page[start : page.index("</form>", start)]
    assert "formaction" not in screening_form
    assert 'action="/documents/' not in screening_form
    # no CSRF token: refused, nothing deleted
    r = dash.post(f"/documents/{ids['drop.txt']}/delete", follow_redirects=False)
    assert r.status_code == 403
    assert set(documents(dash)) == {"keep.txt", "drop.txt"}
    r = dash.post(
        f"/documents/{ids['drop.txt']}/delete",
        data={"csrf_token": csrf(dash), "job_description": "ignored"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/screening")
    assert "Deleted drop.txt." in dash.get(r.headers["location"]).text
    assert set(documents(dash)) == {"keep.txt"}
    gone = dash.get(f"/v1/documents/{ids['drop.txt']}", headers=api(dash))
    assert gone.status_code == 404
    audit = dash.get("/v1/audit", params={"action": "document.delete"}, headers=api(dash))
    assert audit.status_code == 200, audit.text
    assert [e["target"] for e in audit.json()["events"]] == [f"document:{ids['drop.txt']}"]
    # again, or an id that never existed: a readable message, not a 500
    for missing in (ids["drop.txt"], "no-such-document", "x" * 300):
        r = dash.post(
            f"/documents/{missing}/delete", data={"csrf_token": csrf(dash)}, follow_redirects=True
        )
        assert r.status_code == 200, r.text
        assert "does not exist" in r.text
