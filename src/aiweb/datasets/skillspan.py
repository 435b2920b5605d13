"""SkillSpan: hard and soft skill spans in English job postings.

Zhang, Jensen, Sonniks and Plank, "SkillSpan: Hard and Soft Skill Extraction from English
Job Postings", NAACL 2022; repository ``kris927b/SkillSpan``, folder ``data/conll/``,
pinned to commit ``2ccf3de`` (MIT licence for the repository; the authors' dataset card
says CC BY 4.0).

Two sources, each with an official train/dev/test split: ``house`` (an in-house
collection of job postings) and ``tech`` (StackOverflow job postings). The splits of the
catalogue entry combine them, house first: train ``skillspan_house_train.conll`` +
``skillspan_tech_train.conll`` (4,801 sentences), dev (3,175), test (3,570).

Format: ``token<TAB>skill_tag<TAB>knowledge_tag`` per line, blank line between sentences
(sometimes two). Two IOB2 layers: column 2 ``B-Skill``/``I-Skill``/``O``, column 3
``B-Knowledge``/``I-Knowledge``/``O``; a Skill span and a Knowledge span may overlap (231
pairs over the six files, mostly a Knowledge span inside a Skill span), so one IOB tag per
token cannot hold both.

The ``house`` files hold cp1252 bytes read as Latin-1 (U+0092 for a right quote in
``We\\x92re``, U+0095 for a bullet): :func:`normalize_token` maps U+0080-U+009F to their
cp1252 characters and strips the spaces some tokens carry (``"  18"``, ``"\\u202fOracle"``).

These are token-classification data, read by the task that trains on them from the
folder :func:`aiweb.datasets.locate` finds;
``aiweb.datasets.load('skillspan')``, which returns labeled texts, refuses them.
"""

from __future__ import annotations

from aiweb.datasets._base import DatasetInfo, plain_files_spec

__all__ = [
    "FILES",
    "INFO",
    "LABELS",
    "NAME",
    "SHA256",
    "SPEC",
    "SPLITS",
    "URL",
    "normalize_token",
]

NAME = "skillspan"
COMMIT = "2ccf3de5b5af7a5409b8dd814fb1315dd6e0ae1b"
URL = f"https://raw.githubusercontent.com/kris927b/SkillSpan/{COMMIT}/data/conll/"
#: split name -> its files, read in this order and concatenated
SPLITS: dict[str, tuple[str, ...]] = {
    split: (f"skillspan_house_{split}.conll", f"skillspan_tech_{split}.conll")
    for split in ("train", "dev", "test")
}
FILES = tuple(name for names in SPLITS.values() for name in names)
LABELS = ("Knowledge", "Skill")
SHA256 = {
    "skillspan_house_train.conll": (
        "4047c6f0dfe2cfd1ed58f8b2bf76d0ba3ce68ee9fe609427476fd92f51fae49a"
    ),
    "skillspan_house_dev.conll": "fc2d0775643a6aa09dd9eb33fddddb984e8383b1430455e09306bfd2e77022e6",
    "skillspan_house_test.conll": (
        "10748169441c05c90f4268cbff76b40ffa2688cacef14c034d54f570e3bc0ca1"
    ),
    "skillspan_tech_train.conll": (
        "3dc24ec66bf25db8f86bdd496e40f9c718264486f7dbf9e3574b3411a0f4d92e"
    ),
    "skillspan_tech_dev.conll": "b1a7b205583bcd27b667cae580275065833e9921685ed37da1d95a080c085c51",
    "skillspan_tech_test.conll": "7c0423a85512e0e51ab5a72be4efff712f58394280a69e344def2c06056da8b0",
}

INFO = DatasetInfo(
    name=NAME,
    task="token-classification",
    description=(
        "SkillSpan (Zhang et al., NAACL 2022): Skill (soft/applied) and Knowledge (hard "
        "skills, technologies) spans in English job postings, house + tech sources, "
        "official train/dev/test."
    ),
    directory=NAME,
    url=URL,
    license=(
        "MIT (kris927b/SkillSpan repository, data included; the authors' dataset card "
        "says CC BY 4.0); cite Zhang et al., 2022."
    ),
    labels=LABELS,
    caveats=(
        "Two annotation layers: a Knowledge span may lie inside a Skill span, so a single "
        "IOB tagger cannot learn both at once (train one per label, or a span model).",
        "The blocks of the CoNLL files are the sentences: 4,801 / 3,175 / 3,570 for "
        "train/dev/test, where the authors' JSON release reports 4,800 / 3,174 / 3,569.",
        "One I-Skill follows O in skillspan_tech_test.conll: read by CoNLL rules it starts "
        "an entity, so test has 1,091 Skill spans for 1,090 B-Skill tags.",
        "cp1252 artefacts in the house files (U+0092 for an apostrophe) are mapped to "
        "their characters; de-identification placeholders (<ORGANIZATION>, <CONTACT> ...) "
        "remain as tokens.",
        "Job postings, not resumes: expect a domain gap on CV text.",
    ),
)

_CP1252 = {
    code: bytes([code]).decode("cp1252")
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # undefined in cp1252: left as they are
}


def normalize_token(token: str) -> str:
    """A token as SkillSpan means it: surrounding whitespace stripped and the C1 control
    characters U+0080-U+009F (cp1252 bytes read as Latin-1) replaced by their cp1252
    characters (U+0092 -> U+2019, U+0095 -> U+2022 ...).

    Args:
        token: the first field of a line.

    Returns:
        The cleaned token (possibly empty, which the CoNLL reader refuses).
    """
    return token.strip().translate(_CP1252)


SPEC = plain_files_spec(INFO, FILES, SHA256)
