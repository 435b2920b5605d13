"""Drift: does live traffic still look like the data a model version was evaluated on?

Reference profile (built at training, stored in the version's evaluation report under
``"drift_reference"``, its vocabulary as the artifact ``vocabulary.txt``) — computed on
the *evaluation* data, which is what live traffic should resemble:

- ``predicted_label``: the distribution of the labels the model predicts;
- ``text_length``: characters per text, binned at the reference deciles;
- ``oov_rate``: per text, the fraction of its word tokens (lower-cased, 2+ word
  characters, scikit-learn's default token pattern) that never occur in the training
  texts, binned the same way.

Each served prediction logs its text's length and OOV rate (never the text itself,
unless ``AIWEB_LOG_INPUTS``). The live window is compared with the reference:

- Population Stability Index per numeric feature, PSI = Σ (live - ref) · ln(live / ref)
  over the bins, with empty bins floored at 1e-4 (Siddiqi, *Credit Risk Scorecards*,
  2006). Threshold: PSI > 0.2 is drift (0.1 to 0.2 is commonly read as a moderate shift).
- Pearson's chi-square goodness-of-fit test of the live predicted-label counts against the
  reference proportions (``scipy.stats.chisquare``); drift when p < 0.01.

A window with fewer than :data:`MIN_SAMPLES` predictions is reported but never flagged.

**Binned features** (any task; e.g. each input column of a model): the task stores, under the
reference's ``"binned_features"``, one profile per feature — :func:`numeric_profile`
(decile bins of the present values, plus a ``missing`` bin) or
:func:`categorical_profile` (the most frequent categories, ``other`` for the rest seen in
training, ``unseen`` for values never seen in training, ``missing``) — and logs, with
each prediction, the bin of each feature (:func:`assign_bins`): bin indices, never the
values themselves. The live bin shares are compared with the reference's by PSI, as
above (a missing or unseen share that grows is a shift like any other: Siddiqi treats
missing values as their own bin); the shares of missing and unseen values are reported
beside it. The reference may also hold ``"labels"`` (chi-square of the predicted labels,
as above); a model that predicts numbers profiles its predicted value as a binned
feature instead.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlPrediction
from aiweb.errors import ConflictError, CorruptArtifactError, InvalidInputError
from aiweb.monitoring.alerts import AlertSender
from aiweb.monitoring.metrics import DRIFT_SCORE
from aiweb.registry.artifacts import ArtifactStore, read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService

log = logging.getLogger(__name__)

#: Word tokens, as scikit-learn's default ``token_pattern`` (lower-cased first).
WORD = re.compile(r"(?u)\b\w\w+\b")
#: File name of the training vocabulary, next to the version's artifact.
VOCABULARY_ARTIFACT = "vocabulary.txt"
PSI_THRESHOLD = 0.2
CHI2_P_THRESHOLD = 0.01
MIN_SAMPLES = 30
#: PSI over decile bins is biased upwards in small windows: with no drift at all its
#: expectation is about (bins - 1) * (1/n + 1/m) (it is a symmetrised KL divergence, whose
#: estimate is ~chi-square / n), i.e. 0.15 at n = 60 and 0.05 at n = 200, with a standard
#: deviation near sqrt(2 (bins - 1)) / n. From 200 predictions the 0.2 threshold is more
#: than three standard deviations above the no-drift value; below, PSI is shown, not judged.
MIN_SAMPLES_PSI = 200
_FLOOR = 1e-4
_MAX_VOCABULARY = 200_000


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return WORD.findall(text.lower())


def oov_rate(text: str, vocabulary: frozenset[str]) -> float:
    """Fraction of ``text``'s tokens not in ``vocabulary`` (0.0 for a text without any)."""
    words = tokens(text)
    if not words:
        return 0.0
    return sum(1 for w in words if w not in vocabulary) / len(words)


