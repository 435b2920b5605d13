from __future__ import annotations

from typer.testing import CliRunner

from aiweb.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "train", "predict", "models", "datasets", "db"):
        assert command in result.output


def test_datasets_list_names_both_demo_datasets() -> None:
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0
    assert "sst2" in result.output
    assert "sms_spam" in result.output


def test_bad_workers_value_is_a_clean_error() -> None:
    result = runner.invoke(app, ["serve", "--workers", "many"])
    assert result.exit_code == 1
    assert "--workers" in result.output
    assert "Traceback" not in result.output
