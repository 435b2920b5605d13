"""The web dashboard at ``/``: server-rendered pages (Jinja2 + htmx, Chart.js vendored),
a signed session cookie from an admin API key or a username/password (revocable
server-side), throttled failed logins, CSRF tokens on every form, and a strict
Content-Security-Policy."""

__all__ = [
    "routes",
    "session",
    "throttle",
    "users",
    "views",
    "web",
]