def build_vocabulary(texts: Iterable[str]) -> list[str]:
    """The training vocabulary: every token seen, most frequent first, at most 200,000."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return [w for w, _ in counts.most_common(_MAX_VOCABULARY)]


def _binned(values: Sequence[float]) -> dict[str, list[float]]:
    """Decile edges of ``values`` (duplicates merged) and the fraction in each bin."""
    data = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(data, np.linspace(0.1, 0.9, 9)))
    return {"edges": edges.tolist(), "fractions": _fractions(data, edges).tolist()}


def _fractions(values: np.ndarray[Any, Any], edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(1, len(values))


def build_reference(
    eval_texts: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    vocabulary: list[str],
) -> dict[str, Any]:
    """The reference profile of a version (see the module docstring).

    Args:
        eval_texts: the evaluation texts.
        predicted: the label the version predicts for each of them.
        labels: every class of the version.
        vocabulary: the training vocabulary (:func:`build_vocabulary`).
    """
    vocab = frozenset(vocabulary)
    counts = Counter(predicted)
    n = len(eval_texts)
    return {
        "n": n,
        "labels": {label: counts.get(label, 0) / max(1, n) for label in labels},
        "features": {
            "text_length": _binned([len(t) for t in eval_texts]),
            "oov_rate": _binned([oov_rate(t, vocab) for t in eval_texts]),
        },
        "vocabulary_size": len(vocabulary),
        "psi_threshold": PSI_THRESHOLD,
        "chi2_p_threshold": CHI2_P_THRESHOLD,
    }


def _psi(expected: Any, actual: Any) -> float:
    """PSI = Σ (actual - expected) · ln(actual / expected) over bin shares, each floored
    at 1e-4 (see the module docstring)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: dict[str, list[float]], live: Sequence[float]) -> float:
    """Population Stability Index of ``live`` values against a binned reference."""
    edges = np.asarray(reference["edges"], dtype=np.float64)
    return _psi(reference["fractions"], _fractions(np.asarray(live, dtype=np.float64), edges))


def label_shift_p_value(reference: dict[str, float], live: Sequence[str]) -> float:
    """p-value of Pearson's chi-square test of the live label counts against the
    reference proportions (each floored at 1e-4 and renormalised)."""
    from scipy.stats import chisquare

    labels = sorted(reference)
    counts = Counter(live)
    observed = np.array([counts.get(label, 0) for label in labels], dtype=np.float64)
    if len(labels) < 2 or observed.sum() == 0:
        return 1.0
    proportions = np.maximum(np.array([reference[label] for label in labels]), _FLOOR)
    expected = proportions / proportions.sum() * observed.sum()
    return float(chisquare(observed, expected).pvalue)


