"""PII detection and redaction (aiweb.documents.pii): what is found, what is left alone,
and that no text makes it slow."""

from __future__ import annotations

import time

import pytest

from aiweb.documents.pii import KINDS, PLACEHOLDERS, find_pii, redact


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("jane.doe@example.com", "jane.doe@example.com"),
        ("Mail: Jane.Doe+cv@mail.example.co.uk.", "Jane.Doe+cv@mail.example.co.uk"),
        ("<bob_99@sub-domain.example.org>", "bob_99@sub-domain.example.org"),
        ("mailto:anna@firma.de", "anna@firma.de"),
        ("jürgen.müller@münchen.de", "jürgen.müller@münchen.de"),
    ],
)
def test_email_addresses_are_found(text: str, found: str) -> None:
    [span] = find_pii(text)
    assert (span.kind, span.text) == ("email", found)
    assert text[span.start : span.end] == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("https://example.com/jobs?id=3&x=y.", "https://example.com/jobs?id=3&x=y"),
        ("(see http://example.org/a)", "http://example.org/a"),
        ("HTTPS://EXAMPLE.COM/X", "HTTPS://EXAMPLE.COM/X"),
        ("www.jane-doe.dev, thanks", "www.jane-doe.dev"),
        ("linkedin.com/in/jane-doe/", "linkedin.com/in/jane-doe/"),
        ("github.com/janedoe.", "github.com/janedoe"),
        ("ftp://files.example.net/cv.pdf;", "ftp://files.example.net/cv.pdf"),
        ("https://user@example.com/x", "https://user@example.com/x"),  # not an e-mail
    ],
)
def test_urls_are_found(text: str, found: str) -> None:
    [span] = find_pii(text)
    assert (span.kind, span.text) == ("url", found)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Tel: +44 20 7946 0958.", "+44 20 7946 0958"),
        ("(555) 123-4567", "(555) 123-4567"),
        ("555-123-4567", "555-123-4567"),
        ("555.123.4567", "555.123.4567"),
        ("+1-800-555-0199", "+1-800-555-0199"),
        ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("mobile 07700 900123", "07700 900123"),
        ("0049 30 1234567", "0049 30 1234567"),
        ("06.12.34.56.78", "06.12.34.56.78"),
        ("+4915112345678", "+4915112345678"),
        ("call 02079460958 now", "02079460958"),
        ("+49 (0)30 1234567", "+49 (0)30 1234567"),
    ],
)
def test_phone_numbers_are_found(text: str, found: str) -> None:
    [span] = find_pii(text)
    assert (span.kind, span.text) == ("phone", found)


@pytest.mark.parametrize(
    "text",
    [
        "2015-2019",  # a year range
        "2019 - 2023",
        "2023-01-15",  # dates
        "15/01/2023",
        "15.01.2023",
        "1.2.2023",
        "192.168.100.200",  # an IPv4 address
        "1 000 000 users",  # thousands groups
        "120.000.000 EUR",
        "employee id 1234567",  # an unseparated run under 10 digits
        "card 4111 1111 1111 1111",  # 16 digits: never cut into a phone number
        "id 12345678901234567890",
        "Python 3.11.7, v2.0, 99.9% uptime, 24/7",
        "Skills: Node.js/React, ASP.NET/Core, Vue.js, D3.js, app.py/main",
        "example.com (a bare domain without a path)",
        "root@localhost, @handle, e.g./i.e., and/or, km/h, TCP/IP",
        "C++/C#, CI/CD, UI/UX",
    ],
)
def test_what_is_not_pii_is_left_alone(text: str) -> None:
    assert find_pii(text) == []
    assert redact(text).text == text


def test_redact_replaces_every_kind_and_counts() -> None:
    text = (
        "Jane Doe | jane@example.com | +44 20 7946 0958 | github.com/jane\n"
        "Worked 2019-2023 at example.com; refs: bob@example.org, (555) 123-4567, "
        "https://example.com/refs."
    )
    done = redact(text)
    assert done.text == (
        "Jane Doe | [EMAIL] | [PHONE] | [URL]\n"
        "Worked 2019-2023 at example.com; refs: [EMAIL], [PHONE], [URL]."
    )
    assert done.counts == {"url": 2, "email": 2, "phone": 2}
    assert set(done.counts) == set(KINDS) == set(PLACEHOLDERS)
    assert find_pii(done.text) == []  # placeholders are not PII themselves


def test_spans_are_ordered_and_slice_the_text() -> None:
    text = "a@b.io or www.x.org/p or +1 555 123 4567 or c@d.io"
    spans = find_pii(text)
    assert [s.kind for s in spans] == ["email", "url", "phone", "email"]
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_nothing_to_redact() -> None:
    done = redact("")
    assert done.text == ""
    assert done.counts == {"url": 0, "email": 0, "phone": 0}


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 1_000_000,
        "a." * 500_000,
        "a@" * 500_000,
        "1 " * 500_000,
        "1-" * 500_000,
        "(" * 1_000_000,
        ("a" * 60 + ".") * 15_000 + "-",
        "x@" + "a." * 400_000 + "1",
        "www." * 250_000,
        "9" * 1_000_000,
    ],
    ids=lambda s: repr(s[:6]),
)
def test_hostile_text_is_scanned_in_linear_time(hostile: str) -> None:
    started = time.perf_counter()
    find_pii(hostile)
    assert time.perf_counter() - started < 5  # about 0.3 s a MB; quadratic would be hours
