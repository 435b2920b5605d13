"""Security: API keys and scopes, rate limits, the audit log."""

__all__ = [
    "audit",
    "auth",
    "keys",
    "ratelimit",
    "schemas",
    "secrets",
]