def compare(
    reference: dict[str, Any],
    labels: Sequence[str],
    lengths: Sequence[float],
    oov: Sequence[float],
    binned: dict[str, list[int]] | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """Compare a live window with ``reference``.

    Args:
        reference: the version's reference profile.
        labels: the predicted label of each prediction in the window.
        lengths, oov: the text features of the predictions that logged them.
        binned: per binned feature of the reference, the logged bins of the window.

    Returns:
        ``(drift, features)`` with one ``{"name", "statistic", "value", "threshold",
        "drift"}`` per feature (binned features say more: :func:`compare_binned`);
        ``drift`` is false below :data:`MIN_SAMPLES` predictions for the chi-square test
        and below :data:`MIN_SAMPLES_PSI` for PSI.
    """
    n = len(labels)
    enough = n >= MIN_SAMPLES
    features: list[dict[str, Any]] = []
    if n and reference.get("labels"):
        p = label_shift_p_value(reference["labels"], labels)
        features.append(
            {
                "name": "predicted_label",
                "statistic": "chi-square p-value",
                "value": p,
                "threshold": CHI2_P_THRESHOLD,
                "drift": enough and p < CHI2_P_THRESHOLD,
            }
        )
    for name, values in (("text_length", lengths), ("oov_rate", oov)):
        present = [v for v in values if v is not None and not math.isnan(v)]
        if not present or name not in reference.get("features", {}):
            continue
        score = psi(reference["features"][name], present)
        features.append(
            {
                "name": name,
                "statistic": "psi",
                "value": score,
                "threshold": PSI_THRESHOLD,
                "drift": n >= MIN_SAMPLES_PSI and score > PSI_THRESHOLD,
            }
        )
    for name, profile in (reference.get("binned_features") or {}).items():
        live = (binned or {}).get(name) or []
        if live:
            features.append(compare_binned(name, profile, live))
    return any(f["drift"] for f in features), features


MISSING_BIN = "missing"
"""Label of the bin of missing values (the last bin of every binned profile)."""
UNSEEN_BIN = "unseen"
"""Label of the bin of categories never seen in training."""
OTHER_BIN = "other"
"""Label of the bin of categories seen in training but not among the profiled ones."""
MAX_PROFILED_CATEGORIES = 20
"""Categories with a bin of their own in a categorical profile, at most."""

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


def _edge(value: float) -> str:
    return f"{value:.4g}"


def numeric_profile(values: FloatArray) -> dict[str, Any]:
    """The binned profile of a numeric feature: decile edges of the present values
    (duplicates merged), a bin per interval and a last ``missing`` bin.

    Args:
        values: float64 of shape ``(n,)``; NaN is a missing value.

    Returns:
        ``{"kind": "numeric", "edges": [float], "bins": [str], "fractions": [float]}``
        with ``len(edges) + 2`` bins (``≤ e0``, ``(e0, e1]`` … ``> e_last``, ``missing``);
        a value equal to an edge falls in the bin the edge closes.
    """
    data = np.asarray(values, dtype=np.float64)
    present = data[~np.isnan(data)]
    edges = (
        np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9))) if present.size else np.zeros(0)
    )
    labels = [f"≤ {_edge(edges[0])}"] if edges.size else ["any"]
    labels += [f"({_edge(a)}, {_edge(b)}]" for a, b in itertools.pairwise(edges)]
    if edges.size:
        labels.append(f"> {_edge(edges[-1])}")
    profile: dict[str, Any] = {
        "kind": "numeric",
        "edges": edges.tolist(),
        "bins": [*labels, MISSING_BIN],
    }
    profile["fractions"] = bin_fractions(profile, assign_bins(profile, data))
    return profile


def categorical_profile(
    codes: FloatArray,
    categories: Sequence[str],
    missing: BoolArray,
    *,
    max_bins: int = MAX_PROFILED_CATEGORIES,
) -> dict[str, Any]:
    """The binned profile of a categorical feature.

    Args:
        codes: float64 of shape ``(n,)``: the index of each value's category in
            ``categories``; NaN for a missing value.
        categories: every category seen in training, by code.
        missing: bool of shape ``(n,)``: the value was missing (it cannot be unseen).
        max_bins: the most frequent categories (in ``codes``) that get a bin each.

    Returns:
        ``{"kind": "categorical", "codes": [int], "bins": [str], "fractions": [float]}``:
        a bin per profiled category (``codes`` lists their codes), then ``other`` (seen
        in training, not profiled), ``unseen`` and ``missing``.
    """
    data = np.asarray(codes, dtype=np.float64)
    present = data[~np.isnan(data)].astype(np.int64)
    counts = np.bincount(present, minlength=len(categories)) if present.size else np.zeros(0)
    ranked = sorted((int(k) for k in np.flatnonzero(counts)), key=lambda k: (-int(counts[k]), k))[
        :max_bins
    ]
    profile: dict[str, Any] = {
        "kind": "categorical",
        "codes": ranked,
        "bins": [str(categories[k]) for k in ranked] + [OTHER_BIN, UNSEEN_BIN, MISSING_BIN],
    }
    profile["fractions"] = bin_fractions(profile, assign_bins(profile, data, missing))
    return profile


