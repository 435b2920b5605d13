"""Stacked features (``--features stacked``): the TF-IDF pipeline and a head on (tiny, real
ONNX) sentence embeddings, blended with a weight chosen on the evaluation rows; the
weight search, the C of each part, the skops artifact round trip, the refusal of a
changed or tampered artifact, occlusion explanations of the blend (and of any runtime
with ``labels`` and ``predict_proba``), and the parameter and CLI choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
import skops.io as sio

from aiweb.classification.embedding_features import EmbeddingRef
from aiweb.classification.explain import (
    OcclusionExplainer,
    TextScorer,
    _shape,
    explainer_for,
    logits_of_proba,
)
from aiweb.classification.stacked_features import (
    ARTIFACT_FORMAT,
    FEATURES,
    WEIGHT_GRID,
    StackedTextClassifier,
    choose_weight,
    fit_stacked_classifier,
)
from aiweb.classification.trainer import (
    MINILM_DEFAULT_C,
    STACKED_MINILM_C_RATIO,
    TrainParams,
    parse_params,
)
from aiweb.embeddings.model import OnnxEmbedder
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import InvalidInputError, ModelNotFound, ModelNotReadyError, UnsafeArtifactError
from aiweb.registry.entities import ModelRef
from tiny_embedder import tiny_embedder

TRAIN = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute",
    "brilliant and funny",
    "a delight from start to finish",
    "terrible and boring",
    "a dull, lifeless mess",
    "i hated every minute",
    "awful acting and a stupid plot",
    "a waste of time",
]
TRAIN_LABELS = ["positive"] * 5 + ["negative"] * 5
EVAL = ["a clever, funny delight", "a boring waste", "great film", "awful and dull"]
EVAL_LABELS = ["positive", "negative", "positive", "negative"]
SHA = "a" * 64
PARAMS = TrainParams(features="stacked", n_features_log2=12, C=1.5)


@dataclass
class _Version:
    name: str
    version: int
    artifact_sha256: str | None


class FakePool:
    """The two calls an :class:`EmbedderPool` answers for pinning: ``resolve`` and ``get``."""

    def __init__(self, embedder: OnnxEmbedder, sha256: str = SHA) -> None:
        self.embedder = embedder
        self.sha256 = sha256

    def resolve(self, ref: ModelRef) -> _Version:
        if ref.name != "tiny" or ref.version != 1:
            raise ModelNotFound(f"no {ref.name}:{ref.version}")
        return _Version("tiny", 1, self.sha256)

    def get(self, _version: _Version) -> OnnxEmbedder:
        return self.embedder


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return tiny_embedder()


@pytest.fixture(scope="module")
def model(embedder: OnnxEmbedder) -> StackedTextClassifier:
    stages: list[tuple[str, float]] = []
    fitted = fit_stacked_classifier(
        TRAIN * 2,
        TRAIN_LABELS * 2,
        PARAMS,
        embedder,
        EmbeddingRef("tiny", 1, SHA, embedder.dim),
        eval_texts=EVAL,
        eval_labels=EVAL_LABELS,
        progress=lambda stage, f: stages.append((stage, f)),
    )
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert any(s.startswith("TF-IDF part") for s, _ in stages)
    assert any(s.startswith("MiniLM part") for s, _ in stages)
    return fitted


def pool(embedder: OnnxEmbedder, sha256: str = SHA) -> EmbedderPool:
    return cast(EmbedderPool, FakePool(embedder, sha256))


def test_predicts_probabilities_of_the_blend(model: StackedTextClassifier) -> None:
    texts = ["a funny, clever film", "boring", "", "x" * 3000]
    proba = model.predict_proba(texts)
    assert proba.dtype == np.float64
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert model.labels == ["negative", "positive"]
    p_tfidf, p_minilm = model.parts_proba(texts)
    w = model.weight_tfidf
    np.testing.assert_allclose(proba, w * p_tfidf + (1 - w) * p_minilm, atol=1e-12)
    assert model.predict_proba([]).shape == (0, 2)
    assert model.name == FEATURES == "stacked"


def test_the_weight_is_chosen_on_the_eval_rows_and_recorded(model: StackedTextClassifier) -> None:
    choice = model.choice
    assert choice is not None
    assert choice.weight_tfidf == model.weight_tfidf
    assert model.weight_tfidf in WEIGHT_GRID
    assert [g["weight_tfidf"] for g in choice.grid] == list(WEIGHT_GRID)
    assert len(WEIGHT_GRID) == 21
    best = max(g["macro_f1"] for g in choice.grid)
    chosen = next(g for g in choice.grid if g["weight_tfidf"] == choice.weight_tfidf)
    assert chosen["macro_f1"] == best
    # among the best macro-F1, the lowest log-loss
    assert chosen["log_loss"] == min(g["log_loss"] for g in choice.grid if g["macro_f1"] == best)
    # the evaluation rows' probabilities are the model's
    np.testing.assert_allclose(choice.proba, model.predict_proba(EVAL), atol=1e-12)
    report = choice.to_json()
    assert report["design"] == "blend"
    assert report["weight_tfidf"] == model.weight_tfidf
    assert len(report["grid"]) == 21
    assert set(report["grid"][0]) == {"weight_tfidf", "macro_f1", "accuracy", "log_loss"}


def test_each_part_keeps_its_c(model: StackedTextClassifier) -> None:
    assert model.tfidf.pipeline.steps[-1][1].C == PARAMS.C
    assert model.minilm.classifier.C == PARAMS.C * STACKED_MINILM_C_RATIO
    # the defaults: 2.0 for the TF-IDF part, MINILM_DEFAULT_C for the MiniLM part
    stacked = parse_params({"features": "stacked"})
    assert stacked.C == 2.0
    assert stacked.C * STACKED_MINILM_C_RATIO == MINILM_DEFAULT_C
    assert parse_params({"features": "stacked", "C": 1}).C == 1.0


def test_choose_weight_prefers_the_better_blend() -> None:
    labels = ["negative", "positive"]
    y = ["negative", "positive", "negative", "positive"]
    right = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.4, 0.6]])
    wrong = np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
    assert choose_weight(y, right, wrong, labels).weight_tfidf == 1.0
    assert choose_weight(y, wrong, right, labels).weight_tfidf == 0.0
    # equally right: the lower log-loss decides (the sharper right model)
    sharp = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    assert choose_weight(y, right, sharp, labels).weight_tfidf == 0.0
    # identical parts: every weight ties; the one nearer 0.5
    assert choose_weight(y, right, right, labels).weight_tfidf == 0.5
    # an evaluation label that is no class (oos trained out) counts as wrong, no crash
    choice = choose_weight(
        [*y, "oos"], np.vstack([right, right[:1]]), np.vstack([wrong, wrong[:1]]), labels
    )
    assert choice.weight_tfidf == 1.0
    assert choice.grid[-1]["accuracy"] == pytest.approx(0.8)


def test_fit_needs_evaluation_rows(embedder: OnnxEmbedder) -> None:
    ref = EmbeddingRef("tiny", 1, SHA, embedder.dim)
    with pytest.raises(InvalidInputError, match="evaluation rows"):
        fit_stacked_classifier(
            TRAIN, TRAIN_LABELS, PARAMS, embedder, ref, eval_texts=[], eval_labels=[]
        )
    with pytest.raises(InvalidInputError, match="at least two distinct labels"):
        fit_stacked_classifier(
            TRAIN,
            ["x"] * len(TRAIN),
            PARAMS,
            embedder,
            ref,
            eval_texts=EVAL,
            eval_labels=EVAL_LABELS,
        )


def test_artifact_round_trip(model: StackedTextClassifier, embedder: OnnxEmbedder) -> None:
    data = model.to_bytes()
    assert ARTIFACT_FORMAT == "skops-stacked"
    loaded = StackedTextClassifier.from_bytes(data, pool(embedder))
    assert loaded.labels == model.labels
    assert loaded.weight_tfidf == model.weight_tfidf
    assert loaded.embedding == model.embedding
    assert loaded.choice is None
    texts = ["a funny, clever film", "a dull mess", "hated it"]
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))


def test_a_changed_or_missing_embedding_version_is_refused(
    model: StackedTextClassifier, embedder: OnnxEmbedder
) -> None:
    data = model.to_bytes()
    with pytest.raises(ModelNotReadyError, match="retrain it"):
        StackedTextClassifier.from_bytes(data, pool(embedder, sha256="b" * 64))
    forged = StackedTextClassifier(
        model.tfidf, _pinned_to(model, EmbeddingRef("tiny", 7, SHA, embedder.dim)), 0.5
    )
    with pytest.raises(ModelNotReadyError, match="aiweb embeddings install"):
        StackedTextClassifier.from_bytes(forged.to_bytes(), pool(embedder))


def _pinned_to(model: StackedTextClassifier, ref: EmbeddingRef) -> Any:
    from aiweb.classification.embedding_features import EmbeddingTextClassifier

    return EmbeddingTextClassifier(model.minilm.classifier, model.embedder, ref)


def _dump(model: StackedTextClassifier, **changes: Any) -> bytes:
    content: dict[str, Any] = {
        "tfidf": model.tfidf.pipeline,
        "classifier": model.minilm.classifier,
        "embedding_model": model.embedding.to_json(),
        "weight_tfidf": model.weight_tfidf,
    }
    content.update(changes)
    return bytes(sio.dumps(content))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"weight_tfidf": 1.5}, "weight_tfidf"),
        ({"weight_tfidf": "0.5"}, "weight_tfidf"),
        ({"weight_tfidf": True}, "weight_tfidf"),
        ({"tfidf": None}, "TF-IDF pipeline"),
        ({"classifier": "head"}, "embedding classifier head"),
        ({"embedding_model": {"name": "tiny"}}, "embedding_model"),
    ],
)
def test_a_tampered_artifact_is_refused(
    model: StackedTextClassifier, embedder: OnnxEmbedder, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsafeArtifactError, match=message):
        StackedTextClassifier.from_bytes(_dump(model, **changes), pool(embedder))


def test_artifacts_of_other_kinds_are_refused(
    model: StackedTextClassifier, embedder: OnnxEmbedder
) -> None:
    with pytest.raises(UnsafeArtifactError, match="not a stacked"):
        StackedTextClassifier.from_bytes(bytes(sio.dumps([1, 2])), pool(embedder))
    with pytest.raises(UnsafeArtifactError, match="not a valid skops"):
        StackedTextClassifier.from_bytes(b"not a zip", pool(embedder))
    with pytest.raises(UnsafeArtifactError):  # the minilm head alone
        StackedTextClassifier.from_bytes(model.minilm.to_bytes(), pool(embedder))


# -- explanations --------------------------------------------------------------------------


def test_the_blend_is_explained_by_occlusion_in_log_odds(model: StackedTextClassifier) -> None:
    explainer = explainer_for(model)
    assert isinstance(explainer, OcclusionExplainer)
    text = "not a good movie, but the acting was superb"
    [w] = explainer.explain([text], lambda _row: 1)
    full = model.predict_proba([text])
    # (a batch of variants embeds with other padding than one text: float32 rounding)
    np.testing.assert_allclose(w.proba, full[0], atol=1e-5)
    log_odds = float(np.log(full[0, 1] / full[0, 0]))
    assert w.logits[1] == pytest.approx(log_odds, abs=1e-5)
    for (a, b), weight in zip(w.words, w.weights, strict=True):
        without = model.predict_proba([text[:a] + text[b:]])[0]
        assert weight == pytest.approx(log_odds - np.log(without[1] / without[0]), abs=1e-5)
    out = _shape(text, w, explainer, model.labels, None, 3)
    assert out["method"] == "occlusion"
    assert out["exact"] is False
    assert len(out["contributions"]) == 3


class ThreeClasses:
    """Any runtime with ``labels`` and ``predict_proba``: scores by word counts."""

    labels = ["bad", "good", "other"]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        rows = []
        for text in texts:
            z = np.array([text.count("bad"), text.count("good"), 0.5])
            rows.append(np.exp(z) / np.exp(z).sum())
        return np.asarray(rows, dtype=np.float64)


def test_any_runtime_with_labels_and_predict_proba_is_explained() -> None:
    runtime = ThreeClasses()
    assert isinstance(runtime, TextScorer)
    explainer = explainer_for(runtime)
    assert isinstance(explainer, OcclusionExplainer)
    [w] = explainer.explain(["good good bad"], lambda row: int(np.argmax(row)))
    assert w.target == 1
    # multi-class: the log-probability of the target; removing one "good" lowers it
    assert w.logits[1] == pytest.approx(np.log(runtime.predict_proba(["good good bad"])[0, 1]))
    assert w.weights[0] > 0
    assert w.weights[2] < 0


def test_logits_of_proba() -> None:
    p = np.array([[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(logits_of_proba(p)[:, 1], [np.log(3), 0.0])
    np.testing.assert_allclose(logits_of_proba(p)[:, 0], [-np.log(3), 0.0])
    q = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    out = logits_of_proba(q)
    np.testing.assert_allclose(out[0], np.log(q[0]))
    assert np.isfinite(out).all()  # a probability of 0 is clipped


# -- parameters and the command line -------------------------------------------------------


def test_stacked_is_a_feature_kind_of_the_params_and_the_cli() -> None:
    from aiweb.cli.train import FEATURE_KINDS, run_training

    assert parse_params({"features": "stacked"}).features == "stacked"
    assert "stacked" in (TrainParams.model_fields["features"].description or "")
    assert FEATURE_KINDS == ("tfidf", "minilm", "stacked", "finetune", "auto")
    with pytest.raises(InvalidInputError, match="tfidf, minilm, stacked, finetune or auto"):
        run_training(
            "x",
            dataset="sst2",
            data=None,
            text_column="text",
            label_column="label",
            eval_data=None,
            test_size=0.2,
            alias=None,
            params={},
            features="bogus",
        )
