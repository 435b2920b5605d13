"""Security: API keys and scopes, rate limits, the audit log."""
