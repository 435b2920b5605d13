"""Feedback on objects found in an input (:mod:`aiweb.monitoring.feedback`): boxes
matched at IoU >= 0.5 (PASCAL VOC), the label of a list of boxes, the character error
rate of text read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiweb.monitoring.feedback import Box, box_counts, box_iou, boxes_label, cer


def face(x: float, y: float, side: float = 10, label: str = "face") -> Box:
    return Box(label, x, y, side, side)


def test_iou_of_known_overlaps() -> None:
    assert box_iou(face(0, 0), face(0, 0)) == 1.0
    assert box_iou(face(0, 0), face(20, 20)) == 0.0
    assert box_iou(face(0, 0), face(5, 0)) == pytest.approx(50 / 150)
    assert box_iou(Box("f", 0, 0, 0, 0), Box("f", 0, 0, 0, 0)) == 0.0


def test_counts_match_by_label_and_overlap() -> None:
    predicted = [face(0, 0), face(100, 100), face(0, 0, label="person")]
    truth = [face(1, 1), face(50, 50)]
    assert box_counts(predicted, truth) == {
        "true_positives": 1,  # (0,0) ~ (1,1): IoU 0.68
        "false_positives": 2,  # (100,100) overlaps nothing; the person is not a face
        "false_negatives": 1,  # (50,50) was missed
    }
    # just under and over the threshold: IoU of a 10-box shifted by 4 is 60/140 < 0.5
    assert box_counts([face(4, 0)], [face(0, 0)])["true_positives"] == 0
    assert box_counts([face(3, 0)], [face(0, 0)])["true_positives"] == 1  # 70/130
    assert box_counts([], []) == {"true_positives": 0, "false_positives": 0, "false_negatives": 0}


def test_a_true_box_is_matched_once() -> None:
    counts = box_counts([face(0, 0), face(0, 0)], [face(0, 0)])
    assert counts == {"true_positives": 1, "false_positives": 1, "false_negatives": 0}


def test_the_label_of_a_list_of_boxes() -> None:
    assert boxes_label([]) == "none"
    assert boxes_label(["person", "face", "face"]) == "face"
    assert boxes_label(["person", "face"]) == "person"  # a tie: the first listed


def test_character_error_rate() -> None:
    assert cer("kitten", "sitting") == pytest.approx(3 / 7)
    assert cer("same", "same") == 0.0
    assert cer("", "") == 0.0
    assert cer("x", "") == 1.0
    assert cer("", "abc") == 1.0
    assert cer("a" * 6000, "a") is None


@given(st.text(max_size=30), st.text(max_size=30))
def test_cer_is_an_edit_distance(a: str, b: str) -> None:
    rate = cer(a, b)
    assert rate is not None
    if b:
        distance = round(rate * len(b))
        assert abs(len(a) - len(b)) <= distance <= max(len(a), len(b))
        assert (distance == 0) == (a == b)
