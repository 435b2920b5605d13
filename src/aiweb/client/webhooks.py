"""Check the signature of an aiweb webhook delivery (pure standard library: importable
without the server, in any web app that receives aiweb's events).

A delivery carries ``Aiweb-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
``HMAC-SHA256(secret, "<t>." + raw body)``. Verify over the raw request body, before
parsing it::

    from aiweb.client.webhooks import verify_signature, WebhookSignatureError

    try:
        verify_signature(request.body, request.headers["Aiweb-Signature"], SECRET)
    except WebhookSignatureError:
        return 400
    event = json.loads(request.body)   # {"id", "type", "created_at", "data"}
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "WebhookSignatureError", "verify_signature"]

#: the request header that carries the signature
SIGNATURE_HEADER = "Aiweb-Signature"


class WebhookSignatureError(ValueError):
    """The signature header is missing, malformed, does not match, or is too old."""


def verify_signature(payload: bytes, header: str, secret: str, tolerance_s: float = 300) -> None:
    """Check that ``payload`` was signed by aiweb with ``secret``.

    Args:
        payload: the raw request body, exactly as received.
        header: the ``Aiweb-Signature`` header value (``t=<unix>,v1=<hex>``; several
            ``v1`` entries may be given, one matching is enough).
        secret: the webhook's secret (the one given to ``PUT /v1/webhooks/{name}``).
        tolerance_s: the most seconds between the signature's time and now, either way
            (a replayed old delivery is refused); ``0`` or less: no time check.

    Raises:
        WebhookSignatureError: malformed header, no matching signature, or a timestamp
            further than ``tolerance_s`` from now.
    """
    if not isinstance(payload, bytes | bytearray):
        raise TypeError("payload must be the raw body as bytes")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError("malformed timestamp in signature header") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("signature header must look like t=<unix>,v1=<hex>")
    if tolerance_s > 0 and abs(time.time() - timestamp) > tolerance_s:
        raise WebhookSignatureError(
            f"signature timestamp {timestamp} is more than {tolerance_s:g} s from now"
        )
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + bytes(payload), hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise WebhookSignatureError("no signature matches the payload")
