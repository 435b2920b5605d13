"""Slot value extractors: the values a visitor's message gives for an assistant's slots.

An extractor is named by a spec string in an assistant's config (``"extractor":
"money"``), parsed once by :func:`parse_extractor`:

============================  ==============================================================
spec                          finds
============================  ==============================================================
``number``                    a number: digits (``1,200.5``, ``-3``, ``1e3`` is not one) or
                              English words (``twenty five``, ``a hundred``); ``int`` when
                              whole, else ``float``
``money``                     an amount with an optional currency: ``$50``, ``50 dollars``,
                              ``€20.50``, ``20 EUR``, ``1,200 usd``; a bare number when the
                              slot was asked for (``50``), without a currency
``date``                      a calendar date, absolute (``12 March 2027``, ``2027-03-12``) or
                              relative (``tomorrow``, ``next friday``, ``in 3 days``), by
                              `dateparser <https://dateparser.readthedocs.io>`_'s
                              ``search_dates``, future dates preferred, as ISO ``YYYY-MM-DD``
``email``                     an e-mail address (the practical subset of RFC 5322 that
                              mail providers accept: dot-atom local part, dotted domain)
``choice:a|b|c``              one of the listed options, case-insensitively, as a word of
                              the message, or a close misspelling (difflib ratio ≥ 0.8)
``entities:LABEL``            a span a token-classification model labels ``LABEL``; the
                              assistant runs the model (:class:`EntitySpan` in, same shape
                              out), this module only parses the spec
============================  ==============================================================

Every extractor returns :class:`Found` values with the character span of the message they
came from, so one span fills one slot only (``"send 50 to Ann on friday"`` gives the
amount, the recipient and the date, never the same ``50`` twice), and a display text for
reply templates.

Pure functions of the text (and of ``now`` for relative dates): no model, no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "CURRENCIES",
    "KINDS",
    "EntitySpan",
    "Extractor",
    "Found",
    "extract",
    "from_entities",
    "parse_extractor",
]

#: The extractor kinds a slot may name.
KINDS = ("number", "money", "date", "email", "choice", "entities")
Kind = Literal["number", "money", "date", "email", "choice", "entities"]

#: Currency words and symbols to ISO 4217 codes.
CURRENCIES: dict[str, str] = {
    "$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "¥": "JPY",
    "jpy": "JPY",
    "yen": "JPY",
    "chf": "CHF",
    "francs": "CHF",
    "cad": "CAD",
    "aud": "AUD",
    "inr": "INR",
    "rupees": "INR",
}
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

#: Longest option list of a ``choice`` extractor, and the longest option.
MAX_CHOICES = 50
MAX_CHOICE_CHARS = 80

#: Messages longer than this are cut before extraction (the assistant caps messages lower).
MAX_TEXT = 2000


@dataclass(frozen=True)
class Extractor:
    """A parsed extractor spec.

    Attributes:
        kind: one of :data:`KINDS`.
        options: for ``choice``, the options in the config's order (their spelling is
            what a filled slot holds); empty otherwise.
        label: for ``entities``, the entity label (``PERSON``); ``None`` otherwise.
    """

    kind: Kind
    options: tuple[str, ...] = ()
    label: str | None = None

    @property
    def spec(self) -> str:
        """The spec string this was parsed from (normalised)."""
        if self.kind == "choice":
            return "choice:" + "|".join(self.options)
        if self.kind == "entities":
            return f"entities:{self.label}"
        return self.kind


@dataclass(frozen=True)
class Found:
    """A value found in a message.

    Attributes:
        value: the JSON value the slot holds: ``int``/``float`` (number), ``{"amount":
            float, "currency": str | None}`` (money), ``"YYYY-MM-DD"`` (date), ``str``
            (email, choice, entities).
        text: how a reply template shows it (``$50.00``, ``2027-03-12``, ``Ann``).
        start: offset of the first character of the message it came from.
        end: offset after its last character.
    """

    value: Any
    text: str
    start: int
    end: int

    def overlaps(self, other: Found) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class EntitySpan:
    """A span a token-classification model found (its predict answer's ``entities``)."""

    label: str
    text: str
    start: int
    end: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_extractor(spec: str) -> Extractor:
    """Parse an extractor spec (table in the module docstring).

    Raises:
        ValueError: an unknown kind, a ``choice`` without options (or with an empty, a
            repeated or an over-long one), an ``entities`` without a label; the message
            names the spec and the kinds there are.
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"unknown extractor {spec!r}: one of {', '.join(KINDS)} (see docs)")
    if kind == "choice":
        options = tuple(o.strip() for o in arg.split("|"))
        if not arg.strip() or any(not o for o in options):
            raise ValueError(f"extractor {spec!r}: write the options as choice:a|b|c")
        if len({o.lower() for o in options}) != len(options):
            raise ValueError(f"extractor {spec!r}: an option is repeated")
        if len(options) > MAX_CHOICES or max(len(o) for o in options) > MAX_CHOICE_CHARS:
            raise ValueError(
                f"extractor {spec[:100]!r}: at most {MAX_CHOICES} options of at most "
                f"{MAX_CHOICE_CHARS} characters"
            )
        return Extractor("choice", options=options)
    if kind == "entities":
        label = arg.strip()
        if not label:
            raise ValueError(f"extractor {spec!r}: name the entity label, as entities:PERSON")
        return Extractor("entities", label=label)
    if arg.strip():
        raise ValueError(f"extractor {spec!r}: {kind} takes no argument")
    return Extractor(kind)  # type: ignore[arg-type]


def extract(extractor: Extractor, text: str, *, now: datetime, asked: bool = False) -> list[Found]:
    """Every value of ``extractor``'s kind in ``text``, in text order.

    Args:
        extractor: from :func:`parse_extractor`; ``entities`` gives nothing here (see
            :func:`from_entities`).
        text: the visitor's message (cut to :data:`MAX_TEXT` characters).
        now: the visitor's "now", for relative dates.
        asked: the slot was just asked for: a bare number is then an amount of money.

    Returns:
        The values found, possibly none.
    """
    text = text[:MAX_TEXT]
    if extractor.kind == "number":
        return list(_numbers(text))
    if extractor.kind == "money":
        return _money(text, asked=asked)
    if extractor.kind == "date":
        return _dates(text, now)
    if extractor.kind == "email":
        return [
            Found(m.group(0).rstrip("."), m.group(0).rstrip("."), m.start(), m.end())
            for m in _EMAIL.finditer(text)
        ]
    if extractor.kind == "choice":
        return _choices(extractor.options, text)
    return []


def from_entities(extractor: Extractor, spans: Iterable[EntitySpan]) -> list[Found]:
    """The spans of ``extractor.label`` as found values (the span's text is the value)."""
    return [
        Found(s.text, s.text, s.start, s.end)
        for s in sorted(spans, key=lambda s: s.start)
        if s.label == extractor.label and s.text.strip()
    ]


# ---- numbers ---------------------------------------------------------------------------------

_DIGITS = re.compile(
    r"(?<![\w.,])(?P<sign>[-\u2212])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?![\w]|[.,]\d)"
)
_UNITS = {
    w: i
    for i, w in enumerate(
        (
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
            *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
            *("seventeen", "eighteen", "nineteen"),
        )
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate(
        ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2
    )
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, *_SCALES, "a", "an", "and"])
_WORDS = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*\b", re.IGNORECASE)


def _as_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _numbers(text: str) -> Iterator[Found]:
    found: list[Found] = []
    for m in _DIGITS.finditer(text):
        try:
            value = Decimal(m.group("num").replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            continue
        if m.group("sign"):
            value = -value
        if not value.is_finite() or abs(value) >= Decimal(10) ** 15:
            continue  # not a slot value anyone types; keeps JSON numbers exact
        found.append(
            Found(_as_number(value), m.group(0).replace("\u2212", "-"), m.start(), m.end())
        )
    for m in _WORDS.finditer(text):
        words = [w.lower() for w in re.split(r"[\s-]+", m.group(0))]
        value_or_none = _words_value(words)
        if value_or_none is not None:
            found.append(Found(value_or_none, m.group(0), m.start(), m.end()))
    yield from sorted(found, key=lambda f: f.start)


def _words_value(words: Sequence[str]) -> int | None:
    """The value of English number words (``twenty five``, ``a hundred and two``), or
    ``None`` when they are not a number (``a``, ``and``, ``an and``)."""
    meaningful = [w for w in words if w not in ("and",)]
    if not meaningful or all(w in ("a", "an") for w in meaningful):
        return None
    if meaningful[0] in ("a", "an") and (len(meaningful) < 2 or meaningful[1] not in _SCALES):
        return None  # "a two" is not a number; "a hundred" is
    total = current = 0
    seen = False
    for w in meaningful:
        if w in ("a", "an"):
            current = 1
        elif w in _UNITS:
            current += _UNITS[w]
            seen = True
        elif w in _TENS:
            current += _TENS[w]
            seen = True
        else:
            scale = _SCALES[w]
            current = max(current, 1) * scale
            if scale >= 1_000:
                total += current
                current = 0
            seen = True
    return total + current if seen else None


# ---- money -----------------------------------------------------------------------------------

_CURRENCY_WORDS = "|".join(
    sorted((re.escape(c) for c in CURRENCIES if c.isalpha()), key=len, reverse=True)
)
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_MONEY = re.compile(
    rf"(?P<sym>[$€£¥])\s?(?P<a1>{_AMOUNT})(?!\d|[.,]\d)"
    rf"|(?<![\w.,])(?P<a2>{_AMOUNT})(?!\d|[.,]\d)\s?(?:(?P<sym2>[$€£¥])|(?P<word>{_CURRENCY_WORDS})\b)",
    re.IGNORECASE,
)


def _money_text(amount: float, currency: str | None) -> str:
    if currency is None:
        return f"{amount:,.2f}"
    symbol = _SYMBOL.get(currency)
    if currency == "JPY":
        return f"¥{amount:,.0f}"
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


def _money(text: str, *, asked: bool) -> list[Found]:
    found: list[Found] = []
    for m in _MONEY.finditer(text):
        raw = m.group("a1") or m.group("a2")
        symbol = m.group("sym") or m.group("sym2") or (m.group("word") or "").lower()
        amount = float(Decimal(raw.replace(",", "")))
        if amount >= 1e15:
            continue
        currency = CURRENCIES[symbol]
        value = {"amount": amount, "currency": currency}
        found.append(Found(value, _money_text(amount, currency), m.start(), m.end()))
    if not found and asked:
        for number in _numbers(text):
            if isinstance(number.value, int | float) and number.value >= 0:
                amount = float(number.value)
                value = {"amount": amount, "currency": None}
                found.append(Found(value, _money_text(amount, None), number.start, number.end))
    return found


# ---- dates -----------------------------------------------------------------------------------


def _dates(text: str, now: datetime) -> list[Found]:
    from dateparser.search import search_dates  # type: ignore[import-untyped]  # ~0.3 s

    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "RETURN_AS_TIMEZONE_AWARE": False,
        "STRICT_PARSING": False,
    }
    try:
        hits = search_dates(text, languages=["en"], settings=settings) or []
    except (ValueError, OverflowError, RecursionError):
        return []  # dateparser refuses some inputs by raising; nothing found, then
    found: list[Found] = []
    cursor = 0
    for phrase, when in hits:
        if not _looks_like_a_date(phrase):
            continue
        start = text.find(phrase, cursor)
        if start < 0:
            start = text.find(phrase)
        if start < 0:
            continue
        cursor = start + len(phrase)
        day: date = when.date()
        found.append(Found(day.isoformat(), day.isoformat(), start, start + len(phrase)))
    return found


_DATE_HINT = re.compile(
    r"today|tomorrow|yesterday|tonight|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|\bweeks?\b|\bmonths?\b|\byears?\b|\bdays?\b|january|february|"
    r"march|april|\bmay\b|june|july|august|september|october|november|december|"
    r"\b(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\b"
    r"|\d{1,4}[-/.]\d{1,2}(?:[-/.]\d{1,4})?",
    re.IGNORECASE,
)


def _looks_like_a_date(phrase: str) -> bool:
    """dateparser reads a bare ``now``, ``in``, ``second`` or ``80`` (the year 2080) as a
    date; keep phrases that name a day, a weekday, a month or a period, or are written
    as a date (``2027-03-12``, ``12/03``)."""
    return bool(_DATE_HINT.search(phrase))


# ---- e-mail and choices ----------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\b"
)
_WORD = re.compile(r"\w+(?:[-']\w+)*")


def _choices(options: Sequence[str], text: str) -> list[Found]:
    lowered = text.lower()
    found: list[Found] = []
    for option in options:  # exact, as whole words (an option may be several words)
        for m in re.finditer(rf"(?<!\w){re.escape(option.lower())}(?!\w)", lowered):
            found.append(Found(option, option, m.start(), m.end()))
    if found:
        return sorted(found, key=lambda f: f.start)
    by_lower = {o.lower(): o for o in options}
    for m in _WORD.finditer(lowered):  # a close misspelling of a one-word option
        close = difflib.get_close_matches(m.group(0), list(by_lower), n=1, cutoff=0.8)
        if close and len(m.group(0)) >= 3:
            option = by_lower[close[0]]
            found.append(Found(option, option, m.start(), m.end()))
    return found
