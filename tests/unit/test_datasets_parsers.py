"""Parsers of the built-in datasets, the registry and the core types."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits, LabeledTexts, sms_spam, sst2
from aiweb.errors import DataFormatError, DatasetNotFound


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# --------------------------------------------------------------------------- SST-2


def test_sst2_strips_trailing_space_and_maps_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.tsv",
        "sentence\tlabel\nhide new secretions from the parental units \t0\n"
        "a gorgeous , witty film \t1\n",
    )
    rows = sst2.parse_tsv(path)
    assert rows.texts == ["hide new secretions from the parental units", "a gorgeous , witty film"]
    assert rows.labels == ["negative", "positive"]
    assert len(rows) == 2


def test_sst2_quotes_and_backquotes_are_literal(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dev.tsv",
        "sentence\tlabel\n\" the film is `` great '' , he said \t1\n"
        "it 's a `` must \t1\n"
        '"unterminated quote \t0\n',
    )
    rows = sst2.parse_tsv(path)
    assert rows.texts == [
        "\" the film is `` great '' , he said",
        "it 's a `` must",
        '"unterminated quote',
    ]
    assert rows.labels == ["positive", "positive", "negative"]


def test_sst2_splits_on_last_tab(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "sentence\tlabel\na\tb \t1\n")
    assert sst2.parse_tsv(path).texts == ["a\tb"]


def test_sst2_crlf_blank_lines_and_bom(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.tsv",
        b"\xef\xbb\xbfsentence\tlabel\r\ngood \t1\r\n\r\nbad \t0\r\n",
    )
    rows = sst2.parse_tsv(path)
    assert rows.texts == ["good", "bad"]
    assert rows.labels == ["positive", "negative"]


def test_sst2_keeps_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "sentence\tlabel\nfun \t1\nfun \t1\n")
    assert sst2.parse_tsv(path).texts == ["fun", "fun"]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("sentence\tlabel\ngood \t1\nno tab here\n", 3, "no TAB"),
        ("sentence\tlabel\ngood \t1\nbad \t2\n", 3, "label must be 0 or 1"),
        ("sentence\tlabel\n \t1\n", 2, "empty sentence"),
        ("text\tlabel\ngood \t1\n", 1, "header"),
    ],
)
def test_sst2_malformed_names_file_and_line(
    tmp_path: Path, body: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "train.tsv", body)
    with pytest.raises(DataFormatError, match=fragment) as excinfo:
        sst2.parse_tsv(path)
    assert str(path) in str(excinfo.value)
    assert f"line {line}:" in str(excinfo.value)


def test_sst2_non_utf8_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", b"sentence\tlabel\ngood \t1\ncaf\xe9 \t1\n")
    with pytest.raises(DataFormatError, match=r"line 3: not valid UTF-8"):
        sst2.parse_tsv(path)


def test_sst2_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="empty"):
        sst2.parse_tsv(write(tmp_path / "train.tsv", ""))


def test_sst2_load_directory(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "sentence\tlabel\ngood \t1\nbad \t0\n")
    write(tmp_path / "dev.tsv", "sentence\tlabel\nfine \t1\n")
    result = sst2.load_directory(tmp_path)
    assert result.name == "sst2"
    assert result.eval_name == "dev"
    assert result.eval is not None
    assert result.eval.texts == ["fine"]
    assert result.labels == ["negative", "positive"]


def test_sst2_missing_file_is_a_format_error(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "sentence\tlabel\ngood \t1\n")
    with pytest.raises(DataFormatError, match=r"dev\.tsv"):
        sst2.load_directory(tmp_path)


# --------------------------------------------------------------------------- SMS


def test_sms_first_tab_html_entities_and_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SMSSpamCollection",
        'ham\tI\'ll call you at &lt;#&gt; pm &amp; bring "food"\n'
        "spam\tWIN a prize!\tCall now &gt;&gt; 0800\n",
    )
    rows = sms_spam.parse(path)
    assert rows.texts == [
        'I\'ll call you at <#> pm & bring "food"',
        "WIN a prize!\tCall now >> 0800",
    ]
    assert rows.labels == ["ham", "spam"]


def test_sms_crlf_c1_characters_and_whitespace(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SMSSpamCollection",
        "ham\tthat\x92s  ok \x93yes\x94 \x96 fine\x85more \r\n"
        "\r\n"
        "spam\t  \u00a3100 free\u2028now\r\n",
    )
    rows = sms_spam.parse(path)
    # cp1252 mapping of C1 characters; U+0085 and U+2028 do not split lines
    assert rows.texts == [
        "that\u2019s  ok \u201cyes\u201d \u2013 fine\u2026more",
        "\u00a3100 free\u2028now",
    ]
    assert rows.labels == ["ham", "spam"]


def test_sms_undefined_cp1252_codes_are_kept() -> None:
    assert sms_spam.normalize_text("a\x81b\x9dc") == "a\x81b\x9dc"


def test_sms_keeps_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "SMSSpamCollection", "ham\tok\nham\tok\nspam\twin\n")
    assert sms_spam.parse(path).texts == ["ok", "ok", "win"]


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("ham\tok\nno tab\n", 2, "no TAB"),
        ("ham\tok\n\nspamm\twin\n", 3, "label must be ham or spam"),
        ("ham\t   \n", 1, "empty message"),
    ],
)
def test_sms_malformed_names_file_and_line(
    tmp_path: Path, body: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "SMSSpamCollection", body)
    with pytest.raises(DataFormatError, match=fragment) as excinfo:
        sms_spam.parse(path)
    assert str(path) in str(excinfo.value)
    assert f"line {line}:" in str(excinfo.value)


def test_sms_load_directory(tmp_path: Path) -> None:
    write(tmp_path / "SMSSpamCollection", "ham\tok\nspam\twin\n")
    result = sms_spam.load_directory(tmp_path)
    assert result.name == "sms_spam"
    assert result.eval is None
    assert result.eval_name is None
    assert result.labels == ["ham", "spam"]


# --------------------------------------------------------------------------- registry, types


def test_available_and_info() -> None:
    names = [item.name for item in datasets.available()]
    assert names == [
        "banking77",
        "clinc150",
        "job_description_entities",
        "movielens_latest_small",
        "skillspan",
        "sms_spam",
        "sst2",
        "twitter_airline_sentiment",
        "wnut17",
    ]
    movielens = datasets.info("movielens_latest_small")
    assert movielens.task == "recommendation"
    assert movielens.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    sst = datasets.info("sst2")
    assert sst.directory == "sst2"
    assert sst.url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
    assert sst.labels == ("negative", "positive")
    assert sst.task == "text-classification"
    sms = datasets.info("sms_spam")
    assert sms.directory == "sms_spam_collection"
    assert sms.url == "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
    assert sms.labels == ("ham", "spam")
    assert any("uplicate" in caveat for caveat in sms.caveats)


def test_unknown_dataset_lists_known_ones(tmp_path: Path) -> None:
    known = (
        "known datasets: banking77, clinc150, job_description_entities, "
        "movielens_latest_small, skillspan, sms_spam, sst2, twitter_airline_sentiment, wnut17"
    )
    with pytest.raises(DatasetNotFound, match=known):
        datasets.info("imdb")
    with pytest.raises(DatasetNotFound):
        datasets.load("imdb", Settings(home=tmp_path, data_home=None), progress=False)


def test_locate_prefers_data_home(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    write(data_home / "sms_spam_collection" / "SMSSpamCollection", "ham\tok\nspam\twin\n")
    settings = Settings(home=tmp_path / "home", data_home=data_home)
    assert datasets.locate("sms_spam", settings) == data_home / "sms_spam_collection"
    loaded = datasets.load("sms_spam", settings)
    assert loaded.train.texts == ["ok", "win"]


def test_locate_uses_complete_cache_and_ignores_incomplete_data_home(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    write(data_home / "sst2" / "train.tsv", "sentence\tlabel\ngood \t1\n")  # no dev.tsv
    settings = Settings(home=tmp_path / "home", data_home=data_home)
    cache = settings.datasets_cache_dir / "sst2"
    write(cache / "train.tsv", "sentence\tlabel\ngood \t1\nbad \t0\n")
    write(cache / "dev.tsv", "sentence\tlabel\nfine \t1\n")
    assert datasets.fetch("sst2", settings) == cache
    assert len(datasets.load("sst2", settings).train) == 2


def test_labeled_texts_sha256_is_order_sensitive_and_canonical() -> None:
    a = LabeledTexts(texts=["x", "y"], labels=["1", "0"])
    b = LabeledTexts(texts=["y", "x"], labels=["0", "1"])
    assert a.sha256() != b.sha256()
    assert a.sha256() == LabeledTexts(texts=["x", "y"], labels=["1", "0"]).sha256()
    # a row boundary cannot be forged by the content of a field
    c = LabeledTexts(texts=['x", "1"]\n["y'], labels=["0"])
    assert c.sha256() != a.sha256()
    assert len(LabeledTexts(texts=[], labels=[]).sha256()) == 64


def test_labeled_texts_rejects_misaligned_rows() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        LabeledTexts(texts=["a"], labels=[])


def test_dataset_splits_sha256_covers_eval() -> None:
    train = LabeledTexts(texts=["a", "b"], labels=["0", "1"])
    dev = LabeledTexts(texts=["c"], labels=["0"])
    other = LabeledTexts(texts=["d"], labels=["0"])
    with_dev = DatasetSplits("d", train, dev, "dev", ["0", "1"])
    assert with_dev.sha256() != DatasetSplits("d", train, other, "dev", ["0", "1"]).sha256()
    assert with_dev.sha256() != DatasetSplits("d", train, None, None, ["0", "1"]).sha256()
