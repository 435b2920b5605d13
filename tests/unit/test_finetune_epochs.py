"""How many epochs fine-tuning runs when none is given (aiweb.classification.finetune)."""

from __future__ import annotations

import math

import pytest

from aiweb.classification.finetune import AUTO_EPOCHS, AUTO_MIN_STEPS, auto_epochs
from aiweb.classification.trainer import TrainParams


@pytest.mark.parametrize(
    ("rows", "epochs"),
    [(67_349, 3), (10_003, 10), (15_100, 7), (300, 20), (1_000_000, 3)],
)
def test_enough_epochs_for_the_minimum_steps_within_bounds(rows: int, epochs: int) -> None:
    steps_per_epoch = math.ceil(rows / 32)
    assert auto_epochs(steps_per_epoch) == epochs
    low, high = AUTO_EPOCHS
    if low < epochs < high:  # not clamped: just enough steps
        assert (epochs - 1) * steps_per_epoch < AUTO_MIN_STEPS <= epochs * steps_per_epoch


def test_epochs_is_unset_by_default_and_still_settable() -> None:
    assert TrainParams().epochs is None
    assert TrainParams(epochs=5).epochs == 5
