"""Semantic search over an aiweb collection, in Flask."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, render_template_string, request

from aiweb.client import AiwebError, Client

PAGE = """<!doctype html>
<title>Search</title>
<form><input name="q" value="{{ q }}"><button>Search</button></form>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<ol id="hits">
{% for hit in hits %}<li data-id="{{ hit.id }}">{{ hit.text }}</li>
{% endfor %}</ol>
"""


def create_app(
    aiweb_url: str | None = None, api_key: str | None = None, collection: str | None = None
) -> Flask:
    """The app; each argument defaults to ``AIWEB_URL``, ``AIWEB_API_KEY``,
    ``AIWEB_COLLECTION`` from the environment."""
    app = Flask(__name__)
    app.config.update(
        AIWEB_URL=aiweb_url or os.environ.get("AIWEB_URL", "http://127.0.0.1:8000"),
        AIWEB_API_KEY=api_key or os.environ.get("AIWEB_API_KEY", ""),
        AIWEB_COLLECTION=collection or os.environ.get("AIWEB_COLLECTION", "docs"),
    )

    def search(q: str) -> list[dict[str, Any]]:
        with Client(app.config["AIWEB_URL"], api_key=app.config["AIWEB_API_KEY"]) as aiweb:
            result = aiweb.search(app.config["AIWEB_COLLECTION"], q, top_k=5)
        return [hit.model_dump() for hit in result.hits]

    @app.get("/")
    def page() -> str:
        q = request.args.get("q", "").strip()
        hits: list[dict[str, Any]] = []
        error = ""
        if q:
            try:
                hits = search(q)
            except AiwebError as exc:
                error = str(exc)
        return render_template_string(PAGE, q=q, hits=hits, error=error)

    @app.get("/api/search")
    def api_search() -> Any:
        q = request.args.get("q", "").strip()
        if not q:
            return jsonify(error="q is required"), 400
        try:
            return jsonify(hits=search(q))
        except AiwebError as exc:
            return jsonify(error=str(exc)), 502

    return app


app = create_app()
