"""Pure-ASGI middleware: bounds on request bodies under ``/v1/``.

Checked before any route code runs, so no handler ever sees an oversized body, a media
type it cannot parse or JSON nested deep enough to exhaust the parser:

* **size**: a ``Content-Length`` over the limit is answered 413 without reading the body;
  a body without one (chunked) is counted as it arrives and answered 413 as soon as the
  count passes the limit. More than the limit is never held in memory.
* **media type**: ``application/json`` (any parameters, and any ``+json`` suffix type)
  and ``multipart/form-data`` are accepted; anything else with a body is answered 415.
  An empty body needs no content type.
* **JSON depth**: a JSON body is read (bounded), its nesting of arrays/objects measured
  with a linear scan, and answered 422 when deeper than the limit; otherwise it is
  replayed to the app unchanged.

Errors are ``application/problem+json`` bodies of the same shape as
:func:`aiweb.api.problems.problem_response`; each names the setting that sets its limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import anyio.to_thread
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiweb.api.problems import PROBLEM_BASE, PROBLEM_JSON

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose bodies are checked."""

ACCEPTED_MEDIA_TYPES = ("application/json", "multipart/form-data")
"""Media types a ``/v1/`` body may have (plus ``+json`` suffix types)."""

BODY_SETTING = "AIWEB_LIMITS__MAX_BODY_BYTES"
DEPTH_SETTING = "AIWEB_LIMITS__MAX_JSON_DEPTH"
UPLOAD_SETTING = "AIWEB_LIMITS__MAX_UPLOAD_BYTES"

# One JSON string (closing quote optional, so an unterminated string runs to the end
# instead of exposing the brackets inside it). In UTF-8 every byte of a non-ASCII
# character is >= 0x80, so quotes, backslashes and brackets are never part of one.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))
_THREAD_BYTES = 256 * 1024  # scan bodies at least this large off the event loop


