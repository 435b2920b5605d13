"""Pure-ASGI middleware: bounds on request paths, queries and bodies.

Checked before any route code runs, so no handler ever sees an oversized body, a media
type it cannot parse, JSON nested deep enough to exhaust the parser, or a value no
database column can hold (a NUL character, a lone surrogate, a non-finite number):

* **path and query** (every path, the dashboard's too): a NUL character (``%00``, or a
  raw byte) is answered 422. (Bytes that are not UTF-8 are decoded by the server with
  replacement characters, which every column holds.)

* **size**: a ``Content-Length`` over the limit is answered 413 without reading the body;
  a body without one (chunked) is counted as it arrives and answered 413 as soon as the
  count passes the limit. More than the limit is never held in memory.
* **media type**: ``application/json`` (any parameters, and any ``+json`` suffix type)
  and ``multipart/form-data`` are accepted; anything else with a body is answered 415.
  An empty body needs no content type.
* **JSON depth**: a JSON body is read (bounded), its nesting of arrays/objects measured
  with a linear scan, and answered 422 when deeper than the limit. It is then parsed
  (orjson, which is strict) and answered 422 when it is not JSON: invalid UTF-8 (raw
  bytes ``ED A0 80``), a lone surrogate (``"\\ud800"``), ``NaN``/``Infinity`` or a
  number that overflows a double (``1e309``), an integer outside signed 64 bits
  (``2**63``), a NUL character (``"\\u0000"``) in a string or key. The answer names
  where the value is (``inputs[1].amount``; ``errors[0].loc`` ``["body", "inputs", 1,
  "amount"]``), found only once the body is refused (:func:`json_path_at`). Otherwise
  it is replayed to the app unchanged.
* **images**: the ``/v1/`` paths given as ``image_body_paths`` (``POST /v1/images``, and
  the predict route, as a pattern: a model whose task takes files) also
  take a raw ``image/jpeg``, ``image/png`` or ``image/webp`` body, streamed to the route
  and bounded by ``max_image_bytes`` (413 as for uploads); their formats are told by
  their bytes there (:mod:`aiweb.images.decode`), not by this type.
* **forms** (``application/x-www-form-urlencoded``, and ``multipart/form-data`` outside
  ``/v1/``: the dashboard's forms, which upload no files): read (bounded by the body
  limit) and answered 422 when a NUL character or bytes that are not UTF-8 are in them.
  The paths outside ``/v1/`` given as ``file_form_paths`` (a web page's file upload)
  take a ``multipart/form-data`` body bounded as a ``/v1/`` upload is, streamed to the
  route.

Outside ``/v1/`` media types are not restricted, and bodies of other types are not read.

Errors are ``application/problem+json`` bodies of the same shape as
:func:`aiweb.api.problems.problem_response`; each names the setting that sets its limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio.to_thread
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiweb.api.problems import PROBLEM_BASE, PROBLEM_JSON
from aiweb.serving.oip import is_oip_path

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose bodies are checked."""

