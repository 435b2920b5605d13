"""SST-2: binary sentiment of movie-review sentences and phrases (GLUE version).

Files ``sst2/train.tsv`` (67,349 rows) and ``sst2/dev.tsv`` (872 rows), from the GLUE
archive whose members are ``SST-2/train.tsv`` and ``SST-2/dev.tsv``. GLUE's
``test.tsv`` is unlabeled and not used: the dev split is the evaluation split.

Format: header ``sentence<TAB>label``, one row per line. Sentences contain literal
quotes and backquotes, so each line is split on its last TAB with no quote handling
(``csv.QUOTE_NONE`` semantics). Every sentence ends with one space before the TAB,
which is stripped.
"""

from __future__ import annotations

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

__all__ = ["HEADER", "LABELS", "SPEC", "URL", "load_directory", "parse_tsv"]

URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
HEADER = ("sentence", "label")
LABELS = {"0": "negative", "1": "positive"}

INFO = DatasetInfo(
    name="sst2",
    task="text-classification",
    description=(
        "Stanford Sentiment Treebank, binary (GLUE SST-2): sentiment of English "
        "movie-review sentences and phrases."
    ),
    directory="sst2",
    url=URL,
    license=(
        "No explicit license from the Stanford authors (listed as unknown); "
        "widely redistributed for research use."
    ),
    labels=("negative", "positive"),
    caveats=(
        "Evaluation uses the official GLUE dev split (872 rows); GLUE's test split is "
        "unlabeled and not used.",
        "Train holds sub-sentence phrases from the treebank, many very short "
        "(e.g. 'well-conceived'), not only full sentences.",
        "Text is lower-cased and PTB-tokenized ('it 's', 'does n't').",
        "Train has 371 duplicate sentences, kept as published; no dev sentence is in train.",
        "Train: 29,780 negative / 37,569 positive; dev: 428 / 444.",
    ),
)


def parse_tsv(path: Path) -> LabeledTexts:
    """Parse one GLUE SST-2 file (``train.tsv`` or ``dev.tsv``).

    Lines are split on their last TAB; quotes and backquotes are literal. The
    sentence is stripped of surrounding whitespace; labels ``0``/``1`` become
    ``"negative"``/``"positive"``. LF and CRLF line ends are accepted; blank lines are
    skipped.

    Args:
        path: the ``.tsv`` file.

    Returns:
        The rows, in file order (duplicates kept).

    Raises:
        DataFormatError: missing header, a line without TAB, an unknown label, an
            empty sentence, or non-UTF-8 bytes (the message names file and line).
    """
    texts: list[str] = []
    labels: list[str] = []
    seen_header = False
    for number, line in iter_lines(read_text(path)):
        if not line.strip():
            continue
        if not seen_header:
            if tuple(field.strip() for field in line.split("\t")) != HEADER:
                raise DataFormatError(
                    f"{path}: line {number}: expected the header 'sentence<TAB>label', "
                    f"found {line[:80]!r}"
                )
            seen_header = True
            continue
        sentence, tab, raw_label = line.rpartition("\t")
        if not tab:
            raise DataFormatError(
                f"{path}: line {number}: expected 'sentence<TAB>label', found no TAB"
            )
        label = LABELS.get(raw_label.strip())
        if label is None:
            raise DataFormatError(
                f"{path}: line {number}: label must be 0 or 1, found {raw_label[:40]!r}"
            )
        text = sentence.strip()
        if not text:
            raise DataFormatError(f"{path}: line {number}: empty sentence")
        texts.append(text)
        labels.append(label)
    if not seen_header:
        raise DataFormatError(f"{path}: file is empty (expected header 'sentence<TAB>label')")
    return LabeledTexts(texts=texts, labels=labels)


def load_directory(directory: Path) -> DatasetSplits:
    """Parse ``train.tsv`` and ``dev.tsv`` in ``directory``.

    Args:
        directory: folder holding the two files.

    Returns:
        Splits named ``"sst2"`` with ``eval_name="dev"``.

    Raises:
        DataFormatError: a file is missing or malformed.
    """
    return splits(
        INFO.name,
        parse_tsv(directory / "train.tsv"),
        parse_tsv(directory / "dev.tsv"),
        "dev",
    )


SPEC = DatasetSpec(
    info=INFO,
    files=("train.tsv", "dev.tsv"),
    members={"train.tsv": "SST-2/train.tsv", "dev.tsv": "SST-2/dev.tsv"},
    parse=load_directory,
)
