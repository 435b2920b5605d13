"""The playground's explanation view (``views.explanation_view``): the text cut into
segments that cover it exactly, tint classes by weight bucket, bar widths, and the words
with no weight — against hand-computed values."""

from __future__ import annotations

from typing import Any

from aiweb.dashboard import views

TEXT = "not a good movie, but superb"


def explanation(contributions: list[tuple[int, int, float]], **extra: Any) -> dict[str, Any]:
    return {
        "label": "positive",
        "scores": {"negative": 0.3, "positive": 0.7},
        "target": "positive",
        "method": "linear",
        "exact": True,
        "base_value": 0.1,
        "contributions": [
            {"feature": TEXT[a:b], "start": a, "end": b, "weight": w} for a, b, w in contributions
        ],
        "omitted": {"count": 0, "weight": 0.0},
        "logit": 0.1 + sum(w for _, _, w in contributions),
        "skipped_words": 0,
        "out_of_scope": None,
        **extra,
    }


def test_segments_cover_the_text_and_tint_by_share_of_the_largest_weight() -> None:
    # "superb" +2.0 (largest), "not" -1.0 (half: step 2 of 4), "good" +0.1 (step 1),
    # "," -0.6 (0.3 of the largest: step 2); "a", "movie", "but" carry no weight
    e = explanation([(22, 28, 2.0), (0, 3, -1.0), (6, 10, 0.1), (16, 17, -0.6)])
    view = views.explanation_view(TEXT, e)
    assert "".join(s["text"] for s in view["segments"]) == TEXT
    tinted = [(s["text"], s["tint"]) for s in view["segments"] if s["weight"] is not None]
    assert tinted == [
        ("not", "tint-neg-2"),
        ("good", "tint-pos-1"),
        (",", "tint-neg-2"),
        ("superb", "tint-pos-4"),
    ]
    assert all(s["tint"] == "" for s in view["segments"] if s["weight"] is None)
    assert [(b["feature"], b["sign"], b["width"]) for b in view["bars"]] == [
        ("superb", "pos", "w-20"),
        ("not", "neg", "w-10"),
        (",", "neg", "w-6"),
        ("good", "pos", "w-1"),
    ]
    assert (view["words"], view["weighted"]) == (7, 4)  # not a good movie , but superb
    assert view["exact"] is True
    assert view["labels"] == ["negative", "positive"]


def test_bars_are_the_top_weights_and_no_weight_means_no_tint() -> None:
    words = [(0, 3), (4, 5), (6, 10), (11, 16), (16, 17), (18, 21), (22, 28)]
    e = explanation([(a, b, (k + 1) * (-1) ** k) for k, (a, b) in enumerate(words)])
    view = views.explanation_view(TEXT, e, top=3)
    assert [b["feature"] for b in view["bars"]] == ["superb", "but", ","]
    empty = views.explanation_view(TEXT, explanation([]))
    assert empty["bars"] == []
    assert empty["weighted"] == 0
    assert [s["text"] for s in empty["segments"]] == [TEXT]


def test_occlusion_answers_keep_their_approximation_and_skipped_words() -> None:
    oos = {"label": "oos", "threshold": 0.5, "top_score": 0.4, "below_threshold": True}
    e = explanation(
        [(0, 3, 0.5)], method="occlusion", exact=False, skipped_words=3, out_of_scope=oos
    )
    view = views.explanation_view(TEXT, e)
    assert (view["method"], view["exact"], view["skipped_words"]) == ("occlusion", False, 3)
    assert view["out_of_scope"] == oos
