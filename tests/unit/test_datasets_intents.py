"""The CLINC150, Banking77 and Twitter airline loaders: on the real shared files
(AIWEB_DATA_HOME) and on small hand-made ones."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits, banking77, clinc150, twitter_airline
from aiweb.errors import DataFormatError
from conftest import data_home


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = data_home()
    if home is None or not (home / "clinc150").is_dir():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return Settings(home=tmp_path_factory.mktemp("home"), data_home=home)


def load(name: str, settings: Settings) -> DatasetSplits:
    return datasets.load(name, settings, progress=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the real files ----------------------------------------------------------------------
def test_clinc150_splits_and_labels(shared: Settings) -> None:
    assert datasets.locate("clinc150", shared) == shared.data_home / "clinc150"  # type: ignore[operator]
    data = load("clinc150", shared)
    assert data.eval is not None
    assert data.eval_name == "val"
    assert (len(data.train), len(data.eval)) == (15_100, 3_100)
    assert len(data.labels) == 151
    assert "oos" in data.labels
    train, val = Counter(data.train.labels), Counter(data.eval.labels)
    assert train["oos"] == 100
    assert val["oos"] == 100
    assert {n for label, n in train.items() if label != "oos"} == {100}  # 100 per intent
    assert {n for label, n in val.items() if label != "oos"} == {20}
    # in-scope rows first, then the out-of-scope ones, as the loader documents
    assert data.train.labels[-100:] == ["oos"] * 100
    assert data.train.labels[0] == "translate"
    assert all(t == t.strip() and t for t in data.train.texts + data.eval.texts)


def test_clinc150_files_match_the_recorded_sha256(shared: Settings) -> None:
    directory = datasets.locate("clinc150", shared)
    for name, digest in clinc150.SPEC.sha256.items():
        assert sha256(directory / name) == digest


def test_banking77_splits_and_labels(shared: Settings) -> None:
    data = load("banking77", shared)
    assert data.eval is not None
    assert data.eval_name == "test"
    assert (len(data.train), len(data.eval)) == (10_003, 3_080)
    assert len(data.labels) == 77
    assert set(Counter(data.eval.labels).values()) == {40}  # balanced test split
    counts = Counter(data.train.labels)
    assert (min(counts.values()), max(counts.values())) == (35, 187)
    # no duplicate as published; 4 queries repeat another but for surrounding spaces
    assert len(set(data.train.texts)) == 10_003 - 4
    directory = datasets.locate("banking77", shared)
    for name, digest in banking77.SPEC.sha256.items():
        assert sha256(directory / name) == digest


def test_twitter_airline_is_deduplicated_by_tweet_id(shared: Settings) -> None:
    data = load("twitter_airline_sentiment", shared)
    assert data.eval is None
    assert data.labels == ["negative", "neutral", "positive"]
    # 14,640 rows, 155 ids twice: one row per id
    assert len(data.train) == 14_640 - 155
    assert Counter(data.train.labels) == {"negative": 9_083, "neutral": 3_068, "positive": 2_334}
    assert not any("&amp;" in t or "&lt;" in t for t in data.train.texts)
    assert any("\n" in t for t in data.train.texts)  # quoted newlines are kept in the text
    directory = datasets.locate("twitter_airline_sentiment", shared)
    assert sha256(directory / "Tweets.csv") == twitter_airline.SHA256["Tweets.csv"]


def test_twitter_airline_conflicting_labels_keep_the_more_agreed_row(shared: Settings) -> None:
    data = load("twitter_airline_sentiment", shared)
    # tweet 570300262302289920 is in the file as neutral (agreement 0.6544), then as
    # positive (agreement 1.0); only the positive row is kept, at the first row's place
    text = "@AmericanAir Thank you, you too!"
    assert data.train.texts.count(text) == 1
    assert data.train.labels[data.train.texts.index(text)] == "positive"


# -- hand-made files ---------------------------------------------------------------------
def write(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


DOMAINS = {"banking": ["balance", "transfer"]}


def clinc_dir(tmp_path: Path, **overrides: object) -> Path:
    content: dict[str, object] = {
        "train": [["what is my balance ", "balance"], ["send money", "transfer"]],
        "val": [["how much do i have", "balance"]],
        "oos_train": [["tell me a joke", "oos"]],
        "oos_val": [["what is the capital of peru", "oos"]],
    }
    content.update(overrides)
    write(tmp_path / "domains.json", json.dumps(DOMAINS))
    write(tmp_path / "data_full_train_val.json", json.dumps(content))
    return tmp_path


def test_clinc150_parse_hand_made(tmp_path: Path) -> None:
    data = clinc150.load_directory(clinc_dir(tmp_path))
    assert data.train.texts == ["what is my balance", "send money", "tell me a joke"]
    assert data.train.labels == ["balance", "transfer", "oos"]
    assert data.eval is not None
    assert data.eval.labels == ["balance", "oos"]
    assert data.labels == ["balance", "oos", "transfer"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"val": [["hi", "weather"]]}, r"val\[0\]: unknown intent 'weather'"),
        ({"train": [["only one field"]]}, r"train\[0\]: expected \[query, intent\]"),
        ({"train": [["  ", "balance"]]}, r"train\[0\]: empty query"),
        ({"oos_val": [["hello", "balance"]]}, "oos_val holds a label other than 'oos'"),
        ({"oos_train": None}, "key 'oos_train' is missing"),
    ],
)
def test_clinc150_malformed(tmp_path: Path, override: dict[str, object], fragment: str) -> None:
    with pytest.raises(DataFormatError, match=fragment):
        clinc150.load_directory(clinc_dir(tmp_path, **override))


def test_clinc150_reduce_full_drops_the_test_splits(tmp_path: Path) -> None:
    full = {
        "oos_val": [["q1", "oos"]],
        "val": [["q2", "balance"]],
        "train": [["q3", "balance"], ["q3b", "transfer"]],
        "oos_test": [["secret", "oos"]],
        "test": [["secret too", "balance"]],
        "oos_train": [["q4", "oos"]],
    }
    write(tmp_path / "data_full.json", json.dumps(full, indent=2))
    write(tmp_path / "domains.json", json.dumps(DOMAINS))
    clinc150.reduce_full(tmp_path)
    assert not (tmp_path / "data_full.json").exists()
    text = (tmp_path / "data_full_train_val.json").read_text(encoding="utf-8")
    assert "secret" not in text
    assert list(json.loads(text)) == ["train", "val", "oos_train", "oos_val"]
    assert clinc150.load_directory(tmp_path).train.texts == ["q3", "q3b", "q4"]


def test_clinc150_reduce_full_reproduces_the_shared_file(shared: Settings, tmp_path: Path) -> None:
    # the shared file is the upstream one reduced: reducing it again is the identity
    source = datasets.locate("clinc150", shared) / clinc150.FILE_NAME
    (tmp_path / "data_full.json").write_bytes(source.read_bytes())
    clinc150.reduce_full(tmp_path)
    assert sha256(tmp_path / clinc150.FILE_NAME) == clinc150.SHA256[clinc150.FILE_NAME]


def banking_dir(tmp_path: Path, train: str) -> Path:
    write(tmp_path / "categories.json", json.dumps(["card_arrival", "top_up_failed"]))
    write(tmp_path / "train.csv", train)
    write(tmp_path / "test.csv", "text,category\nwhere is my card?,card_arrival\n")
    return tmp_path


def test_banking77_parse_hand_made(tmp_path: Path) -> None:
    data = banking77.load_directory(
        banking_dir(
            tmp_path, 'text,category\n"Hi, my card?",card_arrival\nno top up,top_up_failed\n'
        )
    )
    assert data.train.texts == ["Hi, my card?", "no top up"]
    assert data.eval is not None
    assert data.eval.labels == ["card_arrival"]


@pytest.mark.parametrize(
    ("train", "fragment"),
    [
        ("query,label\nx,card_arrival\n", "expected the header text,category"),
        ("text,category\nx,lost_card\n", "line 2: unknown category 'lost_card'"),
        ("text,category\nx,card_arrival,extra\n", "line 2: expected 2 fields, found 3"),
        ("text,category\n", "has no rows"),
    ],
)
def test_banking77_malformed(tmp_path: Path, train: str, fragment: str) -> None:
    with pytest.raises(DataFormatError, match=fragment):
        banking77.load_directory(banking_dir(tmp_path, train))


TWEETS_HEADER = "tweet_id,airline_sentiment,airline_sentiment_confidence,text\n"


def test_twitter_airline_dedupe_hand_made(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Tweets.csv",
        TWEETS_HEADER
        + "1,neutral,0.6,first &amp; only\n"
        + '2,negative,1.0,"two\nlines"\n'
        + "1,positive,0.9,first &amp; only\n"  # same id, more agreement: replaces row 1
        + "2,positive,1.0,two lines again\n"  # same id, a tie: the first row stays
        + "3,positive,0.5,  third  \n",
    )
    rows = twitter_airline.parse(path)
    assert rows.texts == ["first & only", "two\nlines", "third"]
    assert rows.labels == ["positive", "negative", "positive"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("tweet_id,text\n1,x\n", "missing column"),
        (TWEETS_HEADER + "1,angry,1.0,x\n", "line 2: unknown sentiment 'angry'"),
        (TWEETS_HEADER + "1,neutral,high,x\n", "line 2: airline_sentiment_confidence"),
        (TWEETS_HEADER + ",neutral,1.0,x\n", "line 2: empty tweet_id"),
        (TWEETS_HEADER + "1,neutral,1.0,  \n", "line 2: empty text"),
    ],
)
def test_twitter_airline_malformed(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(DataFormatError, match=fragment):
        twitter_airline.parse(write(tmp_path / "Tweets.csv", body))
