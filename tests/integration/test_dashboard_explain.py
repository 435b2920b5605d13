"""The playground's explanation over HTTP (no browser; the Chromium test is
``test_dashboard_explain_browser.py``): the prediction's fragment asks for the
explanation of the version it answered with, which shows the text's words tinted by
weight (CSS classes, no inline style), the top contributions as bars, and says "exact" or
"approximate"; errors are messages; the CSRF check holds; without JavaScript the whole
page renders. On every database."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import LABELS, NEGATIVE_TEXT, open_registry, register_tiny
from sklearn.linear_model import LogisticRegression

from aiweb.app import create_app
from aiweb.classification.embedding_features import ARTIFACT_FORMAT as HEAD_FORMAT
from aiweb.classification.embedding_features import EmbeddingRef, EmbeddingTextClassifier
from aiweb.config import Settings
from aiweb.embeddings.install import register_exported
from conftest import TINY_LABELS, TINY_TEXTS, create_key
from tiny_embedder import tiny_embedder, write_export

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
EXAMPLE = "not a good movie, but the acting was superb"
MARK_RE = re.compile(
    r'<mark class="word (tint-(?:pos|neg)-[1-4])" title="[^"]+" '
    r'data-weight="([^"]+)">([^<]*)</mark>'
)


def register_intent(settings: Settings, tmp_path: Path) -> None:
    """``intent``: a classifier on a tiny real ONNX embedder's vectors (occlusion)."""
    registry, engine = open_registry(settings)
    try:
        version = register_exported(
            registry, write_export(tmp_path / "export"), include_int8=False
        ).fp32
        embedder = tiny_embedder()
        clf = LogisticRegression(C=10.0, max_iter=500).fit(
            embedder.embed(TINY_TEXTS * 2).vectors, TINY_LABELS * 2
        )
        model = EmbeddingTextClassifier(clf, embedder, EmbeddingRef.of(version, embedder.dim))
        registry.register_version(
            "intent",
            "text-classification",
            artifact=model.to_bytes(),
            artifact_format=HEAD_FORMAT,
            labels=list(LABELS),
            signature={"inputs": {"type": "array", "items": {"type": "string"}}},
            lineage={"embedding_model": model.embedding.to_json()},
            evaluation={},
            alias="production",
            actor="tests",
        )
    finally:
        engine.dispose()


@pytest.fixture
def dash(settings: Settings, tiny_model_bytes: bytes, tmp_path: Path) -> Iterator[TestClient]:
    """A logged-in dashboard client; ``sentiment`` v1 (production) and v2, ``intent``."""
    key = create_key(settings, ("admin",), name="boss")
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model_bytes, alias="production", tag="one")
    register_tiny(registry, "sentiment", tiny_model_bytes, tag="two")
    engine.dispose()
    register_intent(settings, tmp_path)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        login = client.get("/login")
        token = CSRF_RE.search(login.text)
        assert token
        r = client.post(
            "/login",
            data={"csrf_token": token.group(1), "next": "/", "token": key},
            follow_redirects=False,
        )
        assert r.status_code == 303
        yield client


def csrf(client: TestClient) -> str:
    match = CSRF_RE.search(client.get("/playground").text)
    assert match
    return match.group(1)


def explain(client: TestClient, htmx: bool = True, **fields: str) -> tuple[int, str]:
    r = client.post(
        "/playground/explain",
        data={"csrf_token": csrf(client), **fields},
        headers={"HX-Request": "true"} if htmx else {},
    )
    return r.status_code, r.text


def test_the_prediction_asks_for_the_explanation_of_its_version(dash: TestClient) -> None:
    r = dash.post(
        "/playground",
        data={"model": "sentiment", "text": EXAMPLE, "csrf_token": csrf(dash)},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    form = re.search(r'<form[^>]*id="explanation"[^>]*>', r.text)
    assert form
    assert 'hx-trigger="load"' in form.group(0)
    assert 'hx-post="/playground/explain"' in form.group(0)
    assert 'name="model" value="sentiment:1"' in r.text  # the version that answered
    assert f'name="text" value="{html.escape(EXAMPLE)}"' in r.text
    assert "tint-" not in r.text  # nothing explained on the predict path


def test_linear_explanation_tints_words_and_lists_the_top_contributions(
    dash: TestClient,
) -> None:
    status, body = explain(dash, model="sentiment:1", text=EXAMPLE)
    assert status == 200
    assert "<html" not in body  # the fragment only
    assert 'data-method="linear"' in body
    assert 'data-exact="true"' in body
    assert ">exact<" in body
    assert "exactly the logit" in body
    marks = MARK_RE.findall(body)
    assert marks
    for tint, title, word in marks:
        assert word in EXAMPLE
        assert tint.startswith("tint-pos" if float(title) > 0 else "tint-neg")
    # the whole text is there, in order, word weights and all
    shown = html.unescape(
        re.sub(
            r"<[^>]+>",
            "",
            re.search(r'<p class="explained-text"[^>]*>(.*?)</p>', body, re.S).group(1),
        )
    )
    assert shown == EXAMPLE
    bars = re.findall(r'<span class="bar (pos|neg) w-(\d+)"></span>', body)
    assert 1 <= len(bars) <= 10
    assert max(int(w) for _, w in bars) == 20  # the largest weight fills its track
    assert " style=" not in body
    # another class: the weights change sign (binary: the other side's log-odds)
    answered = re.search(r"Why “(\w+)”\?", body)
    assert answered
    flip = "positive" if answered.group(1) == "negative" else "negative"
    status, other = explain(dash, model="sentiment:1", text=EXAMPLE, target=flip)
    assert status == 200
    assert f"Why “{flip}”?" in other
    first = {w: float(t) for _, t, w in marks}
    flipped = {w: float(t) for _, t, w in MARK_RE.findall(other)}
    assert flipped == pytest.approx({w: -v for w, v in first.items()}, abs=1e-9)


def test_embedding_features_say_approximate(dash: TestClient) -> None:
    status, body = explain(dash, model="intent", text=NEGATIVE_TEXT)
    assert status == 200
    assert 'data-method="occlusion"' in body
    assert 'data-exact="false"' in body
    assert ">approximate<" in body
    assert "left out" in body
    assert MARK_RE.findall(body)


def test_errors_are_messages_and_the_csrf_check_holds(dash: TestClient) -> None:
    status, body = explain(dash, model="sentiment", text=EXAMPLE, target="neutral")
    assert status == 200
    assert 'role="alert"' in body
    assert "not a class" in body
    status, body = explain(dash, model="sentiment", text="   ")
    assert status == 200
    assert "Type a text" in body
    status, body = explain(dash, model="nope", text=EXAMPLE)
    assert status == 200
    assert "no model named" in body
    status, body = explain(dash, model="sentiment:x:y", text=EXAMPLE)
    assert status == 200
    assert 'role="alert"' in body
    status, body = explain(dash, htmx=False, model="sentiment", text="x" * 10_001)
    assert status == 422
    assert "<html" in body
    assert "limit" in body
    forged = dash.post(
        "/playground/explain",
        data={"model": "sentiment", "text": EXAMPLE},
        headers={"HX-Request": "true"},
    )
    assert forged.status_code == 403
    assert "tint-" not in forged.text


def test_without_javascript_the_whole_page_renders(dash: TestClient) -> None:
    status, body = explain(dash, htmx=False, model="sentiment:2", text=EXAMPLE)
    assert status == 200
    assert "<html" in body
    assert 'id="playground-form"' in body
    assert 'data-method="linear"' in body
    assert "sentiment v2" in body
