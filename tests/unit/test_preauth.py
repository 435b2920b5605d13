"""The pre-body key check finds, for every /v1 operation, the scope its route needs, and
reads the key the way the route's dependency does."""

from __future__ import annotations

import re

import pytest

from aiweb.api.preauth import scope_table
from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.security.auth import request_token


def operations() -> list[tuple[str, str, str]]:
    schema = create_app(Settings()).openapi()
    return [
        (method.upper(), path, operation["x-required-scope"])
        for path, ops in schema["paths"].items()
        for method, operation in ops.items()
        if "x-required-scope" in operation
    ]


OPERATIONS = operations()


def test_every_v1_operation_resolves_to_its_own_scope() -> None:
    table = scope_table(create_app(Settings()).openapi())
    assert len(OPERATIONS) > 20
    wrong = []
    for method, path, scope in OPERATIONS:
        concrete = re.sub(r"\{[^{}]+\}", "x1", path)
        found = next((s for m, p, s in table if m == method and p.match(concrete)), None)
        if found != scope:
            wrong.append((method, path, scope, found))
    assert not wrong


def test_a_path_parameter_is_one_segment() -> None:
    table = scope_table({"paths": {"/v1/models/{name}": {"get": {"x-required-scope": "predict"}}}})
    (method, pattern, scope) = table[0]
    assert (method, scope) == ("GET", "predict")
    assert pattern.match("/v1/models/spam")
    assert not pattern.match("/v1/models/spam/versions")
    assert not pattern.match("/v1/models/")


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "token"),
    [
        ("Bearer aiw_a_b", None, "aiw_a_b"),
        ("bearer  aiw_a_b ", None, "aiw_a_b"),
        ("Basic dXNlcjpwYXNz", "aiw_c_d", "aiw_c_d"),
        ("Bearer aiw_a_b", "aiw_c_d", "aiw_a_b"),
        ("Bearer", None, None),
        (None, "", None),
        (None, None, None),
    ],
)
def test_the_key_is_read_as_the_route_reads_it(
    authorization: str | None, x_api_key: str | None, token: str | None
) -> None:
    assert request_token(authorization, x_api_key) == token
