"""Train, evaluate and register a text classifier (``aiweb train text-classification``).

Three kinds of features (``TrainParams.features``): the TF-IDF n-gram pipeline
(:mod:`aiweb.classification.trainer`), sentence embeddings of a pinned all-MiniLM-L6-v2
version (:mod:`aiweb.classification.embedding_features`), each with LogisticRegression,
or both (:mod:`aiweb.classification.stacked_features`): the two models' probabilities
blended with a weight chosen on the evaluation split (``report["stacked"]``).

When the labels include ``TrainParams.oos_label`` (``oos`` in CLINC150), the version also
gets an out-of-scope rule (:mod:`aiweb.classification.rejection`): a threshold on the top
probability, calibrated on the evaluation split, below which the model answers ``oos``.
The report then has ``out_of_scope`` (threshold, in-scope accuracy, out-of-scope recall
…) and every metric counts the answers with the rule applied.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiweb import __version__
from aiweb.classification import embedding_features, finetune, stacked_features, transformer
from aiweb.classification.evaluation import evaluate
from aiweb.classification.model import ARTIFACT_FORMAT, TextClassifier
from aiweb.classification.onnx_export import ONNX_ARTIFACT, export_onnx
from aiweb.classification.rejection import Rejection, calibrate_threshold, decide, output_labels
from aiweb.classification.trainer import (
    MINILM_DEFAULT_C,
    TrainParams,
    fit_text_classifier,
    split_train_test,
)
from aiweb.datasets import read_labeled_file
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import EmbeddingModelNotInstalled, ExportUnavailableError
from aiweb.monitoring.drift import VOCABULARY_ARTIFACT, build_reference, build_vocabulary
from aiweb.registry.entities import PRODUCTION, ModelVersion
from aiweb.registry.promotion import non_finite_as_null, non_finite_metrics
from aiweb.registry.service import RegistryService

if TYPE_CHECKING:
    from aiweb.classification.embedding_features import EmbeddingRef
    from aiweb.classification.stacked_features import StackedTextClassifier
    from aiweb.datasets import DatasetSplits
    from aiweb.embeddings.model import OnnxEmbedder
    from aiweb.embeddings.runtime import EmbedderPool

TASK = "text-classification"

#: ``progress(stage, fraction)``: stage name and the fraction of the whole job done.
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class TrainingData:
    """Texts and labels to train on, and optionally an official evaluation split.

    Attributes:
        name: dataset name (``sst2``) or file name, recorded in the lineage.
        train_texts, train_labels: training rows.
        eval_texts, eval_labels: evaluation rows, or ``None`` to hold out a split.
        eval_split: name of the evaluation split (``dev``, ``eval-data``).
        sha256: digest of the data as loaded (train and eval), recorded in the lineage.
    """

    name: str
    train_texts: list[str]
    train_labels: list[str]
    sha256: str
    eval_texts: list[str] | None = None
    eval_labels: list[str] | None = None
    eval_split: str | None = None

    @classmethod
    def from_splits(cls, splits: DatasetSplits) -> TrainingData:
        """A built-in dataset's splits (its official evaluation split, when it has one)."""
        return cls(
            name=splits.name,
            train_texts=splits.train.texts,
            train_labels=splits.train.labels,
            sha256=splits.sha256(),
            eval_texts=splits.eval.texts if splits.eval else None,
            eval_labels=splits.eval.labels if splits.eval else None,
            eval_split=splits.eval_name,
        )

    @classmethod
    def from_files(
        cls,
        path: Path,
        *,
        text_column: str,
        label_column: str,
        eval_path: Path | None = None,
        name: str | None = None,
    ) -> TrainingData:
        """A user's labeled CSV/TSV/JSONL file, and optionally one to evaluate on.

        Raises:
            DataFormatError: see :func:`aiweb.datasets.read_labeled_file`.
        """
        rows = read_labeled_file(path, text_column=text_column, label_column=label_column)
        evals = (
            read_labeled_file(eval_path, text_column=text_column, label_column=label_column)
            if eval_path is not None
            else None
        )
        return cls(
            name=name or path.name,
            train_texts=rows.texts,
            train_labels=rows.labels,
            sha256=rows.sha256() + (evals.sha256() if evals else ""),
            eval_texts=evals.texts if evals else None,
            eval_labels=evals.labels if evals else None,
            eval_split="eval-data" if evals else None,
        )


@dataclass(frozen=True)
class TrainResult:
    """A trained version, its report, and the evaluation rows it was scored on
    (``None`` when training was skipped)."""

    version: ModelVersion
    report: dict[str, Any]
    skipped: bool = False
    eval_texts: list[str] | None = None
    eval_labels: list[str] | None = None


