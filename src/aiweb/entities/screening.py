"""Resume screening: rank uploaded CVs against a job description, with the reasons shown.

``POST /v1/screenings`` (:mod:`aiweb.entities.routes`), the ``screen`` job
(:func:`run_screening`) and ``aiweb screen`` (:mod:`aiweb.cli.screen`) all end in
:func:`screen`, which is pure: texts and extractors in, the result dict out.

The score
---------
For each CV (an uploaded document, its pages as :meth:`DocumentService.pages
<aiweb.documents.service.DocumentService.pages>` gives them)::

    coverage   = matched job-description skills / job-description skills
    similarity = max(0, cosine(CV text, job-description text))
    score      = 0.7 * coverage + 0.3 * similarity          (W_COVERAGE, W_SIMILARITY)

rounded to 6 decimals; candidates are ranked by score, higher first, ties broken by
document id (so the ranking is a total order and reproducible). Coverage weighs most
because it is the part a recruiter can check: every matched skill has its evidence.

*Skills.* The skills model (a ``token-classification`` model, e.g. one trained on
SkillSpan) extracts the skills of the job description and of each CV page; every entity
it finds counts as a skill, whatever its label (SkillSpan's ``Skill`` and ``Knowledge``
alike). The job description's skills are its distinct normalised forms, shown as first
written.

*Normalisation* (:func:`normalise_skill`): Unicode NFKC, case folding, ``-``, ``_`` and
runs of white space become one space, punctuation is stripped at both ends (but a
leading ``.`` before a letter and a trailing ``+`` or ``#`` are kept: ``.NET``, ``C++``,
``C#``), a trailing version is dropped (``Python 3.11`` and ``python3`` are ``python``,
``HTML5`` is ``html``; a version glued to fewer than four letters is kept: ``S3``,
``ES6``, ``EC2``), and a plural ``s`` of the last word (of at least four characters) is
dropped unless it ends in ``ss`` (``APIs`` -> ``api``, ``databases`` -> ``database``,
``Sass`` stays apart from ``SAS``; both sides are normalised alike, so ``Kubernetes`` still
matches itself).

*Matching.* A job-description skill is matched by a CV when, in this order:

1. ``normalised``: a skill the model found in the CV has the same normalised form;
2. ``text``: the skill as written in the job description occurs in the CV text, case
   insensitive, at word boundaries, with any run of space, ``-`` or ``_`` between its
   words (the model may miss a mention it found in the description);
3. ``embedding`` (only when the sentence-embedding model ``minilm`` is installed): the
   cosine similarity of the two skills' embeddings is at least
   :data:`EMBEDDING_MATCH_THRESHOLD` (0.80: high enough that ``PostgreSQL`` and
   ``Postgres`` match while ``Java`` and ``JavaScript`` or ``machine learning`` and
   ``deep learning`` stay apart on all-MiniLM-L6-v2 in the cases we looked at).

Each matched skill has up to :data:`MAX_EVIDENCE` pieces of evidence ``{"skill", "page",
"start", "end", "match", "snippet"}``: ``start``/``end`` are offsets into the document's
text (its pages joined by a form feed), so ``text[start:end]`` is the mention, and
``page`` is the page it is on (from 1).

*Similarity.* With ``minilm`` installed (``aiweb embeddings install``): the mean of the
sentence embeddings of the text's chunks (at most :data:`CHUNK_WORDS` words each, so a
long CV is not cut at the model's 256 word pieces), renormalised, then the cosine. Without
it: TF-IDF (scikit-learn; unigrams and bigrams, English stop words removed, sublinear tf,
accents stripped) whose vocabulary is the job description's own terms, and whose idf is
fitted on the job description and the CVs of the request; the cosine of the two
L2-normalised vectors. Restricting the vocabulary to the description's terms means a word
the description does not use (a name, a street, a hobby) cannot move a CV's similarity
at all. The result says which method ran (``similarity_method``).

Personal data
-------------
PII is found in the job description and in every page: e-mail addresses, phone numbers
and URLs (:mod:`aiweb.documents.pii`), and, when ``entities_model`` is given, person
names: the entities of that model whose label is, case-insensitively, one of
:data:`PERSON_LABELS` (``person`` as WNUT-17 names it, ``PER`` as CoNLL does, ``PERSON``
as OntoNotes does).

- The score never sees it: PII spans are replaced by placeholders (``[EMAIL]``,
  ``[PHONE]``, ``[URL]``, ``[NAME]``) in the texts whose similarity is measured, and a
  skill mention overlapping one is ignored — whatever ``redact_pii`` says.
- With ``redact_pii`` (the default) the stored result holds none of it: evidence holds
  offsets, the snippets around a mention have their PII replaced by the same
  placeholders, and each candidate only counts what was found (``pii``). Without it the
  snippets are the text as it is.

The score never uses names, photos, ages or addresses: names are masked as above, photos
are never read (only text is extracted), and the skills model is not asked for ages or
addresses; the similarity cannot see words the description does not use (TF-IDF), and
with embeddings it weighs 0.3 of the score on texts whose contact details are masked.
Why: these attributes reveal or stand in for protected characteristics (race, sex,
national origin, age, disability), and ranking on them is disparate treatment under the
US EEOC's Title VII, ADEA and ADA guidance; under the GDPR they are not necessary for
assessing skills (data minimisation, Art. 5(1)(c)), and an automated ranking must be
explainable to the person it concerns (Art. 22): hence skills with evidence, and a
formula returned with every result. The ranking is a tool for a recruiter, not a
decision.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from aiweb.db.session import make_session_factory
from aiweb.documents.pii import PLACEHOLDERS, find_pii
from aiweb.documents.service import DocumentService, Page
from aiweb.entities.data import TASK
from aiweb.entities.model import Entity, EntityModel
from aiweb.errors import (
    InvalidInputError,
    ModelNotReadyError,
    NotFoundError,
    UploadedDocumentNotFound,
)
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import CheckContext
from aiweb.names import REF_REGEX
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.registry.service import RegistryService

if TYPE_CHECKING:
    from aiweb.embeddings.model import OnnxEmbedder

__all__ = [
    "CHUNK_WORDS",
    "EMBEDDING_MATCH_THRESHOLD",
    "MAX_EVIDENCE",
    "NOT_BLANK",
    "PERSON_LABELS",
    "W_COVERAGE",
    "W_SIMILARITY",
    "Candidate",
    "Embed",
    "Extract",
    "ScreeningJobSpec",
    "ScreeningRequest",
    "check_screening",
    "formula",
    "load_embedder_if_installed",
    "load_entity_model",
    "normalise_skill",
    "pii_spans",
    "run_screening",
    "screen",
    "screen_documents",
]

#: weight of skill coverage in the score
W_COVERAGE = 0.7
#: weight of text similarity in the score
W_SIMILARITY = 0.3
#: cosine of two skills' sentence embeddings at and above which they match
EMBEDDING_MATCH_THRESHOLD = 0.80
#: evidence kept per matched skill and candidate (the first, in reading order)
MAX_EVIDENCE = 5
#: labels (case-folded) of an entities model that mark a person's name
PERSON_LABELS = frozenset({"person", "per", "persons", "people"})
#: words per chunk embedded for the similarity (the model reads 256 word pieces)
CHUNK_WORDS = 120
#: characters of context each side of a mention in an evidence snippet
SNIPPET_CONTEXT = 40
#: the placeholder of a person's name
NAME_PLACEHOLDER = "[NAME]"

#: ``extract(texts) -> entities of each text`` (:meth:`EntityModel.extract`)
Extract = Callable[[Sequence[str]], list[list[Entity]]]
#: ``embed(texts) -> float32 (n, dim), L2-normalised rows``
Embed = Callable[[list[str]], npt.NDArray[np.float32]]
#: ``progress(fraction in [0, 1], message)``
Progress = Callable[[float, str], None]

_SPACES = re.compile(r"[\s\-_]+")
_VERSION_SPACED = re.compile(r" v?\d+(?:\.\d+)*(?:\.x)?$")
_VERSION_GLUED = re.compile(r"(?<=[^\W\d_]{4})\d+(?:\.\d+)*$")
_WORDS = re.compile(r"\S+")


# --------------------------------------------------------------------------- API shapes


#: "not blank" as a regular expression that every engine reads alike (Python's ``re``,
#: pydantic-core's Rust ``regex``, ECMAScript in the clients): a character outside the set
#: Python's ``str.isspace`` calls white space, listed (a bare ``\S`` means other sets
#: there: Rust and ECMAScript keep U+001C-U+001F, which Python strips, as non-blank)
NOT_BLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class ScreeningRequest(BaseModel):
    """Rank uploaded CVs against a job description (``POST /v1/screenings``)."""

    model_config = ConfigDict(extra="forbid")

    job_description: str = Field(
        ...,
        min_length=1,
        max_length=50_000,
        pattern=NOT_BLANK,  # the schema states the rule, so clients see it
        description="The job description's text.",
    )
    document_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        ...,
        min_length=1,
        max_length=200,
        json_schema_extra={"uniqueItems": True},
        description="Uploaded documents (POST /v1/documents): the CVs to rank, no repeats.",
    )
    skills_model: str = Field(
        "skills",
        min_length=1,
        max_length=130,
        json_schema_extra={"pattern": REF_REGEX},
        description="The token-classification model that finds skills: name, name@alias "
        "or name:version.",
    )
    entities_model: str | None = Field(
        None,
        min_length=1,
        max_length=130,
        json_schema_extra={"pattern": REF_REGEX},
        description="A token-classification model whose person entities (label person, PER "
        "or PERSON) are treated as PII; null: names are not looked for.",
    )
    redact_pii: bool = Field(
        True,
        description="Replace e-mail addresses, phone numbers, URLs and names by [EMAIL], "
        "[PHONE], [URL], [NAME] in everything the result stores (the score never uses them "
        "either way).",
    )

    @field_validator("job_description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the job description is blank")
        return value

    @field_validator("document_ids")
    @classmethod
    def _distinct_ids(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, document_id in enumerate(value):
            if not 1 <= len(document_id) <= 64:
                raise ValueError(f"document_ids[{i}] must have 1 to 64 characters")
            if document_id in seen:
                raise ValueError(f"document_ids[{i}] repeats document {document_id!r}")
            seen.add(document_id)
        return value


class ScreeningJobSpec(ScreeningRequest):
    """The ``screen`` job: ``{"type": "screen", ...}`` with the fields of
    :class:`ScreeningRequest`."""

    type: Literal["screen"]


# --------------------------------------------------------------------------- pure parts


def normalise_skill(text: str) -> str:
    """The form two skills are compared in (the rule is in the module docstring).

    >>> normalise_skill("  Python 3.11, ")
    'python'
    >>> [normalise_skill(s) for s in ("C++", ".NET", "REST APIs", "front-end")]
    ['c++', '.net', 'rest api', 'front end']

    Returns:
        The normalised form; ``""`` when nothing is left.
    """
    value = unicodedata.normalize("NFKC", text).casefold()
    value = _SPACES.sub(" ", value).strip()
    # punctuation at the ends, but a leading '.' before a letter and a trailing '+'/'#'
    start, end = 0, len(value)
    while start < end and _strippable(value[start]):
        if value[start] == "." and start + 1 < end and value[start + 1].isalpha():
            break
        start += 1
    while end > start and _strippable(value[end - 1]) and value[end - 1] not in "+#":
        end -= 1
    value = value[start:end].strip()
    without = _VERSION_SPACED.sub("", value)
    if without == value:
        without = _VERSION_GLUED.sub("", value)
    value = without.strip() or value
    head, _, last = value.rpartition(" ")
    if len(last) >= 4 and last.endswith("s") and not last.endswith("ss") and last[:-1].isalpha():
        value = f"{head} {last[:-1]}" if head else last[:-1]
    return value


def _strippable(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P") or char in "+#"


@dataclass(frozen=True)
class _Pii:
    kind: str  # email, phone, url, person
    start: int
    end: int


def pii_spans(text: str, names: Sequence[Entity] = ()) -> list[tuple[str, int, int]]:
    """The PII of ``text``: its e-mail addresses, phone numbers and URLs
    (:func:`aiweb.documents.pii.find_pii`) and the person entities among ``names`` (those
    whose label is one of :data:`PERSON_LABELS`), as ``(kind, start, end)`` offsets into
    ``text``, sorted, never overlapping (of two overlapping spans the first is kept).

    Args:
        text: any text.
        names: entities an entities model found in ``text``.
    """
    found = [_Pii(s.kind, s.start, s.end) for s in find_pii(text)]
    found += [_Pii("person", e.start, e.end) for e in names if e.label.casefold() in PERSON_LABELS]
    found.sort(key=lambda p: (p.start, -p.end))
    kept: list[tuple[str, int, int]] = []
    for p in found:
        if kept and p.start < kept[-1][2]:
            continue
        kept.append((p.kind, p.start, p.end))
    return kept


def _placeholder(kind: str) -> str:
    return NAME_PLACEHOLDER if kind == "person" else PLACEHOLDERS[kind]


def _mask(text: str, spans: Sequence[tuple[str, int, int]], offset: int = 0) -> str:
    """``text`` (which starts at ``offset`` of the text ``spans`` index) with the spans
    that fall in it replaced by their placeholders."""
    parts: list[str] = []
    at = 0
    for kind, start, end in spans:
        start, end = start - offset, end - offset
        if end <= 0 or start >= len(text):
            continue
        parts.append(text[at : max(at, start)])
        parts.append(_placeholder(kind))
        at = max(at, min(end, len(text)))
    parts.append(text[at:])
    return "".join(parts)


def _overlaps(start: int, end: int, spans: Sequence[tuple[str, int, int]]) -> bool:
    return any(start < e and s < end for _, s, e in spans)


@dataclass(frozen=True)
class _Mention:
    """A skill mention in a CV: its text, normalised form, page and document offsets."""

    text: str
    norm: str
    page: int
    start: int
    end: int


@dataclass
class _Cv:
    document_id: str
    pages: Sequence[Page]
    pii: dict[int, list[tuple[str, int, int]]]  # page number -> page-local spans
    mentions: list[_Mention]
    masked: str  # the text the similarity reads


@dataclass(frozen=True)
class Candidate:
    """A CV to rank: an uploaded document's id and its pages (as
    :meth:`DocumentService.pages <aiweb.documents.service.DocumentService.pages>` gives
    them: ``"\\f".join(p.text for p in pages)`` is its text)."""

    document_id: str
    pages: Sequence[Page]


def formula(embeddings: bool) -> dict[str, Any]:
    """The formula a result was computed with (returned in it)."""
    return {
        "score": f"{W_COVERAGE} * coverage + {W_SIMILARITY} * similarity",
        "weights": {"coverage": W_COVERAGE, "similarity": W_SIMILARITY},
        "coverage": "matched job-description skills / job-description skills (0 when the "
        "description has none)",
        "skill_match": ["normalised", "text"] + (["embedding"] if embeddings else []),
        "embedding_match_threshold": EMBEDDING_MATCH_THRESHOLD if embeddings else None,
        "similarity": (
            "max(0, cosine of the mean sentence embeddings of the texts' chunks)"
            if embeddings
            else "max(0, cosine of TF-IDF vectors over the job description's terms)"
        ),
        "ranking": "score descending, then document id",
        "never_used": ["names", "photos", "ages", "addresses", "e-mail", "phone", "URLs"],
    }


def _chunks(text: str) -> list[str]:
    words = _WORDS.findall(text)
    return [" ".join(words[i : i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)]


def _embedding_similarities(embed: Embed, query: str, texts: list[str]) -> list[float]:
    def mean_vector(text: str) -> npt.NDArray[np.float32] | None:
        chunks = _chunks(text)
        if not chunks:
            return None
        mean = embed(chunks).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else None

    q = mean_vector(query)
    result = []
    for text in texts:
        v = mean_vector(text)
        result.append(0.0 if q is None or v is None else max(0.0, float(q @ v)))
    return result


def _tfidf_similarities(query: str, texts: list[str]) -> list[float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    options: dict[str, Any] = {
        "ngram_range": (1, 2),
        "stop_words": "english",
        "sublinear_tf": True,
        "strip_accents": "unicode",
    }
    vocabulary = sorted(set(TfidfVectorizer(**options).build_analyzer()(query)))
    if not vocabulary:
        return [0.0] * len(texts)
    vectorizer = TfidfVectorizer(vocabulary=vocabulary, **options)
    matrix = vectorizer.fit_transform([query, *texts])
    sims = (matrix[1:] @ matrix[0].T).toarray().ravel()
    return [max(0.0, min(1.0, float(s))) for s in sims]


def _skill_pattern(skill: str) -> re.Pattern[str] | None:
    words = [re.escape(w) for w in _SPACES.split(skill.strip()) if w]
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"[\s\-_]+".join(words) + r"(?!\w)", re.IGNORECASE)


def _snippet(
    page: Page, start: int, end: int, pii: Sequence[tuple[str, int, int]], redact: bool
) -> str:
    """The mention at page-local ``[start, end)`` with some context, PII masked when
    ``redact`` (a PII span cut by the window is masked whole)."""
    a, b = max(0, start - SNIPPET_CONTEXT), min(len(page.text), end + SNIPPET_CONTEXT)
    if redact:
        for _, s, e in pii:
            if s < b and a < e:
                a, b = min(a, s), max(b, e)
        window = _mask(page.text[a:b], pii, offset=a)
    else:
        window = page.text[a:b]
    return " ".join(window.split())


def screen(
    job_description: str,
    candidates: Sequence[Candidate],
    *,
    skills: Extract,
    names: Extract | None = None,
    embed: Embed | None = None,
    redact_pii: bool = True,
    models: Mapping[str, str | None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Rank ``candidates`` against ``job_description`` (the formula, matching rules and
    PII handling are in the module docstring).

    Args:
        job_description: the description's text.
        candidates: the CVs, with distinct document ids.
        skills: finds the skills of texts (a skills model's ``extract``).
        names: finds person names (an entities model's ``extract``), or ``None``.
        embed: sentence embeddings (unit rows), or ``None``: then skills match by
            normalised form and text only, and the similarity is TF-IDF.
        redact_pii: keep PII out of the result (the snippets).
        models: the model versions used, returned as ``models``.
        progress: called with the fraction done and a message after each CV.

    Returns:
        ``{"job_description_skills", "candidates", "formula", "similarity_method",
        "models", "redact_pii", "warnings"}``; each candidate is ``{"document_id",
        "rank", "score", "coverage", "similarity", "matched_skills", "missing_skills",
        "evidence": [{"skill", "page", "start", "end", "match", "snippet"}], "pii":
        {"email", "phone", "url", "person"}}``, best first.
    """
    report = progress or (lambda _f, _m: None)
    warnings: list[str] = []

    # the job description's skills, distinct by normalised form, PII left out
    [jd_entities] = skills([job_description])
    jd_names = names([job_description])[0] if names is not None else []
    jd_pii = pii_spans(job_description, jd_names)
    jd_skills: dict[str, str] = {}  # norm -> as first written
    for e in jd_entities:
        norm = normalise_skill(e.text)
        if norm and norm not in jd_skills and not _overlaps(e.start, e.end, jd_pii):
            jd_skills[norm] = e.text.strip()
    if not jd_skills:
        warnings.append(
            "the skills model found no skill in the job description: every coverage is 0 "
            "and the ranking is by similarity alone"
        )
    jd_masked = _mask(job_description, jd_pii)
    report(0.05, f"{len(jd_skills)} skills in the job description")

    # each CV: its skill mentions and PII, page by page
    cvs: list[_Cv] = []
    for i, candidate in enumerate(candidates):
        texts = [p.text for p in candidate.pages]
        found = skills(texts)
        people = names(texts) if names is not None else [[] for _ in texts]
        pii = [pii_spans(t, n) for t, n in zip(texts, people, strict=True)]
        mentions = [
            _Mention(
                e.text, normalise_skill(e.text), page.page, page.start + e.start, page.start + e.end
            )
            for page, entities, spans in zip(candidate.pages, found, pii, strict=True)
            for e in entities
            if not _overlaps(e.start, e.end, spans)
        ]
        masked = "\n".join(_mask(t, s) for t, s in zip(texts, pii, strict=True))
        by_page = {p.page: spans for p, spans in zip(candidate.pages, pii, strict=True)}
        cvs.append(_Cv(candidate.document_id, candidate.pages, by_page, mentions, masked))
        report(
            0.05 + 0.75 * (i + 1) / max(1, len(candidates)),
            f"read document {i + 1}/{len(candidates)}",
        )

    # embeddings of the skills, for the third rule
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    if embed is not None and jd_skills:
        surfaces = sorted({*jd_skills.values(), *(m.text for cv in cvs for m in cv.mentions)})
        if surfaces:
            for surface, vector in zip(surfaces, embed(surfaces), strict=True):
                vectors[surface] = vector

    if embed is not None:
        similarity = _embedding_similarities(embed, jd_masked, [cv.masked for cv in cvs])
    else:
        similarity = _tfidf_similarities(jd_masked, [cv.masked for cv in cvs])
    report(0.9, "similarity measured")

    patterns = {norm: _skill_pattern(surface) for norm, surface in jd_skills.items()}
    results: list[dict[str, Any]] = []
    for cv, sim in zip(cvs, similarity, strict=True):
        matched: list[str] = []
        missing: list[str] = []
        evidence: list[dict[str, Any]] = []
        for norm, surface in jd_skills.items():
            hits = _match(cv, norm, surface, patterns[norm], vectors)
            if not hits:
                missing.append(surface)
                continue
            matched.append(surface)
            for how, page, start, end in hits[:MAX_EVIDENCE]:
                local = (start - page.start, end - page.start)
                evidence.append(
                    {
                        "skill": surface,
                        "page": page.page,
                        "start": start,
                        "end": end,
                        "match": how,
                        "snippet": _snippet(page, *local, cv.pii[page.page], redact_pii),
                    }
                )
        coverage = len(matched) / len(jd_skills) if jd_skills else 0.0
        counts = dict.fromkeys(("email", "phone", "url", "person"), 0)
        for spans in cv.pii.values():
            for kind, _, _ in spans:
                counts[kind] += 1
        results.append(
            {
                "document_id": cv.document_id,
                "rank": 0,
                "score": round(W_COVERAGE * coverage + W_SIMILARITY * sim, 6),
                "coverage": round(coverage, 6),
                "similarity": round(sim, 6),
                "matched_skills": matched,
                "missing_skills": missing,
                "evidence": sorted(evidence, key=lambda e: (e["start"], e["skill"])),
                "pii": counts,
            }
        )
    results.sort(key=lambda c: (-c["score"], c["document_id"]))
    for rank, result in enumerate(results, start=1):
        result["rank"] = rank
    report(1.0, f"ranked {len(results)} documents")
    return {
        "job_description_skills": list(jd_skills.values()),
        "candidates": results,
        "formula": formula(embed is not None),
        "similarity_method": "embeddings" if embed is not None else "tfidf",
        "models": dict(models or {}),
        "redact_pii": redact_pii,
        "warnings": warnings,
    }


