"""The signature of a delivery, as Stripe signs its webhooks.

The header ``Aiweb-Signature: t=<unix seconds>,v1=<hex>`` carries the time of the
attempt and ``HMAC-SHA256(secret, "<t>." + body)`` in lower-case hex. The receiver
recomputes it over the raw body it got (:func:`aiweb.client.webhooks.verify_signature`)
and refuses a timestamp too far from its clock (a replayed delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: the header that carries the signature
SIGNATURE_HEADER = "Aiweb-Signature"


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """``HMAC-SHA256(secret, f"{timestamp}." + body)`` as lower-case hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The :data:`SIGNATURE_HEADER` value of ``body``: ``t=<timestamp>,v1=<hex>``.

    Args:
        body: the exact bytes posted.
        secret: the webhook's secret.
        timestamp: Unix seconds (default: now).
    """
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(body, secret, t)}"
