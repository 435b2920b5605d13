"""aiweb.entities.evaluation against seqeval (default mode): on random tag sequences
(hypothesis), on the real WNUT17 dev file, and the same numbers from character spans."""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from aiweb.config import Settings
from aiweb.entities.data import Span, char_spans, decode_tags, from_tags, load_dataset, to_tags
from aiweb.entities.evaluation import (
    EntityReport,
    Scores,
    evaluate_overlap,
    evaluate_spans,
    evaluate_tags,
    format_report,
)
from aiweb.errors import InvalidInputError
from conftest import data_home

TYPES = ("PER", "LOC", "creative-work")
tag = st.one_of(
    st.just("O"),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BIES"), st.sampled_from(TYPES)),
)


@st.composite
def true_and_predicted(draw: st.DrawFn) -> tuple[list[list[str]], list[list[str]]]:
    lengths = draw(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=6))
    y_true = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    y_pred = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    return y_true, y_pred


def seqeval_numbers(y_true: list[list[str]], y_pred: list[list[str]]) -> dict[str, object]:
    """seqeval's per-type and averaged (p, r, f, support) with zero_division=0 (the value
    its default "warn" gives, without the warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval would warn about a tag it does not know
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
        averages = {
            average: precision_recall_fscore_support(
                y_true, y_pred, average=average, zero_division=0
            )[:3]
            for average in ("micro", "macro", "weighted")
        }
    return {"per_type": (list(p), list(r), list(f), list(s)), **averages}


def assert_same_as_seqeval(
    report: EntityReport, y_true: list[list[str]], y_pred: list[list[str]]
) -> None:
    expected = seqeval_numbers(y_true, y_pred)
    rows = list(report.per_type.values())
    p, r, f, s = expected["per_type"]  # type: ignore[misc]
    assert [x.precision for x in rows] == pytest.approx(p, abs=1e-12)
    assert [x.recall for x in rows] == pytest.approx(r, abs=1e-12)
    assert [x.f1 for x in rows] == pytest.approx(f, abs=1e-12)
    assert [x.support for x in rows] == list(s)
    for average in ("micro", "macro", "weighted"):
        ours: Scores = getattr(report, average)
        assert (ours.precision, ours.recall, ours.f1) == pytest.approx(
            expected[average], abs=1e-12
        ), average
    assert format_report(report) == classification_report(y_true, y_pred, digits=4, zero_division=0)


@settings(max_examples=300, deadline=None)
@given(true_and_predicted())
def test_same_as_seqeval_on_random_tags(
    sample: tuple[list[list[str]], list[list[str]]],
) -> None:
    y_true, y_pred = sample
    report = evaluate_tags(y_true, y_pred)
    if not report.per_type:  # no entity anywhere: seqeval's macro average is NaN
        assert report.micro == Scores(0.0, 0.0, 0.0, 0, 0, 0)
        assert report.macro.f1 == 0.0
        return
    assert_same_as_seqeval(report, y_true, y_pred)
    # the same from character spans of the same sentences
    spans_true, spans_pred = [], []
    for t, p in zip(y_true, y_pred, strict=True):
        offsets = [(2 * i, 2 * i + 1) for i in range(len(t))]  # one-character tokens
        spans_true.append(char_spans(offsets, decode_tags(t)))
        spans_pred.append(char_spans(offsets, decode_tags(p)))
    assert evaluate_spans(spans_true, spans_pred) == report


def test_counts_and_averages_by_hand() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    y_pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-LOC", "B-LOC"]]
    report = evaluate_tags(y_true, y_pred)
    assert report.per_type["PER"] == Scores(0.5, 1.0, 2 / 3, 1, 2, 1)
    assert report.per_type["LOC"] == Scores(0.5, 0.5, 0.5, 2, 2, 1)
    assert report.micro == Scores(0.5, 2 / 3, pytest.approx(4 / 7), 3, 4, 2)  # type: ignore[arg-type]
    assert report.macro.f1 == pytest.approx((2 / 3 + 0.5) / 2)
    assert report.weighted.recall == pytest.approx((1.0 * 1 + 0.5 * 2) / 3)
    data = report.to_dict()
    assert data["micro"]["correct"] == 2
    assert set(data) == {"per_type", "micro", "macro", "weighted"}
    assert data["per_type"]["LOC"]["support"] == 2
    assert_same_as_seqeval(report, y_true, y_pred)


def test_an_entity_ends_at_the_sentence_end() -> None:
    # I-PER opening sentence 2 is a new entity, not the continuation of sentence 1's
    y_true = [["O", "B-PER"], ["I-PER", "O"]]
    report = evaluate_tags(y_true, y_true)
    assert report.micro.support == 2
    assert report.micro.f1 == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([["O"]], [["O"], ["O"]], "y_true has 1 sentences but y_pred has 2"),
        ([["O", "O"]], [["O"]], "sentence 0: 2 true tags but 1 predicted"),
        ([["O"]], [["B_PER"]], "y_pred sentence 0: tag 0: tag 'B_PER' is not an IOB tag"),
        (["O"], ["O"], "sentence 0: expected a sequence of tags, found a string"),
        ("O", "O", "y_true must be a list of sequences"),
    ],
)
def test_bad_tag_input(y_true: object, y_pred: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        evaluate_tags(y_true, y_pred)  # type: ignore[arg-type]


def test_bad_span_input() -> None:
    with pytest.raises(InvalidInputError, match="y_true has 1 texts but y_pred has 0"):
        evaluate_spans([[Span(0, 1, "X")]], [])
    with pytest.raises(InvalidInputError, match="y_pred text 0: expected Span items"):
        evaluate_spans([[]], [[(0, 1, "X")]])  # type: ignore[list-item]


def test_overlapping_span_layers_are_scored_per_type() -> None:
    gold = [[Span(0, 23, "Skill"), Span(0, 10, "Knowledge")]]
    report = evaluate_spans(gold, [[Span(0, 10, "Knowledge"), Span(0, 5, "Skill")]])
    assert report.per_type["Knowledge"].f1 == 1.0
    assert report.per_type["Skill"].f1 == 0.0
    assert report.micro.correct == 1


def test_overlap_counts_by_hand() -> None:
    # text 0: gold [0,10) and [20,30); predicted [5,8) (inside the first), [8,25) (over
    # both), [40,50) (nothing) and [5,8) again (a set: once). text 1: gold [0,4) of
    # another type than the prediction, which therefore does not overlap it.
    gold = [[Span(0, 10, "Skill"), Span(20, 30, "Skill")], [Span(0, 4, "Skill")]]
    predicted = [
        [Span(5, 8, "Skill"), Span(8, 25, "Skill"), Span(40, 50, "Skill"), Span(5, 8, "Skill")],
        [Span(0, 4, "Knowledge")],
    ]
    scores = evaluate_overlap(gold, predicted)
    assert (scores.support, scores.predicted, scores.correct) == (3, 4, 2)
    assert scores.precision == pytest.approx(2 / 4)  # [5,8) and [8,25) overlap gold
    assert scores.recall == pytest.approx(2 / 3)  # both gold spans of text 0 are found
    assert scores.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # touching is not overlapping: [10, 20) lies between the two gold spans
    assert evaluate_overlap(gold[:1], [[Span(10, 20, "Skill")]]).correct == 0
    # exact matches are overlaps: never below the exact scores
    exact = evaluate_spans(gold, predicted).micro
    assert scores.precision >= exact.precision
    assert scores.recall >= exact.recall


def test_overlap_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="y_true has 1 texts but y_pred has 0"):
        evaluate_overlap([[Span(0, 1, "X")]], [])
    with pytest.raises(InvalidInputError, match="y_pred text 0: expected Span items"):
        evaluate_overlap([[]], [[(0, 1, "X")]])  # type: ignore[list-item]
    empty = evaluate_overlap([[]], [[]])
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_report_table_layout() -> None:
    report = evaluate_tags([["B-PER", "O"]], [["B-PER", "O"]])
    table = format_report(report, digits=2)
    assert table.splitlines() == [
        "              precision    recall  f1-score   support",
        "",
        "         PER       1.00      1.00      1.00         1",
        "",
        "   micro avg       1.00      1.00      1.00         1",
        "   macro avg       1.00      1.00      1.00         1",
        "weighted avg       1.00      1.00      1.00         1",
    ]


# --------------------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = data_home()
    if home is None or not (home / "wnut17").is_dir():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return Settings(home=tmp_path_factory.mktemp("home"), data_home=home)


def perturb(tags: list[str], types: tuple[str, ...], rng: random.Random) -> list[str]:
    """A plausible imperfect tagger: drops, retypes and cuts entities, adds stray ones."""
    out = []
    for t in tags:
        roll = rng.random()
        if roll < 0.08:
            out.append("O")
        elif roll < 0.12:
            out.append(f"{rng.choice('BI')}-{rng.choice(types)}")
        else:
            out.append(t)
    return out


def test_same_as_seqeval_on_wnut17_dev(shared: Settings) -> None:
    data = load_dataset("wnut17", shared, progress=False)
    assert data.dev is not None
    y_true = [to_tags(example)[1] for example in data.dev]
    rng = random.Random(17)
    y_pred = [perturb(tags, data.labels, rng) for tags in y_true]
    report = evaluate_tags(y_true, y_pred)
    assert list(report.per_type) == list(data.labels)
    assert report.micro.support == 836  # the entities of emerging.dev.conll
    assert 0.3 < report.micro.f1 < 0.9
    assert_same_as_seqeval(report, y_true, y_pred)
    # from character spans: the gold spans of the examples, the predicted ones decoded
    predicted = [
        char_spans(example.token_offsets or (), decode_tags(tags))
        for example, tags in zip(data.dev, y_pred, strict=True)
    ]
    assert evaluate_spans([e.spans for e in data.dev], predicted) == report
    # gold against itself
    perfect = evaluate_tags(y_true, y_true)
    assert (perfect.micro.f1, perfect.macro.f1) == (1.0, 1.0)
    assert from_tags(data.dev[0].tokens(), y_true[0]) == data.dev[0]
