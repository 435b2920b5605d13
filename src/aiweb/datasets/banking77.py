"""Banking77: online-banking customer queries labeled with one of 77 intents.

Casanueva et al., "Efficient Intent Detection with Dual Sentence Encoders", NLP4ConvAI
workshop at ACL 2020; PolyAI's repository ``PolyAI-LDN/task-specific-datasets``, folder
``banking_data/``, pinned to commit ``57ec275`` (CC BY 4.0).

Files ``banking77/train.csv`` (10,003 rows), ``banking77/test.csv`` (3,080 rows, 40 per
intent) and ``banking77/categories.json`` (the 77 intent names), byte-for-byte as
published.

Format: comma-separated with the header ``text,category``, RFC 4180 quoting (queries
holding commas are quoted), UTF-8. Every category must be one of ``categories.json``.
"""

from __future__ import annotations

import csv
import io
import json
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

__all__ = ["CATEGORIES_FILE", "HEADER", "INFO", "SPEC", "URL", "load_directory", "parse_csv"]

COMMIT = "57ec275d8078af65b7731c2a98be812d844a6d6b"
URL = f"https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/{COMMIT}/banking_data/"
HEADER = ("text", "category")
CATEGORIES_FILE = "categories.json"
FILES = ("train.csv", "test.csv", CATEGORIES_FILE)
SHA256 = {
    "train.csv": "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
    "test.csv": "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
    CATEGORIES_FILE: "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
}

INFO = DatasetInfo(
    name="banking77",
    task="text-classification",
    description=(
        "Banking77 (PolyAI, Casanueva et al., 2020): English online-banking customer "
        "queries over 77 fine-grained intents."
    ),
    directory="banking77",
    url=URL,
    license="CC BY 4.0 (PolyAI-LDN/task-specific-datasets); cite Casanueva et al., 2020.",
    labels=(),  # 77 names, in categories.json
    caveats=(
        "Evaluation uses the official test split (3,080 rows, 40 per intent); there is no "
        "validation split.",
        "Train is imbalanced: 35 to 187 queries per intent.",
        "No duplicates as published, but 4 train queries repeat another (same intent) but "
        "for surrounding spaces, which are stripped on load.",
        "6 test queries also appear in train (ignoring case); the trainer drops exact "
        "repeats of evaluation texts from training.",
        "No out-of-scope class: use clinc150 for out-of-scope detection.",
    ),
)


def _categories(path: Path) -> set[str]:
    try:
        names = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataFormatError(f"{path}: expected a JSON list of intent names")
    return set(names)


def parse_csv(path: Path, categories: set[str]) -> LabeledTexts:
    """Parse ``train.csv`` or ``test.csv``.

    Args:
        path: the CSV file.
        categories: the allowed intent names (from ``categories.json``).

    Returns:
        The rows in file order, queries stripped.

    Raises:
        DataFormatError: wrong header, a row without two fields, an empty query, an
            unknown category, or non-UTF-8 bytes (names the file and line).
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    first = next(reader, None)
    if first is None or tuple(c.strip() for c in first) != HEADER:
        raise DataFormatError(f"{path}: line 1: expected the header text,category")
    texts: list[str] = []
    labels: list[str] = []
    for row in reader:
        if not row:
            continue
        if len(row) != 2:
            raise DataFormatError(
                f"{path}: line {reader.line_num}: expected 2 fields, found {len(row)}"
            )
        text, label = row[0].strip(), row[1].strip()
        if not text:
            raise DataFormatError(f"{path}: line {reader.line_num}: empty query")
        if label not in categories:
            raise DataFormatError(
                f"{path}: line {reader.line_num}: unknown category {label[:60]!r}"
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataFormatError(f"{path}: file has no rows")
    return LabeledTexts(texts=texts, labels=labels)


def load_directory(directory: Path) -> DatasetSplits:
    """Parse ``train.csv`` and ``test.csv`` in ``directory``.

    Returns:
        Splits named ``"banking77"`` with ``eval_name="test"``.

    Raises:
        DataFormatError: a file is missing or malformed.
    """
    categories = _categories(directory / CATEGORIES_FILE)
    return splits(
        INFO.name,
        parse_csv(directory / "train.csv", categories),
        parse_csv(directory / "test.csv", categories),
        "test",
    )


SPEC = DatasetSpec(
    info=INFO,
    files=FILES,
    members={},
    parse=load_directory,
    downloads={name: name for name in FILES},
    sha256=SHA256,
)
