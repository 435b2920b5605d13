"""``aiweb datasets upload``, ``aiweb jobs …``, ``aiweb worker`` from the command line,
against a live server whose embedded runner runs the jobs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from helpers import live_server
from typer.testing import CliRunner

from aiweb.cli import app
from aiweb.config import Settings


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_train_csv(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(8):
            writer.writerow([f"a wonderful, moving film {i}", "positive"])
            writer.writerow([f"a dull, lifeless mess {i}", "negative"])
    return path


def test_upload_submit_wait_show_result(cli_env: Settings, tmp_path: Path) -> None:
    code, out, err = run("datasets", "upload", str(write_train_csv(tmp_path / "train.csv")))
    assert code == 0, err
    dataset_id = out.strip()
    assert "16 rows" in err
    code, out, err = run("datasets", "uploads")
    assert code == 0
    assert dataset_id in out
    with live_server(cli_env):  # its embedded runner runs what the CLI submits
        code, out, err = run(
            "jobs",
            "submit",
            "train",
            "--set",
            "model=cli-model",
            "--set",
            f"dataset_id={dataset_id}",
            "--set",
            'params={"C": 3}',
            "--wait",
        )
        assert code == 0, err
        job_id = out.splitlines()[0].strip()
        result = json.loads("\n".join(out.splitlines()[1:]))
        assert result["model"] == "cli-model"
        assert result["version"] == 1
        code, out, err = run(
            "jobs",
            "submit",
            "batch-predict",
            "--set",
            "model=cli-model",
            "--set",
            f"dataset_id={dataset_id}",
        )
        assert code == 0, err
        batch_id = out.strip()
        code, out, err = run("jobs", "wait", batch_id, "--timeout", "60")
        assert code == 0, err
    code, out, _ = run("jobs", "show", job_id)
    assert json.loads(out)["status"] == "succeeded"
    code, out, _ = run("jobs", "list", "--status", "succeeded")
    assert job_id in out
    assert batch_id in out
    target = tmp_path / "scores.csv"
    code, _, err = run("jobs", "result", batch_id, "-o", str(target))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 16
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 17)]


def test_cli_errors_are_one_line_and_exit_1(cli_env: Settings, tmp_path: Path) -> None:
    code, _, err = run("jobs", "submit", "train", "--set", "model=x")
    assert code == 1
    assert "exactly one of dataset_id or dataset" in err
    code, _, err = run("jobs", "show", "nope")
    assert code == 1
    assert "does not exist" in err
    bad = tmp_path / "bad.csv"
    bad.write_text('text,label\n"a",b,c\n')
    code, _, err = run("datasets", "upload", str(bad))
    assert code == 1
    assert "line 2" in err
    code, _, err = run("worker")
    assert code == 1
    assert "AIWEB_BROKER_URL is not set" in err
    code, _, err = run("scheduler")
    assert code == 1


def test_cancel_a_pending_job(cli_env: Settings, tmp_path: Path) -> None:
    _, out, _ = run("datasets", "upload", str(write_train_csv(tmp_path / "train.csv")))
    _, out, _ = run(
        "jobs", "submit", "train", "--set", "model=m", "--set", f"dataset_id={out.strip()}"
    )
    job_id = out.strip()
    code, _, err = run("jobs", "cancel", job_id)
    assert code == 0
    assert "cancelled" in err
    code, _, err = run("jobs", "wait", job_id)
    assert code == 1
    assert "cancelled" in err
