"""Benchmarks and load tests; each prints a table against a baseline measured in the same run.

Results are recorded in ``docs/benchmarks.md``.
"""
