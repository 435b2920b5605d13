"""``aiweb collections import`` with ``--id-column/--text-column/--metadata-columns`` on a
file laid out as goodbooks-10k's ``books.csv``, and the CLI's advice for a missing
collection (the CLI command, not an HTTP route)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_search_api import install_minilm
from typer.testing import CliRunner

from aiweb.cli import app as cli_app
from aiweb.config import Settings
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.registry.factory import build_registry
from aiweb.search.service import SearchService
from aiweb.search.store import SearchStore

BOOKS = """\
book_id,authors,original_publication_year,title,language_code,average_rating
1,Suzanne Collins,2008.0,"The Hunger Games (The Hunger Games, #1)",eng,4.34
514,Arthur Conan Doyle,1892.0,The Adventures of Sherlock Holmes,eng,4.30
9000,Anonymous,,Beowulf,,3.43
"""


@pytest.fixture
def cli_env(settings: Settings, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's, with the
    embedding model installed."""
    install_minilm(settings, minilm_dir)
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_import_books_csv_as_it_is(cli_env: Settings, tmp_path: Path) -> None:
    books = tmp_path / "books.csv"
    books.write_text(BOOKS, encoding="utf-8")
    code, output = cli(
        "collections",
        "import",
        "books",
        str(books),
        "--id-column",
        "book_id",
        "--text-column",
        "{title} by {authors}",
        "--metadata-columns",
        "year=original_publication_year,language=language_code",
        "--metadata-column",
        "average_rating",
    )
    assert code == 0, output
    assert "upserted 3 documents into books" in output

    registry, engine = build_registry(cli_env)
    try:
        service = SearchService(
            SearchStore(engine), EmbedderPool(registry, cli_env.embeddings), registry, cli_env
        )
        holmes = service.get_document("books", "514")
        assert holmes.text == "The Adventures of Sherlock Holmes by Arthur Conan Doyle"
        # numbers are stored as numbers (so a filter matches them by value), empty cells
        # are left out
        assert holmes.metadata == {"year": 1892, "language": "eng", "average_rating": 4.3}
        assert service.get_document("books", "9000").metadata == {"average_rating": 3.43}
        hits = asyncio.run(
            service.search(
                "books", "detective", top_k=3, filter={"year": {"in": [1892]}}, mode="vector"
            )
        ).hits
        assert [h.id for h in hits] == ["514"]
    finally:
        engine.dispose()


def test_import_names_a_missing_column(cli_env: Settings, tmp_path: Path) -> None:
    books = tmp_path / "books.csv"
    books.write_text(BOOKS, encoding="utf-8")
    code, output = cli(
        "collections", "import", "books", str(books), "--id-column", "book_id",
        "--text-column", "{title} by {author}",
    )  # fmt: skip
    assert code == 1
    assert "author" in output
    assert "authors" in output  # the message lists the file's columns
    assert "Traceback" not in output


def test_missing_collection_advice_is_the_cli_command(cli_env: Settings) -> None:
    for args in (("show", "nope"), ("search", "nope", "anything")):
        code, output = cli("collections", *args)
        assert code == 1
        assert "aiweb collections create nope" in output, output
        assert "PUT /v1" not in output


def test_calibrate_the_answer_threshold(cli_env: Settings, tmp_path: Path) -> None:
    books = tmp_path / "books.csv"
    books.write_text(BOOKS, encoding="utf-8")
    code, output = cli("collections", "create", "empty")
    assert code == 0, output
    code, output = cli("collections", "calibrate", "empty")
    assert code == 1
    assert "no documents" in output
    code, output = cli(
        "collections",
        "import",
        "books",
        str(books),
        "--id-column",
        "book_id",
        "--text-column",
        "title",
    )
    assert code == 0, output
    code, output = cli("collections", "show", "books")
    assert "not calibrated" in output
    code, output = cli("collections", "calibrate", "books")
    assert code == 0, output
    assert "the 0.95 quantile of the top-hit similarity of 149 packaged" in output
    code, output = cli("collections", "show", "books", "--json")
    shown = json.loads(output)
    assert 0.0 < shown["answer_threshold"] < 1.0
    assert shown["calibration"]["source"] == "packaged"

    few = tmp_path / "few.txt"
    few.write_text("what time is it?\n\nhello\n", encoding="utf-8")
    code, output = cli("collections", "calibrate", "books", "--questions", str(few))
    assert code == 1
    assert "needs 20 to 2000 questions, 2 given" in output
