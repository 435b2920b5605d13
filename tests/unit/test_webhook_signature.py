"""aiweb.client.webhooks.verify_signature against the server's signer, and stdlib only."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from aiweb.client.webhooks import WebhookSignatureError, verify_signature
from aiweb.webhooks.signing import sign

SECRET = "whsec_0123456789abcdef"
BODY = b'{"id":"e1","type":"job.finished","data":{}}'


def test_a_fresh_signature_verifies() -> None:
    verify_signature(BODY, sign(BODY, SECRET), SECRET)
    # several v1 values (a rotated secret): one matching is enough
    header = sign(BODY, SECRET)
    t = header.split(",")[0]
    verify_signature(BODY, f"{t},v1={'0' * 64},{header.split(',')[1]}", SECRET)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "t=<unix>,v1=<hex>"),
        ("v1=abc", "t=<unix>,v1=<hex>"),
        ("t=12,", "t=<unix>,v1=<hex>"),
        ("t=soon,v1=abc", "malformed timestamp"),
        ("t=1,v1=abc", "from now"),
    ],
)
def test_malformed_or_old_headers_are_refused(header: str, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=message):
        verify_signature(BODY, header, SECRET)


def test_tampering_and_age_are_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(BODY.replace(b"e1", b"e2"), sign(BODY, SECRET), SECRET)
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(BODY, sign(BODY, SECRET), SECRET + "x")
    old = sign(BODY, SECRET, int(time.time()) - 301)
    with pytest.raises(WebhookSignatureError, match="from now"):
        verify_signature(BODY, old, SECRET)
    verify_signature(BODY, old, SECRET, tolerance_s=600)
    verify_signature(BODY, sign(BODY, SECRET, 1), SECRET, tolerance_s=0)  # no time check
    with pytest.raises(TypeError):
        verify_signature(BODY.decode(), sign(BODY, SECRET), SECRET)  # type: ignore[arg-type]


def test_the_check_is_standard_library_only() -> None:
    """The module runs in an interpreter without site-packages (``-S``): copy it into
    any web app as it is."""
    import aiweb.client.webhooks as module

    code = (
        "import importlib.util, sys, time; "
        f"spec = importlib.util.spec_from_file_location('w', {module.__file__!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "assert not [n for n in sys.modules if n.startswith(('aiweb', 'httpx', 'pydantic'))]; "
        f"m.verify_signature({BODY!r}, {sign(BODY, SECRET)!r}, {SECRET!r})"
    )
    subprocess.run([sys.executable, "-S", "-I", "-c", code], check=True, capture_output=True)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, aiweb.client.webhooks; print(sorted(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for server_module in ("'fastapi'", "'sqlalchemy'", "'aiweb.db'", "'aiweb.webhooks'"):
        assert server_module not in loaded