def fingerprint(
    data_sha256: str,
    params: TrainParams,
    test_size: float | None,
    embedding: EmbeddingRef | None = None,
) -> str:
    """Digest of what determines a trained version: data, parameters, split and (minilm
    and stacked features) the pinned embedding model version."""
    content: dict[str, Any] = {
        "data": data_sha256,
        "params": params.model_dump(),
        "test_size": test_size,
    }
    if embedding is not None:
        content["embedding_model"] = embedding.to_json()
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def find_same(registry: RegistryService, name: str, fp: str) -> ModelVersion | None:
    """The latest version of ``name`` if it was trained with fingerprint ``fp``."""
    latest = registry.latest_version(name)
    if latest is not None and latest.status == "ready" and latest.lineage.get("fingerprint") == fp:
        return latest
    return None


def train_text_classification(
    registry: RegistryService,
    name: str,
    data: TrainingData,
    *,
    params: TrainParams | None = None,
    test_size: float = 0.2,
    alias: str | None = None,
    description: str = "",
    skip_if_same: bool = False,
    actor: str = "",
    progress: Progress | None = None,
    lineage_extra: dict[str, Any] | None = None,
    embedders: EmbedderPool | None = None,
) -> TrainResult:
    """Fit the features + LogisticRegression, evaluate it and register a new version.

    With an evaluation split in ``data``, training rows whose text also appears in it are
    dropped (no leakage). Without one, the data are de-duplicated and split stratified
    by label (``test_size`` held out), so no text is on both sides.

    Args:
        registry: where the version goes.
        name: registered model name.
        data: training (and evaluation) rows.
        params: hyper-parameters; defaults when ``None``.
        test_size: held-out fraction when ``data`` has no evaluation split.
        alias: also point this alias at the new version (the first version of a
            model becomes ``production``). A version whose report holds a number that
            is not finite (NaN, infinity) never becomes ``production``, even when
            ``alias`` names it: such numbers are stored as ``null`` and listed in the
            report's ``non_finite_metrics``.
        skip_if_same: return the latest version instead of training when it was
            trained on the same data, parameters and split.
        progress: ``(stage, fraction)`` callback; an exception it raises stops training.
        lineage_extra: more lineage to record (the job id of a training job).
        embedders: where minilm and stacked features take their embedding model from (a
            pool on ``registry`` is made when ``None``).

    Returns:
        The registered version and its evaluation report.

    Raises:
        InvalidInputError: unusable data (one class, too few rows to split, an
            out-of-scope label without evaluation rows of it …).
        EmbeddingModelNotInstalled: minilm or stacked features and no embedding model
            registered.
    """
    params = params or TrainParams()
    report_progress = progress or (lambda _s, _f: None)
    has_eval = data.eval_texts is not None and data.eval_labels is not None
    embedding: EmbeddingRef | None = None
    embedder: OnnxEmbedder | None = None
    kinds = _candidates(params)
    embedding_skipped: str | None = None
    if any(kind in EMBEDDING_KINDS for kind in kinds):
        if embedders is None:
            embedders = EmbedderPool(registry)
        try:
            embedding_version = embedders.resolve(params.embedding_model)
            embedder = embedders.get(embedding_version)
        except EmbeddingModelNotInstalled as exc:
            if params.features != AUTO:
                raise
            embedding_skipped = exc.detail
            kinds = [kind for kind in kinds if kind not in EMBEDDING_KINDS]
        else:
            embedding = embedding_features.EmbeddingRef.of(embedding_version, embedder.dim)
    fp = fingerprint(data.sha256, params, None if has_eval else test_size, embedding)
    if skip_if_same:
        same = find_same(registry, name, fp)
        if same is not None:
            return TrainResult(version=same, report=same.evaluation, skipped=True)

    registry.record(
        actor,
        "training.started",
        f"model:{name}",
        after={"dataset": data.name, "dataset_sha256": data.sha256, "params": params.model_dump()},
    )
    report_progress("splitting", 0.0)
    split_info: dict[str, Any]
    if data.eval_texts is not None and data.eval_labels is not None:
        eval_texts, eval_labels = data.eval_texts, data.eval_labels
        held_out = {t.strip() for t in eval_texts}
        pairs = [
            (t, y)
            for t, y in zip(data.train_texts, data.train_labels, strict=True)
            if t.strip() not in held_out
        ]
        train_texts = [t for t, _ in pairs]
        train_labels = [y for _, y in pairs]
        split_name = data.eval_split or "eval"
        split_info = {
            "eval_split": split_name,
            "train_rows": len(train_texts),
            "test_rows": len(eval_texts),
            "train_rows_dropped_as_in_eval": len(data.train_texts) - len(train_texts),
        }
    else:
        train_texts, train_labels, eval_texts, eval_labels, split_info = split_train_test(
            data.train_texts, data.train_labels, test_size=test_size, seed=params.seed
        )
        split_name = "test"
        split_info["eval_split"] = f"stratified {test_size:.0%} de-duplicated split"

    oos = params.oos_label if params.oos_label in {*train_labels, *eval_labels} else None
    fit_texts, fit_labels = train_texts, train_labels
    if oos is not None:
        if params.oos_training == "exclude":
            kept = [(t, y) for t, y in zip(train_texts, train_labels, strict=True) if y != oos]
            fit_texts, fit_labels = [t for t, _ in kept], [y for _, y in kept]
        split_info["out_of_scope_training_rows"] = (
            0 if params.oos_training == "exclude" else train_labels.count(oos)
        )

    def fit_and_score(kind: str, share: tuple[float, float]) -> _Fitted:
        low, width = share
        fitted = _fit_kind(
            kind,
            _params_for(params, kind),
            fit_texts,
            fit_labels,
            eval_texts,
            eval_labels,
            embedder=embedder,
            embedding=embedding,
            progress=lambda stage, f: report_progress(stage, 0.05 + 0.8 * (low + width * f)),
        )
        fitted.score(eval_labels, oos, params, split_name)
        return fitted

    if params.features == AUTO:
        weights = [AUTO_WEIGHTS.get(kind, 1.0) for kind in kinds]
        shares, at = [], 0.0
        for w in weights:
            shares.append((at / sum(weights), w / sum(weights)))
            at += w
        tried: list[_Fitted] = []
        unavailable: list[dict[str, Any]] = []
        for kind, share in zip(kinds, shares, strict=True):
            try:
                tried.append(fit_and_score(kind, share))
            except ExportUnavailableError as exc:  # no torch: auto goes on without finetune
                unavailable.append({"features": kind, "skipped": exc.detail})
        best = max(tried, key=lambda f: (f.report["macro_f1"], -AUTO_ORDER.index(f.kind)))
        auto_table = [f.summary() for f in tried] + unavailable
        if embedding_skipped is not None:
            auto_table += [
                {"features": kind, "skipped": embedding_skipped} for kind in EMBEDDING_KINDS
            ]
        if FINETUNE not in kinds:
            auto_table.append(
                {
                    "features": FINETUNE,
                    "skipped": "not tried: give --param max_train_minutes=N to include it",
                }
            )
    else:
        best = fit_and_score(params.features, (0.0, 1.0))
        auto_table = None
    model, proba, report = best.model, best.proba, best.report
    rejection, labels, predicted = best.rejection, best.labels, best.predicted
    fit_seconds = best.fit_seconds
    if auto_table is not None:
        report["auto"] = {"chosen": best.kind, "criterion": "macro_f1", "candidates": auto_table}
    report_progress("profiling the evaluation data for drift", 0.88)
    vocabulary = build_vocabulary(train_texts)
    vocabulary_bytes = "\n".join(vocabulary).encode("utf-8")
    report["drift_reference"] = {
        **build_reference(eval_texts, predicted, labels, vocabulary),
        "split": split_name,
        "vocabulary_artifact": VOCABULARY_ARTIFACT,
        "vocabulary_sha256": hashlib.sha256(vocabulary_bytes).hexdigest(),
    }
    onnx_bytes: bytes | None = None
    if best.kind == TFIDF:
        assert isinstance(model, TextClassifier)
        report_progress("exporting to ONNX", 0.9)
        onnx_bytes, report["onnx"] = export_onnx(model, eval_texts, proba)
    report_progress("registering", 0.95)
    broken = non_finite_metrics(report)
    if broken:  # never production: stored as null (JSON has no NaN), named in the report
        report = non_finite_as_null(report)
        report["non_finite_metrics"] = broken
        if alias == PRODUCTION:
            alias = None
    lineage = {
        "dataset": data.name,
        "dataset_sha256": data.sha256,
        "params": params.model_dump(),
        "test_size": None if has_eval else test_size,
        "split": split_info,
        "aiweb_version": __version__,
        "trained_at": datetime.now(UTC).isoformat(),
        "fit_seconds": round(fit_seconds, 3),
        "fingerprint": fp,
        "features": best.kind,
        "pipeline": best.pipeline,
        **(
            {"embedding_model": embedding.to_json()}
            if embedding is not None and best.kind in EMBEDDING_KINDS
            else {}
        ),
        **({"rejection": rejection.to_json()} if rejection is not None else {}),
        **(lineage_extra or {}),
    }
    signature = {
        "inputs": {"type": "array", "items": {"type": "string"}},
        "outputs": {
            "label": labels,
            "scores": "probability per label"
            + (
                f"; the label is {rejection.label!r} when the top probability is below "
                f"{rejection.threshold:.4f}"
                if rejection is not None
                else ""
            ),
        },
    }
    version = registry.register_version(
        name,
        TASK,
        artifact=best.artifact,
        artifact_format=best.artifact_format,
        labels=labels,
        signature=signature,
        lineage=lineage,
        evaluation=report,
        description=description,
        alias=alias,
        actor=actor,
        production_if_first=not broken,
        extra_artifacts={
            VOCABULARY_ARTIFACT: vocabulary_bytes,
            **({ONNX_ARTIFACT: onnx_bytes} if onnx_bytes is not None else {}),
        },
    )
    report_progress("done", 1.0)
    return TrainResult(
        version=version, report=report, eval_texts=eval_texts, eval_labels=eval_labels
    )


