from __future__ import annotations

from collections import Counter

import pytest

from aiweb.classification.model import TextClassifier, UnsafeArtifactError
from aiweb.classification.trainer import (
    TrainParams,
    deduplicate,
    fit_text_classifier,
    split_train_test,
)
from aiweb.errors import InvalidInputError


def test_deduplicate_keeps_majority_label_and_counts_removed() -> None:
    texts = ["a", "b ", "a", "a", "b", "c"]
    labels = ["x", "y", "z", "z", "y", "x"]
    out_t, out_l, removed = deduplicate(texts, labels)
    assert out_t == ["a", "b", "c"]
    assert out_l == ["z", "y", "x"]
    assert removed == 3


def test_split_is_deduplicated_and_stratified() -> None:
    texts = [f"ham {i % 150}" for i in range(400)] + [f"spam {i % 40}" for i in range(100)]
    labels = ["ham"] * 400 + ["spam"] * 100
    tr_t, _, te_t, te_l, info = split_train_test(texts, labels, test_size=0.2, seed=0)
    assert not set(tr_t) & set(te_t), "a text is on both sides of the split"
    assert info["duplicates_removed"] == 500 - 190
    assert len(tr_t) + len(te_t) == 190
    test_share = Counter(te_l)
    assert test_share["spam"] == 8  # 20% of 40 distinct spam texts
    assert test_share["ham"] == 30


def test_split_refuses_classes_too_small_to_hold_out() -> None:
    with pytest.raises(InvalidInputError, match="fewer than 2"):
        split_train_test(["a", "b", "c"], ["x", "x", "y"], test_size=0.3)


@pytest.mark.parametrize("size", [0.0, 1.0, -0.1])
def test_split_refuses_bad_test_size(size: float) -> None:
    with pytest.raises(InvalidInputError, match="test_size"):
        split_train_test(["a", "b"], ["x", "y"], test_size=size)


def test_fit_needs_two_classes_and_matching_lengths() -> None:
    with pytest.raises(InvalidInputError, match="two distinct"):
        fit_text_classifier(["a", "b"], ["x", "x"])
    with pytest.raises(InvalidInputError, match="2 texts but 1 labels"):
        fit_text_classifier(["a", "b"], ["x"])


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="C"):
        TrainParams(C=0)
    with pytest.raises(ValueError, match="extra"):
        TrainParams(nonsense=1)  # type: ignore[call-arg]


def test_fitted_model_learns_and_reports_progress(tiny_model: TextClassifier) -> None:
    stages: list[tuple[str, float]] = []
    texts = ["great fun", "loved it", "boring mess", "hated it"] * 5
    labels = ["positive", "positive", "negative", "negative"] * 5
    model = fit_text_classifier(texts, labels, progress=lambda s, f: stages.append((s, f)))
    assert model.labels == ["negative", "positive"]
    proba = model.predict_proba(["loved it, great fun", "a boring mess, hated it"])
    assert proba.shape == (2, 2)
    assert proba[0, 1] > 0.5 > proba[1, 1]
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert model.predict_proba([]).shape == (0, 2)


def test_artifact_round_trip_gives_identical_scores(tiny_model: TextClassifier) -> None:
    texts = ["a wonderful film", "a waste of time", ""]
    again = TextClassifier.from_bytes(tiny_model.to_bytes())
    assert again.labels == tiny_model.labels
    assert (again.predict_proba(texts) == tiny_model.predict_proba(texts)).all()


def test_loading_refuses_garbage_and_untrusted_types() -> None:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UnsafeArtifactError, match="not a valid skops"):
        TextClassifier.from_bytes(b"\x80\x04 definitely not a skops zip")
    evil = sio.dumps(FunctionTransformer(func=os.system))
    with pytest.raises(UnsafeArtifactError, match="not trusted"):
        TextClassifier.from_bytes(evil)
