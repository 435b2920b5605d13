from __future__ import annotations

import pytest

from aiweb.errors import InvalidInputError
from aiweb.names import check_name
from aiweb.registry.entities import ModelRef


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("sentiment", ModelRef("sentiment", alias="production")),
        ("sentiment@staging", ModelRef("sentiment", alias="staging")),
        ("sentiment:3", ModelRef("sentiment", version=3)),
        ("a-b_c9:12", ModelRef("a-b_c9", version=12)),
    ],
)
def test_parse_model_refs(ref: str, expected: ModelRef) -> None:
    assert ModelRef.parse(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "Sentiment",
        "sentiment:0",
        "sentiment:-1",
        "sentiment:x",
        "s@",
        "s@Bad",
        "../x",
        "a" * 64,
        "sentiment:1234567890",
        "_x",
        "x y",
    ],
)
def test_malformed_refs_are_invalid_input(ref: str) -> None:
    with pytest.raises(InvalidInputError):
        ModelRef.parse(ref)


def test_ref_str_round_trips() -> None:
    for ref in ("spam@production", "spam:2"):
        assert str(ModelRef.parse(ref)) == ref


def test_check_name_accepts_63_chars_and_refuses_64() -> None:
    assert check_name("a" * 63) == "a" * 63
    with pytest.raises(InvalidInputError, match="1 to 63"):
        check_name("a" * 64)
