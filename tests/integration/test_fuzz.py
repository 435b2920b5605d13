"""Property-based API fuzzing: schemathesis drives every operation of ``/openapi.json``.

The real app runs under uvicorn, with the HTTP protocol ``aiweb serve`` runs (bounded
request heads), in a background thread, on a free loopback port, on a SQLite database
with ``sentiment`` versions 1 and 2 registered and an admin key. For each operation a
bounded number of generated requests (valid and invalid) is sent with that key and
judged by every check schemathesis has (``--checks all``, see ``ALL_CHECKS``).

``schemathesis.pytest.from_fixture`` cannot be used: schemathesis 4.32.5 (the newest)
sets ``request.node._nodeid``, which pytest 9.2 no longer has (``AttributeError``). The
fuzzed schema is therefore built at import from the app itself (``app.openapi()``, no
lifespan, no I/O); ``test_served_schema_is_the_fuzzed_one`` proves the server serves
exactly that document at ``/openapi.json`` (loaded with ``schemathesis.openapi.from_url``).
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
import schemathesis.checks
from helpers import live_server, register_versions, standalone_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
)
from schemathesis.specs.openapi.checks import response_schema_conformance

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.serving.protocol import PROTOCOL, ConnectionLimits, configure
from conftest import create_key

CHECKS = [not_a_server_error, response_schema_conformance]

# `--checks all`: every check schemathesis registers (status codes, content types and
# headers as documented, negative data rejected, positive data accepted, auth not
# ignored, ...), with schemathesis' default configuration.
# positive_data_acceptance holds because the schema states every rule a request is held
# to (issue 18, finding 17): cross-field ones (a job's dataset xor dataset_id: a oneOf),
# ones set by settings (search top_k <= AIWEB_SEARCH__MAX_TOP_K: aiweb.api.openapi_facts),
# what a column can hold (no NUL, 64-bit integers), and a state-dependent answer is a
# documented 404/409 (/v1/items/{id}/similar without a model when none, or several, have
# a production version), which the check accepts by default.
# (GET /metrics answers loopback clients without a key: its operation lists an empty
# security requirement, so ignored_auth holds.)
schemathesis.checks.load_all_checks()
ALL_CHECKS = schemathesis.checks.CHECKS.get_all()
# Two statuses are added to those positive_data_acceptance expects by default: 431, the
# documented answer (every operation) of the server `aiweb serve` runs to a request line
# and headers over AIWEB_SERVING__MAX_HEADER_BYTES. It bounds the whole URL, which no
# schema can state: GET /v1/users/{user_id}/recommendations takes up to 1000 `exclude`
# ids, and the fuzzer draws such lists of long ids, over 64 KB as a query string. And
# 413, the documented answer to a body over AIWEB_SERVING__MAX_BODY_BYTES: a predict body
# of 1,000 tabular rows of long strings is valid and can be larger than that.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "431", "413"]
            },
            # and a schema-violating request whose head is over the limit is refused by
            # the same 431 before its query is read
            "negative_data_rejection": {
                "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "431", "413"]
            },
        },
        # An assistant's config has rules across its fields that no JSON Schema states:
        # a template names only its intent's declared slots, an intent with slots has a
        # response, a prompt names only earlier slots (aiweb.assistant.config). A drawn
        # config that breaks one is refused with a 422 naming the rule.
        # Likewise a new key: scope chat goes alone and with both assistants and origins,
        # other scopes with neither (aiweb.security.keys.publishable_limits).
        "operations": [
            {
                "include-path": path,
                "include-method": method,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [
                            *POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES,
                            "431",
                            "413",
                            "422",
                        ]
                    }
                },
            }
            for path, method in (("/v1/assistants/{name}", "PUT"), ("/v1/keys", "POST"))
        ],
    }
)

# What no JSON Schema can say, the content of an uploaded file: the upload's file part
# lists its media types (encoding.contentType), and schemathesis draws each from the
# strategy registered for that type (positive data: well-formed files of the documented
# format; negative data still comes from the schema).
# no "\r": csv.writer (lineterminator "\n") leaves a field holding it unquoted, and every
# CSV reader ends the line there, so the file would be malformed, not schema-valid
_FIELD_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=20)
_COLUMN = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A UTF-8 CSV file: a header of distinct names, then 1 to 5 rows of its width."""
    header = draw(st.lists(_COLUMN, min_size=1, max_size=4, unique=True))
    rows = draw(
        st.lists(
            st.lists(_FIELD_TEXT, min_size=len(header), max_size=len(header)),
            min_size=1,
            max_size=5,
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    _FIELD_TEXT,
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """A JSONL file: 1 to 5 lines, each a flat JSON object."""
    records = draw(
        st.lists(st.dictionaries(_COLUMN, _SCALAR, min_size=1, max_size=4), min_size=1, max_size=5)
    )
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


schemathesis.openapi.media_type("text/csv", csv_files())
schemathesis.openapi.media_type(
    "application/jsonl", jsonl_files(), aliases=["application/x-ndjson"]
)

# The documents of POST /v1/documents (its file part lists these three types): texts a
# document can hold (no control characters, some non-space), made into a UTF-8 text, a
# PDF (fpdf2's Helvetica: Latin-1 only) or a DOCX (python-docx).
_LINE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda t: bool(t.removeprefix("\ufeff").strip()))
_LATIN_LINE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 .,;:'-]{0,30}", fullmatch=True)


@st.composite
def text_documents(draw: st.DrawFn) -> bytes:
    """A UTF-8 text of 1 to 5 lines, at least one with a character besides white space,
    that does not start like a PDF, a ZIP or another known binary format."""
    lines = draw(st.lists(_LINE, min_size=1, max_size=5))
    text = "\n".join(lines)
    hypothesis.assume(not text.startswith(("%PDF-", "PK", "{\\rtf", "%!PS", "GIF8")))
    return text.encode("utf-8")


@st.composite
def pdf_documents(draw: st.DrawFn) -> bytes:
    """A PDF of 1 to 3 pages, each of 1 to 3 lines of text."""
    from document_helpers import make_pdf

    pages = draw(st.lists(st.lists(_LATIN_LINE, min_size=1, max_size=3), min_size=1, max_size=3))
    return make_pdf(["\n".join(lines) for lines in pages])


@st.composite
def docx_documents(draw: st.DrawFn) -> bytes:
    """A DOCX of 1 to 3 pages (explicit page breaks), each of 1 to 3 paragraphs."""
    from document_helpers import make_docx

    return make_docx(
        draw(st.lists(st.lists(_LATIN_LINE, min_size=1, max_size=3), min_size=1, max_size=3))
    )


schemathesis.openapi.media_type("text/plain", text_documents())
schemathesis.openapi.media_type("application/pdf", pdf_documents())
schemathesis.openapi.media_type(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx_documents()
)

# The images of POST /v1/images (its multipart part and its raw bodies list these three
# types): small pictures of random size and colours, encoded by Pillow.
_SIDE = st.integers(1, 48)
_COLOUR = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


def _images(fmt: str) -> st.SearchStrategy[bytes]:
    from PIL import Image

    from image_helpers import encode

    return st.builds(
        lambda w, h, colour: encode(Image.new("RGB", (w, h), colour), fmt),
        _SIDE,
        _SIDE,
        _COLOUR,
    )


schemathesis.openapi.media_type("image/jpeg", _images("JPEG"))
schemathesis.openapi.media_type("image/png", _images("PNG"))
schemathesis.openapi.media_type("image/webp", _images("WEBP"))

# Under pytest-xdist, schemathesis' per-operation items collapse into one that does not
# run them all (6 items reported instead of 47): `make test` runs this file serially.
pytestmark = pytest.mark.serial

# The admin key's name is 63 random characters: DELETE /v1/keys/{name} takes any string
# of up to 63 characters, so only a name the fuzzer cannot realistically produce keeps
# generated requests from revoking the key the test authenticates with. (Key names are
# validated as ^[a-z0-9][a-z0-9_-]{0,62}$ on creation, so none can be longer.)
ADMIN_KEY_NAME = f"fuzz-admin-{uuid.uuid4().hex}{uuid.uuid4().hex}"[:63]

# BUG (src/aiweb/db/orm.py, every ``DateTime(timezone=True)`` column): SQLite gives
# timestamps back without their time zone, so these operations answer e.g.
# ``"created_at": "2026-11-21T03:28:56.306746"`` where the schema documents an RFC 3339
# ``date-time`` (which needs an offset). API keys are not affected: ``_entity`` in
# security/keys.py re-attaches UTC. See ``test_stored_timestamps_are_rfc3339``.
NAIVE_TIMESTAMP_OPERATIONS = {
    "GET /v1/models": {},
    "GET /v1/models/{name}": {"name": "sentiment"},
    "GET /v1/models/{name}/versions/{version}": {"name": "sentiment", "version": 1},
    "GET /v1/audit": {},
}

OPENAPI: dict[str, Any] = create_app(
    Settings(home=Path("/nonexistent/aiweb-fuzz"), database_url="sqlite://")
).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)

