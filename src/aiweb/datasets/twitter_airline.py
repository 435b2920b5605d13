"""Twitter US Airline Sentiment: tweets to six US airlines, February 2015, in 3 classes.

Published by CrowdFlower ("Data for Everyone", later Figure Eight) and republished on
Kaggle as ``crowdflower/twitter-airline-sentiment`` (``Tweets.csv``, 14,640 rows). Kaggle
needs a login, so aiweb downloads a byte-identical copy of Kaggle's ``Tweets.csv`` kept in
the GitHub repository ``eidehua/Real-Time-SciVi`` (commit ``d172fa9``), checked against its
sha256 (other copies were re-saved by spreadsheets and mangle the 18-digit tweet ids).

File ``twitter_airline_sentiment/Tweets.csv``: comma-separated with a header, RFC 4180
quoting (some texts hold newlines), UTF-8. Columns used: ``tweet_id`` (kept as text,
never a float), ``airline_sentiment`` (the label: ``negative``/``neutral``/``positive``),
``airline_sentiment_confidence`` (CrowdFlower's annotator agreement, 0-1) and ``text``.

De-duplication by tweet id: 155 ids occur twice (18 of them with different labels); one
row per id is kept, the one with the highest ``airline_sentiment_confidence`` (the first
in the file on a tie), giving 14,485 tweets. Texts are normalised: HTML entities left by
the publisher (``&amp;``, ``&lt;``) are unescaped and surrounding whitespace is stripped.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from aiweb.datasets._base import (
    DatasetInfo,
    DatasetSpec,
    DatasetSplits,
    LabeledTexts,
    read_text,
    splits,
)
from aiweb.errors import DataFormatError

__all__ = ["FILE_NAME", "INFO", "LABELS", "SPEC", "URL", "load_directory", "parse"]

COMMIT = "d172fa9b83b3b78ed37b3c39bfc21f9465874ff1"
URL = (
    f"https://raw.githubusercontent.com/eidehua/Real-Time-SciVi/{COMMIT}/twitter-airline-sentiment/"
)
FILE_NAME = "Tweets.csv"
LABELS = ("negative", "neutral", "positive")
SHA256 = {FILE_NAME: "31aa9f9f90d9da372d1522b463cd0d43128d274f553dcf10b15fb17cdd71df10"}
_COLUMNS = ("tweet_id", "airline_sentiment", "airline_sentiment_confidence", "text")

INFO = DatasetInfo(
    name="twitter_airline_sentiment",
    task="text-classification",
    description=(
        "Twitter US Airline Sentiment (CrowdFlower / Kaggle): English tweets to US airlines "
        "labeled negative, neutral or positive."
    ),
    directory="twitter_airline_sentiment",
    url=URL,
    license=(
        "CC BY-NC-SA 4.0 (Kaggle): non-commercial use only, share-alike; tweets are also "
        "under X/Twitter's terms."
    ),
    labels=LABELS,
    caveats=(
        "De-duplicated by tweet_id on load: 14,640 rows -> 14,485 tweets; of the 18 ids "
        "with conflicting labels the row with the higher annotator agreement is kept.",
        "No official split: every tweet is in train; hold out a test set (aiweb's trainer "
        "splits 20% stratified).",
        "Imbalanced: about 63% negative, 21% neutral, 16% positive; prefer macro-F1.",
        "Contains user names and @mentions (personal data): do not log the texts.",
        "Downloaded from a byte-identical GitHub copy of Kaggle's Tweets.csv, checked by "
        "sha256 (Kaggle needs a login).",
    ),
)


def parse(path: Path) -> LabeledTexts:
    """Parse ``Tweets.csv``, one row per tweet id.

    Args:
        path: the CSV file.

    Returns:
        One row per distinct ``tweet_id`` in order of first appearance; for a repeated id,
        the row with the highest ``airline_sentiment_confidence`` (first on ties). Texts
        HTML-unescaped and stripped; labels ``negative``/``neutral``/``positive``.

    Raises:
        DataFormatError: a missing column, an unknown label, a confidence that is not a
            number, an empty text, or non-UTF-8 bytes (names the file and line).
    """
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataFormatError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
    best: dict[str, tuple[float, str, str]] = {}
    for row in reader:
        line = reader.line_num
        tweet_id = (row["tweet_id"] or "").strip()
        label = (row["airline_sentiment"] or "").strip()
        if not tweet_id:
            raise DataFormatError(f"{path}: line {line}: empty tweet_id")
        if label not in LABELS:
            raise DataFormatError(f"{path}: line {line}: unknown sentiment {label[:40]!r}")
        try:
            confidence = float(row["airline_sentiment_confidence"] or "nan")
        except ValueError:
            raise DataFormatError(
                f"{path}: line {line}: airline_sentiment_confidence is not a number"
            ) from None
        text = html.unescape(row["text"] or "").strip()
        if not text:
            raise DataFormatError(f"{path}: line {line}: empty text")
        kept = best.get(tweet_id)
        if kept is None or confidence > kept[0]:
            best[tweet_id] = (confidence, text, label)
    if not best:
        raise DataFormatError(f"{path}: file has no tweets")
    return LabeledTexts(
        texts=[text for _, text, _ in best.values()],
        labels=[label for _, _, label in best.values()],
    )


def load_directory(directory: Path) -> DatasetSplits:
    """Parse ``Tweets.csv`` in ``directory``.

    Returns:
        Splits named ``"twitter_airline_sentiment"`` with every tweet in ``train`` and
        ``eval=None``.

    Raises:
        DataFormatError: the file is missing or malformed.
    """
    return splits(INFO.name, parse(directory / FILE_NAME), None, None)


SPEC = DatasetSpec(
    info=INFO,
    files=(FILE_NAME,),
    members={},
    parse=load_directory,
    downloads={FILE_NAME: FILE_NAME},
    sha256=SHA256,
)
