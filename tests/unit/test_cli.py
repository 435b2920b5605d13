from __future__ import annotations

import pytest
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


# ---- issue #19: an honest command line ------------------------------------------------


def test_version_option_prints_the_version() -> None:
    from aiweb import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aiweb {__version__}"


def test_help_names_the_export_extra_with_its_brackets() -> None:
    result = runner.invoke(app, ["embeddings", "install", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "pip install 'aiweb[export]'" in result.output


def test_error_messages_keep_their_brackets() -> None:
    """Rich markup would eat ``[export]``: the error line is printed escaped."""
    import typer

    from aiweb.cli._common import friendly_errors
    from aiweb.errors import ExportUnavailableError

    @friendly_errors
    def command() -> None:
        raise ExportUnavailableError("needs the optional extra: pip install 'aiweb[export]'")

    probe = typer.Typer()
    probe.command()(command)
    result = runner.invoke(probe, [])
    assert result.exit_code == 1
    assert "pip install 'aiweb[export]'" in result.stderr
    assert "Traceback" not in result.output


def test_redact_url_hides_passwords_only() -> None:
    from aiweb.cli._common import redact_url

    assert (
        redact_url("postgresql+psycopg://aiweb:s3cret@db.example:5432/aiweb")
        == "postgresql+psycopg://aiweb:***@db.example:5432/aiweb"
    )
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("sqlite:////home/me/.local/share/aiweb/aiweb.db") == (
        "sqlite:////home/me/.local/share/aiweb/aiweb.db"
    )
    assert redact_url("amqp://guest@localhost//") == "amqp://guest@localhost//"


def test_bad_train_param_lists_the_valid_parameters_with_types() -> None:
    result = runner.invoke(
        app,
        ["train", "text-classification", "m", "--dataset", "sst2", "--param", "bogus=1"],
    )
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "unknown parameter 'bogus'" in err
    assert "C (float, default 2.0)" in err
    assert "vectorizer ('hashing' | 'tfidf', default 'hashing')" in err
    assert "validation error" not in err  # not pydantic's raw message
    result = runner.invoke(
        app, ["train", "text-classification", "m", "--dataset", "sst2", "--param", "C=-1"]
    )
    assert result.exit_code == 1
    assert "C=-1: Input should be greater than 0" in " ".join(result.stderr.split())


def test_bad_recommendation_param_lists_the_algorithms_parameters() -> None:
    result = runner.invoke(app, ["train", "recommendation", "m", "--param", "l2=300"])
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "'l2' is not an algorithm" in err
    assert "ease" in err
    result = runner.invoke(
        app, ["train", "recommendation", "m", "--param", 'ease={"l3": 300, "l2": "x"}']
    )
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert "unknown parameter 'l3'" in err
    assert "l2='x'" in err
    assert "l2 (float, default 200.0)" in err
    result = runner.invoke(app, ["train", "recommendation", "m", "--param", "ease=3"])
    assert result.exit_code == 1
    assert "takes a JSON object" in result.stderr


def test_type_names_are_readable() -> None:
    from typing import Literal

    from aiweb.cli._common import type_name

    assert type_name(int) == "int"
    assert type_name(str | None) == "str | null"
    assert type_name(Literal["a", "b"]) == "'a' | 'b'"


def test_onnx_line_only_when_onnx_was_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiweb.cli.train import onnx_wanted

    monkeypatch.delenv("AIWEB_SERVING__RUNTIME", raising=False)
    assert not onnx_wanted({})
    assert not onnx_wanted({"C": 3, "vectorizer": "hashing"})
    assert onnx_wanted({"vectorizer": "tfidf"})
    monkeypatch.setenv("AIWEB_SERVING__RUNTIME", "onnx")
    assert onnx_wanted({})


def test_two_texts_per_label_error_says_what_to_do() -> None:
    from aiweb.classification.trainer import split_train_test
    from aiweb.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as caught:
        split_train_test(["a", "b", "c"], ["x", "x", "y"], test_size=0.2)
    detail = caught.value.detail
    assert "fewer than 2 distinct texts" in detail
    assert ": y." in detail
    assert "at least 2 different texts" in detail
    assert "--eval-data" in detail


def test_semicolon_csv_gets_a_delimiter_hint() -> None:
    import io

    from aiweb.datasets.tables import iter_table
    from aiweb.errors import DataFormatError

    data = io.BytesIO(b"text;label\ngreat;positive\n")
    with pytest.raises(DataFormatError) as caught:
        list(iter_table(data, "csv", name="semi.csv", columns=["text"], required=["text"]))
    assert "separated by semicolons" in caught.value.detail
    plain = io.BytesIO(b"body,label\ngreat,positive\n")
    with pytest.raises(DataFormatError) as caught:
        list(iter_table(plain, "csv", name="plain.csv", columns=["text"], required=["text"]))
    assert "semicolons" not in caught.value.detail


def test_id_and_name_values_stay_strings_even_when_they_read_as_numbers() -> None:
    """A dataset id prefix of hex digits (``12345678``, ``1e400000``) is an id, not a number:
    CI once drew an all-digit prefix and the job was refused."""
    from aiweb.cli._common import parse_key_values

    pairs = ["dataset_id=12345678", "model=1e400000", "C=4", 'params={"C": 0.5}']
    values = parse_key_values(pairs, "--set", strings=("dataset_id", "model"))
    assert values == {
        "dataset_id": "12345678",
        "model": "1e400000",
        "C": 4,
        "params": {"C": 0.5},
    }
