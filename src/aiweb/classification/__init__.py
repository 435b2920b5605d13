"""Text classification: training (TF-IDF + LogisticRegression), evaluation, serving."""

__all__ = [
    "embedding_features",
    "evaluation",
    "explain",
    "finetune",
    "jobs",
    "loader",
    "model",
    "onnx_export",
    "rejection",
    "schemas",
    "service",
    "stacked_features",
    "task",
    "trainer",
    "training",
    "transformer",
]
