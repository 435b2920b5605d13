"""The review form (sentiment + "reviewers like you also liked") and aiweb's webhook."""

from __future__ import annotations

import json
import threading

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from aiweb.client import AiwebError, Client
from aiweb.client.webhooks import SIGNATURE_HEADER, WebhookSignatureError, verify_signature

_events_lock = threading.Lock()


def _client() -> Client:
    return Client(settings.AIWEB_URL, api_key=settings.AIWEB_API_KEY, timeout=10)


def review(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST ``user_id`` + ``text``: the review's sentiment label and the
    items the recommender suggests for that reviewer."""
    context: dict[str, object] = {}
    if request.method == "POST":
        user_id = request.POST.get("user_id", "").strip()
        text = request.POST.get("text", "").strip()
        context.update(user_id=user_id, text=text)
        if user_id and text:
            with _client() as aiweb:
                try:
                    answer = aiweb.predict(settings.AIWEB_SENTIMENT_MODEL, [text])
                    context["sentiment"] = answer.predictions[0].label
                    context["also_liked"] = aiweb.recommend(
                        user_id, n=5, model=settings.AIWEB_RECOMMENDER, include="item"
                    )
                except AiwebError as exc:
                    context["error"] = str(exc)
        else:
            context["error"] = "Both a reviewer and a review are needed."
    return render(request, "reviews/review.html", context)


@csrf_exempt
@require_POST
def aiweb_events(request: HttpRequest) -> HttpResponse:
    """aiweb's webhook: 400 unless the ``Aiweb-Signature`` matches the raw body; else
    record the event once (deliveries are at least once) and answer 204."""
    try:
        verify_signature(
            request.body,
            request.headers.get(SIGNATURE_HEADER, ""),
            settings.AIWEB_WEBHOOK_SECRET,
        )
    except WebhookSignatureError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    event = json.loads(request.body)
    with _events_lock:
        path = settings.AIWEB_EVENTS_FILE
        seen = {e["id"] for e in recorded_events()}
        if event["id"] not in seen:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event) + "\n")
    return HttpResponse(status=204)


def recorded_events() -> list[dict[str, object]]:
    """The webhook events received so far, oldest first."""
    path = settings.AIWEB_EVENTS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
