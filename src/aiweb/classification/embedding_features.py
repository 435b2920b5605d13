"""Sentence-embedding features for text classification (``--features minilm``).

Each text becomes its all-MiniLM-L6-v2 sentence embedding (float32, 384 dimensions,
L2-normalised; Reimers & Gurevych, "Sentence-BERT", EMNLP 2019) computed by a registered
``feature-extraction`` model version on onnxruntime (:mod:`aiweb.embeddings`), and a
scikit-learn :class:`~sklearn.linear_model.LogisticRegression` (L2, lbfgs, multinomial)
is fitted on the vectors — the "frozen encoder + linear probe" recipe of
sentence-transformers' SentEval evaluation.

Pinning: a classifier is trained with one embedding model *version* (resolved once,
from ``minilm@production`` by default) and its artifact records that version's name,
number and artifact sha256. At load, exactly that version is used, whatever aliases
say now, and a version whose artifact digest differs is refused — moving the embedding
model's ``production`` alias never changes an existing classifier.

Artifact (format :data:`ARTIFACT_FORMAT`): a skops file holding ``{"classifier":
LogisticRegression, "embedding_model": {"name", "version", "sha256", "dim"}}``, loaded
with the same trusted-type check as the TF-IDF pipelines. The embedder itself is not in
the artifact: it is loaded through the process-wide
:class:`~aiweb.embeddings.runtime.EmbedderPool`, so every classifier (and the embed and
search routes) on one embedding version share one onnxruntime session.

There is no ONNX export of the head: the embedder already runs on onnxruntime, and the
head is one matrix product on 384 numbers per text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import sklearn
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from aiweb.classification.model import load_skops
from aiweb.embeddings.features import EmbeddingRef, ProgressCallback, embed_texts
from aiweb.errors import (
    AiwebError,
    InvalidInputError,
    ModelNotReadyError,
    UnsafeArtifactError,
)
from aiweb.registry.entities import ModelRef

if TYPE_CHECKING:
    from aiweb.classification.trainer import TrainParams
    from aiweb.embeddings.model import OnnxEmbedder
    from aiweb.embeddings.runtime import EmbedderPool

__all__ = [
    "ARTIFACT_FORMAT",
    "FEATURES",
    "EmbeddingRef",
    "EmbeddingTextClassifier",
    "embed_texts",
    "fit_embedding_classifier",
]

#: Artifact format of a classifier on sentence-embedding features (``model.skops-head``).
ARTIFACT_FORMAT = "skops-head"
#: Name of the feature kind, as in ``--features minilm``.
FEATURES = "minilm"


class EmbeddingTextClassifier:
    """LogisticRegression over the sentence embeddings of a pinned embedding model.

    Args:
        classifier: fitted on ``(n, dim)`` float32 vectors.
        embedder: the loaded embedding model the classifier was trained with.
        embedding: which version that is.

    Attributes:
        labels: class names, in the column order of :meth:`predict_proba`.
    """

    name = FEATURES

    def __init__(
        self, classifier: LogisticRegression, embedder: OnnxEmbedder, embedding: EmbeddingRef
    ) -> None:
        self.classifier = classifier
        self.embedder = embedder
        self.embedding = embedding
        self.labels: list[str] = [str(c) for c in classifier.classes_]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities.

        Args:
            texts: ``n`` strings (longer than the embedder's ``max_tokens`` word pieces:
                only their start is embedded).

        Returns:
            float64 array ``(n, len(self.labels))``; rows sum to 1, aligned with ``texts``.
        """
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        return self.predict_proba_vectors(self.embedder.embed(texts).vectors)

    def proba_and_logits(
        self, texts: list[str]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(proba, logits)`` of ``texts``, embedded once: float64 ``(n, len(labels))``
        each. Logits are ``decision_function``'s, and for a binary model the pair
        ``(-d, d)`` (each class's log-odds); the occlusion explainer weighs words in them.
        """
        if not texts:
            empty = np.zeros((0, len(self.labels)), dtype=np.float64)
            return empty, empty.copy()
        vectors = self.embedder.embed(texts).vectors
        proba = self.predict_proba_vectors(vectors)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            d = np.asarray(self.classifier.decision_function(vectors), dtype=np.float64)
        logits = np.stack([-d, d], axis=1) if d.ndim == 1 else d
        return proba, logits

    def predict_proba_vectors(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Class probabilities of already embedded texts: float64 ``(n, len(labels))``."""
        # inputs come from the embedder (finite, right shape): skip sklearn's checks
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = self.classifier.predict_proba(vectors)
        return np.asarray(proba, dtype=np.float64)

    def to_bytes(self) -> bytes:
        """Serialise the head and the embedding reference with skops (no pickle)."""
        return bytes(
            sio.dumps({"classifier": self.classifier, "embedding_model": self.embedding.to_json()})
        )

    @staticmethod
    def read_head(data: bytes) -> tuple[LogisticRegression, EmbeddingRef]:
        """The classifier and embedding reference in an artifact, never executing pickle.

        Raises:
            UnsafeArtifactError: not a valid skops file, a type outside skops' trusted
                defaults, or not the expected content.
        """
        content = load_skops(data)
        if not isinstance(content, dict) or not isinstance(
            content.get("classifier"), LogisticRegression
        ):
            raise UnsafeArtifactError("artifact is not an embedding classifier head")
        classifier = content["classifier"]
        if not hasattr(classifier, "classes_"):
            raise UnsafeArtifactError("artifact holds an unfitted classifier")
        return classifier, EmbeddingRef.from_json(content.get("embedding_model"))

    @classmethod
    def from_bytes(cls, data: bytes, embedders: EmbedderPool) -> EmbeddingTextClassifier:
        """Load an artifact written by :meth:`to_bytes` with its pinned embedding model.

        Args:
            data: the artifact (its sha256 already checked by the registry loader).
            embedders: the process-wide pool the embedding model is taken from.

        Raises:
            UnsafeArtifactError: see :meth:`read_head`.
            ModelNotReadyError: the pinned embedding version is missing, or its artifact
                is not the one the classifier was trained with.
        """
        classifier, ref = cls.read_head(data)
        return cls.pinned(classifier, ref, embedders)

    @classmethod
    def pinned(
        cls, classifier: LogisticRegression, ref: EmbeddingRef, embedders: EmbedderPool
    ) -> EmbeddingTextClassifier:
        """``classifier`` with exactly the embedding version ``ref`` pins (what
        :meth:`from_bytes` does once the artifact is read; the stacked classifier's
        artifact holds the same head and reference).

        Raises:
            ModelNotReadyError: the pinned embedding version is missing, or its artifact
                is not the one the classifier was trained with.
        """
        try:
            version = embedders.resolve(ModelRef(name=ref.name, version=ref.version))
        except AiwebError as exc:
            raise ModelNotReadyError(
                f"this classifier embeds with {ref}, which cannot be loaded ({exc.detail}); "
                "run `aiweb embeddings install` or retrain the classifier"
            ) from None
        if version.artifact_sha256 != ref.sha256:
            raise ModelNotReadyError(
                f"this classifier was trained with {ref} of sha256 {ref.sha256[:12]}…, but "
                f"{ref} now has sha256 {(version.artifact_sha256 or '')[:12]}…; retrain it"
            )
        embedder = embedders.get(version)
        if embedder.dim != ref.dim or classifier.coef_.shape[1] != ref.dim:
            raise ModelNotReadyError(
                f"{ref} gives {embedder.dim}-dimensional vectors; the classifier expects "
                f"{classifier.coef_.shape[1]}"
            )
        return cls(classifier, embedder, ref)


def fit_embedding_classifier(
    texts: list[str],
    labels: list[str],
    params: TrainParams,
    embedder: OnnxEmbedder,
    embedding: EmbeddingRef,
    *,
    progress: ProgressCallback | None = None,
) -> EmbeddingTextClassifier:
    """Embed ``texts`` and fit LogisticRegression on the vectors.

    Uses ``params.C``, ``params.class_weight``, ``params.max_iter`` and ``params.seed``
    (the n-gram parameters do not apply).

    Args:
        texts: ``n`` training texts.
        labels: ``n`` class names (at least two distinct).
        params: hyper-parameters.
        embedder: the embedding model (the version ``embedding`` names).
        embedding: the pinned version, stored with the classifier.
        progress: called with a stage name and the fraction done.

    Returns:
        The fitted classifier, ready to predict with ``embedder``.

    Raises:
        InvalidInputError: fewer than two classes, or lengths differ.
    """
    if len(texts) != len(labels):
        raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels")
    if len(set(labels)) < 2:
        raise InvalidInputError("training data needs at least two distinct labels")
    report = progress or (lambda _stage, _fraction: None)
    vectors = embed_texts(
        embedder,
        texts,
        progress=lambda stage, f: report(f"{stage} {len(texts):,} texts with {embedding}", 0.8 * f),
    )
    report("fitting logistic regression", 0.8)
    classifier = LogisticRegression(
        C=params.C,
        max_iter=params.max_iter,
        class_weight=params.class_weight,
        random_state=params.seed,
    )
    classifier.fit(vectors, labels)
    report("fitted", 1.0)
    return EmbeddingTextClassifier(classifier, embedder, embedding)