TFIDF = "tfidf"
FINETUNE = transformer.FEATURES
AUTO = "auto"
#: Feature kinds whose texts a registered embedding model embeds.
EMBEDDING_KINDS = (embedding_features.FEATURES, stacked_features.FEATURES)
#: ``auto``'s candidates in order (the first wins a tie of macro-F1: the cheaper one).
AUTO_ORDER = (TFIDF, embedding_features.FEATURES, stacked_features.FEATURES, FINETUNE)
#: Shares of the progress bar in ``auto`` (finetune takes most of the time).
AUTO_WEIGHTS = {
    TFIDF: 1.0,
    embedding_features.FEATURES: 1.5,
    stacked_features.FEATURES: 2.5,
    FINETUNE: 10.0,
}


def _candidates(params: TrainParams) -> list[str]:
    """The feature kinds to train: one, or ``auto``'s (finetune only with a time budget)."""
    if params.features != AUTO:
        return [params.features]
    kinds = list(AUTO_ORDER)
    if params.max_train_minutes is None:
        kinds.remove(FINETUNE)
    return kinds


def _params_for(params: TrainParams, kind: str) -> TrainParams:
    """``params`` for one kind of ``auto`` (minilm's own default C unless C was given)."""
    if params.features == kind:
        return params
    update: dict[str, Any] = {"features": kind}
    if kind == embedding_features.FEATURES and "C" not in params.model_fields_set:
        update["C"] = MINILM_DEFAULT_C
    return params.model_copy(update=update)


