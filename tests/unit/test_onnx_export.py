"""The ONNX export, its agreement check, and the runtime that serves it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from aiweb.classification.model import TextClassifier
from aiweb.classification.onnx_export import (
    MAX_ABS_DIFF,
    DualRuntime,
    OnnxTextClassifier,
    export_onnx,
)
from aiweb.classification.trainer import TrainParams, fit_text_classifier

TEXTS = [
    "a wonderful, moving film",
    "brilliant and funny, a joy",
    "the best movie of the year",
    "warm, witty and wise",
    "great acting, great story",
    "terrible and boring",
    "a dull lifeless mess",
    "awful acting and a stupid plot",
    "a waste of time",
    "bad, bad, bad and very very bad",
]
LABELS = ["positive"] * 5 + ["negative"] * 5
CHECK = [*TEXTS, "a great film", "boring boring boring", "", "?!", "wonderful WONDERFUL"]


@pytest.fixture(scope="module")
def tfidf_model() -> TextClassifier:
    return fit_text_classifier(TEXTS * 2, LABELS * 2, TrainParams(C=10.0, vectorizer="tfidf"))


def test_tfidf_pipeline_exports_and_agrees(tfidf_model: TextClassifier) -> None:
    data, check = export_onnx(tfidf_model, CHECK)
    assert check["status"] == "agrees", check
    assert data is not None
    assert check["bytes"] == len(data)
    assert check["rows"] == len(CHECK)
    assert check["same_label_rate"] == 1.0
    assert check["max_abs_diff"] <= MAX_ABS_DIFF
    onnx = OnnxTextClassifier(data, tfidf_model.labels)
    expected = tfidf_model.predict_proba(CHECK)
    np.testing.assert_allclose(onnx.predict_proba(CHECK), expected, atol=MAX_ABS_DIFF)
    assert onnx.predict_proba([]).shape == (0, 2)


def test_hashing_pipeline_is_unsupported_and_says_why(tiny_model: TextClassifier) -> None:
    data, check = export_onnx(tiny_model, CHECK)
    assert data is None
    assert check["status"] == "unsupported"
    assert "HashingVectorizer" in check["reason"]


def test_a_pipeline_onnx_computes_differently_is_refused() -> None:
    # sublinear tf (1 + log tf) is not what skl2onnx's converter computes, so repeated
    # words score differently in onnxruntime: the check must catch it
    pipeline = Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [
                        (
                            "word",
                            Pipeline(
                                [
                                    ("vec", CountVectorizer(token_pattern=r"(?a)\b\w\w+\b")),
                                    ("tfidf", TfidfTransformer(sublinear_tf=True)),
                                ]
                            ),
                        )
                    ]
                ),
            ),
            ("clf", LogisticRegression(C=10.0)),
        ]
    )
    pipeline.fit(TEXTS * 2, LABELS * 2)
    data, check = export_onnx(TextClassifier(pipeline), CHECK)
    assert data is None
    assert check["status"] == "disagrees"
    assert check["max_abs_diff"] > MAX_ABS_DIFF
    assert "max |Δp|" in check["reason"]


class Spy:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.labels = ["negative", "positive"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.predict_proba(texts)  # type: ignore[attr-defined,no-any-return]


def test_dual_runtime_sends_small_calls_to_onnx_and_large_to_sklearn(
    tfidf_model: TextClassifier,
) -> None:
    data, _ = export_onnx(tfidf_model, CHECK)
    assert data is not None
    sk, ox = Spy(tfidf_model), Spy(OnnxTextClassifier(data, tfidf_model.labels))
    runtime = DualRuntime(sk, ox, onnx_max_batch=2)  # type: ignore[arg-type]
    small, large = runtime.predict_proba(CHECK[:2]), runtime.predict_proba(CHECK)
    assert ox.calls == [2]
    assert sk.calls == [len(CHECK)]
    np.testing.assert_allclose(small, tfidf_model.predict_proba(CHECK[:2]), atol=MAX_ABS_DIFF)
    np.testing.assert_array_equal(large, tfidf_model.predict_proba(CHECK))
    assert runtime.name == "onnx+sklearn"
    only_onnx = DualRuntime(sk, ox, onnx_max_batch=None)  # type: ignore[arg-type]
    only_onnx.predict_proba(CHECK)
    assert ox.calls == [2, len(CHECK)]
    assert only_onnx.name == "onnx"


def test_dual_runtime_falls_back_when_onnx_fails(tfidf_model: TextClassifier) -> None:
    class Broken:
        labels = tfidf_model.labels

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("onnxruntime rejected the input")

    runtime = DualRuntime(tfidf_model, Broken(), onnx_max_batch=8)  # type: ignore[arg-type]
    np.testing.assert_array_equal(
        runtime.predict_proba(CHECK[:1]), tfidf_model.predict_proba(CHECK[:1])
    )


@pytest.mark.parametrize("vectorizer", ["hashing", "tfidf"])
def test_serving_path_equals_the_pipeline(vectorizer: str) -> None:
    """TextClassifier skips scikit-learn's validation and Pipeline dispatch: the result
    must still be the very same array as pipeline.predict_proba."""
    model = fit_text_classifier(TEXTS * 2, LABELS * 2, TrainParams(vectorizer=vectorizer))
    assert model._clf is not None  # the unrolled path is taken
    for batch in (CHECK, CHECK[:1], ["", "x" * 5000]):
        np.testing.assert_array_equal(
            model.predict_proba(batch), model.pipeline.predict_proba(batch)
        )