# Schemathesis never generates lone surrogates ("cannot be encoded for the wire"), but a
# JSON body carries them as escapes ("\ud800"), and attackers send them. This copy of the
# schema puts one into every string of a generated body (keys too), at a random place.
surrogate_schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)


def with_surrogates(value: Any, rnd: random.Random) -> Any:
    """``value`` with a lone surrogate (U+D800..U+DFFF) inserted into each string."""
    if isinstance(value, str):
        at = rnd.randint(0, len(value))
        return value[:at] + chr(rnd.randint(0xD800, 0xDFFF)) + value[at:]
    if isinstance(value, list):
        return [with_surrogates(v, rnd) for v in value]
    if isinstance(value, dict):
        return {with_surrogates(k, rnd): with_surrogates(v, rnd) for k, v in value.items()}
    return value


def has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    return False


@surrogate_schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    operation = getattr(context, "operation", None)
    request_body = getattr(operation, "definition", None)
    raw = getattr(request_body, "raw", {}) if request_body is not None else {}
    content = raw.get("requestBody", {}).get("content", {}) if isinstance(raw, dict) else {}
    if "application/json" not in content:  # a multipart header cannot carry one
        return st.just(body)
    return st.randoms(use_true_random=False).map(lambda rnd: with_surrogates(body, rnd))


