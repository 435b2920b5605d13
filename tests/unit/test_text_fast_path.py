"""The serving path of a text classifier (TF-IDF weighting and logistic regression run
without scikit-learn's input checks) gives the very array ``pipeline.predict_proba``
gives, on generated texts, for binary and multi-class models, hashed and vocabulary
features, every TF-IDF option aiweb trains and the ones it does not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from aiweb.classification.model import TextClassifier, linear_proba, tfidf_transform
from aiweb.classification.trainer import TrainParams, fit_text_classifier

TEXTS = [
    "a wonderful, moving film",
    "brilliant and funny, a joy",
    "the best movie of the year",
    "warm, witty and wise",
    "terrible and boring",
    "a dull lifeless mess",
    "awful acting and a stupid plot",
    "a waste of time",
    "when does my card arrive?",
    "I lost my card yesterday",
    "how do I change my PIN",
    "what is the exchange rate",
]
BINARY = ["positive"] * 4 + ["negative"] * 4 + ["positive", "negative"] * 2
THREE = ["positive"] * 4 + ["negative"] * 4 + ["bank"] * 4

# any text a request may carry: letters of every script, digits, punctuation, spaces,
# emoji, NUL-free (the edge refuses NUL), lone surrogates excluded (refused as well)
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=300,
)


def _models() -> dict[str, TextClassifier]:
    models = {}
    for labels_name, labels in (("binary", BINARY), ("three", THREE)):
        for vectorizer in ("hashing", "tfidf"):
            models[f"{labels_name}-{vectorizer}"] = fit_text_classifier(
                TEXTS * 2, labels * 2, TrainParams(vectorizer=vectorizer)
            )
    # TF-IDF options aiweb's trainer does not use: integer counts, l1, no idf, no norm
    for norm, use_idf, sublinear in (("l1", True, False), (None, False, True)):
        branch = Pipeline(
            [
                ("counts", CountVectorizer(ngram_range=(1, 2))),
                ("tfidf", TfidfTransformer(norm=norm, use_idf=use_idf, sublinear_tf=sublinear)),
            ]
        )
        pipeline = Pipeline(
            [("features", FeatureUnion([("word", branch)])), ("clf", LogisticRegression())]
        )
        models[f"counts-{norm}-{use_idf}"] = TextClassifier(pipeline.fit(TEXTS * 2, THREE * 2))
    return models


MODELS = _models()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_fast_path_is_taken(name: str) -> None:
    assert MODELS[name]._fast


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(text, min_size=1, max_size=6))
def test_same_array_as_the_pipeline(name: str, texts: list[str]) -> None:
    model = MODELS[name]
    np.testing.assert_array_equal(model.predict_proba(texts), model.pipeline.predict_proba(texts))


def test_each_step_equals_scikit_learns() -> None:
    model = MODELS["three-hashing"]
    texts = [*TEXTS, "", "¿qué tal? 🙂", "x" * 5000]
    for vec, tfidf in model._parts:
        counts = vec.transform(texts)
        ours, theirs = tfidf_transform(tfidf, counts), tfidf.transform(counts)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    x = model.pipeline.steps[0][1].transform(texts)
    np.testing.assert_array_equal(linear_proba(model._clf, x), model._clf.predict_proba(x))


def test_a_subclass_takes_the_checked_path() -> None:
    class Weighted(TfidfTransformer):
        def transform(self, X, copy=True):  # type: ignore[no-untyped-def]
            return super().transform(X, copy=copy) * 2.0

    branch = Pipeline([("counts", CountVectorizer()), ("tfidf", Weighted())])
    pipeline = Pipeline(
        [("features", FeatureUnion([("word", branch)])), ("clf", LogisticRegression())]
    )
    model = TextClassifier(pipeline.fit(TEXTS * 2, BINARY * 2))
    assert not model._fast
    np.testing.assert_array_equal(model.predict_proba(TEXTS), pipeline.predict_proba(TEXTS))
