"""The served tabular model: row validation, encoding, prediction, safe (skops) serialisation.

A :class:`TabularModel` holds a fitted scikit-learn estimator and a JSON *meta* document
(schema, categories, calibration, threshold …). Rows are JSON objects ``{column: value}``;
:meth:`TabularModel.validate_rows` turns them into the *raw feature matrix*:

- ``numeric`` column: one feature, the number (``float64``);
- ``boolean`` column: one feature, 0.0 or 1.0;
- ``categorical`` column: one feature, the category's code (its index in the training
  categories, most frequent first; at most ``max_categories`` of them, the rarer ones
  share the code of ``"(other)"``); a category not seen in training is a missing value;
- ``datetime`` column: three features, ``<col>`` (Unix seconds, UTC), ``<col>.day_of_week``
  (0 = Monday) and ``<col>.hour`` (0-23);
- ``text`` columns are accepted and ignored (not features).

Missing values (absent keys, ``null``, the tokens of
:data:`aiweb.tabular.columns.MISSING_TOKENS`) are NaN. Boosted trees
(``HistGradientBoosting*``, with native categorical splits on the categorical codes) take
the raw matrix as it is; the linear models and IsolationForest take the *design matrix*
(:meth:`TabularModel.design`): numbers standardised with the training mean and standard
deviation, a missing number set to the mean (0) with a 0/1 missing indicator when training
had missing values, categories one-hot (an unknown or missing category: all zeros).

Artifacts are skops files (no pickle) of ``{"meta": <JSON text>, "estimator": <estimator>}``;
loading refuses any type outside skops' trusted defaults and :data:`TRUSTED_TYPES`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import sklearn
import skops.io as sio
from scipy.special import expit
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from aiweb.errors import DataFormatError, InvalidRowError, UnsafeArtifactError
from aiweb.tabular.columns import (
    ColumnSpec,
    category_key,
    is_missing,
    parse_bool,
    parse_datetime,
    parse_number,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "MAX_STRING_CHARS",
    "TRUSTED_TYPES",
    "Problem",
    "RowError",
    "TabularModel",
    "apply_calibration",
    "fit_encoding",
]

Problem = Literal["classification", "regression", "anomaly"]
FloatArray = npt.NDArray[np.float64]

ANOMALY_LABELS = ["anomaly", "normal"]
"""The labels of an anomaly-detection version: its answers as logged, and its feedback."""

#: Types a tabular artifact may hold beyond skops' trusted defaults: the trees of
#: HistGradientBoosting (``TreePredictor``) and of IsolationForest (``Tree``), and the
#: ``functools.partial(check_array, …)`` HistGradientBoosting keeps to validate inputs
#: when it has categorical features (a partial is loaded only with trusted arguments).
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "functools.partial",
        "sklearn.utils.validation.check_array",
    }
)

ARTIFACT_FORMAT = "skops"
META_FORMAT = "aiweb-tabular/1"

#: Boosted trees predict batches smaller than this on one thread (see ``margins``).
SINGLE_THREAD_ROWS = 2048

#: Longest string value accepted in a row, in characters.
MAX_STRING_CHARS = 10_000
#: The code shared by the categories beyond ``max_categories``.
OTHER_CATEGORY = "(other)"

_ESTIMATORS = {
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "LogisticRegression",
    "Ridge",
    "IsolationForest",
}

#: The error of a row that cannot be predicted (422, :class:`~aiweb.errors.InvalidRowError`);
#: its message always starts with ``row <i>`` (0-based) and names the column.
RowError = InvalidRowError


def _short(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_value(i: int, column: str, value: object) -> None:
    """Refuse what no column accepts: nested JSON, NaN/∞, numbers beyond float range,
    over-long strings and strings that are not valid Unicode (lone surrogates)."""
    where = f"row {i}, column {_short(column)}"
    if isinstance(value, dict | list | tuple):
        raise RowError(f"{where}: nested JSON (an object or array) is not a cell value")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise RowError(f"{where}: the number is beyond the float range") from None
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise RowError(
                f"{where}: the string has {len(value)} characters (at most {MAX_STRING_CHARS})"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError(f"{where}: the string is not valid Unicode (a lone surrogate)") from None
    elif value is not None and not isinstance(value, bool | int | float):
        raise RowError(f"{where}: a {type(value).__name__} is not a cell value")


def _width(kind: str) -> int:
    return {"datetime": 3, "text": 0}.get(kind, 1)


def feature_names(schema: Sequence[ColumnSpec]) -> tuple[list[str], list[str]]:
    """``(names, columns)`` of the raw features: one name per feature and the column each
    comes from (datetime columns give three features, text columns none)."""
    names: list[str] = []
    columns: list[str] = []
    for spec in schema:
        if spec.kind == "datetime":
            names += [spec.name, f"{spec.name}.day_of_week", f"{spec.name}.hour"]
            columns += [spec.name] * 3
        elif spec.kind != "text":
            names.append(spec.name)
            columns.append(spec.name)
    return names, columns


def fit_encoding(
    schema: Sequence[ColumnSpec], rows: Sequence[Mapping[str, object]], max_categories: int = 250
) -> dict[str, list[str]]:
    """The categories of each categorical column, most frequent first (ties by name), at
    most ``max_categories``; when a column has more, the rest share
    :data:`OTHER_CATEGORY` (listed last).

    Returns:
        ``{column: [category, …]}`` for the categorical columns of ``schema``.
    """
    out: dict[str, list[str]] = {}
    for spec in schema:
        if spec.kind != "categorical":
            continue
        counts: dict[str, int] = {}
        for row in rows:
            value = row.get(spec.name)
            if not is_missing(value):
                key = category_key(value)
                counts[key] = counts.get(key, 0) + 1
        ordered = sorted(counts, key=lambda c: (-counts[c], c))
        if len(ordered) > max_categories:
            ordered = [*ordered[: max_categories - 1], OTHER_CATEGORY]
        out[spec.name] = ordered
    return out


class TabularModel:
    """A fitted tabular model, as served.

    Args:
        estimator: the fitted scikit-learn estimator (``HistGradientBoostingClassifier``/
            ``Regressor`` on the raw matrix; ``LogisticRegression``, ``Ridge`` or
            ``IsolationForest`` on the design matrix).
        meta: the JSON-safe description the trainer wrote (schema, categories,
            calibration, threshold …; see :mod:`aiweb.tabular.trainer`).

    Attributes:
        problem: ``"classification"``, ``"regression"`` or ``"anomaly"``.
        algorithm: ``"hgb"``, ``"linear"`` or ``"isolation_forest"``.
        schema: the input columns and their kinds (text columns included: accepted, unused).
        target: the predicted column (``None`` for anomaly models).
        classes: class names, sorted (classification), else ``[]``.
        positive_class: the positive class of a binary model, else ``None``.
        threshold: binary classification: a row is ``positive_class`` when its probability
            is ``>=`` it; anomaly: a row is an anomaly when its score is ``>`` it; else
            ``None``.
        ignored: columns a row may carry that are not inputs (the target, dropped
            columns …); their values are checked for hostile content, then ignored.
        feature_names: the raw features, in matrix column order.
    """

    def __init__(self, estimator: Any, meta: Mapping[str, Any]) -> None:
        self.estimator = estimator
        self.meta: dict[str, Any] = dict(meta)
        self.problem: Problem = meta["problem"]
        self.algorithm: str = meta["algorithm"]
        self.schema: list[ColumnSpec] = [ColumnSpec.from_dict(s) for s in meta["schema"]]
        self.target: str | None = meta.get("target")
        self.classes: list[str] = list(meta.get("classes") or [])
        self.positive_class: str | None = meta.get("positive_class")
        self.threshold: float | None = meta.get("threshold")
        self.ignored: list[str] = list(meta.get("ignored") or [])
        self.categories: dict[str, list[str]] = {
            k: list(v) for k, v in (meta.get("categories") or {}).items()
        }
        self._codes = {
            col: {c: float(k) for k, c in enumerate(cats)} for col, cats in self.categories.items()
        }
        self.feature_names, self.feature_columns = feature_names(self.schema)
        self._by_name = {s.name: s for s in self.schema}
        self._offset: dict[str, int] = {}
        at = 0
        for spec in self.schema:
            self._offset[spec.name] = at
            at += _width(spec.kind)
        self._ignored = set(self.ignored)
        design = meta.get("design") or {}
        self._mean = np.asarray(design.get("mean", []), dtype=np.float64)
        self._scale = np.asarray(design.get("scale", []), dtype=np.float64)
        self._indicator = list(design.get("indicator", []))
        self.design_columns: list[str] = list(design.get("columns", []))
        self.design_mean = np.asarray(design.get("design_mean", []), dtype=np.float64)
        self._hgb: _FastTrees | None = None

    # ------------------------------------------------------------------ rows

    def validate_rows(self, rows: Sequence[object]) -> FloatArray:
        """Check rows and turn them into the raw feature matrix.

        Args:
            rows: ``n`` JSON objects ``{column: value}``; a schema column absent from a row
                is a missing value.

        Returns:
            float64 array of shape ``(n, len(self.feature_names))``, NaN for missing values.

        Raises:
            RowError: (422) a row that is not an object, a column the model does not know,
                a value of the wrong type for its column (a word in a numeric column …),
                NaN or an infinity, an integer beyond the float range, a string longer
                than :data:`MAX_STRING_CHARS` or with a lone surrogate, nested JSON. The
                message names the row (0-based) and the column.
        """
        out = np.full((len(rows), len(self.feature_names)), np.nan, dtype=np.float64)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise RowError(f"row {i}: expected a JSON object of column values")
            for column, value in row.items():
                if not isinstance(column, str):
                    raise RowError(f"row {i}: column names must be strings")
                _check_value(i, column, value)
                spec = self._by_name.get(column)
                if spec is None:
                    if column in self._ignored:
                        continue
                    raise RowError(
                        f"row {i}, column {_short(column)}: unknown column; the model's "
                        f"columns are {', '.join(s.name for s in self.schema)}"
                    )
                if is_missing(value):
                    continue
                self._encode(out[i], i, spec, value)
        return out

    def _encode(self, out: FloatArray, i: int, spec: ColumnSpec, value: object) -> None:
        at = self._offset[spec.name]
        where = f"row {i}, column {_short(spec.name)}"
        kind = spec.kind
        if kind == "numeric":
            number = parse_number(value)
            if number is None:
                raise RowError(f"{where}: expected a number, got {_short(value)}")
            out[at] = number
        elif kind == "boolean":
            flag = parse_bool(value)
            if flag is None:
                raise RowError(f"{where}: expected true or false, got {_short(value)}")
            out[at] = 1.0 if flag else 0.0
        elif kind == "categorical":
            if isinstance(value, bool | int | float | str):
                codes = self._codes.get(spec.name, {})
                code = codes.get(category_key(value))
                if code is None:
                    code = codes.get(OTHER_CATEGORY, math.nan)
                out[at] = code
            else:
                raise RowError(f"{where}: expected a category (string), got {_short(value)}")
        elif kind == "datetime":
            if isinstance(value, int | float) and not isinstance(value, bool):
                # Unix seconds, UTC; 1970-01-01 was a Thursday (day_of_week 3).
                seconds = float(value)
                day = math.floor(seconds / 86400.0)
                out[at : at + 3] = (
                    seconds,
                    float((day + 3) % 7),
                    float(math.floor(seconds % 86400 / 3600)),
                )
                return
            parsed = parse_datetime(value)
            if parsed is None:
                raise RowError(
                    f"{where}: expected an ISO 8601 date or date-time, got {_short(value)}"
                )
            out[at : at + 3] = (parsed.timestamp(), float(parsed.weekday()), float(parsed.hour))
        elif kind == "text" and not isinstance(value, str):
            raise RowError(f"{where}: expected a string, got {_short(value)}")

    def design(self, raw: FloatArray) -> FloatArray:
        """The design matrix of the linear models and IsolationForest (see the module
        docstring): float64 of shape ``(n, len(self.design_columns))``."""
        blocks: list[FloatArray] = []
        n = raw.shape[0]
        numeric_k = 0
        for k, (name, column) in enumerate(
            zip(self.feature_names, self.feature_columns, strict=True)
        ):
            spec = self._by_name[column]
            x = raw[:, k]
            if spec.kind == "categorical" and name == column:
                size = len(self.categories.get(column, []))
                onehot = np.zeros((n, size), dtype=np.float64)
                ok = ~np.isnan(x)
                onehot[np.flatnonzero(ok), x[ok].astype(np.int64)] = 1.0
                blocks.append(onehot)
                continue
            mean, scale = self._mean[numeric_k], self._scale[numeric_k]
            missing = np.isnan(x)
            z = np.where(missing, 0.0, (np.where(missing, mean, x) - mean) / scale)
            blocks.append(z[:, None])
            if self._indicator[numeric_k]:
                blocks.append(missing.astype(np.float64)[:, None])
            numeric_k += 1
        if not blocks:
            return np.zeros((n, 0), dtype=np.float64)
        return np.hstack(blocks)

    def model_input(self, raw: FloatArray) -> FloatArray:
        """What the estimator takes: the raw matrix (boosted trees) or the design matrix."""
        return raw if self.algorithm == "hgb" else self.design(raw)

    # ------------------------------------------------------------------ predict

    def margins(self, raw: FloatArray) -> FloatArray:
        """The estimator's uncalibrated margins.

        Returns:
            float64 of shape ``(n, 1)`` for a binary model (log-odds of the positive
            class), ``(n, len(classes))`` for more classes (softmax inputs); regression:
            ``(n, 1)`` values; anomaly: ``(n, 1)`` scores.

        Boosted trees are evaluated by :class:`_FastTrees` (the same sums as scikit-learn's
        ``decision_function``/``predict``, without its per-call input re-encoding, and on
        one OpenMP thread below :data:`SINGLE_THREAD_ROWS` rows).
        """
        x = self.model_input(raw)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self.algorithm == "hgb":
                if self._hgb is None:
                    self._hgb = _FastTrees(self.estimator)
                m = self._hgb.raw_predict(x)
                if self.problem == "regression":
                    m = np.asarray(self.estimator._loss.link.inverse(m), dtype=np.float64)
            elif self.problem == "classification":
                m = np.asarray(self.estimator.decision_function(x), dtype=np.float64)
            elif self.problem == "regression":
                m = np.asarray(self.estimator.predict(x), dtype=np.float64)
            else:
                m = -np.asarray(self.estimator.score_samples(x), dtype=np.float64)
        return m.reshape(len(raw), -1)

    def calibrate(self, margins: FloatArray) -> FloatArray:
        """Class probabilities from margins (:meth:`margins`), through the calibration
        fitted on the validation slice (``sigmoid``: ``expit(a·m + b)``; ``isotonic``: a
        step function, linearly interpolated), clipped to ``[1e-6, 1 - 1e-6]``.

        Returns:
            float64 of shape ``(n, len(classes))``, rows summing to 1, columns in the
            order of :attr:`classes`.
        """
        calibration = self.meta.get("calibration") or {}
        method = calibration.get("method")
        params = calibration.get("params") or []
        n = margins.shape[0]
        if len(self.classes) == 2:
            m = margins[:, 0]
            p = apply_calibration(method, params[0] if params else None, m)
            pos = self.classes.index(cast(str, self.positive_class))
            proba = np.empty((n, 2), dtype=np.float64)
            proba[:, pos] = p
            proba[:, 1 - pos] = 1.0 - p
            return proba
        if method is None:
            z = margins - margins.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
        cols = [
            apply_calibration(method, params[k], margins[:, k]) for k in range(margins.shape[1])
        ]
        proba = np.stack(cols, axis=1)
        return proba / proba.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def predict_proba(self, rows: Sequence[object]) -> FloatArray:
        """Class probabilities (classification models).

        Returns:
            float64 of shape ``(n, len(classes))``, aligned with ``rows``.

        Raises:
            RowError: as :meth:`validate_rows`.
        """
        if len(rows) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float64)
        return self.calibrate(self.margins(self.validate_rows(rows)))

    def predict(self, rows: Sequence[object]) -> list[dict[str, Any]]:
        """Predict, one answer per row (aligned by index).

        Returns:
            classification: ``{"label": str, "scores": {class: probability}}`` (the label
            at :attr:`threshold` for a binary model, the most probable class otherwise);
            regression: ``{"value": float}``; anomaly: ``{"score": float, "anomaly":
            bool}`` (score in ``(0, 1]``, Liu et al. 2008's ``s(x, n)``: higher is more
            anomalous).

        Raises:
            RowError: as :meth:`validate_rows`.
        """
        return self.predict_matrix(self.validate_rows(rows))

    def predict_matrix(self, raw: FloatArray) -> list[dict[str, Any]]:
        """:meth:`predict` on a raw matrix from :meth:`validate_rows`."""
        if len(raw) == 0:
            return []
        m = self.margins(raw)
        if self.problem == "regression":
            return [{"value": float(v)} for v in m[:, 0]]
        if self.problem == "anomaly":
            t = cast(float, self.threshold)
            return [{"score": float(s), "anomaly": bool(s > t)} for s in m[:, 0]]
        proba = self.calibrate(m)
        labels = self.decide(proba)
        return [
            {"label": label, "scores": dict(zip(self.classes, map(float, row), strict=True))}
            for label, row in zip(labels, proba, strict=True)
        ]

    def decide(self, proba: FloatArray) -> list[str]:
        """The labels for class probabilities: binary at :attr:`threshold`, else argmax."""
        if len(self.classes) == 2 and self.threshold is not None:
            pos = self.classes.index(cast(str, self.positive_class))
            neg = self.classes[1 - pos]
            return [
                cast(str, self.positive_class) if p >= self.threshold else neg
                for p in proba[:, pos]
            ]
        return [self.classes[k] for k in np.argmax(proba, axis=1)]

    def warm(self) -> None:
        """Run one prediction of an all-missing row (builds the lazy fast-path state)."""
        self.predict([{}])

    # ------------------------------------------------------------------ artifacts

    def to_bytes(self) -> bytes:
        """Serialise with skops (no pickle): ``{"meta": JSON text, "estimator": …}``."""
        return bytes(sio.dumps({"meta": json.dumps(self.meta), "estimator": self.estimator}))

    @classmethod
    def from_bytes(cls, data: bytes) -> TabularModel:
        """Load an artifact written by :meth:`to_bytes`, never executing pickle.

        Raises:
            UnsafeArtifactError: not a valid skops file, a type outside skops' trusted
                defaults and :data:`TRUSTED_TYPES`, or not a tabular model artifact.
        """
        try:
            untrusted = sio.get_untrusted_types(data=data)
        except Exception as exc:
            raise UnsafeArtifactError(f"not a valid skops artifact: {exc}") from exc
        refused = sorted(set(untrusted) - TRUSTED_TYPES)
        if refused:
            raise UnsafeArtifactError(
                "artifact contains types that are not trusted: " + ", ".join(refused[:10])
            )
        try:
            obj = sio.loads(data, trusted=list(untrusted))
        except Exception as exc:
            raise UnsafeArtifactError(f"not a valid skops artifact: {exc}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("meta"), str):
            raise UnsafeArtifactError("artifact is not a tabular model")
        try:
            meta = json.loads(obj["meta"])
        except ValueError as exc:
            raise UnsafeArtifactError(f"artifact meta is not JSON: {exc}") from None
        estimator = obj.get("estimator")
        if (
            not isinstance(meta, dict)
            or meta.get("format") != META_FORMAT
            or type(estimator).__name__ not in _ESTIMATORS
        ):
            raise UnsafeArtifactError("artifact is not a tabular model of a known format")
        try:
            check_is_fitted(estimator)
        except NotFittedError:
            raise UnsafeArtifactError("artifact is not a fitted tabular model") from None
        try:
            return cls(estimator, meta)
        except (KeyError, TypeError, ValueError, DataFormatError) as exc:
            raise UnsafeArtifactError(f"artifact meta is malformed: {exc}") from None


def apply_calibration(
    method: str | None, params: Mapping[str, Any] | None, m: FloatArray
) -> FloatArray:
    """Probabilities from margins ``m`` (shape ``(n,)``): ``expit(m)`` without a method,
    ``expit(a·m + b)`` for ``sigmoid``, the isotonic step function (thresholds ``x``,
    values ``y``, linearly interpolated, constant beyond the ends) for ``isotonic``;
    clipped to ``[1e-6, 1 - 1e-6]``."""
    if method is None or params is None:
        p = expit(m)
    elif method == "sigmoid":
        p = expit(float(params["a"]) * m + float(params["b"]))
    else:
        p = np.interp(
            m, np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64)
        )
    return np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)


class _FastTrees:
    """A fitted HistGradientBoosting model's raw predictions, computed as its
    ``_raw_predict`` does — baseline plus every tree's ``TreePredictor.predict`` — with the
    input encoding and the known-category bitsets prepared once instead of per call.

    scikit-learn re-encodes categorical columns at every call (a ``ColumnTransformer``
    with an ``OrdinalEncoder``, categorical columns first) and rebuilds the bitsets of
    known categories: a few milliseconds per call that dominate a one-row prediction.
    Here the ordinal encoding is a lookup table per categorical column, and a batch
    smaller than :data:`SINGLE_THREAD_ROWS` runs on one OpenMP thread (waking a thread
    team per tree costs more than it saves on a few rows).
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64)
        self.known, self.f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        is_cat = getattr(estimator, "is_categorical_", None)
        self.cat_cols: list[int] = []
        self.num_cols: list[int] = list(range(int(estimator.n_features_in_)))
        self.lookup: list[FloatArray] = []
        if is_cat is not None and estimator._preprocessor is not None:
            mask = np.asarray(is_cat, dtype=bool)
            self.cat_cols = np.flatnonzero(mask).tolist()
            self.num_cols = np.flatnonzero(~mask).tolist()
            encoder = estimator._preprocessor.named_transformers_["encoder"]
            for categories in encoder.categories_:
                table = np.full(256, np.nan, dtype=np.float64)
                for k, value in enumerate(np.asarray(categories, dtype=np.float64)):
                    if np.isfinite(value) and 0 <= value < 256 and value == int(value):
                        table[int(value)] = k
                self.lookup.append(table)

    def _encode(self, x: FloatArray) -> FloatArray:
        if not self.cat_cols:
            return np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty_like(x, dtype=np.float64)
        for j, (col, table) in enumerate(zip(self.cat_cols, self.lookup, strict=True)):
            v = x[:, col]
            ok = np.isfinite(v) & (v >= 0) & (v < 256)
            codes = np.where(ok, v, 0).astype(np.int64)
            out[:, j] = np.where(ok, table[codes], np.nan)
        out[:, len(self.cat_cols) :] = x[:, self.num_cols]
        return out

    def raw_predict(self, x: FloatArray) -> FloatArray:
        """Raw predictions, float64 of shape ``(n, n_trees_per_iteration)``."""
        xt = self._encode(x)
        raw = np.zeros((len(xt), self.baseline.shape[-1]), dtype=np.float64)
        raw += self.baseline
        threads = 1 if len(xt) < SINGLE_THREAD_ROWS else _openmp_threads()
        for iteration in self.estimator._predictors:
            for k, predictor in enumerate(iteration):
                raw[:, k] += predictor.predict(xt, self.known, self.f_idx_map, threads)
        return raw


def _openmp_threads() -> int:
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return int(_openmp_effective_n_threads())