def json_depth(data: bytes | str) -> int:
    """Deepest nesting of arrays/objects in a JSON text, in linear time.

    Brackets inside strings (including after escaped quotes) do not count. The text need
    not be valid JSON: the result is then the depth the brackets outside strings reach.
    Bytes are decoded the way :func:`json.loads` decodes them (UTF-8/16/32 detected).
    Strings are dropped and the brackets picked out by the regex engine and
    :meth:`bytes.translate`; only the running sum over the brackets is left to Python.

    Args:
        data: the JSON text.

    Returns:
        0 for a scalar, 1 for ``[]`` or ``{}``, 2 for ``[[]]`` and so on.

    Raises:
        UnicodeDecodeError: bytes that :func:`json.loads` could not decode either.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    else:
        encoding = json.detect_encoding(data)
        raw = data
        if encoding not in ("utf-8", "utf-8-sig"):
            raw = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _is_json(media_type: str) -> bool:
    if media_type == "application/json":
        return True
    kind, _, subtype = media_type.partition("/")
    return bool(kind) and subtype.endswith("+json") and len(subtype) > len("+json")


async def send_problem(
    scope: Scope,
    send: Send,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Send an ``application/problem+json`` response over raw ASGI.

    The body has the shape of :func:`aiweb.api.problems.problem_response`: ``type``,
    ``title``, ``status``, ``detail``, ``instance`` (the request path) and
    ``request_id`` (from ``scope["state"]``, set by the request-id middleware).

    Args:
        scope: the request's ASGI scope.
        send: the ASGI send callable.
        status: HTTP status code.
        slug: last part of the problem ``type`` (``/problems/<slug>``).
        title: short, constant summary of the problem type.
        detail: what happened this time, and what to do.
        headers: extra response headers.
    """
    rid = scope.get("state", {}).get("request_id")
    body = orjson.dumps(
        {
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
            "request_id": str(rid) if rid is not None else None,
        }
    )
    raw_headers = [
        (b"content-type", PROBLEM_JSON.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Disconnected(Exception):
    """The client went away while the body was being read."""


class _TooLarge(Exception):
    """The body passed the limit while being read."""


class InputLimitsMiddleware:
    """Bound the size, media type and JSON nesting of request bodies under ``/v1/``.

    Args:
        app: the ASGI app to guard.
        max_body_bytes: largest body accepted (``AIWEB_LIMITS__MAX_BODY_BYTES``).
        max_json_depth: deepest nesting of JSON arrays/objects accepted
            (``AIWEB_LIMITS__MAX_JSON_DEPTH``).
        max_upload_bytes: largest ``multipart/form-data`` body accepted
            (``AIWEB_LIMITS__MAX_UPLOAD_BYTES``); ``None`` applies ``max_body_bytes``
            to uploads too.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in BODY_METHODS
            or not (scope["path"] == "/v1" or scope["path"].startswith("/v1/"))
        ):
            await self.app(scope, receive, send)
            return

        lengths: list[bytes] = []
        content_type: str | None = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                lengths.append(value.strip())
            elif key == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")

        length: int | None = None
        if lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                await send_problem(
                    scope,
                    send,
                    status=400,
                    slug="bad-request",
                    title="Bad request",
                    detail="the Content-Length header is not a single non-negative integer",
                    headers=[("Connection", "close")],
                )
                return
            length = int(lengths[0])

        if length == 0:  # nothing to parse, whatever the content type says
            await self.app(scope, receive, send)
            return

        media_type = _media_type(content_type)
        if media_type is None:
            await self._untyped(scope, receive, send, length)
        elif _is_json(media_type):
            await self._json(scope, receive, send, length)
        elif media_type == "multipart/form-data":
            await self._streamed(scope, receive, send, length)
        else:
            await self._unsupported(scope, send, content_type)

    # -- the three kinds of body -------------------------------------------------------

    async def _json(self, scope: Scope, receive: Receive, send: Send, length: int | None) -> None:
        limit = self.max_body_bytes
        if length is not None and length > limit:
            await self._too_large(scope, send, limit, BODY_SETTING)
            return
        try:
            body = await _read_body(receive, limit)
        except _Disconnected:
            return
        except _TooLarge:
            await self._too_large(scope, send, limit, BODY_SETTING)
            return
        try:
            if len(body) >= _THREAD_BYTES:
                depth = await anyio.to_thread.run_sync(json_depth, body)
            else:
                depth = json_depth(body)
        except UnicodeDecodeError:
            depth = 0  # not decodable as JSON at all: the app's parser rejects it
        if depth > self.max_json_depth:
            await send_problem(
                scope,
                send,
                status=422,
                slug="json-too-deep",
                title="JSON nested too deeply",
                detail=f"JSON nesting deeper than {self.max_json_depth} levels ({DEPTH_SETTING})",
            )
            return
        await self.app(scope, _replay(body, receive), send)

    async def _untyped(
        self, scope: Scope, receive: Receive, send: Send, length: int | None
    ) -> None:
        if length is not None:  # non-zero: a body without a content type
            await self._unsupported(scope, send, None)
            return
        # Chunked or no framing at all: look at the first non-empty chunk, if any.
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # disconnected
            if message.get("body", b""):
                await self._unsupported(scope, send, None)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"", receive), send)

    async def _streamed(
        self, scope: Scope, receive: Receive, send: Send, length: int | None
    ) -> None:
        if self.max_upload_bytes is None:
            limit, setting = self.max_body_bytes, BODY_SETTING
        else:
            limit, setting = self.max_upload_bytes, UPLOAD_SETTING
        if length is not None and length > limit:
            await self._too_large(scope, send, limit, setting)
            return

        received = 0
        exceeded = False
        started = False  # a response start has gone out (the app's or ours)

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the 413 has been sent (or the response is being abandoned)
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counted_receive() -> Message:
            nonlocal received, exceeded, started
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if started:
                        raise _TooLarge
                    started = True
                    await self._too_large(scope, send, limit, setting)
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # Once the 413 has been sent, whatever the app made of the cut-off body
            # (usually ClientDisconnect or a 400) is moot.
            if not exceeded:
                raise

    # -- answers ----------------------------------------------------------------------

    async def _too_large(self, scope: Scope, send: Send, limit: int, setting: str) -> None:
        # The rest of the body stays unread, so the connection cannot be reused.
        await send_problem(
            scope,
            send,
            status=413,
            slug="payload-too-large",
            title="Payload too large",
            detail=f"request body is larger than {limit} bytes ({setting})",
            headers=[("Connection", "close")],
        )

    async def _unsupported(self, scope: Scope, send: Send, content_type: str | None) -> None:
        given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        accepted = " or ".join(ACCEPTED_MEDIA_TYPES)
        await send_problem(
            scope,
            send,
            status=415,
            slug="unsupported-media-type",
            title="Unsupported media type",
            detail=f"request body has {given}; send {accepted} (or a +json type)",
            headers=[("Connection", "close")],
        )


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole body, failing as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the original.

    Later calls reach the server's ``receive`` so the app still learns of a disconnect.
    """
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
