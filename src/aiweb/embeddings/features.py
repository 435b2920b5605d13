"""What the tasks on sentence-embedding features share: the pinned embedding model
version (:class:`EmbeddingRef`) and bulk embedding with progress (:func:`embed_texts`).

Models of the tasks above this layer that embed their inputs record the exact embedding
version they were trained with (name, number, artifact sha256, dimension) and embed their
training texts in chunks through the same helper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.embeddings.model import OnnxEmbedder
from aiweb.errors import UnsafeArtifactError
from aiweb.registry.entities import ModelVersion

__all__ = ["EMBED_CHUNK", "EmbeddingRef", "ProgressCallback", "embed_texts"]

#: Texts embedded per call while training (progress is reported between calls).
EMBED_CHUNK = 1024

#: ``progress(stage, fraction)`` with fraction in [0, 1].
ProgressCallback = Callable[[str, float], None]


@dataclass(frozen=True)
class EmbeddingRef:
    """The embedding model version a model is pinned to.

    Attributes:
        name: registered model name (``minilm``).
        version: version number.
        sha256: hex digest of that version's artifact (the ONNX model).
        dim: vector dimension (384).
    """

    name: str
    version: int
    sha256: str
    dim: int

    @classmethod
    def of(cls, version: ModelVersion, dim: int) -> EmbeddingRef:
        """Pin ``version`` (a ready ``feature-extraction`` version) of dimension ``dim``."""
        return cls(version.name, version.version, version.artifact_sha256 or "", dim)

    def to_json(self) -> dict[str, Any]:
        """``{"name", "version", "sha256", "dim"}``, as stored in the artifact and lineage."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "dim": self.dim}

    @classmethod
    def from_json(cls, raw: Any) -> EmbeddingRef:
        """Inverse of :meth:`to_json`.

        Raises:
            UnsafeArtifactError: ``raw`` is not such a dict.
        """
        try:
            return cls(str(raw["name"]), int(raw["version"]), str(raw["sha256"]), int(raw["dim"]))
        except (KeyError, TypeError, ValueError):
            raise UnsafeArtifactError("artifact has no valid embedding_model reference") from None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def embed_texts(
    embedder: OnnxEmbedder,
    texts: list[str],
    *,
    progress: ProgressCallback | None = None,
    stage: str = "embedding",
) -> npt.NDArray[np.float32]:
    """Embed many texts in chunks of :data:`EMBED_CHUNK`, reporting progress.

    Args:
        embedder: the loaded embedding model.
        texts: ``n`` strings.
        progress: called with ``stage`` and the fraction embedded after each chunk.

    Returns:
        float32 array ``(n, embedder.dim)``, L2-normalised rows, aligned with ``texts``.
    """
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[start : start + EMBED_CHUNK]
        out[start : start + len(chunk)] = embedder.embed(chunk).vectors
        if progress is not None:
            progress(stage, min(1.0, (start + len(chunk)) / len(texts)))
    return out
