"""A refused JSON body names where the refused value is (aiweb.api.limits.json_path_at)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiweb.api import problems
from aiweb.api.limits import (
    InputLimitsMiddleware,
    InvalidInput,
    JsonPath,
    check_json,
    json_path_at,
    render_json_path,
)
from aiweb.api.middleware import RequestIdMiddleware
from aiweb.app import create_app
from aiweb.config import Settings

# -- the scanner on hand-written texts: ``‸`` marks the position (and is cut out) ---------


@pytest.mark.parametrize(
    ("marked", "path"),
    [
        ("‸NaN", ()),
        ("[‸NaN]", (0,)),
        ("[1, 2, ‸NaN]", (2,)),
        ('{"a": ‸NaN}', ("a",)),
        ('{"a": [1, {"b": [[], {}, [3], ‸NaN]}]}', ("a", 1, "b", 3)),
        ('{"inputs": [{"age": 39}, {"amount": ‸NaN}]}', ("inputs", 1, "amount")),
        ('[[1, [2, [3]]], {"x": [{}]}, "s", ‸NaN]', (3,)),
        ("[[[[[[1]]]]], [[[[[2, [3]]]]]], ‸NaN]", (2,)),  # closed containers deeper than 4
        ('{"a": "[{,", "b": ‸NaN}', ("b",)),  # brackets and commas in strings
        ('{"a\\"b": ‸1}', ('a"b',)),  # an escaped quote in a key
        ('{"a": "x\\\\", "b": ‸1}', ("b",)),  # an escaped backslash before a closing quote
        ('{"a": "\\"]}", "b": [‸1]}', ("b", 0)),
        ('{"k": "\\u005d\\u007d", "l": ‸1}', ("l",)),  # escaped brackets
        ('{"\\u00e9t\\u00e9": {"😀 x": [1, ‸2]}}', ("été", "😀 x", 1)),  # unicode, escaped too
        ('{"été": ["ça", "😀😀", ‸NaN]}', ("été", 2)),
        (' \n\t{ \r\n "a" :\n [ 1 ,\t‸2 ] }', ("a", 1)),  # whitespace
        ('{"a": 1, ‸NaN}', ()),  # a key expected: the object itself
        ('{"a": 1, "b"‸ NaN}', ("b",)),  # a colon expected after key b
        ('{"a": 1, "b" ‸NaN}', ("b",)),
        ('{"‸\\ud800": 1}', ("\ud800",)),  # in a key: the key
        ('{‸"a": 1}', ()),  # before it: the object
        ('{"a": 1, "x\\ud800‸": 1}', ("x\ud800",)),
        ('{"a": {"b": "x\\‸ud800"}}', ("a", "b")),  # in a value string
        ('{"a": "unterminated, [‸', ("a",)),
        ('{"a": [1, 2], "b": {"c": 1}, "d": ‸-Infinity}', ("d",)),
        ('{"a": -‸Infinity}', ("a",)),
        ("[{}, [], ‸{", (2,)),
        ("‸", ()),
    ],
)
def test_the_path_at_a_position(marked: str, path: JsonPath) -> None:
    pos = marked.index("‸")
    text = marked.replace("‸", "")
    assert json_path_at(text, pos) == path


def test_positions_past_either_end_are_clamped() -> None:
    assert json_path_at("[1, 2", 99) == (1,)
    assert json_path_at("[1, 2", -5) == ()


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("inputs", 1, "amount"), "inputs[1].amount"),
        ((0, "a", 2), "[0].a[2]"),
        (("a b", "_ok9", "9no", "é"), '["a b"]._ok9["9no"]["é"]'),
        (('q"', "\\", "a\x00b", "x\ud800"), '["q\\""]["\\\\"]["a\\u0000b"]["x\\ud800"]'),
        (("k" * 200,), '["' + "k" * 80 + '…"]'),
        ((), ""),
    ],
)
def test_paths_render_for_people(path: JsonPath, text: str) -> None:
    assert render_json_path(path) == text


# -- generated documents, one leaf made hostile -------------------------------------------

SENTINEL = "\ue000hostile\ue000"
HOSTILE = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1.5e309",
    '"\\ud800"',
    '"x\\udc00"',
    str(2**64),
    str(-(2**63) - 1),
    '"a\\u0000b"',
]
# any character but NUL, a lone surrogate and the sentinel's, JSON's own often
_chars = st.sampled_from('"\\[]{},:/ \n\té😀') | st.characters(
    exclude_categories=["Cs"], exclude_characters="\x00\ue000"
)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_chars, max_size=8)
)
_keys = st.text(_chars, max_size=10)
_documents = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _leaf_paths(value: Any, path: JsonPath = ()) -> list[JsonPath]:
    """The paths of the scalars and empty containers in ``value``."""
    if not isinstance(value, list | dict) or not value:
        return [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]


def _replaced(value: Any, path: JsonPath) -> Any:
    if not path:
        return SENTINEL
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        assert isinstance(head, int)
        return [_replaced(v, rest) if i == head else v for i, v in enumerate(value)]
    return {k: _replaced(v, rest) if k == head else v for k, v in value.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=_documents,
    data=st.data(),
    hostile=st.sampled_from(HOSTILE),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
)
def test_a_hostile_leaf_is_named_by_its_path(
    document: Any, data: st.DataObject, hostile: str, ascii_only: bool, indent: int | None
) -> None:
    # sometimes deep inside containers, beside closed ones deeper than the scanner skips
    for _ in range(data.draw(st.integers(0, 7))):
        sibling = data.draw(st.sampled_from([[[[[[[1]]]]]], {"x": [{"y": [[{}]]}]}, "]", 0]))
        document = data.draw(
            st.sampled_from([[sibling, document], {"s": sibling, "d": document}, [document]])
        )
    path = data.draw(st.sampled_from(_leaf_paths(document)))
    text = json.dumps(_replaced(document, path), ensure_ascii=ascii_only, indent=indent)
    sentinel = json.dumps(SENTINEL, ensure_ascii=ascii_only)
    assert text.count(sentinel) == 1
    pos = text.index(sentinel)
    text = text.replace(sentinel, hostile)
    with pytest.raises(InvalidInput) as info:
        check_json(text.encode("utf-8"), 64)
    assert info.value.path == path, (text, info.value.detail)
    if path:
        assert f" at {render_json_path(path)}" in info.value.detail
    # the scanner alone, at the start of the hostile value
    assert json_path_at(text, pos) == path


def _object_paths(value: Any, path: JsonPath = ()) -> list[JsonPath]:
    """The paths of the objects in ``value``, outermost first."""
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _object_paths(v, (*path, i))]
    if isinstance(value, dict):
        return [path, *(p for k, v in value.items() for p in _object_paths(v, (*path, k)))]
    return []


def _with_key(value: Any, path: JsonPath, first: bool) -> Any:
    if not path:
        return {SENTINEL: 1, **value} if first else {**value, SENTINEL: 1}
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_with_key(v, rest, first) if i == head else v for i, v in enumerate(value)]
    return {k: _with_key(v, rest, first) if k == head else v for k, v in value.items()}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=_documents,
    data=st.data(),
    hostile=st.sampled_from([("k\\ud800", "k\\ud800"), ("k\\u0000", "k\x00")]),
    first=st.booleans(),
    ascii_only=st.booleans(),
)
def test_a_hostile_key_is_named_with_its_object(
    document: Any, data: st.DataObject, hostile: tuple[str, str], first: bool, ascii_only: bool
) -> None:
    if not _object_paths(document):
        document = {"w": document}
    path = data.draw(st.sampled_from(_object_paths(document)))
    text = json.dumps(_with_key(document, path, first), ensure_ascii=ascii_only)
    sentinel = json.dumps(SENTINEL, ensure_ascii=ascii_only)
    assert text.count(sentinel) == 1
    literal, named = hostile
    with pytest.raises(InvalidInput) as info:
        check_json(text.replace(sentinel, f'"{literal}"').encode("utf-8"), 64)
    assert info.value.path == (*path, named), (text, info.value.detail)


@pytest.mark.parametrize(
    ("raw", "path", "says"),
    [
        (b'{"a": [1, {"\\ud800": 2}]}', ("a", 1, "\\ud800"), 'at a[1]["\\ud800"]: '),
        (b'{"a": {"b\\u0000c": 1}}', ("a", "b\x00c"), "a key in the body contains a NUL"),
        (b'{"a": [{"t": "\xed\xa0\x80"}]}', ("a", 0, "t"), "at a[0].t: str is not valid UTF-8"),
        (b'{"a": [1, "\xff"]}', ("a", 1), "at a[1]: "),
        (b'{"s": "-99999999999999999999", "n": [-99999999999999999999]}', ("n", 0), "64-bit"),
        (b'{"n": [9223372036854775807, 9223372036854775808]}', ("n", 1), "64-bit"),
        (b'{"' + b"k" * 100 + b'": NaN}', ("k" * 80 + "…",), '["' + "k" * 80 + '…"]'),
        (b"NaN", (), "body is not valid JSON: "),
    ],
)
def test_keys_bytes_and_integers_are_located(raw: bytes, path: JsonPath, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_json(raw, 32)
    assert info.value.loc == "body"
    assert info.value.path == path
    assert says in info.value.detail
    json.dumps(info.value.detail)  # no lone surrogate left in it


def test_valid_bodies_are_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiweb.api.limits as limits

    def boom(*args: Any) -> JsonPath:
        raise AssertionError("scanned")

    monkeypatch.setattr(limits, "json_path_at", boom)
    check_json(b'{"inputs": [{"a": 1, "t": "[\\"x\\"]", "n": 9223372036854775807}]}', 32)


# -- over HTTP ----------------------------------------------------------------------------

BODY = b'{"inputs": [{"a": 1}, {"amount": NaN}]}'


def _assert_located(r: Any) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == "/problems/validation"
    assert "inputs[1].amount" in problem["detail"]
    assert problem["detail"].startswith("body is not valid JSON at inputs[1].amount: ")
    assert problem["errors"][0]["loc"] == ["body", "inputs", 1, "amount"]
    assert problem["errors"][0]["type"] == "json_invalid"
    assert problem["errors"][0]["msg"] == problem["detail"]


def test_a_hostile_row_is_named_over_http() -> None:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(InputLimitsMiddleware, max_body_bytes=4096, max_json_depth=32)
    app.add_middleware(RequestIdMiddleware)

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str) -> dict[str, str]:
        raise AssertionError("the edge lets a hostile body through")

    with TestClient(app) as client:
        r = client.post(
            "/v1/models/x/predict", content=BODY, headers={"Content-Type": "application/json"}
        )
    _assert_located(r)
    with TestClient(app) as client:
        r = client.post(
            "/v1/models/x/predict",
            content=b'{"inputs": [{"c\\u0000": 1}]}',
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "inputs", 0, "c\x00"]


def test_a_hostile_row_is_named_by_the_real_app(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="sqlite://", auth={"enabled": False})
    client = TestClient(create_app(settings))  # no lifespan: the edge answers first
    r = client.post(
        "/v1/models/x/predict", content=BODY, headers={"Content-Type": "application/json"}
    )
    _assert_located(r)