@dataclass
class _Fitted:
    """One kind's model, its evaluation probabilities and how to register it."""

    kind: str
    model: Any
    proba: Any
    artifact: bytes
    artifact_format: str
    pipeline: str
    fit_seconds: float
    report_extra: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    rejection: Rejection | None = None
    labels: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)

    def score(
        self, eval_labels: list[str], oos: str | None, params: TrainParams, split: str
    ) -> None:
        """Calibrate the out-of-scope rule (when the data has one) and evaluate."""
        choice = None
        if oos is not None:
            choice = calibrate_threshold(
                eval_labels, self.proba, self.model.labels, oos, criterion=params.oos_criterion
            )
            self.rejection = Rejection(oos, choice.threshold)
        self.labels = output_labels(self.model.labels, self.rejection)
        self.predicted = decide(self.model.labels, self.proba, self.rejection)
        self.report = evaluate(
            eval_labels, self.proba, self.labels, split=split, predicted=self.predicted
        )
        if self.rejection is not None and choice is not None:
            self.report["out_of_scope"] = {
                "label": self.rejection.label,
                "training": params.oos_training,
                **choice.to_json(),
            }
        self.report.update(self.report_extra)

    def summary(self) -> dict[str, Any]:
        """This kind's row of ``auto``'s comparison table."""
        row = {
            "features": self.kind,
            "macro_f1": self.report.get("macro_f1"),
            "accuracy": self.report.get("accuracy"),
            "fit_seconds": round(self.fit_seconds, 1),
            "artifact_bytes": len(self.artifact),
            "pipeline": self.pipeline,
        }
        oos = self.report.get("out_of_scope")
        if oos is not None:
            row["in_scope_accuracy"] = oos.get("in_scope_accuracy")
            row["oos_recall"] = oos.get("oos_recall")
        return row


