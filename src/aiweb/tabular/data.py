"""The public tabular datasets of ``AIWEB_DATA_HOME`` (``shared/data``), as rows of strings.

Four UCI datasets (CC BY 4.0), each read from its directory as its ``SOURCE.md``
describes it:

``german_credit``
    Statlog German Credit (Hofmann 1994, doi:10.24432/C5NC77): ``german.data``, 1,000
    rows, 20 attributes (categorical fields are coded ``A11`` … as in ``german.doc``),
    target ``credit_risk`` ``good``/``bad`` (the file's ``1``/``2``); positive class
    ``bad``. The published cost matrix is 5 for a bad applicant predicted good (a false
    negative) and 1 for a good one predicted bad (a false positive).
``bank_marketing``
    Bank Marketing (Moro et al. 2011/2014, doi:10.24432/C5K306): ``bank-full.csv``, 45,211
    rows, ``;``-separated, target ``y`` (positive ``yes``, 11.7 %). ``duration`` is known
    only after the call and leaks the answer: it is dropped unless ``drop_leaky=False``.
    Rows are in date order (May 2008 - Nov 2010) without a year.
``adult``
    Adult / Census Income (Becker & Kohavi 1996, doi:10.24432/C5XW20), the training file
    ``adult.data`` only (32,561 rows; ``adult.test`` is held out elsewhere): no header,
    fields after the first preceded by a space (stripped), ``?`` for missing values (read
    as ``None``); target ``income`` (positive ``>50K``, 24.1 %).
``wine_quality``
    Wine Quality (Cortez et al. 2009, doi:10.24432/C56S3T): red and white Vinho Verde,
    ``;``-separated, joined with a ``color`` column (``red``/``white``); column names with
    spaces become ``snake_case``; target ``quality`` (integer 3-9) as regression. The files
    hold many exact duplicate rows (red 240, white 937): removed unless
    ``deduplicate=False``, so that a random split does not put one wine in train and test.

Values are strings exactly as in the files (missing values ``None``): the column types
are left to :func:`aiweb.tabular.columns.infer_schema`, as for a user's CSV.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiweb.errors import DatasetNotFound, DatasetUnavailableError
from aiweb.tabular.columns import read_csv

__all__ = ["DATASETS", "TabularData", "load_dataset"]

Problem = Literal["classification", "regression"]


@dataclass(frozen=True)
class TabularData:
    """A loaded tabular dataset.

    Attributes:
        name: dataset name (``"german_credit"``).
        columns: column names, in file order (the target included).
        rows: one ``{column: value}`` per row; values are ``str``, or ``None`` when missing.
        target: the column to predict.
        problem: ``"classification"`` or ``"regression"``.
        positive_class: the positive class of a binary target, else ``None``.
        description: one paragraph: what a row is, the target, the citation.
        license: as stated by the publisher.
        caveats: what to know before training or evaluating on it.
        dropped: columns removed by the loader (``duration`` of Bank Marketing).
        costs: the published misclassification costs ``{"fp": …, "fn": …}``, if any.
    """

    name: str
    columns: list[str]
    rows: list[dict[str, object]]
    target: str
    problem: Problem
    positive_class: str | None
    description: str
    license: str
    caveats: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    costs: dict[str, float] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def sha256(self) -> str:
        """Fingerprint of the rows: sha256 hex of ``json.dumps([row[c] for c in columns])
        + "\\n"`` per row, in order (for lineage)."""
        digest = hashlib.sha256()
        for row in self.rows:
            digest.update(json.dumps([row.get(c) for c in self.columns]).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()


CC_BY = "Creative Commons Attribution 4.0 International (CC BY 4.0), UCI ML Repository"

GERMAN_COLUMNS = (
    "checking_status",
    "duration_months",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment_since",
    "installment_rate",
    "personal_status_sex",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "other_installment_plans",
    "housing",
    "existing_credits",
    "job",
    "people_liable",
    "telephone",
    "foreign_worker",
    "credit_risk",
)

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)


def _need(directory: Path, files: tuple[str, ...], name: str) -> None:
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise DatasetUnavailableError(
            f"dataset {name!r}: {', '.join(missing)} not found in {directory}; set "
            f"AIWEB_DATA_HOME to a folder holding {name}/ (laid out as shared/data)"
        )


def _german(directory: Path, drop_leaky: bool, deduplicate: bool) -> TabularData:
    _need(directory, ("german.data",), "german_credit")
    _, raw = read_csv(
        directory / "german.data", delimiter=" ", has_header=False, names=GERMAN_COLUMNS
    )
    rows: list[dict[str, object]] = []
    for row in raw:
        out: dict[str, object] = dict(row)
        out["credit_risk"] = {"1": "good", "2": "bad"}.get(row["credit_risk"], row["credit_risk"])
        rows.append(out)
    return TabularData(
        name="german_credit",
        columns=list(GERMAN_COLUMNS),
        rows=rows,
        target="credit_risk",
        problem="classification",
        positive_class="bad",
        description=(
            "Statlog German Credit (Hofmann 1994, UCI, doi:10.24432/C5NC77): 1,000 loan "
            "applicants of a German bank, 20 attributes (coded categories A11 …), "
            "credit_risk good (700) or bad (300)."
        ),
        license=CC_BY,
        caveats=(
            "Cost matrix of german.doc: a bad applicant predicted good costs 5, a good one "
            "predicted bad costs 1 (costs fp=1, fn=5 with 'bad' as the positive class).",
            "Only 1,000 rows: prefer stratified cross-validation to one small test split.",
            "Sensitive attributes: personal_status_sex, age, foreign_worker.",
            "The code tables of german.doc are partly wrong (Groemping 2019).",
        ),
        costs={"fp": 1.0, "fn": 5.0},
    )


def _bank(directory: Path, drop_leaky: bool, deduplicate: bool) -> TabularData:
    _need(directory, ("bank-full.csv",), "bank_marketing")
    columns, raw = read_csv(directory / "bank-full.csv", delimiter=";")
    dropped = ("duration",) if drop_leaky else ()
    keep = [c for c in columns if c not in dropped]
    rows: list[dict[str, object]] = [{c: r[c] for c in keep} for r in raw]
    return TabularData(
        name="bank_marketing",
        columns=keep,
        rows=rows,
        target="y",
        problem="classification",
        positive_class="yes",
        description=(
            "Bank Marketing (Moro, Laureano & Cortez 2011; UCI, doi:10.24432/C5K306), "
            "bank-full: 45,211 phone contacts of a Portuguese bank (May 2008 - Nov 2010); "
            "y = yes when the client subscribed a term deposit (11.7 %)."
        ),
        license=CC_BY,
        caveats=(
            "duration (call length) is known only after the call and leaks the answer; "
            + ("it is dropped." if drop_leaky else "it is kept (benchmark comparisons only)."),
            "Rows are in date order without a year: a split by row order is closer to "
            "deployment than a random one.",
            "pdays = -1 means never contacted before; 'unknown' is an explicit category.",
            "Imbalanced (11.7 % yes): report PR-AUC, not accuracy.",
        ),
        dropped=dropped,
    )


def _adult(directory: Path, drop_leaky: bool, deduplicate: bool) -> TabularData:
    _need(directory, ("adult.data",), "adult")
    _, raw = read_csv(
        directory / "adult.data", delimiter=",", has_header=False, names=ADULT_COLUMNS
    )
    rows: list[dict[str, object]] = [
        {c: (None if v == "?" else v) for c, v in r.items()} for r in raw
    ]
    return TabularData(
        name="adult",
        columns=list(ADULT_COLUMNS),
        rows=rows,
        target="income",
        problem="classification",
        positive_class=">50K",
        description=(
            "Adult / Census Income (Becker & Kohavi 1996; UCI, doi:10.24432/C5XW20), training "
            "file: 32,561 records of the 1994 US census; income >50K (24.1 %) or <=50K."
        ),
        license=CC_BY,
        caveats=(
            "'?' (missing) in workclass, occupation and native-country is read as None.",
            "The official test file is held out and not part of this dataset.",
            "Sensitive attributes (race, sex, age, marital status, native country): not for "
            "real decisions.",
            "24 exact duplicate rows, expected for census records.",
        ),
    )


def _wine(directory: Path, drop_leaky: bool, deduplicate: bool) -> TabularData:
    files = ("winequality-red.csv", "winequality-white.csv")
    _need(directory, files, "wine_quality")
    rows: list[dict[str, object]] = []
    columns: list[str] = []
    removed = 0
    for color, file_name in zip(("red", "white"), files, strict=True):
        header, raw = read_csv(directory / file_name, delimiter=";")
        names = [h.strip().replace(" ", "_") for h in header]
        columns = [*names[:-1], "color", names[-1]]
        seen: set[tuple[str, ...]] = set()
        for r in raw:
            key = tuple(r[h] for h in header)
            if deduplicate and key in seen:
                removed += 1
                continue
            seen.add(key)
            row: dict[str, object] = {n: r[h] for n, h in zip(names, header, strict=True)}
            row["color"] = color
            rows.append({c: row[c] for c in columns})
    return TabularData(
        name="wine_quality",
        columns=columns,
        rows=rows,
        target="quality",
        problem="regression",
        positive_class=None,
        description=(
            "Wine Quality (Cortez et al. 2009; UCI, doi:10.24432/C56S3T): red and white "
            "Vinho Verde, 11 physicochemical measurements and color; quality (0-10, median "
            "of 3+ expert ratings) as regression."
        ),
        license=CC_BY,
        caveats=(
            (
                f"{removed} exact duplicate rows removed (within each color)."
                if deduplicate
                else "Exact duplicate rows kept (red 240, white 937): group before splitting."
            ),
            "quality is concentrated on 5-6: compare RMSE/MAE with a constant predictor.",
        ),
        extra={"duplicates_removed": removed},
    )


Loader = Callable[[Path, bool, bool], TabularData]

DATASETS: dict[str, tuple[str, Loader]] = {
    "german_credit": ("german_credit", _german),
    "bank_marketing": ("bank_marketing", _bank),
    "adult": ("adult", _adult),
    "wine_quality": ("wine_quality", _wine),
}
"""Dataset name -> (directory under the data home, loader)."""


def load_dataset(
    name: str,
    data_home: Path | str | None,
    *,
    drop_leaky: bool = True,
    deduplicate: bool = True,
    cache_dir: Path | None = None,
) -> TabularData:
    """Load one of :data:`DATASETS` from ``data_home/<name>/`` (else ``cache_dir/<name>/``).

    Args:
        name: ``german_credit``, ``bank_marketing``, ``adult`` or ``wine_quality``.
        data_home: the folder laid out as ``shared/data`` (``AIWEB_DATA_HOME``), or
            ``None`` to look only in ``cache_dir``.
        drop_leaky: drop columns that leak the target (Bank Marketing's ``duration``).
        deduplicate: drop exact duplicate rows where ``SOURCE.md`` asks to (Wine Quality).
        cache_dir: a second folder to look in (``settings.datasets_cache_dir``).

    Returns:
        The rows and what to know about them (:class:`TabularData`).

    Raises:
        DatasetNotFound: ``name`` is not one of :data:`DATASETS` (404; lists them).
        DatasetUnavailableError: the files are in neither folder (names the missing files
            and says to set ``AIWEB_DATA_HOME``).
        DataFormatError: a file is malformed (names file and line).
    """
    try:
        directory_name, loader = DATASETS[name]
    except KeyError:
        raise DatasetNotFound(
            f"unknown tabular dataset {name!r}; known: {', '.join(sorted(DATASETS))}"
        ) from None
    candidates = [Path(p) / directory_name for p in (data_home, cache_dir) if p is not None]
    if not candidates:
        raise DatasetUnavailableError(
            f"dataset {name!r}: AIWEB_DATA_HOME is not set; point it at a folder holding "
            f"{directory_name}/ (laid out as shared/data)"
        )
    for directory in candidates[:-1]:
        try:
            return loader(directory, drop_leaky, deduplicate)
        except DatasetUnavailableError:
            continue
    return loader(candidates[-1], drop_leaky, deduplicate)