def assign_bins(
    profile: dict[str, Any], values: FloatArray, missing: BoolArray | None = None
) -> IntArray:
    """The bin of each value under ``profile``.

    Args:
        profile: from :func:`numeric_profile` or :func:`categorical_profile`.
        values: float64 of shape ``(n,)``: numbers, or category codes; NaN when missing
            (or, for a category, never seen in training).
        missing: bool of shape ``(n,)``, categorical only: which NaNs are missing values
            (the other NaNs are unseen categories); ``None``: every NaN is missing.

    Returns:
        int64 of shape ``(n,)``, indices into ``profile["bins"]``.
    """
    data = np.asarray(values, dtype=np.float64)
    nan = np.isnan(data)
    last = len(profile["bins"]) - 1
    if profile["kind"] == "numeric":
        edges = np.asarray(profile["edges"], dtype=np.float64)
        out = np.searchsorted(edges, np.where(nan, 0.0, data), side="left").astype(np.int64)
        out[nan] = last
        return out
    codes = [int(c) for c in profile["codes"]]
    other = len(codes)
    table = np.full(max(codes, default=-1) + 2, other, dtype=np.int64)  # last: beyond
    table[codes] = np.arange(other, dtype=np.int64)
    index = np.where(nan, -1.0, data)
    index = np.where((index >= 0) & (index < len(table) - 1), index, len(table) - 1)
    out = table[index.astype(np.int64)]
    missing_mask = nan if missing is None else (nan & np.asarray(missing, dtype=bool))
    out[nan] = other + 1  # unseen
    out[missing_mask] = last
    return out


def bin_fractions(profile: dict[str, Any], bins: Sequence[int] | IntArray) -> list[float]:
    """The share of ``bins`` (indices into ``profile["bins"]``) in each bin; indices out of
    range (a log written under another profile) are ignored."""
    size = len(profile["bins"])
    data = np.asarray(bins, dtype=np.int64)
    data = data[(data >= 0) & (data < size)]
    counts = np.bincount(data, minlength=size)[:size]
    return [float(c) / max(1, data.size) for c in counts]


def compare_binned(name: str, profile: dict[str, Any], live: Sequence[int]) -> dict[str, Any]:
    """One drift feature: PSI of the live bin shares against the profile's, the missing
    (and, for a category, unseen) shares of both, and the shares themselves for a chart.

    Returns:
        ``{"name", "statistic": "psi", "value", "threshold", "drift", "kind", "bins",
        "reference", "live", "missing_share": {"reference", "live"},
        "unseen_share": {"reference", "live"} | None}``; ``drift`` is false below
        :data:`MIN_SAMPLES_PSI` values.
    """
    expected = np.asarray(profile["fractions"], dtype=np.float64)
    actual = np.asarray(bin_fractions(profile, live), dtype=np.float64)
    score = _psi(expected, actual)
    bins = list(profile["bins"])
    unseen = None
    if profile["kind"] == "categorical":
        at = bins.index(UNSEEN_BIN)
        unseen = {"reference": float(expected[at]), "live": float(actual[at])}
    return {
        "name": name,
        "statistic": "psi",
        "value": score,
        "threshold": PSI_THRESHOLD,
        "drift": len(live) >= MIN_SAMPLES_PSI and score > PSI_THRESHOLD,
        "kind": profile["kind"],
        "bins": bins,
        "reference": expected.tolist(),
        "live": actual.tolist(),
        "missing_share": {"reference": float(expected[-1]), "live": float(actual[-1])},
        "unseen_share": unseen,
    }


def read_vocabulary(artifacts: ArtifactStore, version: ModelVersion) -> frozenset[str] | None:
    """The training vocabulary of ``version``, or ``None`` when it has no drift reference
    (trained before aiweb profiled versions) or the file is missing or altered (logged:
    the version is served, without the OOV drift feature)."""
    sha256 = (version.evaluation.get("drift_reference") or {}).get("vocabulary_sha256")
    if not sha256:
        return None
    what = f"vocabulary of {version.name}:{version.version}"
    try:
        data = read_verified(artifacts, version.file_uri(VOCABULARY_ARTIFACT), sha256, what)
    except CorruptArtifactError as exc:
        log.error("%s; no OOV drift feature", exc.detail)
        return None
    return frozenset(data.decode("utf-8").split("\n"))


