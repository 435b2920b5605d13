"""Monitoring: the prediction log (and, later, metrics and drift)."""