def _match(
    cv: _Cv,
    norm: str,
    surface: str,
    pattern: re.Pattern[str] | None,
    vectors: Mapping[str, npt.NDArray[np.float32]],
) -> list[tuple[str, Page, int, int]]:
    """How one job-description skill is matched in ``cv``: ``(match, page, start,
    end)`` with document offsets, by the first rule that finds anything."""
    by_page = {p.page: p for p in cv.pages}
    hits = [("normalised", by_page[m.page], m.start, m.end) for m in cv.mentions if m.norm == norm]
    if hits:
        return hits
    if pattern is not None:
        for page in cv.pages:
            spans = cv.pii[page.page]
            for found in pattern.finditer(page.text):
                if not _overlaps(found.start(), found.end(), spans):
                    hits.append(
                        ("text", page, page.start + found.start(), page.start + found.end())
                    )
        if hits:
            return hits
    query = vectors.get(surface)
    if query is not None:
        for m in cv.mentions:
            vector = vectors.get(m.text)
            if vector is not None and float(query @ vector) >= EMBEDDING_MATCH_THRESHOLD:
                hits.append(("embedding", by_page[m.page], m.start, m.end))
    return hits


# --------------------------------------------------------------------------- models and job


def _entity_version(registry: RegistryService, ref: str, field: str) -> ModelVersion:
    """The version ``ref`` names, checked to be a ready token-classification model.

    Raises:
        ModelNotFound, AliasNotFound, ModelVersionNotFound: it does not resolve (404).
        InvalidInputError: a malformed reference, or a model of another task (422).
        ModelNotReadyError: the version has no artifact yet (503).
    """
    try:
        version = registry.resolve(ModelRef.parse(ref))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{field}: {exc.detail}") from None
    except NotFoundError as exc:
        raise type(exc)(f"{field}: {exc.detail}") from None
    if version.task != TASK:
        raise InvalidInputError(
            f"{field}: {version.name} is a {version.task} model, not a {TASK} model"
        )
    if version.status != "ready" or not version.artifact_uri:
        raise ModelNotReadyError(f"{field}: {version.name}:{version.version} is {version.status!r}")
    return version


