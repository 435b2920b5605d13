"""``aiweb documents upload|list|show|delete`` on the local database (SQLite and
PostgreSQL), and a CLI start-up that imports neither pypdf nor python-docx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiweb.cli import app
from aiweb.config import Settings
from document_helpers import encrypted_pdf, make_docx, make_pdf


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


def test_upload_several_files_with_errors_per_file(cli_env: Settings, tmp_path: Path) -> None:
    pdf = tmp_path / "cv.pdf"
    pdf.write_bytes(make_pdf(["Jane Doe", "jane@example.com"]))
    docx = tmp_path / "cv.docx"
    docx.write_bytes(make_docx([["Bob"], ["Page two"], ["Page three"]]))
    text = tmp_path / "job.txt"
    text.write_text("Python developer wanted")
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted_pdf())
    code, out, err = run(
        "documents", "upload", str(pdf), str(docx), str(text), str(locked), str(tmp_path / "no")
    )
    assert code == 1, err
    assert "cv.pdf" in out
    assert "cv.docx" in out
    assert "job.txt" in out
    assert "DOCX" in out
    assert "PDF" in out
    assert f"error: {locked}: the PDF is encrypted" in err
    assert f"error: {tmp_path / 'no'}: no such file" in err
    assert "3 uploaded, 2 refused" in err

    code, out, err = run("documents", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["total"] == 3
    by_name = {d["name"]: d for d in listed["documents"]}
    assert by_name["cv.docx"]["pages"] == 3
    assert by_name["cv.pdf"]["media_type"] == "application/pdf"

    doc_id = by_name["cv.pdf"]["id"]
    code, out, err = run("documents", "show", doc_id[:8], "--text", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [p["text"] for p in shown["text"]] == ["Jane Doe", "jane@example.com"]
    code, out, err = run("documents", "show", doc_id, "--text")
    assert code == 0, err
    assert "page 2" in out
    assert "jane@example.com" in out

    code, out, err = run("documents", "delete", doc_id, "--yes")
    assert code == 0, err
    assert f"deleted document {doc_id}" in err
    code, out, err = run("documents", "show", doc_id)
    assert code == 1
    assert "does not exist" in err


def test_upload_with_redact_pii(cli_env: Settings, tmp_path: Path) -> None:
    text = tmp_path / "cv.txt"
    text.write_text("Jane, jane@example.com, +44 20 7946 0958, https://jane.dev")
    code, out, err = run("documents", "upload", "--redact-pii", "--json", str(text))
    assert code == 0, err
    [document] = json.loads(out)
    assert document["redacted"] is True
    assert document["redactions"] == {"email": 1, "phone": 1, "url": 1}
    code, out, err = run("documents", "show", document["id"], "--text", "--json")
    assert json.loads(out)["text"][0]["text"] == "Jane, [EMAIL], [PHONE], [URL]"
    stored = cli_env.resolved_artifacts_dir / "documents" / document["id"]
    assert sorted(p.name for p in stored.iterdir()) == ["pages.json"]


def test_upload_of_only_bad_files_exits_1(cli_env: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    code, out, err = run("documents", "upload", str(bad))
    assert code == 1
    assert out == ""
    assert "UTF-16" in err
    assert "0 uploaded, 1 refused" in err


def test_the_cli_starts_without_pypdf_or_docx(tmp_path: Path) -> None:
    """pypdf and python-docx are imported by the extraction only: not by ``aiweb --help``,
    another command, the app module, nor ``aiweb documents list``."""
    code = (
        "import sys\n"
        "from aiweb.cli import app\n"
        "import aiweb.app, aiweb.documents.service\n"
        "for args in (['--help'], ['models', 'list'], ['documents', 'list']):\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pypdf', 'docx', 'lxml'}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIWEB_")}
    env["AIWEB_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
