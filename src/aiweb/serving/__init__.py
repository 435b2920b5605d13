"""Serving machinery shared by every task: micro-batching."""