ACCEPTED_MEDIA_TYPES = ("application/json", "multipart/form-data")
"""Media types a ``/v1/`` body may have (plus ``+json`` suffix types)."""

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""The integers a JSON body may hold: what a ``BIGINT`` column (and SQLite) can store."""

BODY_SETTING = "AIWEB_LIMITS__MAX_BODY_BYTES"
DEPTH_SETTING = "AIWEB_LIMITS__MAX_JSON_DEPTH"
UPLOAD_SETTING = "AIWEB_LIMITS__MAX_UPLOAD_BYTES"
IMAGE_SETTING = "AIWEB_LIMITS__MAX_IMAGE_BYTES"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
"""Media types of a raw image body, on the paths that take one (``image_body_paths``)."""

# One JSON string (closing quote optional, so an unterminated string runs to the end
# instead of exposing the brackets inside it). In UTF-8 every byte of a non-ASCII
# character is >= 0x80, so quotes, backslashes and brackets are never part of one.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))
_THREAD_BYTES = 256 * 1024  # scan bodies at least this large off the event loop
# An integer literal of 19 digits or more (once strings are dropped): the only numbers
# that may not fit in 64 bits. Not part of a fraction or an exponent.
_LONG_INT = re.compile(rb"(?<![0-9.eE+\-])-?[0-9]{19,}(?![0-9.eE])")
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # "0" or " "
_DIGITS_19 = b"0" * 19
_UTF8_BOM = b"\xef\xbb\xbf"

# The scanner behind json_path_at: a bracket, or a run of everything between brackets:
# strings (closing quote optional: cut at the error) taken whole, so the brackets inside
# them are skipped, and closed containers nested up to 4 deep (rows of a table, lists of
# vectors), so the regex engine, not Python, steps over them.
_JSON_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?'
_CLOSED = _JSON_STRING  # grows into a closed array/object of nesting 1, 2, 3, 4
for _ in range(4):
    _CLOSED = rf'[\[{{](?:[^"\[\]{{}}]++|{_JSON_STRING}|{_CLOSED})*+[\]}}]'
_RUN = re.compile(rf'(?:[^"\[\]{{}}]++|{_JSON_STRING}|{_CLOSED})++|[\[\]{{}}]', re.DOTALL)
_STRING_OR_CLOSED = re.compile(rf"({_JSON_STRING})|{_CLOSED}", re.DOTALL)
_STRING_TEXT = re.compile(_JSON_STRING, re.DOTALL)
# What lies between digit runs of 19 or more outside strings (strings, other characters,
# shorter digit runs), or one such run: a pass over a valid text without backtracking.
_LONG_DIGITS = re.compile(
    r'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^"0-9]++|[0-9]{1,18}+(?![0-9]))++|([0-9]++)', re.DOTALL
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_KEY_CHARS = 80  # a key is cut to this many characters when it names a place

JsonPath = tuple[str | int, ...]
"""Where a value is in a JSON document: object keys and array indices, outermost first."""


class InvalidInput(Exception):
    """A request the edge refuses (422): what is wrong, and where.

    Attributes:
        detail: what is wrong, for the problem's ``detail``.
        loc: where (``"body"``, ``"query"``, ``"path"``), the first item of
            ``errors[].loc``.
        kind: the ``errors[].type`` (``json_invalid`` or ``value_error``).
        path: where in a JSON body (``("inputs", 1, "amount")``; keys cut to 80
            characters, lone surrogates escaped), the rest of ``errors[].loc``; ``()``
            when the body as a whole is wrong.
    """

    def __init__(
        self, detail: str, loc: str, kind: str = "value_error", path: JsonPath = ()
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.loc = loc
        self.kind = kind
        self.path = path


class JsonTooDeep(Exception):
    """A JSON body nested deeper than the limit."""


def _utf8(data: bytes) -> bytes:
    """``data`` as UTF-8 without a byte order mark: UTF-16/32 (detected as
    :func:`json.loads` does) is decoded strictly and re-encoded.

    Raises:
        UnicodeDecodeError: bytes that are not text in the detected encoding.
    """
    encoding = json.detect_encoding(data)
    if encoding == "utf-8":
        return data
    if encoding == "utf-8-sig":
        return data[len(_UTF8_BOM) :]
    return data.decode(encoding).encode("utf-8")


def _depth_of(brackets: bytes) -> int:
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


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
    return _depth_of(_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    return False


def json_path_at(text: str, pos: int) -> JsonPath:
    """The path of the value being read at ``pos`` in a JSON text, in linear time.

    Meant for an error position (:attr:`orjson.JSONDecodeError.pos`): the text before
    ``pos`` is taken to be the start of a JSON document, and what follows does not
    matter. ``pos`` may be where a value starts (``NaN``), inside one (after the sign
    of ``-Infinity``, at an escape in a string) or inside or just after an object key
    (the key is then the last item: the key is wrong, or its value is missing). In an
    object between members (after a comma) the path ends at the object.

    Brackets, quotes and backslashes inside strings do not count. The regex engine
    steps over strings, scalars, commas and closed arrays/objects nested up to 4 deep
    (each character is looked at a bounded number of times); Python steps once per
    other bracket before ``pos`` (open containers, deeper ones) and decodes only the
    keys it reports. About 0.1 to 1 s for 4 MiB, on the error path only.

    Args:
        text: the JSON text (decoded).
        pos: an offset into ``text``, in characters (code points).

    Returns:
        The keys (``str``, decoded) and array indices (``int``), outermost first:
        ``("inputs", 1, "amount")`` for ``{"inputs": [{...}, {"amount": NaN}]}``.
        ``()`` for a top-level value.

    Example:
        >>> json_path_at('{"inputs": [{"age": 39}, {"amount": NaN}]}', 36)
        ('inputs', 1, 'amount')
    """
    pos = max(0, min(pos, len(text)))
    path: list[str | int | None] = []  # per open container: its index, or key (None: none)
    run, run_start = "", 0  # the text since the last bracket
    for match in _RUN.finditer(text, 0, pos):
        piece = match.group()
        if piece == "[" or piece == "{":
            if path:
                path[-1] = _after_run(path[-1], run, run_start, text, at_end=False)
            path.append(0 if piece == "[" else None)
            run = ""
        elif piece == "]" or piece == "}":
            if path:
                path.pop()
            run = ""
        else:
            run, run_start = piece, match.start()
    if path:
        path[-1] = _after_run(path[-1], run, run_start, text, at_end=True)
    return tuple(p for p in path if p is not None)


def _after_run(
    place: str | int | None, run: str, run_start: int, text: str, *, at_end: bool
) -> str | int | None:
    """The index or key of an open container once ``run`` (the text between two of
    its brackets, or from its last bracket to the error) has been read."""
    # each string and closed container a single quote: left are commas, colons, blanks
    # and scalars outside them
    marked = _STRING_OR_CLOSED.sub('"', run) if '"' in run or "[" in run or "{" in run else run
    if isinstance(place, int):  # an array: one more element per comma
        return place + marked.count(",")
    colon, comma = marked.rfind(":"), marked.rfind(",")
    if colon > comma:  # the last key is the string just before the colon
        items = _STRING_OR_CLOSED.findall(run)  # a string's text, or "" for a container
        return _decode_key(items[marked.count('"', 0, colon) - 1])
    if comma > colon:
        place = None  # between members
    if at_end and place is None:
        quote = marked.rfind('"')
        if quote > comma:  # a key being read: the last string, up to the error or not
            # (nothing but blanks follows it, so the run ends as ``marked`` does)
            end = run_start + len(run) - (len(marked) - quote - 1)
            start = end - len(_STRING_OR_CLOSED.findall(run)[-1])
            whole = _STRING_TEXT.match(text, start)
            return _decode_key(whole.group() if whole else text[start:end])
    return place


def _decode_key(literal: str) -> str:
    """A JSON string literal's value; its text when it is not one (unterminated, or a
    bad escape)."""
    try:
        value = json.loads(literal, strict=False)
    except ValueError:
        return literal[1:]
    return value if isinstance(value, str) else literal[1:]


def _cut(key: str) -> str:
    return key[:_KEY_CHARS] + "…" if len(key) > _KEY_CHARS else key


def _escape_surrogates(text: str) -> str:
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _loc_key(key: str) -> str:
    """A key fit for ``errors[].loc``: cut to 80 characters, lone surrogates escaped
    (``orjson`` cannot encode them)."""
    return _escape_surrogates(_cut(key))


def render_json_path(path: JsonPath) -> str:
    """A JSON path as a person reads it: ``inputs[1].amount``, ``rows[0]["a b"]``.

    Keys that are not ASCII identifiers are quoted and escaped as JSON strings (NUL
    characters and lone surrogates as ``\\u`` escapes); keys longer than 80 characters
    are cut (``…``).

    Example:
        >>> render_json_path(("inputs", 1, "amount", "a b"))
        'inputs[1].amount["a b"]'
    """
    parts: list[str] = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif len(item) <= _KEY_CHARS and _IDENTIFIER.fullmatch(item):
            parts.append(f".{item}" if parts else item)
        else:
            parts.append(f"[{_escape_surrogates(json.dumps(_cut(item), ensure_ascii=False))}]")
    return "".join(parts)


def _at(path: JsonPath) -> str:
    return f" at {render_json_path(path)}" if path else ""


def _nul_place(value: Any, path: JsonPath = ()) -> tuple[JsonPath, bool] | None:
    """Where the first NUL character is, in document order: the path of the string (of
    the key's value, for a key), and whether it is in a key."""
    if isinstance(value, str):
        return (path, False) if "\x00" in value else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_place(item, (*path, index))) is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return (*path, key), True
            if (found := _nul_place(item, (*path, key))) is not None:
                return found
    return None


