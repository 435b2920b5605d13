from __future__ import annotations

import math

import numpy as np
import pytest

from aiweb.errors import InvalidInputError
from aiweb.monitoring.drift import (
    MIN_SAMPLES,
    MIN_SAMPLES_PSI,
    PSI_THRESHOLD,
    _binned,
    build_reference,
    compare,
    label_shift_p_value,
    oov_rate,
    parse_window,
    psi,
)


def test_psi_by_hand() -> None:
    reference = {"edges": [10.0], "fractions": [0.5, 0.5]}
    # live: 80% below 10, 20% above: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    live = [1.0] * 8 + [20.0] * 2
    expected = 0.3 * math.log(1.6) + (-0.3) * math.log(0.4)
    assert psi(reference, live) == pytest.approx(expected)
    assert psi(reference, [1.0, 20.0] * 50) == pytest.approx(0.0)


def test_empty_bins_are_floored_not_infinite() -> None:
    reference = {"edges": [10.0], "fractions": [1.0, 0.0]}
    value = psi(reference, [20.0] * 10)
    assert math.isfinite(value)
    assert value > 0.2


def test_label_shift() -> None:
    reference = {"negative": 0.5, "positive": 0.5}
    assert label_shift_p_value(reference, ["negative", "positive"] * 100) == pytest.approx(1.0)
    assert label_shift_p_value(reference, ["negative"] * 190 + ["positive"] * 10) < 1e-6


def test_oov_rate() -> None:
    vocabulary = frozenset({"great", "film"})
    assert oov_rate("A great film!", vocabulary) == 0.0  # "a" is not a token (2+ chars)
    assert oov_rate("great flight delay", vocabulary) == pytest.approx(2 / 3)
    assert oov_rate("?!", vocabulary) == 0.0


def test_windows() -> None:
    assert parse_window("30m").total_seconds() == 1800
    assert parse_window("7d").days == 7
    for bad in ("", "24", "0h", "1w", "91d", "-1h"):
        with pytest.raises(InvalidInputError):
            parse_window(bad)


def test_small_windows_are_never_flagged() -> None:
    texts = ["short"] * 50 + ["a much longer sentence about a film " * 3] * 50
    reference = build_reference(texts, ["positive"] * 100, ["negative", "positive"], ["film"])
    few = MIN_SAMPLES - 1
    drift, features = compare(reference, ["negative"] * few, [500.0] * few, [1.0] * few)
    assert drift is False
    assert all(f["drift"] is False for f in features)
    # from 30 predictions the chi-square test judges; PSI waits for MIN_SAMPLES_PSI
    drift, features = compare(reference, ["negative"] * 100, [500.0] * 100, [1.0] * 100)
    assert drift is True
    assert {f["name"] for f in features if f["drift"]} == {"predicted_label"}
    n = MIN_SAMPLES_PSI
    drift, features = compare(reference, ["negative"] * n, [500.0] * n, [1.0] * n)
    assert {f["name"] for f in features if f["drift"]} == {
        "predicted_label",
        "text_length",
        "oov_rate",
    }
    assert np.isfinite([f["value"] for f in features]).all()


def test_psi_of_an_undrifted_sample_stays_under_the_threshold_from_min_samples_psi() -> None:
    # the small-sample bias that MIN_SAMPLES_PSI guards against: same distribution,
    # PSI of 60 draws often exceeds 0.2, of MIN_SAMPLES_PSI draws (almost) never does
    rng = np.random.default_rng(0)
    population = rng.lognormal(4.0, 0.6, 5000)
    reference = _binned(population[:1000].tolist())
    small = [psi(reference, rng.choice(population, 60).tolist()) for _ in range(200)]
    large = [psi(reference, rng.choice(population, MIN_SAMPLES_PSI).tolist()) for _ in range(200)]
    assert np.mean(np.asarray(small) > PSI_THRESHOLD) > 0.05
    assert np.mean(np.asarray(large) > PSI_THRESHOLD) < 0.01
