"""Monitoring: Prometheus metrics, structured logs, the prediction log, feedback and live
accuracy, drift against each version's reference profile, alerts, dashboard statistics."""

__all__ = [
    "alerts",
    "drift",
    "feedback",
    "logs",
    "metrics",
    "prediction_log",
    "retention",
    "schemas",
    "stats",
]