def _error_place(raw: bytes, exc: orjson.JSONDecodeError) -> JsonPath:
    """Where orjson stopped: the path at its position, or at the first byte that is
    not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        head = raw[: bad.start].decode("utf-8")
        return json_path_at(head, len(head))
    return json_path_at(text, exc.pos)


def _long_int_place(raw: bytes) -> tuple[str, JsonPath]:
    """The first integer outside signed 64 bits (``raw`` holds one, and is JSON): its
    digits and its path. Python steps once per run of 19 digits or more."""
    text = raw.decode("utf-8")
    for match in _LONG_DIGITS.finditer(text):
        start, end = match.span(1)
        if start < 0 or end - start < 19 or text.startswith((".", "e", "E"), end):
            continue
        if start and text[start - 1] == "-":
            start -= 1
        if start and text[start - 1] in "0123456789.eE+-":  # a fraction or an exponent
            continue
        if not INT64_MIN <= int(text[start:end]) <= INT64_MAX:
            return text[start:end], json_path_at(text, start)
    return "", ()  # not reached: the caller found one


def check_json(body: bytes, max_depth: int) -> None:
    """Check a JSON body the way the edge does: nesting, then strict JSON, then values.

    Linear in the body; a body of 64 short texts takes microseconds (the parse is
    orjson's, the only Python-level work is a walk of the strings when the text holds
    a ``\\u0000`` escape). Only a refused body is scanned again, for the path of the
    value refused (:func:`json_path_at`).

    Args:
        body: the raw request body (UTF-8, or UTF-16/32 as :func:`json.loads` detects).
        max_depth: deepest nesting of arrays/objects accepted.

    Raises:
        JsonTooDeep: nested deeper than ``max_depth``.
        InvalidInput: not UTF-8 text, not JSON (``NaN``, ``Infinity``, ``1e309``, a lone
            surrogate, a syntax error), an integer outside signed 64 bits, or a NUL
            character in a string or key; its ``path`` says where (``()``: the whole
            body, or text that is not UTF-16/32 as detected).
    """
    try:
        raw = _utf8(body)
    except UnicodeDecodeError:
        raise InvalidInput("body is not valid text (UTF-8)", "body", "json_invalid") from None
    # Dropping the strings costs more than the parse: skipped unless the brackets, or a
    # run of 19 digits, anywhere in the text could matter.
    outside_strings: bytes | None = None
    brackets = raw.translate(None, _NOT_BRACKETS)
    if len(brackets) > 2 * max_depth or brackets.count(b"[") + brackets.count(b"{") > max_depth:
        outside_strings = _STRING.sub(b"", raw)
        if _depth_of(outside_strings.translate(None, _NOT_BRACKETS)) > max_depth:
            raise JsonTooDeep
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        path = _error_place(raw, exc)
        raise InvalidInput(
            f"body is not valid JSON{_at(path)}: {exc} (NaN, Infinity, numbers beyond a "
            "double, lone surrogates and bytes that are not UTF-8 are not JSON)",
            "body",
            "json_invalid",
            _loc_path(path),
        ) from None
    if _DIGITS_19 not in raw.translate(_DIGITS_ONLY):
        long_ints: Iterable[re.Match[bytes]] = ()
    else:
        if outside_strings is None:
            outside_strings = _STRING.sub(b"", raw)
        long_ints = _LONG_INT.finditer(outside_strings)
    for match in long_ints:
        if not INT64_MIN <= int(match.group()) <= INT64_MAX:
            digits, path = _long_int_place(raw)
            digits = digits or match.group().decode()
            raise InvalidInput(
                f"integer {digits[:32]}…{_at(path)} is outside the signed 64-bit range",
                "body",
                path=_loc_path(path),
            )
    if b"\\u0000" in raw and _has_nul(value):
        path, in_key = _nul_place(value) or ((), False)
        raise InvalidInput(
            f"a {'key' if in_key else 'string'} in the body contains a NUL character "
            f"(\\u0000){_at(path)}",
            "body",
            path=_loc_path(path),
        )


def _loc_path(path: JsonPath) -> JsonPath:
    return tuple(_loc_key(p) if isinstance(p, str) else p for p in path)


def check_text(raw: bytes, where: str, *, plus: bool = False, utf8: bool = True) -> None:
    """Check percent-encoded text (a path, a query string, a urlencoded form).

    Args:
        raw: the undecoded bytes.
        where: ``"path"``, ``"query"`` or ``"body"``, for the message.
        plus: ``+`` means a space (query strings and forms).
        utf8: refuse bytes that are not UTF-8 too (paths and queries need not: the
            server decodes them with replacement characters, which every column holds).

    Raises:
        InvalidInput: a NUL character (raw or ``%00``), or (``utf8``) bytes (raw or
            percent-encoded) that are not UTF-8.
    """
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        return
    data = unquote_to_bytes(raw.replace(b"+", b" ") if plus else raw)
    if b"\x00" in data:
        raise InvalidInput(f"the {where} contains a NUL character (%00)", where)
    if not utf8:
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {where} contains bytes that are not UTF-8", where) from None


def media_type_of(content_type: str | None) -> str | None:
    """A Content-Type's media type, lower case without parameters; ``None`` without one."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def is_json(media_type: str) -> bool:
    """``application/json`` or a ``+json`` suffix type."""
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
    extra: dict[str, Any] | None = None,
) -> None:
    """Send an ``application/problem+json`` response over raw ASGI.

    The body has the shape of :func:`aiweb.api.problems.problem_response`: ``type``,
    ``title``, ``status``, ``detail``, ``instance`` (the request path) and
    ``request_id`` (from ``scope["state"]``, set by the request-id middleware), plus
    any ``extra`` members.

    Args:
        scope: the request's ASGI scope.
        send: the ASGI send callable.
        status: HTTP status code.
        slug: last part of the problem ``type`` (``/problems/<slug>``).
        title: short, constant summary of the problem type.
        detail: what happened this time, and what to do.
        headers: extra response headers.
        extra: extra body members (``errors`` of a validation problem).
    """
    if is_oip_path(scope.get("path", "")):  # the Open Inference Protocol's shape
        body = orjson.dumps({"error": detail})
        media_type = "application/json"
    else:
        body = orjson.dumps(_problem(scope, status, slug, title, detail, extra))
        media_type = PROBLEM_JSON
    raw_headers = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _problem(
    scope: Scope, status: int, slug: str, title: str, detail: str, extra: dict[str, Any] | None
) -> dict[str, Any]:
    rid = scope.get("state", {}).get("request_id")
    problem: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        # a path with a lone surrogate (only an in-process client can send one) must not
        # break the answer
        "instance": scope.get("path", "").encode("utf-8", "replace").decode("utf-8"),
        "request_id": str(rid) if rid is not None else None,
    }
    if extra:
        problem.update(extra)
    return problem


