"""Explanations of text classifiers (issue 22): exact additivity of the linear explainer
on generated texts (binary and multi-class, hashed and vocabulary pipelines), against the
logit computed from the pipeline's own transform; the TF-IDF rows the explainer builds
from its n-grams against the pipeline's ``transform`` (also for vectorizer and TF-IDF
options aiweb does not train); offsets that slice the original text, the n-gram analysis
against scikit-learn's own, the out-of-scope report, and occlusion batches equal to
one-by-one calls on a real (tiny) ONNX embedder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler

from aiweb.classification.embedding_features import EmbeddingRef, EmbeddingTextClassifier
from aiweb.classification.explain import (
    MAX_OCCLUSION_WORDS,
    LinearTextExplainer,
    OcclusionExplainer,
    _chooser,
    _shape,
    explainer_for,
    words_of,
)
from aiweb.classification.model import TextClassifier
from aiweb.classification.rejection import Rejection
from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.errors import InvalidInputError
from tiny_embedder import tiny_embedder

BINARY_TEXTS = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute!",
    "brilliant and funny",
    "terrible and boring",
    "a dull, lifeless mess",
    "i hated every minute...",
    "awful acting and a stupid plot",
]
BINARY_LABELS = ["positive"] * 4 + ["negative"] * 4
MULTI_TEXTS = [
    *BINARY_TEXTS,
    "what is the weather tomorrow",
    "will it rain in paris",
    "is it sunny today?",
    "how cold is it outside",
]
MULTI_LABELS = [*BINARY_LABELS, *(["weather"] * 4)]

#: (name, multi-class?, parameters): hashed and vocabulary pipelines; the last one has
#: 1-char n-grams (a lone padding space is a feature) and 2**10 columns (collisions)
PIPELINES = [
    ("hashing-binary", False, TrainParams(C=10.0, n_features_log2=14)),
    ("tfidf-binary", False, TrainParams(C=10.0, vectorizer="tfidf")),
    ("hashing-multi", True, TrainParams(C=10.0, n_features_log2=14)),
    ("tfidf-multi", True, TrainParams(C=10.0, vectorizer="tfidf", word_ngram_max=3)),
    (
        "hashing-small",
        True,
        TrainParams(C=10.0, n_features_log2=10, char_ngram_min=1, char_ngram_max=3),
    ),
]


@pytest.fixture(scope="module")
def models() -> dict[str, TextClassifier]:
    out = {}
    for name, multi, params in PIPELINES:
        texts, labels = (MULTI_TEXTS, MULTI_LABELS) if multi else (BINARY_TEXTS, BINARY_LABELS)
        out[name] = fit_text_classifier(texts * 2, labels * 2, params)
    pipeline = Pipeline(
        [("features", FeatureUnion(ODD_BRANCHES)), ("clf", LogisticRegression(C=10.0))]
    )
    out["odd-options"] = TextClassifier(pipeline.fit(MULTI_TEXTS * 2, MULTI_LABELS * 2))
    return out


WORDS = st.sampled_from(
    [
        "good",
        "not",
        "movie",
        "Wonderful",
        "BORING",
        "rain",
        "weather",
        "!",
        "...",
        ",",
        "İstanbul",  # lower-cases to 2 characters
        "ΑΣ",  # final sigma
        "café",
        "naïve",
        "🙂",
        "x\u0301",  # combining accent
        "a_b",
        "12",
        "ﬁne",  # ligature
        "\x00",
        "é",
    ]
)
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\x1f", "\u00a0", "\u2003", ""])
TEXTS = st.one_of(
    st.lists(st.tuples(WORDS, SPACES), max_size=25).map(
        lambda parts: "".join(w + s for w, s in parts)
    ),
    st.text(max_size=60),
)
WHITESPACE = st.text(
    alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f\x85\u00a0\u2003\u2028\u3000"),
    max_size=12,
)
#: the texts whose TF-IDF rows are checked: the texts above, any Unicode, whitespace only,
#: words of hundreds of characters (one word repeated: "İstanbulİstanbul…", "!!!…",
#: "good,good,…" is several words in one whitespace token), texts made of the characters
#: whose case mapping is odd ("İ" lower-cases to two characters)
ROW_TEXTS = st.one_of(
    TEXTS,
    st.text(max_size=80),
    WHITESPACE,
    st.builds(lambda w, n: w * n, WORDS | st.just("good,"), st.integers(20, 400)),
    st.text(
        alphabet=st.sampled_from(
            "\u0130I\u0131i\u03a3\u03c3\u03c2\u1e9e\u00df\u01c5\ufb01\u0307A,. "
        ),
        max_size=40,
    ),
)

#: branches aiweb does not train but the explainer accepts: a binary, l2-normalized,
#: float64 hashed count with l1-normalized TF-IDF; ``char_wb`` 1-3-grams l1-normalized,
#: sublinear tf without idf; integer vocabulary counts, unsmoothed idf and no norm
ODD_BRANCHES = [
    (
        "word",
        make_pipeline(
            HashingVectorizer(
                n_features=2**12, alternate_sign=False, binary=True, dtype=np.float64
            ),
            TfidfTransformer(norm="l1"),
        ),
    ),
    (
        "char",
        make_pipeline(
            HashingVectorizer(
                analyzer="char_wb",
                ngram_range=(1, 3),
                n_features=2**10,
                alternate_sign=False,
                norm="l1",
                dtype=np.float32,
            ),
            TfidfTransformer(use_idf=False, sublinear_tf=True),
        ),
    ),
    (
        "vocabulary",
        make_pipeline(
            CountVectorizer(ngram_range=(1, 2)), TfidfTransformer(norm=None, smooth_idf=False)
        ),
    ),
]


def word_index(text: str) -> np.ndarray:
    index = np.full(len(text), -1, dtype=np.int64)
    for k, (a, b) in enumerate(words_of(text)):
        index[a:b] = k
    return index


@pytest.mark.parametrize("name", [p[0] for p in PIPELINES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_linear_is_exact_for_every_class(
    models: dict[str, TextClassifier], name: str, text: str
) -> None:
    model = models[name]
    explainer = LinearTextExplainer(model)
    # the positional analysis makes exactly scikit-learn's n-grams
    for block in explainer.blocks:
        assert explainer.analyze(block, text, word_index(text)) == (
            block.vectorizer.build_analyzer()(text)
        )
    proba = model.predict_proba([text])[0]
    decision = np.atleast_1d(model.pipeline.decision_function([text])[0])
    # the logits of the pipeline's own TF-IDF row, in float64
    reference = explainer.logits(sparse.hstack(explainer.features([text])).tocsr())[0]
    for target in range(len(model.labels)):
        [w] = explainer.explain([text], lambda _row, t=target: t)
        assert w.target == target
        assert w.base_value + w.weights.sum() == pytest.approx(w.logits[target], abs=1e-6)
        assert w.base_value + w.weights.sum() == pytest.approx(reference[target], abs=1e-6)
        # the model's probabilities (the same to the bit on real text; a row rebuilt from
        # the n-grams may differ from the pipeline's in the last float32 bit)
        np.testing.assert_allclose(w.proba, proba, rtol=0, atol=1e-6)
        if len(decision) == 1:  # binary: the log-odds of the second class
            expected = decision[0] if target == 1 else -decision[0]
        else:
            expected = decision[target]
        assert w.logits[target] == pytest.approx(expected, abs=1e-5)  # sklearn: float32
        assert len(w.weights) == len(w.words)


@pytest.mark.parametrize("name", [*(p[0] for p in PIPELINES), "odd-options"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(ROW_TEXTS, min_size=1, max_size=3))
@example(texts=[""])
@example(texts=[" \t\n\u3000"])
@example(texts=["İ", "İİ İstanbul", "xİy"])
@example(texts=["x" * 5000, "good," * 300])
def test_rows_are_the_pipelines_transform(
    models: dict[str, TextClassifier], name: str, texts: list[str]
) -> None:
    """The row the explainer builds from its own n-grams is the pipeline's TF-IDF row:
    the same columns, the same dtype, the same values to float32 rounding."""
    model = models[name]
    explainer = LinearTextExplainer(model)
    fast = explainer.rows(texts)
    slow = sparse.hstack(explainer.features(texts)).tocsr()
    assert fast.shape == slow.shape
    assert fast.dtype == slow.dtype
    np.testing.assert_array_equal(fast.indptr, slow.indptr)
    np.testing.assert_array_equal(fast.indices, slow.indices)
    np.testing.assert_allclose(fast.data, slow.data, rtol=1e-6, atol=1e-7)
    # and the explanation adds up to the logit of the pipeline's row
    reference = explainer.logits(slow)
    for w, logits in zip(explainer.explain(texts, lambda _row: 0), reference, strict=True):
        assert w.base_value + w.weights.sum() == pytest.approx(logits[0], abs=1e-6)
    np.testing.assert_allclose(
        np.array([w.proba for w in explainer.explain(texts, lambda _row: 0)]),
        model.predict_proba(texts),
        atol=1e-9,
    )


@settings(max_examples=80, deadline=None)
@given(text=TEXTS, top_k=st.integers(0, 12))
def test_offsets_slice_the_text_and_truncation_keeps_the_sum(
    models: dict[str, TextClassifier], text: str, top_k: int
) -> None:
    model = models["hashing-multi"]
    explainer = LinearTextExplainer(model)
    choose = _chooser(model.labels, None, None)
    [w] = explainer.explain([text], choose)
    out = _shape(text, w, explainer, model.labels, None, top_k)
    for c in out["contributions"]:
        assert text[c["start"] : c["end"]] == c["feature"]
        assert c["feature"].strip() == c["feature"] != ""
    weights = [abs(c["weight"]) for c in out["contributions"]]
    assert weights == sorted(weights, reverse=True)
    if top_k:
        assert len(out["contributions"]) <= top_k
    total = out["base_value"] + sum(c["weight"] for c in out["contributions"])
    assert total + out["omitted"]["weight"] == pytest.approx(out["logit"], abs=1e-6)
    assert out["label"] == out["target"]  # the default target is the answered class
    assert out["method"] == "linear"
    assert out["exact"] is True
    assert out["scores"][out["label"]] == max(out["scores"].values())


def test_example_sentence(models: dict[str, TextClassifier]) -> None:
    text = "not a good movie, but the acting was superb"
    model = models["hashing-binary"]
    explainer = LinearTextExplainer(model)
    [w] = explainer.explain([text], lambda _row: 1)
    out = _shape(text, w, explainer, model.labels, None, 0)
    features = {c["feature"] for c in out["contributions"]}
    assert {"not", "good", "movie", ",", "acting", "superb"} <= features
    assert out["omitted"] == {"count": 0, "weight": 0.0}
    total = out["base_value"] + sum(c["weight"] for c in out["contributions"])
    assert total == pytest.approx(out["logit"], abs=1e-9)
    # the same word twice: two entries, each with its own offsets
    [w] = explainer.explain(["good good"], lambda _row: 1)
    assert w.words == [(0, 4), (5, 9)]
    assert w.weights[0] == pytest.approx(w.weights[1])


def test_target_and_out_of_scope(models: dict[str, TextClassifier]) -> None:
    model = models["hashing-multi"]
    explainer = LinearTextExplainer(model)
    labels = model.labels
    text = "what is the weather"
    with pytest.raises(InvalidInputError, match="not a class"):
        _chooser(labels, "nope", None)
    with pytest.raises(InvalidInputError, match="out-of-scope"):
        _chooser(labels, "oos", Rejection("oos", 0.5))
    # a threshold above any probability: the answer is out of scope, the explained class
    # is still the most probable one, and the answer says why
    rejection = Rejection("oos", 0.999)
    [w] = explainer.explain([text], _chooser(labels, None, rejection))
    out = _shape(text, w, explainer, labels, rejection, 10)
    assert out["label"] == "oos"
    assert out["target"] == labels[int(np.argmax(w.proba))]
    assert out["out_of_scope"] == {
        "label": "oos",
        "threshold": 0.999,
        "top_score": max(out["scores"].values()),
        "below_threshold": True,
    }
    [w] = explainer.explain([text], _chooser(labels, "positive", None))
    out = _shape(text, w, explainer, labels, None, 3)
    assert out["target"] == "positive"
    assert out["out_of_scope"] is None


def test_other_pipelines_are_refused() -> None:
    pipeline = make_pipeline(
        FunctionTransformer(lambda texts: np.array([[len(t)] for t in texts])),
        LogisticRegression(),
    ).fit(["a", "bb", "ccc", "dddd"], ["x", "x", "y", "y"])
    with pytest.raises(InvalidInputError, match="cannot be explained"):
        explainer_for(TextClassifier(pipeline))
    with pytest.raises(InvalidInputError, match="cannot be explained"):
        explainer_for(object())
    # the aiweb shape, with another weighting than TF-IDF
    scaled = Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [
                        (
                            "word",
                            make_pipeline(HashingVectorizer(alternate_sign=False), MaxAbsScaler()),
                        )
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(BINARY_TEXTS, BINARY_LABELS)
    with pytest.raises(InvalidInputError, match="not a fitted TF-IDF"):
        explainer_for(TextClassifier(scaled))


# -- occlusion ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedding_model() -> EmbeddingTextClassifier:
    embedder = tiny_embedder()
    texts, labels = MULTI_TEXTS * 2, MULTI_LABELS * 2
    clf = LogisticRegression(C=10.0, max_iter=500).fit(embedder.embed(texts).vectors, labels)
    return EmbeddingTextClassifier(clf, embedder, EmbeddingRef("tiny", 1, "0" * 64, 16))


def test_occlusion_batch_equals_one_by_one(embedding_model: EmbeddingTextClassifier) -> None:
    explainer = explainer_for(embedding_model)
    assert isinstance(explainer, OcclusionExplainer)
    texts = ["not a good movie, but the acting was superb", "is it sunny today?", "", "good"]
    explained = explainer.explain(texts, lambda _row: 2)
    for text, w in zip(texts, explained, strict=True):
        assert w.words == words_of(text)
        _, full = explainer.logits([text])
        assert w.logits[2] == pytest.approx(full[0, 2], abs=1e-5)
        for (a, b), weight in zip(w.words, w.weights, strict=True):
            _, without = explainer.logits([text[:a] + text[b:]])
            assert weight == pytest.approx(full[0, 2] - without[0, 2], abs=1e-5)
        ends = [0] + [b for _, b in w.words]
        starts = [a for a, _ in w.words] + [len(text)]
        kept = "".join(text[b:a] for b, a in zip(ends, starts, strict=True))
        _, base = explainer.logits([kept])
        assert w.base_value == pytest.approx(base[0, 2], abs=1e-5)
    # the probabilities are the model's
    np.testing.assert_allclose(
        explained[0].proba, embedding_model.predict_proba([texts[0]])[0], atol=1e-5
    )


def test_occlusion_scores_at_most_64_words(embedding_model: EmbeddingTextClassifier) -> None:
    explainer = explainer_for(embedding_model)
    text = " ".join(["good"] * 70 + ["!"] * 5)
    [w] = explainer.explain([text], lambda _row: 0)
    assert len(w.words) == MAX_OCCLUSION_WORDS
    assert w.skipped == 75 - MAX_OCCLUSION_WORDS
    out = _shape(text, w, explainer, embedding_model.labels, None, 5)
    assert out["method"] == "occlusion"
    assert out["exact"] is False
    assert out["skipped_words"] == 11
    assert len(out["contributions"]) <= 5
    for c in out["contributions"]:
        assert text[c["start"] : c["end"]] == c["feature"]


def test_occlusion_embeds_everything_in_one_batch(
    embedding_model: EmbeddingTextClassifier,
) -> None:
    calls: list[int] = []
    embedder = embedding_model.embedder
    original = embedder.embed

    def counting(texts: list[str]):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts)

    embedder.embed = counting  # type: ignore[method-assign]
    try:
        explainer_for(embedding_model).explain(["a good film", "not boring at all"], lambda r: 0)
    finally:
        del embedder.embed
    assert calls == [(1 + 3 + 1) + (1 + 4 + 1)]  # text, each word out, all out


def test_a_model_served_by_onnxruntime_is_explained_by_its_sklearn_pipeline(
    models: dict[str, TextClassifier],
) -> None:
    from aiweb.classification.onnx_export import DualRuntime, OnnxTextClassifier, export_onnx

    model = models["tfidf-binary"]
    data, check = export_onnx(model, BINARY_TEXTS)
    if data is None:
        pytest.skip(f"no ONNX export here: {check}")
    served = DualRuntime(model, OnnxTextClassifier(data, model.labels), None)
    explainer = explainer_for(served)
    assert isinstance(explainer, LinearTextExplainer)
    assert explainer.clf is model.pipeline.steps[-1][1]
