"""The hostile-value sweep: no value an attacker can send gives a 5xx, on either database.

The app's own OpenAPI document is walked; for every operation, every path and query
parameter and every field of its JSON body (optional ones, nested objects, array items,
free-form maps such as item metadata: a hostile value and a hostile key) gets, one at a
time, each value of a fixed set with an admin key:

* a lone surrogate, as a JSON escape (``"\\ud800"``) and as raw bytes ``ED A0 80``;
* a NUL character; 10,000 characters; ``../``; ``%2F``;
* ``NaN``, ``Infinity``, ``1e309`` (not JSON, but what hand-rolled clients send);
* ``2**63`` (past every 64-bit column), ``2**31`` (past a PostgreSQL ``INTEGER``), ``-1``;
* the extreme timestamps ``9999-12-31T23:59:59-14:00`` and ``0001-01-01T00:00:00+14:00``
  (valid ISO 8601, out of range once converted to UTC).

The other values of a request are valid (a model, a dataset, items, a job and a
prediction are seeded first) so that a request gets as deep as it can. Every answer must
be below 500; afterwards the server must still be ready and predict. The dashboard's
forms (login first, before any session) get the string values too. Runs on SQLite and
on PostgreSQL (the ``settings`` fixture), in-process (TestClient), with the job runner
off so nothing is trained.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, register_versions

from aiweb.app import create_app
from aiweb.config import Settings
from conftest import TINY_LABELS, TINY_TEXTS, create_key

HOLE = "\x1fHOSTILE\x1f"
HOLE_JSON = orjson.dumps(HOLE)

#: JSON tokens put in a body field (raw bytes: several are not JSON on purpose)
BODY_VALUES: dict[str, bytes] = {
    "surrogate-escape": b'"\\ud800"',
    "surrogate-bytes": b'"\xed\xa0\x80"',
    "nul": b'"a\\u0000b"',
    "10k": b'"' + b"a" * 10_000 + b'"',
    "dotdot": b'"../"',
    "pct2F": b'"%2F"',
    "nan": b"NaN",
    "infinity": b"Infinity",
    "1e309": b"1e309",
    "2^63": b"9223372036854775808",
    "2^31": b"2147483648",
    "-1": b"-1",
    "ts-max": b'"9999-12-31T23:59:59-14:00"',
    "ts-min": b'"0001-01-01T00:00:00+14:00"',
}

#: the same values in a URL (path segment or query value), percent-encoded as sent
URL_VALUES: dict[str, str] = {
    "surrogate-bytes": "%ED%A0%80",
    "nul": "a%00b",
    "10k": "a" * 10_000,
    "dotdot": "..%2F",
    "pct2F": "%2F",
    "nan": "NaN",
    "infinity": "Infinity",
    "1e309": "1e309",
    "2^63": "9223372036854775808",
    "2^31": "2147483648",
    "-1": "-1",
    "ts-max": quote("9999-12-31T23:59:59-14:00", safe=""),
    "ts-min": quote("0001-01-01T00:00:00+14:00", safe=""),
}

#: what dashboard form fields get (raw form bytes after ``field=``)
FORM_VALUES: dict[str, bytes] = {
    "surrogate-bytes": b"%ED%A0%80",
    "raw-surrogate-bytes": b"\xed\xa0\x80",
    "nul": b"a%00b",
    "10k": b"a" * 10_000,
    "dotdot": b"..%2F",
    "-1": b"-1",
    "2^63": b"9223372036854775808",
}


#: file names of an upload (raw bytes of the multipart header)
FILE_NAMES: dict[str, bytes] = {
    "surrogate-bytes": b"\xed\xa0\x80.csv",
    "nul": b"a\x00b.csv",
    "10k": b"a" * 10_000 + b".csv",
    "dotdot": b"../../x.csv",
    "pct2F": b"%2F.csv",
    "latin-1": b"caf\xe9.csv",
}


@dataclass
class Seeded:
    """What the sweep's requests point at."""

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def sweep_settings(settings: Settings) -> Settings:
    # no job runs (a hostile but valid job spec would train); rate limits stay off
    return settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"concurrency": 0})})


