"""The served text classifier and its safe (skops) serialisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
import skops.io as sio
from scipy import sparse
from sklearn.pipeline import FeatureUnion, Pipeline

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
        # aiweb pipeline is also run step by step, without Pipeline/FeatureUnion dispatch.
        # Both save a fixed cost per call that dominates one short text (see
        # docs/benchmarks.md); the result is the same array as ``pipeline.predict_proba``.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self._clf is None:
                proba = self.pipeline.predict_proba(texts)
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
