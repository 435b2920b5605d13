"""TF-IDF n-grams and sentence embeddings in one model (``--features stacked``).

Two LogisticRegressions are fitted on the same training rows — the TF-IDF n-gram
pipeline of :mod:`aiweb.classification.trainer` and the head on all-MiniLM-L6-v2
sentence embeddings of :mod:`aiweb.classification.embedding_features` — and the model
answers their weighted average (a linear opinion pool, Stone 1961; the "blending" of
Wolpert's stacked generalization, Neural Networks 5(2), 1992, with one weight)::

    p(class | text) = w · p_tfidf(class | text) + (1 - w) · p_minilm(class | text)

``w`` (``weight_tfidf``) is chosen on the evaluation split from :data:`WEIGHT_GRID`
(0, 0.05, …, 1): the weight whose answers have the highest macro-F1 there, ties broken
by the lower log-loss, then by the weight nearer 0.5. Every grid point's scores go into
the version's report (``report["stacked"]``). The evaluation split thereby chose one
number, so its metrics are a little optimistic; the cross-domain measurements below are
not.

Why a blend and not one LogisticRegression on the two feature blocks side by side
(the sparse TF-IDF block and the 384 embedding numbers times a scale): both were
measured on SST-2 (train → dev) and cross-domain on the positive/negative tweets of
``twitter_airline_sentiment`` and the positive/negative GoEmotions dev comments (int8
``minilm``, default ``C``; docs/benchmarks.md). The blend (``w`` = 0.6) averaged 0.804
accuracy / 0.787 macro-F1 over the three sets, the best concatenation (scale 1) 0.793 /
0.777, TF-IDF alone 0.775 / 0.754 and MiniLM alone 0.776 / 0.759. The blend is also the
cheaper fit: one lbfgs fit per part (the MiniLM head in about a second) and a free
weight search, where each concatenation scale is another fit over all ~10⁶ columns.

Regularisation: ``params.C`` is the TF-IDF part's ``C`` (2.0 by default) and the MiniLM
part gets :data:`~aiweb.classification.trainer.STACKED_MINILM_C_RATIO` times it (8.0 by
default), so each part keeps the default measured best for it alone.

Pinning, as for minilm features: the embedding model version is resolved once at
training, recorded (name, number, artifact sha256, dimension) and at load exactly that
version is used; a version whose artifact digest changed is refused.

Artifact (format :data:`ARTIFACT_FORMAT`): a skops file (never pickle) holding
``{"tfidf": Pipeline, "classifier": LogisticRegression, "embedding_model": {"name",
"version", "sha256", "dim"}, "weight_tfidf": float}``, loaded with the trusted-type check
of the TF-IDF pipelines (:func:`~aiweb.classification.model.load_skops`). The embedder
comes from the process-wide :class:`~aiweb.embeddings.runtime.EmbedderPool`. No ONNX
export: the embedder already runs on onnxruntime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from aiweb.classification.embedding_features import (
    EmbeddingTextClassifier,
    fit_embedding_classifier,
)
from aiweb.classification.model import TextClassifier, load_skops
from aiweb.classification.trainer import STACKED_MINILM_C_RATIO, fit_text_classifier
from aiweb.embeddings.features import EmbeddingRef, ProgressCallback
from aiweb.errors import InvalidInputError, UnsafeArtifactError

if TYPE_CHECKING:
    from aiweb.classification.trainer import TrainParams
    from aiweb.embeddings.model import OnnxEmbedder
    from aiweb.embeddings.runtime import EmbedderPool

__all__ = [
    "ARTIFACT_FORMAT",
    "FEATURES",
    "WEIGHT_GRID",
    "BlendChoice",
    "StackedTextClassifier",
    "choose_weight",
    "fit_stacked_classifier",
]

#: Artifact format of a stacked classifier (``model.skops-stacked``).
ARTIFACT_FORMAT = "skops-stacked"
#: Name of the feature kind, as in ``--features stacked``.
FEATURES = "stacked"
#: The weights of the TF-IDF part tried on the evaluation split.
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
#: Smallest probability the log-loss takes a logarithm of.
_EPS = 1e-15


class StackedTextClassifier:
    """The weighted average of a TF-IDF pipeline's and a MiniLM head's probabilities.

    Args:
        tfidf: the TF-IDF n-gram pipeline.
        minilm: the head on sentence embeddings, with its pinned embedder.
        weight_tfidf: ``w`` in ``w · p_tfidf + (1 - w) · p_minilm``, in [0, 1].

    Attributes:
        labels: class names, in the column order of :meth:`predict_proba` (both parts
            have the same).
        choice: how ``weight_tfidf`` was chosen (set by :func:`fit_stacked_classifier`;
            ``None`` for a loaded artifact).

    Raises:
        InvalidInputError: the parts have different classes, or the weight is outside
            [0, 1].
    """

    name = FEATURES

    def __init__(
        self, tfidf: TextClassifier, minilm: EmbeddingTextClassifier, weight_tfidf: float
    ) -> None:
        if tfidf.labels != minilm.labels:
            raise InvalidInputError("the TF-IDF and MiniLM parts have different classes")
        if not 0.0 <= weight_tfidf <= 1.0:
            raise InvalidInputError(f"weight_tfidf must be in [0, 1], not {weight_tfidf!r}")
        self.tfidf = tfidf
        self.minilm = minilm
        self.weight_tfidf = float(weight_tfidf)
        self.labels: list[str] = list(tfidf.labels)
        self.choice: BlendChoice | None = None

    @property
    def embedder(self) -> OnnxEmbedder:
        """The embedding model of the MiniLM part."""
        return self.minilm.embedder

    @property
    def embedding(self) -> EmbeddingRef:
        """The pinned embedding version."""
        return self.minilm.embedding

    def parts_proba(
        self, texts: list[str]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(p_tfidf, p_minilm)``: each part's probabilities, float64 ``(n, k)``."""
        return self.tfidf.predict_proba(texts), self.minilm.predict_proba(texts)

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities.

        Args:
            texts: ``n`` strings (the MiniLM part embeds only the start of one longer
                than the embedder's ``max_tokens`` word pieces).

        Returns:
            float64 array ``(n, len(self.labels))``; rows sum to 1, aligned with ``texts``.
        """
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        return blend(*self.parts_proba(texts), self.weight_tfidf)

    def to_bytes(self) -> bytes:
        """Serialise both parts, the embedding reference and the weight with skops."""
        return bytes(
            sio.dumps(
                {
                    "tfidf": self.tfidf.pipeline,
                    "classifier": self.minilm.classifier,
                    "embedding_model": self.embedding.to_json(),
                    "weight_tfidf": self.weight_tfidf,
                }
            )
        )

    @staticmethod
    def read_parts(data: bytes) -> tuple[Any, LogisticRegression, EmbeddingRef, float]:
        """``(tfidf pipeline, MiniLM head, embedding reference, weight)`` of an artifact,
        never executing pickle.

        Raises:
            UnsafeArtifactError: not a valid skops file, a type outside skops' trusted
                defaults, or not the expected content.
        """
        content = load_skops(data)
        if not isinstance(content, dict):
            raise UnsafeArtifactError("artifact is not a stacked text classifier")
        pipeline = content.get("tfidf")
        head = content.get("classifier")
        weight = content.get("weight_tfidf")
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            raise UnsafeArtifactError("artifact holds no fitted TF-IDF pipeline")
        if not isinstance(head, LogisticRegression) or not hasattr(head, "classes_"):
            raise UnsafeArtifactError("artifact holds no fitted embedding classifier head")
        if (
            not isinstance(weight, float | int)
            or isinstance(weight, bool)
            or not 0.0 <= weight <= 1.0
        ):
            raise UnsafeArtifactError("artifact has no valid weight_tfidf")
        return pipeline, head, EmbeddingRef.from_json(content.get("embedding_model")), float(weight)

    @classmethod
    def from_bytes(cls, data: bytes, embedders: EmbedderPool) -> StackedTextClassifier:
        """Load an artifact written by :meth:`to_bytes` with its pinned embedding model.

        Args:
            data: the artifact (its sha256 already checked by the registry loader).
            embedders: the process-wide pool the embedding model is taken from.

        Raises:
            UnsafeArtifactError: see :meth:`read_parts`; or parts with different classes.
            ModelNotReadyError: the pinned embedding version is missing, or its artifact
                is not the one the classifier was trained with (as
                :meth:`EmbeddingTextClassifier.from_bytes`).
        """
        pipeline, head, ref, weight = cls.read_parts(data)
        tfidf = TextClassifier(pipeline)
        if tfidf.labels != [str(c) for c in head.classes_]:
            raise UnsafeArtifactError("artifact's TF-IDF and MiniLM parts have different classes")
        return cls(tfidf, EmbeddingTextClassifier.pinned(head, ref, embedders), weight)


def blend(
    p_tfidf: npt.NDArray[np.float64], p_minilm: npt.NDArray[np.float64], weight_tfidf: float
) -> npt.NDArray[np.float64]:
    """``w · p_tfidf + (1 - w) · p_minilm`` in float64 (rows still sum to 1)."""
    out = np.multiply(p_tfidf, weight_tfidf, dtype=np.float64)
    out += (1.0 - weight_tfidf) * np.asarray(p_minilm, dtype=np.float64)
    return out


@dataclass(frozen=True)
class BlendChoice:
    """How the weight of the TF-IDF part was chosen on the evaluation split.

    Attributes:
        weight_tfidf: the chosen weight.
        grid: per weight tried, ``{"weight_tfidf", "macro_f1", "accuracy", "log_loss"}``.
        proba: the chosen blend's probabilities of the evaluation rows (what
            :meth:`StackedTextClassifier.predict_proba` gives for them); not stored.
    """

    weight_tfidf: float
    grid: list[dict[str, float]]
    proba: npt.NDArray[np.float64] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """``report["stacked"]``: the design, the weight, the criterion and the grid."""
        return {
            "design": "blend",
            "weight_tfidf": self.weight_tfidf,
            "criterion": "macro_f1 on the evaluation split; ties: lower log_loss, then the "
            "weight nearer 0.5",
            "grid": self.grid,
        }


def choose_weight(
    eval_labels: list[str],
    p_tfidf: npt.NDArray[np.float64],
    p_minilm: npt.NDArray[np.float64],
    labels: list[str],
    grid: tuple[float, ...] = WEIGHT_GRID,
) -> BlendChoice:
    """The weight of :data:`WEIGHT_GRID` whose blend answers ``eval_labels`` best.

    Args:
        eval_labels: ``n`` true labels (a label that is no class — an out-of-scope label
            trained out — counts as a wrong answer and is left out of the log-loss).
        p_tfidf, p_minilm: ``(n, k)`` probabilities of the two parts.
        labels: the ``k`` classes, in column order.
        grid: the weights to try.

    Returns:
        The choice: highest macro-F1, ties broken by lower log-loss, then by the weight
        nearer 0.5.
    """
    y = np.asarray(eval_labels, dtype=object)
    column = {label: i for i, label in enumerate(labels)}
    known = np.array([label in column for label in eval_labels], dtype=bool)
    rows = np.flatnonzero(known)
    cols = np.array([column[label] for label in y[known]], dtype=np.int64)
    names = np.asarray(labels, dtype=object)
    scored = []
    for w in grid:
        p = blend(p_tfidf, p_minilm, w)
        predicted = names[p.argmax(axis=1)] if len(p) else names[:0]
        macro_f1 = float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0))
        accuracy = float(accuracy_score(y, predicted)) if len(y) else 0.0
        picked = np.clip(p[rows, cols], _EPS, 1.0)
        loss = float(-np.mean(np.log(picked))) if len(rows) else math.inf
        scored.append((w, macro_f1, accuracy, loss))
    # scores equal up to float rounding tie (identical parts blend to p only up to it)
    best = max(scored, key=lambda s: (round(s[1], 12), -round(s[3], 9), -abs(s[0] - 0.5)))
    table = [
        {"weight_tfidf": w, "macro_f1": f1, "accuracy": acc, "log_loss": loss}
        for w, f1, acc, loss in scored
    ]
    return BlendChoice(best[0], table, blend(p_tfidf, p_minilm, best[0]))


def fit_stacked_classifier(
    texts: list[str],
    labels: list[str],
    params: TrainParams,
    embedder: OnnxEmbedder,
    embedding: EmbeddingRef,
    *,
    eval_texts: list[str],
    eval_labels: list[str],
    progress: ProgressCallback | None = None,
) -> StackedTextClassifier:
    """Fit both parts on ``texts`` and choose their weight on the evaluation rows.

    The TF-IDF part uses every parameter of ``params`` (``C`` as given); the MiniLM part
    ``C`` x :data:`~aiweb.classification.trainer.STACKED_MINILM_C_RATIO` and
    ``class_weight``, ``max_iter``, ``seed``.

    Args:
        texts: ``n`` training texts.
        labels: ``n`` class names (at least two distinct).
        params: hyper-parameters.
        embedder: the embedding model (the version ``embedding`` names).
        embedding: the pinned version, stored with the classifier.
        eval_texts, eval_labels: the evaluation rows the weight is chosen on.
        progress: called with a stage name and the fraction done.

    Returns:
        The fitted classifier; its :attr:`~StackedTextClassifier.choice` records the
        weight search (and the evaluation rows' probabilities).

    Raises:
        InvalidInputError: fewer than two classes, lengths differ, or no evaluation rows.
    """
    if len(eval_texts) != len(eval_labels):
        raise InvalidInputError(f"{len(eval_texts)} evaluation texts but {len(eval_labels)} labels")
    if not eval_texts:
        raise InvalidInputError("stacked features need evaluation rows to choose their weight")
    report = progress or (lambda _stage, _fraction: None)
    tfidf = fit_text_classifier(
        texts, labels, params, progress=lambda stage, f: report(f"TF-IDF part: {stage}", 0.4 * f)
    )
    minilm_params = params.model_copy(update={"C": params.C * STACKED_MINILM_C_RATIO})
    minilm = fit_embedding_classifier(
        texts,
        labels,
        minilm_params,
        embedder,
        embedding,
        progress=lambda stage, f: report(f"MiniLM part: {stage}", min(0.4 + 0.45 * f, 0.85)),
    )
    report(f"choosing the blend weight on {len(eval_texts):,} evaluation rows", 0.85)
    model = StackedTextClassifier(tfidf, minilm, 0.5)
    choice = choose_weight(eval_labels, *model.parts_proba(eval_texts), model.labels)
    model.weight_tfidf = choice.weight_tfidf
    model.choice = choice
    report("fitted", 1.0)
    return model