class _Disconnected(Exception):
    """The client went away while the body was being read."""


class _TooLarge(Exception):
    """The body passed the limit while being read."""


class InputLimitsMiddleware:
    """Bound the size, media type and JSON nesting of request bodies under ``/v1/``, and
    refuse values no column can hold in every path, query, JSON body and form.

    Args:
        app: the ASGI app to guard.
        max_body_bytes: largest body accepted (``AIWEB_LIMITS__MAX_BODY_BYTES``).
        max_json_depth: deepest nesting of JSON arrays/objects accepted
            (``AIWEB_LIMITS__MAX_JSON_DEPTH``).
        max_upload_bytes: largest ``multipart/form-data`` body accepted
            (``AIWEB_LIMITS__MAX_UPLOAD_BYTES``); ``None`` applies ``max_body_bytes``
            to uploads too.
        file_form_paths: paths outside ``/v1/`` whose ``multipart/form-data`` bodies
            carry files: bounded and streamed as ``/v1/`` uploads are, not read whole
            and checked as text (the module docs).
        max_image_bytes: largest raw image body accepted on ``image_body_paths``
            (``AIWEB_LIMITS__MAX_IMAGE_BYTES``); ``None`` applies ``max_upload_bytes``.
        image_body_paths: ``/v1/`` paths that take a raw ``image/jpeg``, ``image/png`` or
            ``image/webp`` body (:data:`IMAGE_MEDIA_TYPES`), streamed to the route: exact
            paths, or compiled patterns a whole path must match.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        max_upload_bytes: int | None = None,
        file_form_paths: Iterable[str] = (),
        max_image_bytes: int | None = None,
        image_body_paths: Iterable[str | re.Pattern[str]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_upload_bytes = max_upload_bytes
        self.file_form_paths = frozenset(file_form_paths)
        self.max_image_bytes = max_image_bytes
        paths = list(image_body_paths)
        self.image_body_paths = frozenset(p for p in paths if isinstance(p, str))
        self.image_body_patterns = tuple(p for p in paths if isinstance(p, re.Pattern))

    def _takes_images(self, path: str) -> bool:
        return path in self.image_body_paths or any(
            p.fullmatch(path) for p in self.image_body_patterns
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body = scope.get("method") in BODY_METHODS
        try:
            raw_path = scope.get("raw_path")
            if raw_path is None:
                raw_path = scope["path"].encode("utf-8", "surrogatepass")
            check_text(raw_path, "path", utf8=False)
            if "\x00" in scope["path"]:
                raise InvalidInput("the path contains a NUL character (%00)", "path")
            check_text(scope.get("query_string", b""), "query", plus=True, utf8=False)
        except InvalidInput as exc:
            # a body, if any, stays unread: the connection cannot be reused
            await self._invalid(scope, send, exc, close=has_body)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        # /v1 and the Open Inference Protocol's /v2: JSON, multipart or nothing
        path = scope["path"]
        v1 = path == "/v1" or path.startswith("/v1/") or is_oip_path(path)

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

        media_type = media_type_of(content_type)
        if not v1:
            if media_type == "multipart/form-data" and path in self.file_form_paths:
                await self._streamed(scope, receive, send, length)
            elif media_type is not None and (
                is_json(media_type) or media_type in (FORM_MEDIA_TYPE, "multipart/form-data")
            ):
                await self._json(scope, receive, send, length, media_type)
            else:
                await self.app(scope, receive, send)
        elif is_oip_path(path):
            # the protocol's bodies are JSON whatever their type says (tritonclient sends
            # none, curl -d a form's)
            await self._json(scope, receive, send, length, "application/json")
        elif media_type is None:
            await self._untyped(scope, receive, send, length)
        elif is_json(media_type):
            await self._json(scope, receive, send, length, media_type)
        elif media_type == "multipart/form-data":
            await self._streamed(scope, receive, send, length)
        elif media_type in IMAGE_MEDIA_TYPES and self._takes_images(path):
            if self.max_image_bytes is None:
                await self._streamed(scope, receive, send, length)
            else:
                await self._streamed(
                    scope, receive, send, length, (self.max_image_bytes, IMAGE_SETTING)
                )
        else:
            await self._unsupported(scope, send, content_type, images=self._takes_images(path))

    # -- the three kinds of body -------------------------------------------------------

    async def _json(
        self, scope: Scope, receive: Receive, send: Send, length: int | None, media_type: str
    ) -> None:
        """A JSON body (or, outside ``/v1/``, a form): read whole, checked, replayed."""
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
        if media_type == FORM_MEDIA_TYPE:
            check = _check_form
        elif media_type == "multipart/form-data":
            check = _check_text_form
        else:
            check = _check_json_body
        try:
            if len(body) >= _THREAD_BYTES:
                await anyio.to_thread.run_sync(check, body, self.max_json_depth)
            else:
                check(body, self.max_json_depth)
        except InvalidInput as exc:
            await self._invalid(scope, send, exc)
            return
        except JsonTooDeep:
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
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        length: int | None,
        bound: tuple[int, str] | None = None,
    ) -> None:
        if bound is not None:
            limit, setting = bound
        elif self.max_upload_bytes is None:
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

    async def _invalid(
        self, scope: Scope, send: Send, exc: InvalidInput, *, close: bool = False
    ) -> None:
        await send_problem(
            scope,
            send,
            status=422,
            slug="validation",
            title="Request validation failed",
            detail=exc.detail,
            headers=[("Connection", "close")] if close else (),
            extra={"errors": [{"loc": [exc.loc, *exc.path], "msg": exc.detail, "type": exc.kind}]},
        )

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

    async def _unsupported(
        self, scope: Scope, send: Send, content_type: str | None, *, images: bool = False
    ) -> None:
        given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        accepted = " or ".join(
            (*ACCEPTED_MEDIA_TYPES, *IMAGE_MEDIA_TYPES) if images else ACCEPTED_MEDIA_TYPES
        )
        await send_problem(
            scope,
            send,
            status=415,
            slug="unsupported-media-type",
            title="Unsupported media type",
            detail=f"request body has {given}; send {accepted} (or a +json type)",
            headers=[("Connection", "close")],
        )


def _check_json_body(body: bytes, max_depth: int) -> None:
    check_json(body, max_depth)


def _check_form(body: bytes, max_depth: int) -> None:
    check_text(body, "body", plus=True)


def _check_text_form(body: bytes, max_depth: int) -> None:
    """A multipart form of text fields only (the dashboard's): no NUL, all UTF-8."""
    if b"\x00" in body:
        raise InvalidInput("the form contains a NUL character", "body")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the form contains bytes that are not UTF-8", "body") from None


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
