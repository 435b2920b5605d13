"""Serving machinery shared by every task: the one version cache (:mod:`.versions`),
micro-batching, the prediction cache, background re-reads, connection balancing over
workers, GC and BLAS tuning, and the Open Inference Protocol without a transport
(:mod:`.oip`)."""

__all__ = [
    "background",
    "balance",
    "batching",
    "cache",
    "gc",
    "oip",
    "oip_grpc",
    "protocol",
    "threads",
    "versions",
]
