"""Built-in datasets (SST-2, SMS Spam Collection) and readers for a user's own files.

Typical use::

    from aiweb.config import get_settings
    from aiweb import datasets

    splits = datasets.load("sst2", get_settings())   # downloads into the cache if needed
    splits.train.texts[:3], splits.eval.labels[:3]

    rows = datasets.read_labeled_file(Path("reviews.csv"), text_column="review")

Datasets are looked up in ``AIWEB_DATA_HOME/<directory>/`` first, then in the cache
``AIWEB_HOME/datasets/<directory>/``, and downloaded from the publisher otherwise (see
:func:`locate`).
"""

from __future__ import annotations

from aiweb.datasets._base import (
    DatasetInfo,
    DatasetSpec,
    DatasetSplits,
    LabeledTexts,
    decode_utf8,
)
from aiweb.datasets.catalog import available, fetch, info, load, locate
from aiweb.datasets.files import read_labeled_file
from aiweb.datasets.tables import (
    TABLE_FORMATS,
    TableChunk,
    TableInfo,
    inspect_table,
    iter_table,
    table_format,
)

__all__ = [
    "TABLE_FORMATS",
    "DatasetInfo",
    "DatasetSpec",
    "DatasetSplits",
    "LabeledTexts",
    "TableChunk",
    "TableInfo",
    "available",
    "banking77",
    "catalog",
    "clinc150",
    "decode_utf8",
    "fetch",
    "files",
    "info",
    "inspect_table",
    "iter_table",
    "job_description_entities",
    "load",
    "locate",
    "movielens",
    "read_labeled_file",
    "service",
    "skillspan",
    "sms_spam",
    "sst2",
    "table_format",
    "tables",
    "twitter_airline",
    "wnut17",
]
