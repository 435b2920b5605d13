"""The vision task's pure parts: how two versions' answers are compared in a rollout,
what is logged of an answer, the manifest, and how the predict route picks a drawing
from ``Accept``."""

from __future__ import annotations

import pytest

from aiweb.api.predict import _wanted
from aiweb.errors import UnsafeArtifactError
from aiweb.monitoring.prediction_log import text_sha256 as text_digest
from aiweb.vision.model import Manifest, combined_sha256
from aiweb.vision.service import answer_label, logged_objects
from aiweb.vision.task import compare_answers


def det(x: int, label: str = "face", side: int = 10) -> dict[str, object]:
    return {"label": label, "score": 0.9, "box": {"x": x, "y": 0, "width": side, "height": side}}


def test_rollout_comparison_of_detections_and_text() -> None:
    assert compare_answers({"detections": [det(0)]}, {"detections": [det(1)]}) == (1, 1)
    assert compare_answers({"detections": [det(0)]}, {"detections": [det(6)]}) == (1, 0)
    assert compare_answers({"detections": [det(0)]}, {"detections": [det(0, "person")]}) == (1, 0)
    assert compare_answers({"detections": []}, {"detections": []}) == (1, 1)
    assert compare_answers({"detections": [det(0)]}, {"detections": []}) == (1, 0)
    assert compare_answers({"text": "a b"}, {"text": "a b"}) == (1, 1)
    assert compare_answers({"text": "a b"}, {"text": "a c"}) == (1, 0)
    assert compare_answers({"text": "a"}, {"detections": []}) == (0, 0)


def test_what_is_logged_of_an_answer() -> None:
    answer = {"detections": [det(0), det(20, "person"), det(40)]}
    assert answer_label(answer) == ("face", {"face": 2.0, "person": 1.0})
    assert answer_label({"detections": []}) == ("none", {})
    assert logged_objects(answer, log_text=True) == {
        "boxes": [["face", 0, 0, 10, 10], ["person", 20, 0, 10, 10], ["face", 40, 0, 10, 10]]
    }
    read = {"lines": [{"text": "hi"}], "text": "hi"}
    assert answer_label(read) == ("text", {"lines": 1.0})
    assert answer_label({"lines": [], "text": ""}) == ("none", {"lines": 0.0})
    assert logged_objects(read, log_text=False) == {"text_sha256": text_digest("hi")}
    assert logged_objects(read, log_text=True) == {"text_sha256": text_digest("hi"), "text": "hi"}


def test_manifest_round_trip_and_refusals() -> None:
    manifest = Manifest("faces", {"min_neighbors": 5})
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest
    for bad in (b"not json", b"[]", b'{"kind": "cats"}', b'{"kind": "ocr", "params": [1]}'):
        with pytest.raises(UnsafeArtifactError):
            Manifest.from_bytes(bad)


def test_combined_sha256_is_order_free() -> None:
    assert combined_sha256({"a": "1", "b": "2"}) == combined_sha256({"b": "2", "a": "1"})
    assert combined_sha256({"a": "1"}) != combined_sha256({"a": "2"})


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, None),
        ("", None),
        ("image/png", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("image/png, application/json", "image/png"),
        ("application/json, image/png;q=0.9", None),
        ("image/png;q=0.5, */*;q=0.1", "image/png"),
        ("image/png;q=0", None),
        ("image/png;q=abc", None),
        ("*/*", None),
        ("image/*", None),
        ("text/html", None),
    ],
)
def test_accept_picks_a_drawing_only_by_name(accept: str | None, wanted: str | None) -> None:
    assert _wanted(accept, ("image/png",)) == wanted
    assert _wanted(accept, ()) is None
