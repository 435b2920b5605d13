"""aiweb.entities.screening without a model: skills come from a fake extractor that finds
words of a fixed list, so normalisation, matching, coverage, the score, the ranking and
its ties, evidence offsets and PII handling are checked on hand-made texts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from aiweb.documents.service import PAGE_SEPARATOR, Page, paginate
from aiweb.entities.model import Entity
from aiweb.entities.screening import (
    EMBEDDING_MATCH_THRESHOLD,
    NOT_BLANK,
    W_COVERAGE,
    W_SIMILARITY,
    Candidate,
    ScreeningJobSpec,
    ScreeningRequest,
    normalise_skill,
    pii_spans,
    screen,
)

SKILLS = ["Python", "SQL", "Docker", "REST APIs", "REST API", "Kubernetes", "C++", "Java"]


def finder(words: Sequence[str], label: str = "Skill"):  # type: ignore[no-untyped-def]
    """An extractor that finds ``words`` (case-insensitive, whole words), as a model's
    ``extract`` answers."""
    pattern = re.compile(
        r"(?<!\w)("
        + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        + r")(?![\w+])",
        re.IGNORECASE,
    )

    def extract(texts: Sequence[str]) -> list[list[Entity]]:
        return [
            [Entity(m.group(), label, m.start(), m.end(), 1.0) for m in pattern.finditer(t)]
            for t in texts
        ]

    return extract


skills = finder(SKILLS)
JD = "We want a backend developer: Python, SQL and Docker; REST APIs a plus."


def cv(document_id: str, *pages: str) -> Candidate:
    return Candidate(document_id, paginate(list(pages)))


def text_of(candidate: Candidate) -> str:
    return PAGE_SEPARATOR.join(p.text for p in candidate.pages)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("  Python 3.11, ", "python"),
        ("python3", "python"),
        ("PYTHON", "python"),
        ("\uff30\uff39\uff34\uff28\uff2f\uff2e", "python"),  # fullwidth PYTHON: NFKC
        ("C++", "c++"),
        ("C#", "c#"),
        (".NET", ".net"),
        ("Node.js.", "node.js"),
        ("REST APIs", "rest api"),
        ("front-end", "front end"),
        ("Machine   Learning", "machine learning"),
        ("(SQL)", "sql"),
        ("HTML5", "html"),
        ("S3", "s3"),
        ("EC2", "ec2"),
        ("databases", "database"),
        ("Sass", "sass"),
        ("AWS", "aws"),
        ("...", ""),
    ],
)
def test_normalise_skill(raw: str, norm: str) -> None:
    assert normalise_skill(raw) == norm


# --------------------------------------------------------------------------- scoring


def test_coverage_matched_missing_and_the_formula() -> None:
    good = cv("b-good", "Skills: Python, SQL, Docker.", "Built REST API services.")
    partial = cv("a-partial", "I know Python only.")
    result = screen(JD, [good, partial], skills=skills)
    assert result["job_description_skills"] == ["Python", "SQL", "Docker", "REST APIs"]
    first, second = result["candidates"]
    assert first["document_id"] == "b-good"
    assert first["rank"] == 1
    assert second["rank"] == 2
    assert first["matched_skills"] == ["Python", "SQL", "Docker", "REST APIs"]
    assert first["missing_skills"] == []
    assert first["coverage"] == 1.0
    assert second["matched_skills"] == ["Python"]
    assert second["missing_skills"] == ["SQL", "Docker", "REST APIs"]
    assert second["coverage"] == 0.25
    for c in result["candidates"]:
        expected = W_COVERAGE * c["coverage"] + W_SIMILARITY * c["similarity"]
        assert c["score"] == pytest.approx(expected, abs=1e-5)
        assert 0.0 <= c["similarity"] <= 1.0
    assert result["similarity_method"] == "tfidf"
    assert result["formula"]["weights"] == {"coverage": 0.7, "similarity": 0.3}
    assert result["formula"]["embedding_match_threshold"] is None
    assert result["warnings"] == []
    json.dumps(result)  # stored as JSON


def test_ties_are_broken_by_document_id() -> None:
    same = "Python and SQL."
    result = screen(JD, [cv("zz", same), cv("aa", same), cv("mm", same)], skills=skills)
    assert [c["document_id"] for c in result["candidates"]] == ["aa", "mm", "zz"]
    assert [c["rank"] for c in result["candidates"]] == [1, 2, 3]
    assert len({c["score"] for c in result["candidates"]}) == 1


def test_similarity_ignores_words_the_description_does_not_use() -> None:
    a = cv("a", "Python SQL. Hobbies: sailing, chess, Lisbon, 42 years old.")
    b = cv("b", "Python SQL.")
    result = screen(JD, [a, b], skills=skills)
    sims = {c["document_id"]: c["similarity"] for c in result["candidates"]}
    assert sims["a"] == pytest.approx(sims["b"])


def test_evidence_offsets_slice_the_document_text() -> None:
    candidate = cv(
        "d1",
        "Jane\nSkills: python, Docker",
        "",
        "Experience with SQL and REST-APIs behind a gateway; more python.",
    )
    text = text_of(candidate)
    [result] = screen(JD, [candidate], skills=skills)["candidates"]
    assert result["evidence"]
    for e in result["evidence"]:
        page: Page = candidate.pages[e["page"] - 1]
        assert page.start <= e["start"] < e["end"] <= page.end
        mention = text[e["start"] : e["end"]]
        assert (
            mention.casefold().replace("-", " ").startswith(normalise_skill(e["skill"]).split()[0])
        )
        assert e["match"] in {"normalised", "text", "embedding"}
    by_skill = {e["skill"]: e for e in result["evidence"]}
    assert by_skill["SQL"]["page"] == 3
    assert text[by_skill["SQL"]["start"] : by_skill["SQL"]["end"]] == "SQL"
    # "REST-APIs" is not a skill the fake model finds: matched by its text
    rest = by_skill["REST APIs"]
    assert rest["match"] == "text"
    assert text[rest["start"] : rest["end"]] == "REST-APIs"
    assert [e["start"] for e in result["evidence"]] == sorted(
        e["start"] for e in result["evidence"]
    )


def test_text_rule_finds_what_the_model_missed() -> None:
    only_python = finder(["Python"])

    def jd_skills(texts: Sequence[str]) -> list[list[Entity]]:
        # the model finds "Terraform" in the description, never in a CV
        return [
            [
                *found,
                *[
                    Entity("Terraform", "Skill", m.start(), m.end(), 1.0)
                    for m in re.finditer("Terraform", t)
                ],
            ]
            if t == "Python and Terraform"
            else found
            for t, found in zip(texts, only_python(texts), strict=True)
        ]

    candidate = cv("x", "terraform modules, python")
    [c] = screen("Python and Terraform", [candidate], skills=jd_skills)["candidates"]
    assert c["matched_skills"] == ["Python", "Terraform"]
    how = {e["skill"]: e["match"] for e in c["evidence"]}
    assert how == {"Python": "normalised", "Terraform": "text"}
    e = next(e for e in c["evidence"] if e["skill"] == "Terraform")
    assert text_of(candidate)[e["start"] : e["end"]] == "terraform"


def test_embedding_rule_with_a_fake_embedder() -> None:
    vectors = {
        "postgresql": np.array([1.0, 0.0, 0.0]),
        "postgres": np.array([0.95, np.sqrt(1 - 0.95**2), 0.0]),
        "java": np.array([0.0, 0.0, 1.0]),
        "javascript": np.array([0.0, 0.7, 0.714]),
    }

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for t in texts:
            v = vectors.get(t.casefold())
            if v is None:  # a text: a fixed direction
                v = np.array([0.5, 0.5, 0.5])
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)

    extract = finder(["PostgreSQL", "Postgres", "Java", "JavaScript"])
    result = screen(
        "PostgreSQL and Java", [cv("a", "Postgres, JavaScript")], skills=extract, embed=embed
    )
    [c] = result["candidates"]
    assert c["matched_skills"] == ["PostgreSQL"]
    assert c["missing_skills"] == ["Java"]
    assert c["evidence"][0]["match"] == "embedding"
    assert result["similarity_method"] == "embeddings"
    assert result["formula"]["embedding_match_threshold"] == EMBEDDING_MATCH_THRESHOLD


def test_no_skills_in_the_description_ranks_by_similarity() -> None:
    result = screen(
        "A friendly team in a nice office", [cv("a", "friendly"), cv("b", "x")], skills=skills
    )
    assert result["job_description_skills"] == []
    assert all(c["coverage"] == 0.0 for c in result["candidates"])
    assert result["candidates"][0]["document_id"] == "a"
    assert result["warnings"]


def test_progress_is_reported_per_document() -> None:
    seen: list[tuple[float, str]] = []
    screen(
        JD,
        [cv("a", "Python"), cv("b", "SQL")],
        skills=skills,
        progress=lambda f, m: seen.append((f, m)),
    )
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert sum("document" in m for _, m in seen) >= 2


# --------------------------------------------------------------------------- PII

PII_CV = (
    "Jane Doe\njane.doe@example.com | +44 20 7946 0958 | github.com/janedoe\nSkills: Python, SQL"
)
people = finder(["Jane Doe"], label="person")


def test_pii_spans_with_names() -> None:
    spans = pii_spans(PII_CV, people([PII_CV])[0])
    kinds = [k for k, _, _ in spans]
    assert kinds == ["person", "email", "phone", "url"]
    assert PII_CV[spans[0][1] : spans[0][2]] == "Jane Doe"
    # other labels are not names
    assert pii_spans("Paris", [Entity("Paris", "location", 0, 5, 1.0)]) == []
    for label in ("PER", "PERSON", "person"):
        assert pii_spans("Ann", [Entity("Ann", label, 0, 3, 1.0)]) == [("person", 0, 3)]


def test_redact_pii_keeps_pii_out_of_the_result() -> None:
    candidate = cv("a", PII_CV)
    result = screen(JD, [candidate], skills=skills, names=people, redact_pii=True)
    dumped = json.dumps(result)
    for secret in ("jane.doe@example.com", "7946", "github.com/janedoe", "Jane Doe"):
        assert secret not in dumped
    [c] = result["candidates"]
    assert c["pii"] == {"email": 1, "phone": 1, "url": 1, "person": 1}
    snippets = " ".join(e["snippet"] for e in c["evidence"])
    assert "[PHONE]" in snippets or "[URL]" in snippets
    # without redaction the snippets are the text as it is; the score is the same
    raw = screen(JD, [candidate], skills=skills, names=people, redact_pii=False)
    assert "github.com/janedoe" in json.dumps(raw)
    assert raw["candidates"][0]["score"] == c["score"]


def test_the_score_never_uses_names_or_contact_details() -> None:
    base = "Skills: Python, SQL, Docker. Five years of backend work."
    plain = cv("a", base)
    with_pii = cv("b", "Jane Doe, jane@example.com, +44 20 7946 0958\n" + base)
    result = screen(JD + " Contact Jane Doe.", [plain, with_pii], skills=skills, names=people)
    a, b = sorted(result["candidates"], key=lambda c: c["document_id"])
    assert a["score"] == b["score"]
    assert a["similarity"] == b["similarity"]


def test_a_skill_inside_pii_is_not_a_skill() -> None:
    # "python" inside a URL is not evidence
    [c] = screen("Python", [cv("a", "see https://example.com/python-tips")], skills=skills)[
        "candidates"
    ]
    assert c["matched_skills"] == []
    assert c["evidence"] == []


# --------------------------------------------------------------------------- the request


def test_request_shape() -> None:
    body = {"job_description": "Python", "document_ids": ["a", "b"]}
    request = ScreeningRequest.model_validate(body)
    assert request.model_dump() == {
        "job_description": "Python",
        "document_ids": ["a", "b"],
        "skills_model": "skills",
        "entities_model": None,
        "redact_pii": True,
    }
    spec = ScreeningJobSpec.model_validate({**body, "type": "screen"})
    assert spec.type == "screen"
    for bad in (
        {**body, "extra": 1},
        {**body, "document_ids": []},
        {**body, "document_ids": ["a", "a"]},
        {**body, "document_ids": [str(i) for i in range(201)]},
        {**body, "job_description": ""},
        {**body, "job_description": "   "},
        {**body, "job_description": "x" * 50_001},
    ):
        with pytest.raises(ValidationError):
            ScreeningRequest.model_validate(bad)


def test_not_blank_means_the_same_in_the_schema_and_the_server() -> None:
    """The schema's pattern and the server's check agree on every white-space character
    Python knows (U+001C-U+001F and U+0085 included, which Rust's and ECMAScript's ``\\S``
    treat otherwise), so a client validating against the schema never sends a body the
    server refuses as blank."""
    body = {"document_ids": ["a"]}
    pattern = ScreeningRequest.model_json_schema()["properties"]["job_description"]["pattern"]
    assert pattern == NOT_BLANK
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    assert len(spaces) == 29
    for char in spaces:
        assert re.search(pattern, char) is None, hex(ord(char))
        with pytest.raises(ValidationError):
            ScreeningRequest.model_validate({**body, "job_description": f"{char} {char}"})
    for text in ("\ufeff", "a", " Python "):
        assert re.search(pattern, text)
        ScreeningRequest.model_validate({**body, "job_description": text})
