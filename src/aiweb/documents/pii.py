"""Find and replace personal contact details in text: e-mail addresses, phone numbers, URLs.

Used by document uploads with ``redact_pii`` (:mod:`aiweb.documents.service`); a caller
that can find person names (a named-entity model) replaces those itself. Each
kind is replaced by a placeholder (:data:`PLACEHOLDERS`)::

    >>> redact("Jane: jane.doe@example.com, +44 20 7946 0958, github.com/jane").text
    'Jane: [EMAIL], [PHONE], [URL]'

The rules, in the order they are tried at each position (the leftmost match wins, so an
address inside a URL is part of the URL):

``url``
    a scheme (``http://``, ``https://``, ``ftp://``) or ``www.``, then everything up to
    white space or ``<``, ``>``, ``"``, without trailing punctuation (``.,;:!?'")]}``);
    or a bare domain name in lower case *followed by a path* (``linkedin.com/in/jane``,
    ``github.com/jane``) whose top-level domain is a common generic one (``com``,
    ``org``, ``net``, ``io``, ``dev`` …) or two letters other than the suffix of a
    programming language or file (``js``, ``ts``, ``py``, ``md``, ``sh`` …). A bare
    domain without a path (``example.com``) is not taken, nor one in capitals: they
    cannot be told from skills such as ``ASP.NET`` or ``Node.js/React``.
``email``
    ``local@domain.tld``: a local part of letters, digits and ``._%+-``, a domain of
    dot-separated labels (letters, digits, inner ``-``; Unicode letters too) ending in a
    top-level domain of 2 to 63 letters. Obfuscated forms (``jane at example dot com``)
    and addresses without a top-level domain (``root@localhost``) are not found.
``phone``
    7 to 15 digits (E.164 allows 15), optionally after ``+``, in groups separated by at
    most two of space, ``-``, ``.``, ``/``, ``(``, ``)``; not touching a letter, a digit
    or another group (so a 16-digit card number or a long id is never cut into a phone
    number). Refused as phone numbers: dates (``2023-01-15``, ``15/01/2023``,
    ``15.01.2023``), year ranges (``2019-2023``, ``2019 - 2023``), dotted IPv4
    addresses, thousands groups (``1 000 000``, ``120.000.000``: a first group of 1 to 3
    digits not starting with ``0``, then groups of exactly 3), and runs of 7 to 9 digits
    with no separator and no ``+`` (ids, order numbers).

What it misses, on purpose or not: person names and postal addresses (no pattern can tell
them; names need a named-entity model, above this layer), numbers written out in words,
phone numbers of fewer than 7 digits. It errs towards replacing: an ISBN or a 10-digit
id written in groups is replaced as a phone number.

Every pattern is linear in the length of the text (matches start only at the start of a
token, and no quantified group can match the same characters two ways), so hostile text
cannot make it slow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["KINDS", "PLACEHOLDERS", "PiiSpan", "Redaction", "find_pii", "redact"]

#: The kinds of PII found, in the order they are tried at each position.
KINDS = ("url", "email", "phone")

#: What each kind is replaced by.
PLACEHOLDERS: dict[str, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "url": "[URL]"}

_URL_END = r"""[^\s<>"'.,;:!?)\]}]"""
#: top-level domains a bare domain name (no scheme, no www.) may end in: these, or any two
#: letters but the suffixes of code and file names (``Node.js/React``, ``app.py/x``)
_GENERIC_TLDS = (
    "com|org|net|edu|gov|info|biz|io|dev|app|ai|me|co|xyz|tech|site|online|page|blog|cloud|pro"
    "|name|eu"
)
_NOT_TLDS = "js|ts|py|rb|md|sh|cs|rs|pl|hs|kt|ex|vb|ps|fs|ml|jl|pm|db|gz|so"
_URL = (
    # with a scheme or www. (any case)
    r"(?i:(?<![\w.-])(?:(?:https?|ftp)://|www\.)[^\s<>\"]*" + _URL_END + r")"
    # a bare domain name (lower case) followed by a path
    r"|(?<![\w.@/-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
    rf"(?:(?:{_GENERIC_TLDS})|(?!(?:{_NOT_TLDS})/)[a-z]{{2}})/"
    r"(?:[^\s<>\"]*" + _URL_END + r")?"
)
_EMAIL = (
    r"(?<![\w.%+-])[\w.%+-]+@"
    r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)
_SEP = r"[ \-./()]"
_PHONE = (
    # not right after a word character, a '+', or a digit group
    rf"(?<![\w+])(?<!\d{_SEP})(?<!\d{_SEP}{_SEP})"
    rf"\+?\(?\d(?:{_SEP}{{0,2}}\d){{6,14}}"
    # not right before a word character or another digit group
    rf"(?!\w)(?!{_SEP}{{1,2}}\d)"
)
_PII = re.compile(rf"(?P<url>{_URL})|(?P<email>{_EMAIL})|(?P<phone>{_PHONE})")

_DATE = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}"  # 2023-01-15, 15/01/2023
)
_YEAR_RANGE = re.compile(r"(?:19|20)\d\d ?[-/] ?(?:19|20)\d\d")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:[ .]\d{3})+")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class PiiSpan:
    """One piece of PII in a text.

    Attributes:
        kind: ``email``, ``phone`` or ``url``.
        start: offset of its first character (``text[start:end]`` is it).
        end: offset just past its last character.
        text: the characters themselves.
    """

    kind: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Redaction:
    """A text with its PII replaced (:func:`redact`).

    Attributes:
        text: the text, each span replaced by its kind's placeholder.
        counts: how many of each kind were replaced (``{"email": 1, "phone": 0, "url": 2}``;
            every kind of :data:`KINDS` is a key).
    """

    text: str
    counts: dict[str, int] = field(default_factory=dict)


def _is_phone(candidate: str) -> bool:
    digits = len(_DIGIT.findall(candidate))
    if not 7 <= digits <= 15:
        return False
    if (
        _DATE.fullmatch(candidate)
        or _YEAR_RANGE.fullmatch(candidate)
        or _IPV4.fullmatch(candidate)
        or _THOUSANDS.fullmatch(candidate)
    ):
        return False
    separated = not candidate.isdigit()
    return separated or digits >= 10


def _spans(text: str) -> Iterator[PiiSpan]:
    for match in _PII.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        value = match.group()
        if kind == "phone" and not _is_phone(value):
            continue
        yield PiiSpan(kind, match.start(), match.end(), value)


def find_pii(text: str) -> list[PiiSpan]:
    """The e-mail addresses, phone numbers and URLs in ``text``, in order, never
    overlapping (the rules are in the module docs).

    Args:
        text: any text.

    Returns:
        The spans, by ``start``.
    """
    return list(_spans(text))


def redact(text: str) -> Redaction:
    """``text`` with every span of :func:`find_pii` replaced by its placeholder
    (``[EMAIL]``, ``[PHONE]``, ``[URL]``).

    Args:
        text: any text.

    Returns:
        The redacted text and how many of each kind were replaced.
    """
    counts = dict.fromkeys(KINDS, 0)
    parts: list[str] = []
    at = 0
    for span in _spans(text):
        parts.append(text[at : span.start])
        parts.append(PLACEHOLDERS[span.kind])
        counts[span.kind] += 1
        at = span.end
    parts.append(text[at:])
    return Redaction("".join(parts), counts)