def load_entity_model(
    registry: RegistryService, ref: str, field: str = "model"
) -> tuple[EntityModel, ModelVersion]:
    """Load the token-classification model ``ref`` (sha256-checked artifact).

    Raises:
        NotFoundError, InvalidInputError, ModelNotReadyError: see the check at submit.
        CorruptArtifactError, UnsafeArtifactError: its artifact is damaged (500).
    """
    version = _entity_version(registry, ref, field)
    assert version.artifact_uri is not None
    data = read_verified(
        registry.artifacts,
        version.artifact_uri,
        version.artifact_sha256,
        f"artifact of {version.name}:{version.version}",
    )
    return EntityModel.from_bytes(data), version


def load_embedder_if_installed(
    registry: RegistryService,
) -> tuple[OnnxEmbedder, ModelVersion] | None:
    """The default sentence-embedding model (``minilm@production``) when it is installed
    (``aiweb embeddings install``), else ``None``."""
    try:
        from aiweb.embeddings.install import DEFAULT_EMBEDDING_MODEL, EMBEDDING_TASK
        from aiweb.embeddings.runtime import load_embedder
    except ImportError:  # pragma: no cover - onnxruntime or tokenizers missing
        return None
    try:
        version = registry.resolve(ModelRef.parse(DEFAULT_EMBEDDING_MODEL))
    except NotFoundError:
        return None
    if version.task != EMBEDDING_TASK or version.status != "ready":
        return None
    return load_embedder(registry, version), version


