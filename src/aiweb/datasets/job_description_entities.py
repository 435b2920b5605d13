"""Job-description entities: the expert-adjudicated gold test set of Green, Maynard & Lin.

Green, Maynard and Lin, "Development of a Benchmark Corpus to Support Entity Recognition
in Job Descriptions", LREC 2022; repository ``acp19tag/skill-extraction-dataset``, file
``raw_data/testset.txt``, pinned to commit ``ca1eadd`` (CC BY 4.0). The texts are job ads
of the Kaggle "Job Salary Prediction" (Adzuna) data.

File ``job_description_entities/testset.txt``: 336 sentences, 8,050 tokens, byte-for-byte
as published. A test split only (the crowd-sourced training annotations are not part of
it): use it as a cross-domain evaluation of a skills model trained on ``skillspan``.

Format: CoNLL-2003-like, ``token<SPACE>tag<SPACE>`` per line (a trailing space), blank
line between sentences, an empty first line; IOB2 tags ``B-``/``I-`` + ``Skill``,
``Qualification``, ``Experience``, ``Occupation``, ``Domain``, and ``O``.

These are token-classification data, read by the task that trains on them from the
folder :func:`aiweb.datasets.locate` finds;
``aiweb.datasets.load('job_description_entities')``, which returns labeled texts, refuses them.
"""

from __future__ import annotations

from aiweb.datasets._base import DatasetInfo, plain_files_spec

__all__ = ["FILES", "INFO", "LABELS", "NAME", "SHA256", "SPEC", "SPLITS", "URL"]

NAME = "job_description_entities"
COMMIT = "ca1eadd2885a277853b01f0ec96fc89094adf71e"
URL = f"https://raw.githubusercontent.com/acp19tag/skill-extraction-dataset/{COMMIT}/raw_data/"
FILES = ("testset.txt",)
#: split name -> its files: a gold test split only
SPLITS: dict[str, tuple[str, ...]] = {"test": ("testset.txt",)}
LABELS = ("Domain", "Experience", "Occupation", "Qualification", "Skill")
SHA256 = {"testset.txt": "c7ae1493f4f0f1189cf60b0f3e83c39677b412cf4d8a5eb1a172544a1d801018"}

INFO = DatasetInfo(
    name=NAME,
    task="token-classification",
    description=(
        "Job-description entities (Green, Maynard & Lin, LREC 2022): Skill, Qualification, "
        "Experience, Occupation and Domain spans in job ads; the gold test set only."
    ),
    directory=NAME,
    url=URL,
    license=(
        "CC BY 4.0 (acp19tag/skill-extraction-dataset); the underlying Adzuna job ads come "
        "from a Kaggle competition whose own terms are not stated."
    ),
    labels=LABELS,
    caveats=(
        "Evaluation only: 336 sentences, no training split.",
        "Qualification (26 spans) and Experience (9) are too rare for stable per-type "
        "scores; Skill (676) is the figure to read.",
        "Its Skill spans are not SkillSpan's Skill/Knowledge: scoring a SkillSpan model here "
        "is a cross-domain figure.",
    ),
)


SPEC = plain_files_spec(INFO, FILES, SHA256)
