"""The dashboard's web plumbing: sessions, the login requirement, CSRF, flash messages and
template rendering. The pages (:mod:`aiweb.dashboard.routes`) gather data from services
and hand it to :func:`render`; everything about cookies and tokens happens here.

Every page needs a dashboard session (see :mod:`aiweb.dashboard.session`): without one
:func:`current_session` raises :class:`LoginRequired`, and the handler that
:func:`install_handlers` adds sends the browser to ``/login`` (htmx requests get
``HX-Redirect``). Every POST
reads its form through :func:`checked_form`, which checks the session's CSRF token and,
when the browser sends one, that ``Origin`` is this server; a failed check raises
:class:`CsrfRejected`, answered with a 403 page.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from aiweb import __version__
from aiweb.dashboard.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    FLASH_COOKIE,
    FLASH_MAX_AGE_S,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    DashboardSession,
    SessionCodec,
    SessionStore,
    clear_cookie,
    set_cookie,
    tokens_match,
)
from aiweb.dashboard.users import UserService
from aiweb.errors import AiwebError, NotFoundError
from aiweb.security.keys import KeyService

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["aiweb_version"] = __version__
templates.env.filters["series"] = lambda models, field: [
    {"name": name, "values": stats[field]} for name, stats in sorted(models.items())
]

LOGIN_CSRF_MAX_AGE_S = 3600
"""Lifetime of the login form's double-submit cookie, seconds."""


class LoginRequired(Exception):
    """No valid dashboard session; carries where to go back after logging in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A POST without the session's CSRF token, or from another origin."""


# -- sessions --------------------------------------------------------------------------------


def app_state(request: Request) -> Any:
    """The app's state: the services built at start-up (``request.app.state``)."""
    return request.app.state


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.dashboard_sessions
    return codec


def _store(request: Request) -> SessionStore:
    return SessionStore(request.app.state.dashboard_db)


def safe_next(value: str | None) -> str:
    """A local path to return to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def current_session(request: Request) -> DashboardSession:
    """The logged-in session, checked against the keys and users tables.

    Raises:
        LoginRequired: no cookie, a bad one, or its key/user is no longer allowed in.
    """
    session = _codec(request).read(request.cookies.get(SESSION_COOKIE))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if session is None or not await anyio.to_thread.run_sync(_still_allowed, request, session):
        raise LoginRequired(target)
    request.state.dashboard_session = session
    return session


def _still_allowed(request: Request, session: DashboardSession) -> bool:
    state = app_state(request)
    if not _store(request).is_live(session.sid):
        return False  # logged out (or never opened)
    try:
        if session.kind == "key":
            keys: KeyService = state.keys
            key = keys.get(session.name)
            return key.state() == "active" and key.allows("admin")
        users: UserService = state.dashboard_users
        user = users.get(session.name)
    except NotFoundError:
        return False
    return user.active and tokens_match(user.stamp, session.stamp)


SessionDep = Annotated[DashboardSession, Depends(current_session)]
"""A page's parameter that requires a logged-in session."""


async def issue_session(
    request: Request, kind: Literal["key", "user"], name: str, stamp: str = ""
) -> tuple[str, DashboardSession]:
    """A new session cookie value and the session it holds (see :meth:`SessionCodec.issue`),
    live in the session store from now on."""
    codec = _codec(request)
    value, session = codec.issue(kind, name, stamp)
    await anyio.to_thread.run_sync(_store(request).open, session, codec.max_age_s)
    return value, session


async def end_session(request: Request, session: DashboardSession) -> None:
    """Close ``session`` in the store: its cookie, or any copy of it, no longer logs in."""
    await anyio.to_thread.run_sync(_store(request).close, session.sid)


def enter(request: Request, cookie: str, next_path: str) -> RedirectResponse:
    """Go to ``next_path`` with the session cookie set (and the login form's cookie gone)."""
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, cookie, _codec(request).max_age_s)
    clear_cookie(response, request, LOGIN_CSRF_COOKIE, path="/login")
    return response


