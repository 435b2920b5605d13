"""WNUT 2017 Emerging and Rare Entities: named entities in noisy user-generated text.

Derczynski, Nichols, van Erp and Limsopatham, "Results of the WNUT2017 Shared Task on
Novel and Emerging Entity Recognition", W-NUT workshop at EMNLP 2017; repository
``leondz/emerging_entities_17``, pinned to commit ``e52a2d2`` (CC BY 4.0).

Files ``wnut17/wnut17train.conll`` (train: 3,394 sentences, 62,730 tokens),
``wnut17/emerging.dev.conll`` (dev: 1,009 / 15,733) and ``wnut17/emerging.test.annotated``
(test, the adjudicated gold: 1,287 / 23,394), byte-for-byte as published.

Format: CoNLL, ``token<TAB>tag`` per line, sentences separated by an empty line or (in
train) a line holding one TAB; IOB2 tags ``B-``/``I-`` + ``person``, ``location``,
``corporation``, ``product``, ``creative-work``, ``group``, and ``O``. Train is ASCII,
dev and test UTF-8.

These are token-classification data, read by the task that trains on them from the
folder :func:`aiweb.datasets.locate` finds (``SPLITS`` says which file is which split);
``aiweb.datasets.load('wnut17')``, which returns labeled texts, refuses them.
"""

from __future__ import annotations

from aiweb.datasets._base import DatasetInfo, plain_files_spec

__all__ = ["FILES", "INFO", "LABELS", "NAME", "SHA256", "SPEC", "SPLITS", "URL"]

NAME = "wnut17"
COMMIT = "e52a2d2a71ac1a051ca2d532eef28653c5c02603"
URL = f"https://raw.githubusercontent.com/leondz/emerging_entities_17/{COMMIT}/"
FILES = ("wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated")
#: split name -> its files, read in this order and concatenated
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("wnut17train.conll",),
    "dev": ("emerging.dev.conll",),
    "test": ("emerging.test.annotated",),
}
LABELS = ("corporation", "creative-work", "group", "location", "person", "product")
SHA256 = {
    "wnut17train.conll": "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5",
    "emerging.dev.conll": "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8",
    "emerging.test.annotated": "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0",
}

INFO = DatasetInfo(
    name=NAME,
    task="token-classification",
    description=(
        "WNUT 2017 Emerging and Rare Entities (Derczynski et al., 2017): 6 entity types in "
        "tweets, Reddit, YouTube and StackExchange comments; official train/dev/test."
    ),
    directory=NAME,
    url=URL,
    license="CC BY 4.0 (leondz/emerging_entities_17); cite Derczynski et al., 2017.",
    labels=LABELS,
    caveats=(
        "Train is Twitter-heavy while dev and test are mostly Reddit, YouTube and "
        "StackExchange, on purpose: scores are low by design (shared-task systems reached "
        "an entity F1 of about 0.41 on test).",
        "Test is emerging.test.annotated (the adjudicated gold); upstream's "
        "emerging.test.conll is an earlier annotation and is not used.",
        "Tokens include URLs, @handles and HTML entities split apart ('&', 'gt', ';').",
        "Not a skills dataset: use skillspan and job_description_entities for skills.",
    ),
)


SPEC = plain_files_spec(INFO, FILES, SHA256)
