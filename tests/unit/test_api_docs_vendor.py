"""The offline API docs' files and pages (aiweb.api.apidocs), without a server.

The vendored Swagger UI and ReDoc files are the npm ones (their digests are recorded in
``vendor/README.md``), the wheel ships every file under ``api/static``, and the pages the
module writes load only those files and run no inline script.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from aiweb.api import apidocs

STATIC = apidocs.STATIC_DIR
VENDOR = STATIC / "vendor"
PACKAGE = STATIC.parents[1]  # src/aiweb
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
URL_ATTR = re.compile(r'\b(?:src|href)="([^"]*)"')
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


def test_vendored_files_match_the_recorded_digests() -> None:
    readme = (VENDOR / "README.md").read_text()
    recorded = dict(re.findall(r"- `([^`]+\.(?:js|css))`: `([0-9a-f]{64})`", readme))
    expected = {Path(path).name for path in apidocs.VENDOR_FILES.values()}
    assert set(recorded) == expected
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
        assert f"| `{name}` |" in readme  # and it has a row: package, version, integrity
    for version in (apidocs.SWAGGER_UI_VERSION, apidocs.REDOC_VERSION):
        assert re.search(rf"\| {re.escape(version)} \| `sha512-[A-Za-z0-9+/=]+` \|", readme)


def test_the_wheel_ships_every_static_file() -> None:
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    files = [p.relative_to(PACKAGE).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert "api/static/swagger-init.js" in files
    for path in files:
        assert any(fnmatch(path, pattern) for pattern in patterns["aiweb"]), path


def page_urls(page: str) -> list[str]:
    return URL_ATTR.findall(page)


def assert_no_inline_script(page: str) -> None:
    for attributes, body in SCRIPT.findall(page):
        if 'type="application/json"' in attributes:
            continue  # data, never run
        assert "src=" in attributes
        assert not body.strip()
    assert "<style" not in page
    assert " style=" not in page


def test_swagger_page_loads_the_vendored_files_only() -> None:
    page = apidocs.swagger_ui_html(
        title="aiweb - Swagger UI",
        openapi_url="/openapi.json",
        oauth2_redirect_path="/docs/oauth2-redirect",
        static="/static/apidocs",
    )
    assert_no_inline_script(page)
    urls = page_urls(page)
    assert "/static/apidocs/vendor/swagger-ui-bundle-5.35.0.js" in urls
    assert "/static/apidocs/vendor/swagger-ui-5.35.0.css" in urls
    assert "/static/apidocs/swagger-init.js" in urls
    assert all(url.startswith("/") and not url.startswith("//") for url in urls)
    assert '"url": "/openapi.json"' in page
    assert '"oauth2RedirectPath": "/docs/oauth2-redirect"' in page


def test_redoc_page_loads_the_vendored_files_only_and_no_font() -> None:
    page = apidocs.redoc_html(
        title="aiweb - ReDoc", openapi_url="/openapi.json", static="/static/apidocs", nonce="n1"
    )
    assert_no_inline_script(page)
    urls = page_urls(page)
    assert "/static/apidocs/vendor/redoc.standalone-2.5.4.js" in urls
    assert "/static/apidocs/redoc-init.js" in urls
    assert all(url.startswith("/") and not url.startswith("//") for url in urls)
    assert "fonts.googleapis.com" not in page
    assert 'data-nonce="n1"' in page
    assert 'data-spec-url="/openapi.json"' in page
    # no <redoc> element: ReDoc would start itself from it without the nonce
    assert "<redoc" not in page


def test_oauth2_redirect_page_runs_the_vendored_script() -> None:
    page = apidocs.oauth2_redirect_html(static="/api/static/apidocs")
    assert_no_inline_script(page)
    assert page_urls(page) == ["/api/static/apidocs/vendor/swagger-ui-oauth2-redirect-5.35.0.js"]


@pytest.mark.parametrize("hostile", ["</script><script>alert(1)</script>", '"><img src=x>'])
def test_pages_escape_what_they_are_given(hostile: str) -> None:
    swagger = apidocs.swagger_ui_html(
        title=hostile, openapi_url=hostile, oauth2_redirect_path="/x", static="/s"
    )
    redoc = apidocs.redoc_html(title=hostile, openapi_url=hostile, static="/s", nonce="n")
    for page in (swagger, redoc):
        assert "<script>alert" not in page
        assert "<img" not in page
        assert_no_inline_script(page)