def screen_documents(
    request: ScreeningRequest,
    registry: RegistryService,
    documents: DocumentService,
    *,
    use_embeddings: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Load the request's models and documents and :func:`screen` them (the ``screen``
    job and ``aiweb screen``).

    Args:
        use_embeddings: use ``minilm`` when it is installed (``False``: never).

    Raises:
        UploadedDocumentNotFound: a document does not exist (any more) (404).
        NotFoundError, InvalidInputError, ModelNotReadyError: a model (see
            :func:`check_screening`).
    """
    report = progress or (lambda _f, _m: None)
    report(0.0, "loading models")
    skills, skills_version = load_entity_model(registry, request.skills_model, "skills_model")
    models: dict[str, str | None] = {"skills": _ref(skills_version), "entities": None}
    names: Extract | None = None
    if request.entities_model is not None:
        people, people_version = load_entity_model(
            registry, request.entities_model, "entities_model"
        )
        names, models["entities"] = people.extract, _ref(people_version)
    embed: Embed | None = None
    models["embeddings"] = None
    loaded = load_embedder_if_installed(registry) if use_embeddings else None
    if loaded is not None:
        embedder, embedding_version = loaded

        def embed_texts(texts: list[str]) -> npt.NDArray[np.float32]:
            return embedder.embed(texts).vectors

        embed = embed_texts
        models["embeddings"] = _ref(embedding_version)
    candidates = []
    for i, document_id in enumerate(request.document_ids):
        try:
            document = documents.get(document_id)
        except UploadedDocumentNotFound:
            raise UploadedDocumentNotFound(
                f"document_ids[{i}]: document {document_id[:64]!r} does not exist"
            ) from None
        candidates.append(Candidate(document.id, documents.pages(document)))
    return screen(
        request.job_description,
        candidates,
        skills=skills.extract,
        names=names,
        embed=embed,
        redact_pii=request.redact_pii,
        models=models,
        progress=progress,
    )


def _ref(version: ModelVersion) -> str:
    return f"{version.name}:{version.version}"


def check_screening(ctx: CheckContext, spec: Any) -> dict[str, Any]:
    """Check a ``screen`` body at submit; return what to store.

    Raises:
        UploadedDocumentNotFound: a document does not exist (404, naming it).
        ModelNotFound, AliasNotFound, ModelVersionNotFound: a model does not resolve (404).
        InvalidInputError: repeated documents, a malformed reference, or a model that is
            not a token-classification model (422).
        ModelNotReadyError: a model version without its artifact yet (503).
    """
    assert isinstance(spec, ScreeningRequest)
    _entity_version(ctx.registry, spec.skills_model, "skills_model")
    if spec.entities_model is not None:
        _entity_version(ctx.registry, spec.entities_model, "entities_model")
    for i, document_id in enumerate(spec.document_ids):  # repeats: refused by the schema
        try:
            ctx.documents.get(document_id)
        except UploadedDocumentNotFound:
            raise UploadedDocumentNotFound(
                f"document_ids[{i}]: document {document_id[:64]!r} does not exist"
            ) from None
    return spec.model_dump(exclude={"type"})


def run_screening(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """The ``screen`` job: rank the documents against the job description.

    Returns:
        The result of :func:`screen`.
    """
    spec = ScreeningJobSpec.model_validate({**ctx.job.params, "type": "screen"})
    documents = DocumentService(
        make_session_factory(env.engine), env.registry.artifacts, env.settings
    )
    return screen_documents(spec, env.registry, documents, progress=ctx.progress)
