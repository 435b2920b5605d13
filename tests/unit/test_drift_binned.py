"""Binned drift profiles (aiweb.monitoring.drift): bins of numbers and categories with
their missing and unseen shares, and PSI over them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiweb.monitoring.drift import (
    MIN_SAMPLES_PSI,
    assign_bins,
    bin_fractions,
    categorical_profile,
    compare,
    compare_binned,
    numeric_profile,
)

floats = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.just(math.nan)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=300))
def test_numeric_profile_bins_every_value_once(values: list[float]) -> None:
    data = np.asarray(values, dtype=np.float64)
    profile = numeric_profile(data)
    bins = assign_bins(profile, data)
    assert bins.shape == data.shape
    assert ((bins >= 0) & (bins < len(profile["bins"]))).all()
    assert (bins[np.isnan(data)] == len(profile["bins"]) - 1).all()  # missing: last bin
    assert math.isclose(sum(profile["fractions"]), 1.0)
    assert profile["fractions"][-1] == pytest.approx(np.isnan(data).mean())
    # bins are ordered: a larger value never falls in an earlier bin
    present = ~np.isnan(data)
    order = np.argsort(data[present], kind="stable")
    assert (np.diff(bins[present][order]) >= 0).all()
    assert compare_binned("x", profile, bins.tolist())["value"] == pytest.approx(0.0, abs=1e-12)


def test_numeric_bins_close_at_their_edges() -> None:
    profile = numeric_profile(np.arange(1.0, 101.0))
    assert profile["edges"][0] == pytest.approx(10.9)
    assert profile["bins"][0] == "≤ 10.9"
    assert profile["bins"][-2] == "> 90.1"
    assert assign_bins(profile, np.array([10.9, 10.91, -1e300, 1e300, np.nan])).tolist() == [
        0,
        1,
        0,
        9,
        10,
    ]


def test_an_all_missing_column_has_one_value_bin_and_missing() -> None:
    profile = numeric_profile(np.full(5, np.nan))
    assert profile["bins"] == ["any", "missing"]
    assert profile["fractions"] == [0.0, 1.0]
    assert assign_bins(profile, np.array([3.0, np.nan])).tolist() == [0, 1]


def test_categorical_profile_other_unseen_and_missing() -> None:
    categories = ["a", "b", "c", "d"]
    codes = np.array([0, 0, 0, 1, 1, 2, 3, np.nan])
    profile = categorical_profile(codes, categories, np.isnan(codes), max_bins=2)
    assert profile["bins"] == ["a", "b", "other", "unseen", "missing"]
    assert profile["fractions"] == pytest.approx([3 / 8, 2 / 8, 2 / 8, 0, 1 / 8])
    live = np.array([0, 2, 3, np.nan, np.nan, 7])  # 7: a code beyond the profile: other
    missing = np.array([False, False, False, True, False, False])
    assert assign_bins(profile, live, missing).tolist() == [0, 2, 2, 4, 3, 2]


def test_psi_judges_shifts_from_enough_values() -> None:
    rng = np.random.default_rng(0)
    profile = numeric_profile(rng.normal(0, 1, 2000))
    same = assign_bins(profile, rng.normal(0, 1, 1000)).tolist()
    moved = assign_bins(profile, rng.normal(1, 1, 1000)).tolist()
    assert compare_binned("x", profile, same)["drift"] is False
    shifted = compare_binned("x", profile, moved)
    assert shifted["drift"] is True
    assert shifted["value"] > 0.2
    few = compare_binned("x", profile, moved[: MIN_SAMPLES_PSI - 1])
    assert few["value"] > 0.2
    assert few["drift"] is False  # shown, not judged


def test_missing_and_unseen_shares_are_reported() -> None:
    codes = np.array([0.0, 1.0] * 50)
    profile = categorical_profile(codes, ["x", "y"], np.zeros(100, dtype=bool))
    live = assign_bins(
        profile, np.array([0.0] * 100 + [np.nan] * 100), np.array([False] * 150 + [True] * 50)
    )
    feature = compare_binned("c", profile, live.tolist())
    assert feature["unseen_share"] == {"reference": 0.0, "live": 0.25}
    assert feature["missing_share"] == {"reference": 0.0, "live": 0.25}
    assert feature["drift"] is True
    assert feature["live"] == pytest.approx(bin_fractions(profile, live))


def test_compare_without_labels_reports_binned_features_only() -> None:
    profile = numeric_profile(np.arange(300.0))
    reference = {"binned_features": {"prediction": profile}}
    drift, features = compare(reference, ["value"] * 300, [], [], {"prediction": [0] * 300})
    assert [f["name"] for f in features] == ["prediction"]
    assert drift is True
