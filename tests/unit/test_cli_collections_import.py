"""``aiweb collections import``: how its options read a file's columns (no I/O)."""

from __future__ import annotations

import pytest

from aiweb.cli.collections import TextSpec, cli_advice, metadata_value, parse_metadata_columns
from aiweb.errors import InvalidInputError


def test_text_column_names_one_column() -> None:
    spec = TextSpec.parse("text")
    assert spec.columns == ["text"]
    assert spec.render({"text": "  as written  "}) == "  as written  "
    assert spec.render({"text": None}) is None


def test_text_column_template_joins_columns() -> None:
    spec = TextSpec.parse("{title} by {authors}")
    assert spec.columns == ["title", "authors"]
    row = {"title": "The Hunger Games", "authors": "Suzanne Collins"}
    assert spec.render(row) == "The Hunger Games by Suzanne Collins"
    assert spec.render({"title": "Anonymous", "authors": ""}) == "Anonymous by"
    assert spec.render({"title": None, "authors": None}) == "by"
    assert TextSpec.parse("{a}{b}").render({"a": None, "b": None}) is None
    assert TextSpec.parse("{{{a}}}").render({"a": "x"}) == "{x}"
    assert TextSpec.parse("{a} / {a}").columns == ["a"]


@pytest.mark.parametrize("bad", ["", "{", "{}", "{title!r}", "{year:4}", "{{literal}}"])
def test_text_column_bad_templates_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="--text-column"):
        TextSpec.parse(bad)


def test_metadata_columns_rename_and_combine() -> None:
    assert parse_metadata_columns(
        ["genre", "year=original_publication_year, language=language_code,"]
    ) == [
        ("genre", "genre"),
        ("year", "original_publication_year"),
        ("language", "language_code"),
    ]
    assert parse_metadata_columns([]) == []


@pytest.mark.parametrize(
    ("specs", "message"),
    [(["=col"], "FIELD=COLUMN"), (["year="], "FIELD=COLUMN"), (["a,b=a,a=c"], "twice")],
)
def test_metadata_columns_errors(specs: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_metadata_columns(specs)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("2008.0", 2008),
        ("-720.0", -720),
        ("1892", 1892),
        ("4.34", 4.34),
        ("9.78043902348e+12", 9780439023480),
        ("eng", "eng"),
        ("en-US", "en-US"),
        ("007", "007"),  # not a JSON number: a code, kept as written
        ("1e400", "1e400"),  # not a finite float
        ("12 monkeys", "12 monkeys"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_metadata_values(cell: str | None, value: object) -> None:
    got = metadata_value(cell)
    assert got == value
    assert type(got) is type(value)


def test_cli_advice_names_the_cli_command() -> None:
    detail = "no collection 'books': create it with PUT /v1/collections/books"
    advice = cli_advice(detail)
    assert "PUT /v1" not in advice
    assert "`aiweb collections create books`" in advice
    filters = (
        "filter: 'author' is not a filterable metadata field of this collection "
        "(filterable: year; set metadata_fields with PUT /v1/collections/NAME)"
    )
    assert "aiweb collections create NAME --field" in cli_advice(filters)
    assert cli_advice("something else") == "something else"
