"""One HTTP POST of a JSON body, and the retried form of it, shared by the webhook
deliveries and the drift alerts (:mod:`aiweb.monitoring.alerts`).

An answer 2xx is a success; anything else (a 3xx included: redirects are not followed,
so a delivery never lands on a host it was not configured for), a network error or a
timeout is a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

#: the most characters of an error kept on a delivery row
MAX_ERROR = 500


@dataclass(frozen=True)
class PostResult:
    """How one POST ended: ``ok``, the answer's status (``None`` without an answer), and
    what went wrong (empty when ``ok``)."""

    ok: bool
    status: int | None
    error: str


def post_once(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PostResult:
    """POST ``body`` (JSON) to ``url`` once; never raises for a network error."""
    # imported here: httpx (with its command line, rich and pygments) costs ~40 ms, and
    # every command that opens the registry imports this module (issue #19's start-up)
    import httpx

    try:
        resp = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout_s,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return PostResult(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
    if 200 <= resp.status_code < 300:
        return PostResult(True, resp.status_code, "")
    return PostResult(False, resp.status_code, f"HTTP {resp.status_code}")


def backoff_s(attempt: int, first_s: float, max_s: float | None = None) -> float:
    """The wait after failed try ``attempt`` (1-based): ``first_s * 2**(attempt-1)``, at
    most ``max_s``."""
    wait = first_s * 2 ** max(0, attempt - 1)
    return float(wait if max_s is None else min(wait, max_s))


def post_with_retries(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    max_attempts: int,
    backoff_first_s: float,
    timeout_s: float,
    retry_4xx: bool = False,
) -> tuple[PostResult, int]:
    """POST until a success, a 4xx answer (unless ``retry_4xx``), or ``max_attempts``
    tries, sleeping :func:`backoff_s` between tries (for a background thread).

    Returns:
        ``(the last result, tries made)``.
    """
    result = PostResult(False, None, "not sent")
    attempt = 0
    for attempt in range(1, max_attempts + 1):
        result = post_once(url, body, headers, timeout_s)
        if result.ok:
            break
        if not retry_4xx and result.status is not None and result.status < 500:
            result = PostResult(False, result.status, f"{result.error} (not retried)")
            break
        if attempt < max_attempts:
            time.sleep(backoff_s(attempt, backoff_first_s))
    return result, attempt
