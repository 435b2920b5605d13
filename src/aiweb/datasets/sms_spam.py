"""SMS Spam Collection v.1 (UCI dataset 228): ham / spam English SMS messages.

File ``sms_spam_collection/SMSSpamCollection`` (5,574 rows), the member of the same
name in the UCI zip archive. No official split: all rows are returned as ``train``.

Format: no header; ``label<TAB>text`` per line, split on the first TAB (no quote
handling). Texts are normalised as follows:

* HTML entities left by the publisher (``&lt;#&gt;``, ``&amp;``) are unescaped with
  :func:`html.unescape`;
* C1 control characters (U+0080..U+009F, left by a cp1252 round trip: U+0092 for an
  apostrophe, U+0093/U+0094 for quotes, U+0096 for a dash) are mapped to the character
  cp1252 gives that byte (``'\\x92'`` -> ``'\\u2019'``); the five code points cp1252 leaves
  undefined are kept as they are. Predict-time inputs carry the real characters, so the
  model should see them too;
* surrounding whitespace is stripped.

Duplicate messages are kept (the trainer de-duplicates before splitting).
"""

from __future__ import annotations

import html
from pathlib import Path

from aiweb.datasets._base import (
    DatasetInfo,
    DatasetSpec,
    DatasetSplits,
    LabeledTexts,
    iter_lines,
    read_text,
    splits,
)
from aiweb.errors import DataFormatError

__all__ = ["FILE_NAME", "LABELS", "SPEC", "URL", "load_directory", "normalize_text", "parse"]

URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
FILE_NAME = "SMSSpamCollection"
LABELS = frozenset({"ham", "spam"})


def _c1_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x80, 0xA0):
        try:
            table[code] = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:
            continue  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: undefined in cp1252, kept as is
    return table


_C1_TO_CP1252 = _c1_table()

INFO = DatasetInfo(
    name="sms_spam",
    task="text-classification",
    description="SMS Spam Collection v.1 (UCI): English SMS messages labeled ham or spam.",
    directory="sms_spam_collection",
    url=URL,
    license="CC BY 4.0 (UCI); cite Almeida, Gomez Hidalgo & Yamakami, DocEng 2011.",
    labels=("ham", "spam"),
    caveats=(
        "No official split: every row is in train; hold out a test set yourself.",
        "Duplicates are kept: 403 repeated texts as published, 415 after the normalisation "
        "on load; de-duplicate before a random train/test split or the test score is "
        "inflated (aiweb's trainer does this).",
        "Imbalanced: 4,827 ham (86.6%) / 747 spam (13.4%); prefer macro-F1 to accuracy.",
        "HTML entities in the published texts (&lt; &gt; &amp;) are unescaped on load.",
        "C1 control characters from a cp1252 round trip (e.g. U+0092) are mapped to the "
        "cp1252 characters (U+2019 ...) on load; surrounding whitespace is stripped.",
    ),
)


def normalize_text(text: str) -> str:
    """Normalise one SMS text: unescape HTML entities, map C1 characters, strip.

    Args:
        text: the raw message text.

    Returns:
        The normalised text.
    """
    return html.unescape(text).translate(_C1_TO_CP1252).strip()


def parse(path: Path) -> LabeledTexts:
    """Parse the ``SMSSpamCollection`` file.

    Each line is split on its first TAB into label and text; texts are normalised by
    :func:`normalize_text`. LF and CRLF line ends are accepted; blank lines are skipped.

    Args:
        path: the ``SMSSpamCollection`` file.

    Returns:
        All rows in file order, labels ``"ham"``/``"spam"`` (duplicates kept).

    Raises:
        DataFormatError: a line without TAB, a label other than ham/spam, an empty
            text, or non-UTF-8 bytes (the message names file and line).
    """
    texts: list[str] = []
    labels: list[str] = []
    for number, line in iter_lines(read_text(path)):
        if not line.strip():
            continue
        raw_label, tab, raw_text = line.partition("\t")
        if not tab:
            raise DataFormatError(f"{path}: line {number}: expected 'label<TAB>text', no TAB")
        label = raw_label.strip()
        if label not in LABELS:
            raise DataFormatError(
                f"{path}: line {number}: label must be ham or spam, found {raw_label[:40]!r}"
            )
        text = normalize_text(raw_text)
        if not text:
            raise DataFormatError(f"{path}: line {number}: empty message text")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataFormatError(f"{path}: file has no messages")
    return LabeledTexts(texts=texts, labels=labels)


def load_directory(directory: Path) -> DatasetSplits:
    """Parse ``SMSSpamCollection`` in ``directory``.

    Args:
        directory: folder holding the file.

    Returns:
        Splits named ``"sms_spam"`` with every row in ``train`` and ``eval=None``.

    Raises:
        DataFormatError: the file is missing or malformed.
    """
    return splits(INFO.name, parse(directory / FILE_NAME), None, None)


SPEC = DatasetSpec(
    info=INFO,
    files=(FILE_NAME,),
    members={FILE_NAME: FILE_NAME},
    parse=load_directory,
)
