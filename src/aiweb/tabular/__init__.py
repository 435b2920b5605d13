"""Tabular models: classification, regression and anomaly scores over rows of named columns
(a CSV), with inferred column types, costed thresholds and exact explanations."""

__all__ = [
    "batch",
    "columns",
    "data",
    "drift",
    "evaluation",
    "explain",
    "jobs",
    "model",
    "schemas",
    "service",
    "task",
    "trainer",
    "training",
]
