"""CLINC150 ("data_full"): 150 intents in 10 domains plus out-of-scope (``oos``) queries.

Larson et al., "An Evaluation Dataset for Intent Classification and Out-of-Scope
Prediction", EMNLP-IJCNLP 2019; the authors' repository ``clinc/oos-eval``, pinned to
commit ``828f809`` (CC BY 3.0).

Files ``clinc150/data_full_train_val.json`` and ``clinc150/domains.json``. The first is the
repository's ``data/data_full.json`` with only the keys ``train``, ``val``, ``oos_train``
and ``oos_val`` kept (values unchanged, in order), written with
``json.dumps(obj, ensure_ascii=False)``: the shared copy is exactly that, and a download
of ``data_full.json`` is reduced to it before it is stored (the official ``test`` and
``oos_test`` splits are dropped on arrival, so nothing here can tune on them).

Format: a JSON object; each key maps to a list of ``[query, intent]`` pairs; out-of-scope
queries have the intent ``oos``. ``domains.json`` maps each domain to its 15 intents and
is used to check the labels.

Splits as loaded: ``train`` = ``train`` (15,000 in-scope, 100 per intent) followed by
``oos_train`` (100); ``eval`` (named ``val``) = ``val`` (3,000, 20 per intent) followed by
``oos_val`` (100).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiweb.datasets._base import (
    DatasetInfo,
    DatasetSpec,
    DatasetSplits,
    LabeledTexts,
    read_text,
    splits,
)
from aiweb.errors import DataFormatError

__all__ = [
    "DOMAINS_FILE",
    "FILE_NAME",
    "INFO",
    "OOS_LABEL",
    "SPEC",
    "URL",
    "load_directory",
    "parse",
    "reduce_full",
]

COMMIT = "828f8093932c8fe6ca7936c3d2e52903b1c523de"
URL = f"https://raw.githubusercontent.com/clinc/oos-eval/{COMMIT}/data/"
FILE_NAME = "data_full_train_val.json"
DOMAINS_FILE = "domains.json"
UPSTREAM_FILE = "data_full.json"
#: The label of out-of-scope queries.
OOS_LABEL = "oos"
#: Keys of ``data_full.json`` kept, in this order.
KEPT_SPLITS = ("train", "val", "oos_train", "oos_val")
SHA256 = {
    FILE_NAME: "89c77f8722787c36e52954fd90bb3f9f537f716801db4d604efeef32a8cdd09f",
    DOMAINS_FILE: "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
}

INFO = DatasetInfo(
    name="clinc150",
    task="text-classification",
    description=(
        "CLINC150 (Larson et al., 2019): English assistant queries over 150 intents in 10 "
        "domains, plus out-of-scope queries labeled oos."
    ),
    directory="clinc150",
    url=URL,
    license="CC BY 3.0 (clinc/oos-eval); cite Larson et al., EMNLP-IJCNLP 2019.",
    labels=(),  # 151 names: listed by load(); too many for the table
    caveats=(
        "Train = 15,000 in-scope queries (100 per intent) + 100 oos; the evaluation split "
        "is val = 3,000 in-scope (20 per intent) + 100 oos.",
        "The official test split is not used: the shared copy leaves it out and a download "
        "drops it before storing.",
        "Out-of-scope detection: train on the in-scope queries and calibrate a confidence "
        "threshold on val (aiweb does this when the labels include oos); report in-scope "
        "accuracy and oos recall.",
        "Queries are lower-case crowd-sourced paraphrases, mostly without final punctuation.",
    ),
)


def reduce_full(directory: Path) -> None:
    """Turn a downloaded ``data_full.json`` into ``data_full_train_val.json`` (in place).

    Keeps the keys of :data:`KEPT_SPLITS` in that order, values unchanged, written with
    ``json.dumps(obj, ensure_ascii=False)``, and deletes ``data_full.json``; the result
    is byte-identical to the shared copy (checked against :data:`SHA256` afterwards).

    Raises:
        DataFormatError: the file is not JSON or lacks one of the kept keys.
    """
    source = directory / UPSTREAM_FILE
    try:
        full = json.loads(read_text(source))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    missing = [key for key in KEPT_SPLITS if not isinstance(full, dict) or key not in full]
    if missing:
        raise DataFormatError(f"{source}: no key {', '.join(missing)}")
    kept = {key: full[key] for key in KEPT_SPLITS}
    (directory / FILE_NAME).write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    source.unlink()


def _pairs(path: Path, data: dict[str, Any], key: str, known: set[str]) -> LabeledTexts:
    rows = data.get(key)
    if not isinstance(rows, list):
        raise DataFormatError(f"{path}: key {key!r} is missing or not a list")
    texts: list[str] = []
    labels: list[str] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 2 or not all(isinstance(v, str) for v in row):
            raise DataFormatError(
                f"{path}: {key}[{i}]: expected [query, intent], found {row!r:.80}"
            )
        text, label = row[0].strip(), row[1]
        if not text:
            raise DataFormatError(f"{path}: {key}[{i}]: empty query")
        if label not in known:
            raise DataFormatError(f"{path}: {key}[{i}]: unknown intent {label[:60]!r}")
        texts.append(text)
        labels.append(label)
    return LabeledTexts(texts=texts, labels=labels)


def _intents(path: Path) -> set[str]:
    try:
        domains = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(domains, dict) or not all(isinstance(v, list) for v in domains.values()):
        raise DataFormatError(f"{path}: expected {{domain: [intent, …]}}")
    return {str(intent) for intents in domains.values() for intent in intents}


def parse(path: Path, domains_path: Path) -> tuple[LabeledTexts, LabeledTexts]:
    """Parse ``data_full_train_val.json`` (or an upstream ``data_full.json``).

    Args:
        path: the JSON file.
        domains_path: ``domains.json``; every intent must be one of its intents or ``oos``.

    Returns:
        ``(train, val)``: ``train`` + ``oos_train`` rows, then ``val`` + ``oos_val`` rows,
        each in file order; queries stripped.

    Raises:
        DataFormatError: not JSON, a missing split, a row that is not ``[query, intent]``,
            an empty query or an unknown intent (names the file, split and row).
    """
    known = _intents(domains_path) | {OOS_LABEL}
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object of splits")
    parts = {key: _pairs(path, data, key, known) for key in KEPT_SPLITS}
    for key in ("oos_train", "oos_val"):
        if any(label != OOS_LABEL for label in parts[key].labels):
            raise DataFormatError(f"{path}: {key} holds a label other than {OOS_LABEL!r}")
    train = LabeledTexts(
        texts=parts["train"].texts + parts["oos_train"].texts,
        labels=parts["train"].labels + parts["oos_train"].labels,
    )
    val = LabeledTexts(
        texts=parts["val"].texts + parts["oos_val"].texts,
        labels=parts["val"].labels + parts["oos_val"].labels,
    )
    return train, val


def load_directory(directory: Path) -> DatasetSplits:
    """Parse the dataset in ``directory``.

    Returns:
        Splits named ``"clinc150"`` with ``eval_name="val"``; labels are the 150 intents
        and ``oos``.

    Raises:
        DataFormatError: a file is missing or malformed.
    """
    train, val = parse(directory / FILE_NAME, directory / DOMAINS_FILE)
    return splits(INFO.name, train, val, "val")


SPEC = DatasetSpec(
    info=INFO,
    files=(FILE_NAME, DOMAINS_FILE),
    members={},
    parse=load_directory,
    downloads={UPSTREAM_FILE: UPSTREAM_FILE, DOMAINS_FILE: DOMAINS_FILE},
    prepare=reduce_full,
    sha256=SHA256,
)
