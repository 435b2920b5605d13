"""CLI output (issue #19): ids never cut in tables, unique id prefixes, ``--json`` on every
``list`` and ``show``, and messages that say what to do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import open_registry, register_tiny
from typer.testing import CliRunner

from aiweb.cli import _common, app
from aiweb.config import Settings
from aiweb.jobs.env import build_job_env

# output formatting; the CLI on PostgreSQL is tested by the jobs, keys and registry tests: its
# PostgreSQL variant would add nothing (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

JOB_A = "abc10000-0000-4000-8000-000000000001"
JOB_B = "abc20000-0000-4000-8000-000000000002"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.delenv("AIWEB_SERVING__RUNTIME", raising=False)
    return settings


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_csv(path: Path, delimiter: str = ",") -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["text", "label"])
        for i in range(8):
            writer.writerow([f"a wonderful moving film {i}", "positive"])
            writer.writerow([f"a dull lifeless mess {i}", "negative"])
    return path


def make_jobs(settings: Settings) -> None:
    env = build_job_env(settings, migrate=True)
    try:
        for job_id in (JOB_A, JOB_B):
            env.jobs.create(
                "train", {"model": "m"}, submitted_by="tests", max_attempts=1, job_id=job_id
            )
    finally:
        env.close()


def test_job_ids_by_unique_prefix_and_ambiguity_listed(cli_env: Settings) -> None:
    make_jobs(cli_env)
    code, out, err = run("jobs", "show", "abc1")
    assert code == 0, err
    assert json.loads(out)["id"] == JOB_A
    code, out, err = run("jobs", "show", "abc", "--json")
    assert code == 1
    text = one_line(err)
    assert "ambiguous" in text
    assert JOB_A in text
    assert JOB_B in text
    code, _, err = run("jobs", "cancel", "abc2")
    assert code == 0, err
    assert JOB_B in err
    code, out, _ = run("jobs", "show", JOB_B)
    assert json.loads(out)["status"] == "cancelled"
    code, _, err = run("jobs", "show", "fff")
    assert code == 1
    assert "does not exist" in err


def test_tables_never_cut_ids_at_80_columns(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, tiny_model_bytes: bytes
) -> None:
    make_jobs(cli_env)
    name = "a-rather-long-model-name-for-a-narrow-terminal"
    registry, engine = open_registry(cli_env)
    try:
        register_tiny(registry, name, tiny_model_bytes, alias="production")
    finally:
        engine.dispose()
    monkeypatch.setattr(_common.out, "width", 80)
    code, out, err = run("jobs", "list")
    assert code == 0, err
    assert JOB_A in out
    assert JOB_B in out  # whole, on one line: other columns give way
    code, out, _ = run("models", "list")
    assert name in out
    code, out, _ = run("keys", "list")
    assert code == 0


def test_dataset_ids_by_prefix_and_json(cli_env: Settings, tmp_path: Path) -> None:
    code, out, err = run("datasets", "upload", str(write_csv(tmp_path / "train.csv")))
    assert code == 0, err
    dataset_id = out.strip()
    code, out, err = run("datasets", "show", dataset_id[:8], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == dataset_id
    assert shown["rows"] == 16
    assert shown["columns"] == ["text", "label"]
    assert set(shown) == {
        "id",
        "name",
        "format",
        "rows",
        "columns",
        "sha256",
        "size_bytes",
        "created_by",
        "created_at",
    }
    code, out, _ = run("datasets", "show", dataset_id[:8])
    assert code == 0
    assert dataset_id in out
    code, out, _ = run("datasets", "uploads", "--json")
    listed = json.loads(out)
    assert listed["total"] == 1
    assert listed["datasets"][0]["id"] == dataset_id
    # a job names its dataset by a prefix too; the job stores the full id
    code, out, err = run(
        "jobs", "submit", "train", "--set", "model=m", "--set", f"dataset_id={dataset_id[:8]}"
    )
    assert code == 0, err
    code, out, _ = run("jobs", "show", out.strip()[:12])
    assert json.loads(out)["params"]["dataset_id"] == dataset_id
    code, out, _ = run("jobs", "list", "--json")
    jobs = json.loads(out)
    assert jobs["total"] == 1
    assert jobs["jobs"][0]["params"]["dataset_id"] == dataset_id


def test_keys_revoked_by_unique_prefix(cli_env: Settings) -> None:
    for name in ("webshop", "webhook", "backoffice"):
        code, _, err = run("keys", "create", name)
        assert code == 0, err
    code, _, err = run("keys", "revoke", "web")
    assert code == 1
    text = one_line(err)
    assert "ambiguous" in text
    assert "webhook" in text
    assert "webshop" in text
    code, _, err = run("keys", "revoke", "webs")
    assert code == 0, err
    assert "revoked API key webshop" in err
    code, out, _ = run("keys", "list", "--json")
    keys = {k["name"]: k for k in json.loads(out)}
    assert keys["webshop"]["state"] == "revoked"
    assert keys["webhook"]["state"] == "active"
    assert set(keys["webhook"]) >= {"name", "prefix", "scopes", "state", "created_at"}
    code, _, err = run("keys", "revoke", keys["backoffice"]["prefix"][:6])
    assert code == 0, err
    assert "backoffice" in err


def test_every_list_and_show_prints_json(cli_env: Settings, tiny_model_bytes: bytes) -> None:
    registry, engine = open_registry(cli_env)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes, alias="production")
    finally:
        engine.dispose()
    code, out, err = run("models", "list", "--json")
    assert code == 0, err
    (model,) = json.loads(out)
    assert model["name"] == "sentiment"
    assert model["latest_version"] == 1
    assert model["aliases"] == {"production": 1}
    code, out, err = run("models", "show", "sentiment", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["versions"][0]["version"] == 1
    assert shown["versions"][0]["aliases"] == ["production"]
    assert shown["versions"][0]["evaluation"] == {"accuracy": 1.0}
    code, out, _ = run("datasets", "list", "--json")
    assert "sst2" in {d["name"] for d in json.loads(out)}
    code, out, _ = run("users", "list", "--json")
    assert json.loads(out) == []
    code, out, err = run("collections", "list", "--json")
    assert code == 0, err
    assert json.loads(out) == []


def test_default_training_prints_no_onnx_line(cli_env: Settings, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv")
    code, _, err = run("train", "text-classification", "m", "--data", str(data))
    assert code == 0, err
    assert "ONNX" not in err
    code, _, err = run(
        "train", "text-classification", "m", "--data", str(data), "--param", "vectorizer=tfidf"
    )
    assert code == 0, err
    assert "ONNX" in err


def test_semicolon_csv_gets_a_delimiter_hint(cli_env: Settings, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "semi.csv", delimiter=";")
    code, _, err = run("train", "text-classification", "m", "--data", str(data))
    assert code == 1
    assert "separated by semicolons" in one_line(err)
    code, out, err = run("datasets", "upload", str(data))
    assert code == 0, err
    code, _, err = run(
        "jobs", "submit", "train", "--set", "model=m", "--set", f"dataset_id={out.strip()}"
    )
    assert code == 1
    assert "separated by semicolons" in one_line(err)


def test_too_few_texts_per_label_says_what_to_do(cli_env: Settings, tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\ngood,pos\nfine,pos\nbad,neg\n")
    code, _, err = run("train", "text-classification", "m", "--data", str(data))
    assert code == 1
    text = one_line(err)
    assert "fewer than 2 distinct texts" in text
    assert "at least 2 different texts" in text
    assert "--eval-data" in text


def test_export_check_sentences_never_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiweb.datasets import _base
    from aiweb.embeddings.export import (
        BUILTIN_CHECK_SENTENCES,
        BUILTIN_SENTENCES,
        choose_check_sentences,
    )

    def no_download(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the embedding export must not download a dataset")

    monkeypatch.setattr(_base, "_download", no_download)
    monkeypatch.setattr("aiweb.datasets.catalog._download", no_download)
    settings = Settings(home=tmp_path / "home", data_home=None)
    check = choose_check_sentences(1000, settings)
    assert check.source == BUILTIN_SENTENCES
    assert check.texts == list(BUILTIN_CHECK_SENTENCES)
    assert len(set(check.texts)) == len(check.texts) >= 50
    assert choose_check_sentences(10, settings).texts == list(BUILTIN_CHECK_SENTENCES[:10])


def test_export_check_sentences_from_the_shared_data(shared_data: Path, tmp_path: Path) -> None:
    from aiweb.embeddings.export import SHARED_SENTENCES, choose_check_sentences

    settings = Settings(home=tmp_path / "home", data_home=shared_data)
    check = choose_check_sentences(200, settings)
    assert check.source == SHARED_SENTENCES
    assert len(check.texts) == 200