@pytest.fixture
def admin_secret(sweep_settings: Settings) -> str:
    return create_key(sweep_settings, ("admin",), "sweep-admin-" + "k" * 40)


@pytest.fixture
def client(
    sweep_settings: Settings, admin_secret: str, tiny_model_bytes: bytes
) -> Iterator[TestClient]:
    secret = admin_secret
    create_key(sweep_settings, ("predict",), "victim")
    register_versions(sweep_settings, "sentiment", tiny_model_bytes, 2)
    with TestClient(
        create_app(sweep_settings),
        headers={"Authorization": f"Bearer {secret}"},
        raise_server_exceptions=False,
    ) as c:
        yield c


def seed(client: TestClient) -> Seeded:
    """A dataset, items, interactions, a pending job and a prediction to point at."""
    csv = "text,label\n" + "".join(
        f'"{t}",{label}\n' for t, label in zip(TINY_TEXTS * 2, TINY_LABELS * 2, strict=True)
    )
    r = client.post("/v1/datasets", files={"file": ("tiny.csv", csv.encode(), "text/csv")})
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    r = client.post(
        "/v1/items",
        json={
            "items": [
                {"item_id": f"i{i}", "title": f"item {i}", "categories": ["c"]} for i in range(3)
            ]
        },
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": "u1", "item_id": "i1", "type": "view"}]},
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "text-classification",
            "model": "sentiment",
            "dataset_id": dataset_id,
            "text_column": "text",
            "label_column": "label",
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    r = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
    assert r.status_code == 200, r.text
    prediction_id = r.json()["predictions"][0]["id"]
    return Seeded(
        path={
            "name": "sentiment",
            "version": "1",
            "alias": "staging",
            "dataset_id": dataset_id,
            "job_id": job_id,
            "prediction_id": prediction_id,
            "item_id": "i1",
            "user_id": "u1",
            "doc_id": "d1",
        },
        query={"model": "sentiment", "window": "1h"},
    )


# -- the OpenAPI walk ------------------------------------------------------------------


class Walker:
    """Valid bodies and bodies with one hole, from an OpenAPI document's schemas."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.components: dict[str, Any] = openapi.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.resolve(
                {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
            )
        return schema

    def variants(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        schema = self.resolve(schema)
        options = schema.get("oneOf") or schema.get("anyOf")
        if not options:
            return [schema]
        out = [self.resolve(o) for o in options if self.resolve(o).get("type") != "null"]
        return [v for o in out for v in self.variants(o)]

    def sample(self, schema: dict[str, Any], depth: int = 0) -> Any:
        """A valid-looking value of ``schema``: required members only."""
        schema = self.variants(schema)[0]
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            return {
                k: self.sample(props[k], depth + 1)
                for k in schema.get("required", [])
                if k in props
            }
        if kind == "array":
            n = max(1, int(schema.get("minItems", 1)))
            return [self.sample(schema.get("items", {}), depth + 1) for _ in range(n)]
        if kind == "integer":
            return int(schema.get("minimum", 1)) if schema.get("minimum", 1) >= 0 else 1
        if kind == "number":
            lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            hi = schema.get("maximum", schema.get("exclusiveMaximum", lo + 1))
            return (lo + hi) / 2
        if kind == "boolean":
            return False
        if schema.get("format") == "date-time":
            return "2026-01-02T03:04:05Z"
        return "sentiment" if schema.get("pattern") else "text"

    def holes(self, schema: dict[str, Any], depth: int = 0) -> Iterator[Any]:
        """Valid-looking values of ``schema`` with :data:`HOLE` in one place each."""
        if depth > 5:
            return
        for variant in self.variants(schema):
            kind = variant.get("type")
            if kind == "object" or "properties" in variant:
                base = self.sample(variant, depth)
                for name, sub in variant.get("properties", {}).items():
                    for hole in self.holes(sub, depth + 1):
                        yield {**base, name: hole}
                extra = variant.get("additionalProperties")
                if extra:
                    yield {**base, "k": HOLE}
                    yield {**base, HOLE: 1}
                    if isinstance(extra, dict):
                        for hole in self.holes(extra, depth + 1):
                            yield {**base, "k2": hole}
            elif kind == "array":
                for hole in self.holes(variant.get("items", {}), depth + 1):
                    yield [hole]
            elif kind in ("string", "integer", "number", None):
                yield HOLE


def body_cases(walker: Walker, schema: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """``(what, raw JSON body)`` with each hostile token in each hole of ``schema``."""
    seen: set[bytes] = set()
    for template in walker.holes(schema):
        raw = orjson.dumps(template)
        if raw in seen:
            continue
        seen.add(raw)
        for what, token in BODY_VALUES.items():
            yield f"{raw.decode()[:120]} <- {what}", raw.replace(HOLE_JSON, token, 1)


@dataclass
class Failure:
    method: str
    url: str
    what: str
    status: int
    body: str


def call(client: TestClient, method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    r = client.request(method, url, content=body, headers=headers)
    return r.status_code, r.text[:300]


def sweep_operation(
    client: TestClient,
    walker: Walker,
    seeded: Seeded,
    path: str,
    method: str,
    op: dict[str, Any],
) -> Iterator[Failure]:
    params = op.get("parameters", [])
    deleting = method == "DELETE"

    def url_with(override: tuple[str, str, str] | None = None) -> str:
        out = path
        query: list[str] = []
        for p in params:
            hostile = override is not None and override[:2] == (p["in"], p["name"])
            if p["in"] == "path":
                value = seeded.path.get(p["name"], "x")
                if deleting:  # never delete what the sweep points at
                    value = "99" if p["name"] == "version" else "ghost"
                out = out.replace(
                    "{" + p["name"] + "}",
                    override[2] if override is not None and hostile else value,
                )
            elif p["in"] == "query" and (hostile or p.get("required")):
                value = (
                    override[2]
                    if override and hostile
                    else seeded.query.get(p["name"], str(walker.sample(p.get("schema", {}))))
                )
                query.append(f"{p['name']}={value}")
        return out + ("?" + "&".join(query) if query else "")

    content = op.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    valid_body = orjson.dumps(walker.sample(schema)) if schema is not None else None
    if "multipart/form-data" in content:
        for what, filename in FILE_NAMES.items():
            boundary = b"sweep-boundary-7d1c"
            body = (
                b"--" + boundary + b"\r\n"
                b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
                b"Content-Type: text/csv\r\n\r\n"
                b"text,label\na,b\nc,d\n\r\n"
                b"--" + boundary + b"--\r\n"
            )
            r = client.post(
                url_with(),
                content=body,
                headers={"Content-Type": "multipart/form-data; boundary=" + boundary.decode()},
            )
            if r.status_code >= 500:
                yield Failure(method, path, f"file name <- {what}", r.status_code, r.text[:300])
        return

    for p in params:
        if p["in"] not in ("path", "query"):
            continue
        for what, url_value in URL_VALUES.items():
            url = url_with((p["in"], p["name"], url_value))
            status, text = call(client, method, url, valid_body)
            if status >= 500:
                yield Failure(method, url[:200], f"{p['in']} {p['name']} <- {what}", status, text)
    if schema is not None:
        url = url_with()
        for what, body in body_cases(walker, schema):
            status, text = call(client, method, url, body)
            if status >= 500:
                yield Failure(method, url, what, status, text)


def sweep_dashboard(client: TestClient) -> Iterator[Failure]:
    """The login form (no session: the first thing an attacker reaches), then the forms
    and paths of a logged-in admin."""
    # the same client (its event loop runs the app's lifespan), without the API key: the
    # dashboard goes by its session cookie
    admin = client.headers.pop("Authorization").removeprefix("Bearer ")
    bare = client

    def login_token() -> str:  # each login form answered sets a new one
        page = bare.get("/login")
        assert page.status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        return token.group(1)

    for field_name in (b"username", b"password", b"token", b"next"):
        for what, value in FORM_VALUES.items():
            csrf = login_token().encode()
            body = (
                b"csrf_token=" + csrf + b"&username=admin&password=x&" + field_name + b"=" + value
            )
            r = bare.post(
                "/login",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                follow_redirects=False,
            )
            if r.status_code >= 500:
                yield Failure(
                    "POST",
                    "/login",
                    f"{field_name.decode()} <- {what}",
                    r.status_code,
                    r.text[:300],
                )
    r = bare.post(
        "/login",
        data={"csrf_token": login_token(), "token": admin},
        follow_redirects=False,
    )
    assert r.status_code in (302, 303), r.text[:500]
    page = bare.get("/keys")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    csrf = token.group(1).encode()
    for page_path in (
        "/models/{}",
        "/models/sentiment/versions/{}",
        "/jobs/{}/cancel",
        "/keys/{}/revoke",
        "/models/{}/promote",
    ):
        for what, url_value in URL_VALUES.items():
            url = page_path.format(url_value)
            if url.endswith(("/cancel", "/revoke", "/promote")):
                r = bare.post(
                    url,
                    content=b"csrf_token=" + csrf + b"&version=1",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
                method = "POST"
            else:
                r = bare.get(url, follow_redirects=False)
                method = "GET"
            if r.status_code >= 500:
                yield Failure(method, url[:200], what, r.status_code, r.text[:300])
    forms = {
        "/keys": (b"name=sweep&scopes=predict&expires_in=1d", (b"name", b"scopes", b"expires_in")),
        "/models/sentiment/promote": (b"version=1&alias=staging", (b"version", b"alias")),
        "/models/sentiment/rollback": (b"alias=staging", (b"alias",)),
        "/playground": (b"model=sentiment&text=good", (b"model", b"text")),
        "/playground/recommend": (b"model=sentiment&user_id=u1", (b"model", b"user_id")),
    }
    for form_path, (valid, names) in forms.items():
        for name in names:
            for what, value in FORM_VALUES.items():
                body = b"csrf_token=" + csrf + b"&" + valid + b"&" + name + b"=" + value
                r = bare.post(
                    form_path,
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
                if r.status_code >= 500:
                    yield Failure(
                        "POST", form_path, f"{name.decode()} <- {what}", r.status_code, r.text[:300]
                    )
    for what, url_value in URL_VALUES.items():
        r = bare.get(f"/playground?model={url_value}", follow_redirects=False)
        if r.status_code >= 500:
            yield Failure("GET", "/playground", what, r.status_code, r.text[:300])


def test_no_hostile_value_gives_a_5xx(client: TestClient, admin_secret: str) -> None:
    seeded = seed(client)
    openapi = client.app.openapi()  # type: ignore[attr-defined]
    walker = Walker(openapi)
    operations = [
        (path, method.upper(), op)
        for path, ops in openapi["paths"].items()
        for method, op in ops.items()
    ]
    # deletions last, so they cannot take away what the others point at
    operations.sort(key=lambda o: o[1] == "DELETE")
    failures: list[Failure] = []
    for path, method, op in operations:
        failures.extend(sweep_operation(client, walker, seeded, path, method, op))
    failures.extend(sweep_dashboard(client))
    client.headers["Authorization"] = f"Bearer {admin_secret}"
    report = "\n".join(
        f"{f.status} {f.method} {f.url[:120]} [{f.what}]: {f.body[:200]}" for f in failures
    )
    if failures:
        pytest.fail(f"{len(failures)} answers were 5xx:\n{report}", pytrace=False)

    # the server is intact: ready, and predicts
    assert client.get("/readyz").status_code == 200
    r = client.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == "positive"
