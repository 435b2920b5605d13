"""The served text classifier and its safe (skops) serialisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import skops.io as sio

from aiweb.errors import AiwebError

#: Types a text-classification artifact may contain beyond skops' own trusted defaults.
#: Anything else found in an artifact is refused before it is loaded.
TRUSTED_TYPES: frozenset[str] = frozenset()

ARTIFACT_FORMAT = "skops"


class UnsafeArtifactError(AiwebError):
    slug = "unsafe-artifact"
    title = "Artifact refused"


class TextClassifier:
    """A fitted scikit-learn text pipeline with named classes.

    Args:
        pipeline: a fitted estimator with ``predict_proba`` over raw strings
            (e.g. TF-IDF features + LogisticRegression).

    Attributes:
        labels: class names, in the column order of :meth:`predict_proba`.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.labels: list[str] = [str(c) for c in pipeline.classes_]

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
        return np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)

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
        try:
            untrusted = sio.get_untrusted_types(data=data)
        except Exception as exc:
            raise UnsafeArtifactError(f"not a valid skops artifact: {exc}") from exc
        refused = sorted(set(untrusted) - TRUSTED_TYPES)
        if refused:
            raise UnsafeArtifactError(
                "artifact contains types that are not trusted: " + ", ".join(refused[:10])
            )
        pipeline = sio.loads(data, trusted=list(untrusted))
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            raise UnsafeArtifactError("artifact is not a fitted classifier")
        return cls(pipeline)