def _fit_kind(
    kind: str,
    params: TrainParams,
    texts: list[str],
    labels: list[str],
    eval_texts: list[str],
    eval_labels: list[str],
    *,
    embedder: OnnxEmbedder | None,
    embedding: EmbeddingRef | None,
    progress: Progress,
) -> _Fitted:
    """Fit one feature kind and score the evaluation texts with what will be served."""
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == FINETUNE:
        config = finetune.FinetuneConfig(
            epochs=params.epochs,
            learning_rate=params.learning_rate,
            batch_size=params.batch_size,
            max_tokens=params.max_tokens,
            max_train_minutes=params.max_train_minutes or finetune.DEFAULT_MAX_TRAIN_MINUTES,
            max_train_rows=params.max_train_rows,
            seed=params.seed,
        )
        tuned = finetune.finetune(
            texts,
            labels,
            eval_texts,
            eval_labels,
            config,
            progress=lambda s, f: progress(s, 0.9 * f),
        )
        exported = finetune.export_checked(
            tuned, eval_texts, eval_labels, progress=lambda s, f: progress(s, 0.9 + 0.1 * f)
        )
        runtime = exported.runtime
        extra = {"finetune": tuned.summary(), "onnx": exported.report}
        return _Fitted(
            kind=kind,
            model=runtime,
            proba=runtime.predict_proba(eval_texts),
            artifact=exported.artifact,
            artifact_format=transformer.ARTIFACT_FORMAT,
            pipeline=(
                f"fine-tuned {tuned.source} + linear head, ONNX "
                f"{exported.report['precision']} ({tuned.train_rows:,} rows, "
                f"{tuned.steps:,} steps)"
            ),
            fit_seconds=time.perf_counter() - started,
            report_extra=extra,
        )
    model: Any
    if kind == stacked_features.FEATURES:
        assert embedder is not None
        assert embedding is not None
        stacked = stacked_features.fit_stacked_classifier(
            texts,
            labels,
            params,
            embedder,
            embedding,
            eval_texts=eval_texts,
            eval_labels=eval_labels,
            progress=progress,
        )
        model = stacked
        proba = stacked.choice.proba if stacked.choice is not None else None
        if stacked.choice is not None:
            extra["stacked"] = stacked.choice.to_json()
        extra["onnx"] = {
            "status": "unsupported",
            "reason": f"stacked features: the texts are embedded by {embedding} on "
            "onnxruntime, and the TF-IDF and embedding parts are blended in scikit-learn, "
            "not exported",
        }
        fmt = stacked_features.ARTIFACT_FORMAT
        pipeline = _pipeline_name(params, embedding, stacked)
    elif kind == embedding_features.FEATURES:
        assert embedder is not None
        assert embedding is not None
        model = embedding_features.fit_embedding_classifier(
            texts, labels, params, embedder, embedding, progress=progress
        )
        proba = None
        extra["onnx"] = {
            "status": "unsupported",
            "reason": f"minilm features: the texts are embedded by {embedding} on "
            "onnxruntime and the linear head is not exported",
        }
        fmt = embedding_features.ARTIFACT_FORMAT
        pipeline = _pipeline_name(params, embedding)
    else:
        model = fit_text_classifier(texts, labels, params, progress=progress)
        proba = None
        fmt = ARTIFACT_FORMAT
        pipeline = _pipeline_name(params, None)
    fit_seconds = time.perf_counter() - started
    progress("evaluating", 1.0)
    if proba is None:
        proba = model.predict_proba(eval_texts)
    return _Fitted(
        kind=kind,
        model=model,
        proba=proba,
        artifact=model.to_bytes(),
        artifact_format=fmt,
        pipeline=pipeline,
        fit_seconds=fit_seconds,
        report_extra=extra,
    )


def _pipeline_name(
    params: TrainParams,
    embedding: EmbeddingRef | None,
    stacked: StackedTextClassifier | None = None,
) -> str:
    if embedding is not None and stacked is not None:
        w = stacked.weight_tfidf
        tfidf = _pipeline_name(params, None)
        minilm = _pipeline_name(params, embedding)
        return f"blend: {w:.2f} x [{tfidf}] + {1 - w:.2f} x [{minilm}]"
    if embedding is not None:
        return f"sentence embeddings ({embedding}, {embedding.dim} dims) + LogisticRegression"
    if params.vectorizer == "hashing":
        return (
            f"tfidf(word 1-{params.word_ngram_max} + char_wb "
            f"{params.char_ngram_min}-{params.char_ngram_max}) + LogisticRegression"
        )
    return f"tfidf(word 1-{params.word_ngram_max}, vocabulary) + LogisticRegression"