def leave(request: Request) -> RedirectResponse:
    """Go to the login page with the session cookie dropped."""
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


# -- forms and CSRF --------------------------------------------------------------------------


async def checked_form(request: Request, session: DashboardSession) -> FormData:
    """The POSTed form, after the CSRF and origin checks.

    Raises:
        CsrfRejected: missing or wrong token, or a foreign ``Origin``.
    """
    origin = request.headers.get("origin")
    # "null" is what browsers send under some referrer policies; the token still decides
    if origin and origin != "null" and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise CsrfRejected()
    form = await request.form()
    token = form.get(CSRF_FIELD)
    given = token if isinstance(token, str) else request.headers.get(CSRF_HEADER)
    if not tokens_match(session.csrf, given):
        raise CsrfRejected()
    return form


async def login_form(request: Request) -> FormData:
    """The POSTed login form, after its double-submit token check (no session yet).

    Raises:
        CsrfRejected: the form's token is missing or not the one of its cookie.
    """
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not tokens_match(
        request.cookies.get(LOGIN_CSRF_COOKIE, ""), given if isinstance(given, str) else None
    ):
        raise CsrfRejected()
    return form


def field(form: FormData, name: str, default: str = "") -> str:
    """A form field, stripped; ``default`` when absent or a file."""
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it swaps in a fragment instead of a page)."""
    return request.headers.get("hx-request") == "true"


# -- rendering and flash messages ------------------------------------------------------------


def _flash(request: Request) -> dict[str, str] | None:
    return _codec(request).read_flash(request.cookies.get(FLASH_COOKIE))


def redirect_with_flash(request: Request, to: str, kind: str, text: str) -> RedirectResponse:
    """Go to ``to`` (303), which then shows ``text`` once (``kind``: ``ok`` or ``error``)."""
    response = RedirectResponse(to, status_code=303)
    value = _codec(request).sign_flash(kind, text)
    set_cookie(response, request, FLASH_COOKIE, value, FLASH_MAX_AGE_S)
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: DashboardSession | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the common context (session, CSRF token, flash)."""
    flash = _flash(request)
    base = {
        "session": session,
        "csrf": session.csrf if session else "",
        "flash": flash,
        "path": request.url.path,
        "now": datetime.now(UTC),
    }
    response = templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    # forms then carry a real Origin header (no-referrer makes browsers send "null")
    response.headers["Referrer-Policy"] = "same-origin"
    if flash is not None:
        clear_cookie(response, request, FLASH_COOKIE)
    return response


def render_login(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render a login page with a fresh double-submit CSRF token: the cookie, and the
    ``login_csrf`` value its form sends back."""
    token = secrets.token_urlsafe(32)
    response = render(request, template, {**context, "login_csrf": token}, status_code=status_code)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, LOGIN_CSRF_MAX_AGE_S, path="/login")
    return response


def render_error(request: Request, session: DashboardSession, exc: AiwebError) -> HTMLResponse:
    """The error page of ``exc``, with its status (e.g. 404 for an unknown model)."""
    return render(
        request,
        "error.html",
        {"title": exc.title, "detail": exc.detail},
        session=session,
        status_code=exc.status,
    )


# -- error handlers --------------------------------------------------------------------------


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    to = f"/login?next={quote(safe_next(exc.next_path), safe='/')}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": to})
    return RedirectResponse(to, status_code=303)


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    detail = (
        "This form was not sent by this dashboard page (missing or old security token). "
        "Reload the page and try again."
    )
    context = {"title": "Form expired", "detail": detail}
    return render(request, "error.html", context, status_code=403)


def install_handlers(app: FastAPI) -> None:
    """Answer :class:`LoginRequired` with the login page and :class:`CsrfRejected` with a
    403 page."""
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