@pytest.fixture(scope="module")
def fuzz_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return standalone_settings(tmp_path_factory.mktemp("fuzz") / "home")


@pytest.fixture(scope="module")
def fuzz_key(fuzz_settings: Settings, tiny_model_bytes: bytes) -> str:
    secret = create_key(fuzz_settings, ("admin",), ADMIN_KEY_NAME)
    register_versions(fuzz_settings, "sentiment", tiny_model_bytes, 2)
    return secret


@pytest.fixture(scope="module")
def fuzz_server(fuzz_settings: Settings, fuzz_key: str) -> Iterator[str]:
    configure(ConnectionLimits.from_settings(fuzz_settings.serving))
    with live_server(fuzz_settings, "uvicorn-fuzz", http=PROTOCOL) as port:
        url = f"http://127.0.0.1:{port}"
        # an administrative change, so the audit log has an event to list
        resp = httpx.put(
            f"{url}/v1/models/sentiment/aliases/staging",
            json={"version": 2},
            headers={"Authorization": f"Bearer {fuzz_key}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        yield url


@pytest.fixture(scope="module")
def api_schema(fuzz_server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")


@pytest.fixture(scope="module")
def fuzz_headers(fuzz_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fuzz_key}"}


def test_served_schema_is_the_fuzzed_one(api_schema: schemathesis.BaseSchema) -> None:
    assert api_schema.raw_schema == OPENAPI
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert set(NAIVE_TIMESTAMP_OPERATIONS) <= labels


@schema.parametrize()
@hypothesis.settings(
    max_examples=20,  # x 42 operations, in one process: ~1 min of the suite
    deadline=None,
    database=None,  # no .hypothesis/ directory in the project
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.filter_too_much,
        hypothesis.HealthCheck.data_too_large,
    ],
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, fuzz_server: str, fuzz_headers: dict[str, str]
) -> None:
    case.call_and_validate(
        base_url=fuzz_server, headers=fuzz_headers, checks=ALL_CHECKS, timeout=30
    )


@surrogate_schema.parametrize()
@hypothesis.settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_lone_surrogates_in_bodies_are_refused(
    case: schemathesis.Case, fuzz_server: str, fuzz_headers: dict[str, str]
) -> None:
    response = case.call(base_url=fuzz_server, headers=fuzz_headers, timeout=30)
    if has_surrogate(case.body):
        assert response.status_code == 422, response.text
    case.validate_response(response, checks=CHECKS, headers=fuzz_headers)


@pytest.mark.parametrize("label", sorted(NAIVE_TIMESTAMP_OPERATIONS))
def test_stored_timestamps_are_rfc3339(
    label: str,
    api_schema: schemathesis.BaseSchema,
    fuzz_server: str,
    fuzz_headers: dict[str, str],
) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]
    case = operation.Case(path_parameters=NAIVE_TIMESTAMP_OPERATIONS[label])
    response = case.call(base_url=fuzz_server, headers=fuzz_headers, timeout=30)
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=CHECKS, headers=fuzz_headers)
