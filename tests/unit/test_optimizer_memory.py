"""A TF-IDF fit whose optimizer cannot fit in memory is refused up front (CLINC150's 151
classes on the default 2 x 2**19 hashed columns used to die of a MemoryError)."""

from __future__ import annotations

import os

import pytest

from aiweb.classification.trainer import (
    LBFGS_BYTES_PER_WEIGHT,
    TrainParams,
    check_optimizer_memory,
    fit_text_classifier,
)
from aiweb.errors import InvalidInputError


def test_a_fit_beyond_physical_memory_is_refused_before_it_starts() -> None:
    labels = [f"intent_{i}" for i in range(200)] * 2
    texts = [f"query {i} about {label}" for i, label in enumerate(labels)]
    # 200 classes x 2 x 2**22 columns: ~1.7e9 weights, ~390 GB of optimizer state
    params = TrainParams(n_features_log2=22)
    with pytest.raises(InvalidInputError, match=r"n_features_log2=16") as excinfo:
        fit_text_classifier(texts, labels, params)
    assert "200 classes x 8,388,608 feature columns" in str(excinfo.value)


def test_the_estimate_counts_one_row_for_two_classes() -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    columns = int(total / LBFGS_BYTES_PER_WEIGHT * 0.6)  # 60% of memory for one row
    check_optimizer_memory(2, columns)  # binary: one row of weights, fits
    with pytest.raises(InvalidInputError):
        check_optimizer_memory(3, columns)  # three rows do not
