"""Serving machinery shared by every task: the one version cache (:mod:`.versions`),
micro-batching, the prediction cache, background re-reads, connection balancing over
workers, GC and BLAS tuning."""

__all__ = [
    "background",
    "balance",
    "batching",
    "cache",
    "gc",
    "protocol",
    "threads",
    "versions",
]
