"""``aiweb images upload|list|show|delete`` on the local database (SQLite and
PostgreSQL): per-file errors, JSON output, the stored PNG, deletion."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aiweb.cli import app
from aiweb.config import Settings
from image_helpers import animated, jpeg_oriented, jpeg_with_gps, png


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_upload_list_show_delete(cli_env: Settings, tmp_path: Path) -> None:
    files = {
        "photo.jpg": jpeg_with_gps(),
        "turned.jpg": jpeg_oriented(6, 64, 32),
        "plain.png": png(20, 10),
        "moving.webp": animated("WEBP"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code, out, err = run(
        "images", "upload", "--json", *(str(tmp_path / n) for n in files), str(tmp_path / "no")
    )
    assert code == 1, err
    uploaded = json.loads(out)
    assert [(i["format"], i["width"], i["height"]) for i in uploaded] == [
        ("jpeg", 64, 48),
        ("jpeg", 32, 64),
        ("png", 20, 10),
    ]
    assert f"error: {tmp_path / 'moving.webp'}: the WebP image is animated" in err
    assert f"error: {tmp_path / 'no'}: no such file" in err
    assert "3 uploaded, 2 refused" in err

    code, out, err = run("images", "list", "--json")
    assert code == 0, err
    assert json.loads(out)["total"] == 3

    first = uploaded[0]["id"]
    saved = tmp_path / "saved.png"
    code, out, err = run("images", "show", first[:8], "--save", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out)["sha256"] == uploaded[0]["sha256"]
    with Image.open(io.BytesIO(saved.read_bytes())) as stored:
        assert stored.format == "PNG"
        assert dict(stored.getexif()) == {}

    code, out, err = run("images", "delete", first, "--yes")
    assert code == 0, err
    assert f"deleted image {first}" in err
    code, out, err = run("images", "show", first)
    assert code != 0
    assert "does not exist" in err
