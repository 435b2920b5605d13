"""The served text classifier and its safe (skops) serialisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
import skops.io as sio
from scipy import sparse
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import normalize
from sklearn.utils.extmath import softmax

from aiweb.errors import UnsafeArtifactError

#: Types a text-classification artifact may contain beyond skops' own trusted defaults.
#: Anything else found in an artifact is refused before it is loaded.
TRUSTED_TYPES: frozenset[str] = frozenset()

ARTIFACT_FORMAT = "skops"


def _unrolled(pipeline: Any) -> tuple[list[tuple[Any, Any]], Any | None]:
    """``([(vectorizer, tfidf), …], classifier)`` when ``pipeline`` has the shape the aiweb
    trainer builds — ``Pipeline([("features", FeatureUnion([(name, Pipeline([vectorizer,
    tfidf])), …])), ("clf", classifier)])`` with no transformer weights — else
    ``([], None)`` (the pipeline is then called as a whole)."""
    steps = getattr(pipeline, "steps", None)
    if not isinstance(pipeline, Pipeline) or steps is None or len(steps) != 2:
        return [], None
    union, clf = steps[0][1], steps[1][1]
    if not isinstance(union, FeatureUnion) or union.transformer_weights:
        return [], None
    parts = []
    for _name, branch in union.transformer_list:
        if not isinstance(branch, Pipeline) or len(branch.steps) != 2:
            return [], None
        parts.append((branch.steps[0][1], branch.steps[1][1]))
    return parts, clf


def _csr_row_normalizers() -> dict[str, Any]:
    """scikit-learn's in-place CSR row scalings, the ones ``normalize`` calls for ``l2``
    and ``l1`` (``sklearn.utils.sparsefuncs_fast``); ``{}`` when a release moved them
    (``normalize`` is then called, with its input checks)."""
    try:
        from sklearn.utils import sparsefuncs_fast
    except ImportError:  # pragma: no cover - depends on the scikit-learn release
        return {}
    found = {
        "l2": getattr(sparsefuncs_fast, "inplace_csr_row_normalize_l2", None),
        "l1": getattr(sparsefuncs_fast, "inplace_csr_row_normalize_l1", None),
    }
    return {norm: f for norm, f in found.items() if f is not None}


_ROW_NORMALIZERS = _csr_row_normalizers()


def tfidf_transform(tfidf: TfidfTransformer, counts: Any) -> sparse.csr_matrix:
    """``tfidf.transform(counts)`` without its input checks: the same operations in the
    same order and dtype (a float copy of the counts, ``log(tf) + 1`` when
    ``sublinear_tf``, times ``idf_`` per column, then the row norm), so the same array.
    The checks cost ~0.35 ms a call, most of a one-text prediction.

    Args:
        tfidf: a fitted ``TfidfTransformer`` (scikit-learn's; not a subclass).
        counts: ``(n, n_features)`` sparse counts from the vectorizer.

    Returns:
        ``(n, n_features)`` CSR matrix, float32 for float32 counts, else float64.
    """
    dtype = counts.dtype if counts.dtype in (np.float32, np.float64) else np.float64
    x = sparse.csr_matrix(counts, dtype=dtype, copy=True)
    if tfidf.sublinear_tf:
        np.log(x.data, x.data)
        x.data += 1.0
    if hasattr(tfidf, "idf_"):
        x.data *= tfidf.idf_[x.indices]
    if tfidf.norm is not None:
        scale = _ROW_NORMALIZERS.get(tfidf.norm)
        if scale is None:
            x = normalize(x, norm=tfidf.norm, copy=False)
        else:
            scale(x)
    return x


def linear_proba(clf: LogisticRegression, x: Any) -> npt.NDArray[np.float64]:
    """``clf.predict_proba(x)`` without its input checks (~0.2 ms a call): the same
    operations in the same dtype — ``x @ coef_.T + intercept_``, then the logistic
    function of the one column (``[1 - p, p]``) for a binary model, the softmax of the
    scores for a multi-class one (scikit-learn >= 1.8's ``LogisticRegression``).

    Args:
        clf: a fitted ``LogisticRegression`` (scikit-learn's; not a subclass).
        x: ``(n, n_features)`` features (sparse or dense).

    Returns:
        float64 array of shape ``(n, n_classes)``.
    """
    d = np.asarray(x @ clf.coef_.T + clf.intercept_)
    if len(clf.classes_) <= 2:
        p = expit(d[:, 0])
        return np.asarray(np.stack([1 - p, p], axis=1), dtype=np.float64)
    return np.asarray(softmax(d, copy=False), dtype=np.float64)


def load_skops(data: bytes) -> Any:
    """Load a skops file, never executing pickle: only skops' trusted defaults and
    :data:`TRUSTED_TYPES` may appear in it.

    Raises:
        UnsafeArtifactError: not a valid skops file, or a type outside those lists.
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
    return sio.loads(data, trusted=list(untrusted))


class TextClassifier:
    """A fitted scikit-learn text pipeline with named classes.

    Args:
        pipeline: a fitted estimator with ``predict_proba`` over raw strings
            (e.g. TF-IDF features + LogisticRegression).

    Attributes:
        labels: class names, in the column order of :meth:`predict_proba`.
    """

    name = "sklearn"

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.labels: list[str] = [str(c) for c in pipeline.classes_]
        self._parts, self._clf = _unrolled(pipeline)
        # scikit-learn's own classes only: a subclass may transform or score otherwise
        self._fast = type(self._clf) is LogisticRegression and all(
            type(tfidf) is TfidfTransformer for _vec, tfidf in self._parts
        )

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities.

        Args:
            texts: ``n`` strings.

        Returns:
            float64 array of shape ``(n, len(self.labels))``; rows sum to 1 and align
            with ``texts`` by index.
        """
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        # Serving calls this with inputs already checked (strings, bounded length), so
        # scikit-learn's per-call parameter and finiteness validation is skipped; the
        # aiweb pipeline is also run step by step, without Pipeline/FeatureUnion dispatch,
        # and the TF-IDF weighting and the logistic regression's scores without their
        # input checks. All save a fixed cost per call that dominates one short text (see
        # docs/benchmarks.md); the result is the same array as ``pipeline.predict_proba``.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self._clf is None:
                proba = self.pipeline.predict_proba(texts)
            elif self._fast:
                blocks = [
                    tfidf_transform(tfidf, vec.transform(texts)) for vec, tfidf in self._parts
                ]
                return linear_proba(self._clf, sparse.hstack(blocks, format="csr"))
            else:
                blocks = [tfidf.transform(vec.transform(texts)) for vec, tfidf in self._parts]
                proba = self._clf.predict_proba(sparse.hstack(blocks).tocsr())
        return np.asarray(proba, dtype=np.float64)

    def to_bytes(self) -> bytes:
        """Serialise with skops (no pickle)."""
        return bytes(sio.dumps(self.pipeline))

    @classmethod
    def from_bytes(cls, data: bytes) -> TextClassifier:
        """Load a pipeline written by :meth:`to_bytes`, never executing pickle.

        Raises:
            UnsafeArtifactError: the artifact holds a type outside skops' trusted
                defaults and :data:`TRUSTED_TYPES`, or is not a valid skops file.
        """
        pipeline = load_skops(data)
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            raise UnsafeArtifactError("artifact is not a fitted classifier")
        return cls(pipeline)