_WINDOW = re.compile(r"^([1-9][0-9]{0,3})([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def parse_window(window: str) -> timedelta:
    """``"30m"``, ``"24h"``, ``"7d"`` … as a duration (at most 90 days).

    Raises:
        InvalidInputError: another shape, or longer than 90 days.
    """
    match = _WINDOW.match(window)
    if match is None:
        raise InvalidInputError(f"window must look like 30m, 24h or 7d, not {window!r}")
    span = timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    if span > timedelta(days=90):
        raise InvalidInputError("window must be at most 90d")
    return span


class DriftService:
    """Compares a model version's recent predictions with its reference profile.

    Args:
        sessions: database sessions (the prediction log).
        registry: resolves model references.
        alerts: sends webhook alerts for drifted features (``None``: no alerts).
        max_rows: the most recent predictions of the window that are read at most.
        clock: the current time.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: RegistryService,
        *,
        alerts: AlertSender | None = None,
        max_rows: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self.alerts = alerts
        self._max_rows = max_rows
        self._clock = clock

    def check_production(self, window: str) -> list[dict[str, Any]]:
        """Compute drift (and so alert) for every ``production`` version that has a
        reference profile; the scheduler calls this periodically."""
        results = []
        for (name, alias), _number in sorted(self._registry.store.all_aliases().items()):
            if alias != PRODUCTION:
                continue
            try:
                results.append(self.drift(name, window))
            except ConflictError:
                continue  # no reference profile
        return results

    def drift(self, ref: str, window: str) -> dict[str, Any]:
        """``{"model", "version", "window", "n", "drift", "features": [...]}`` for the
        version ``ref`` names (``name`` means its ``production`` version).

        Raises:
            InvalidInputError: bad window; ModelNotFound, AliasNotFound,
            ModelVersionNotFound: unknown reference; ConflictError: the version has no
            reference profile (trained before aiweb profiled versions; retrain it).
        """
        span = parse_window(window)
        version = self._registry.resolve(ModelRef.parse(ref))
        reference = version.evaluation.get("drift_reference")
        if not reference:
            raise ConflictError(
                f"{version.name}:{version.version} has no drift reference profile; "
                "versions trained by this aiweb have one: retrain it"
            )
        since = self._clock() - span
        query = (
            select(
                SqlPrediction.label,
                SqlPrediction.input_chars,
                SqlPrediction.oov_rate,
                SqlPrediction.drift_bins,
            )
            .where(SqlPrediction.model == version.name)
            .where(SqlPrediction.version == version.version)
            .where(SqlPrediction.created_at > since)
            .order_by(SqlPrediction.created_at.desc())
            .limit(self._max_rows)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        labels = [r.label for r in rows]
        lengths = [float(r.input_chars) for r in rows if r.input_chars is not None]
        oov = [float(r.oov_rate) for r in rows if r.oov_rate is not None]
        binned: dict[str, list[int]] = {name: [] for name in reference.get("binned_features") or {}}
        for r in rows:
            if isinstance(r.drift_bins, dict):
                for name, values in binned.items():
                    b = r.drift_bins.get(name)
                    if isinstance(b, int):
                        values.append(b)
        drifted, features = compare(reference, labels, lengths, oov, binned)
        for feature in features:
            score = feature["value"]
            if feature["statistic"] != "psi":
                score = 1.0 - score  # p-value -> higher is more drift, like PSI
            DRIFT_SCORE.labels(version.name, str(version.version), feature["name"]).set(score)
        result = {
            "model": version.name,
            "version": version.version,
            "window": window,
            "n": len(rows),
            "min_n": MIN_SAMPLES,
            "drift": drifted,
            "features": features,
        }
        if drifted and self.alerts is not None:
            self.alerts.alert(result)
        return result
