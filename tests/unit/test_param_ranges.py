"""Training parameters are checked before a fit (issue 18, findings 7 and 8): every
numeric parameter of every recommendation algorithm and of the text classifier has a
finite range, NaN and infinity are refused however they arrive (a float, a string, the
CLI's JSON), the message gives the range; fits estimate their memory before allocating
and stop between iterations when told to; a version whose evaluation is not finite is
never promoted; and job errors carry no server paths."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiweb.classification.trainer import TrainParams, parse_params
from aiweb.cli.train import check_recommendation_params
from aiweb.errors import InvalidInputError
from aiweb.jobs.runner import scrub_paths
from aiweb.recommendations import algorithms as algos
from aiweb.recommendations.algorithms import base
from aiweb.recommendations.data import Interactions, ItemText
from aiweb.recommendations.training import check_params
from aiweb.registry.promotion import non_finite_as_null, non_finite_metrics

NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("name", "params", "valid"),
    [
        ("ease", {"l2": NAN}, "a finite number in (0, 1000000000]"),
        ("ease", {"l2": "NaN"}, "a finite number in (0, 1000000000]"),
        ("ease", {"l2": json.loads("NaN")}, "(0, 1000000000]"),  # what the CLI parses
        ("ease", {"l2": "Infinity"}, "(0, 1000000000]"),
        ("ease", {"l2": "1e309"}, "(0, 1000000000]"),
        ("ease", {"l2": 0}, "(0, 1000000000]"),
        ("ease", {"l2": -5}, "(0, 1000000000]"),
        ("ease", {"max_items": 10**6}, "an integer in [1, 100000]"),
        ("ease", {"min_item_users": 0}, "an integer in [1, 1000000000]"),
        ("als", {"factors": 1e6}, "an integer in [1, 1024]"),
        ("als", {"factors": 1.5}, "an integer in [1, 1024]"),
        ("als", {"factors": True}, "must be a number"),
        ("als", {"alpha": INF}, "a finite number in [0, 1000000]"),
        ("als", {"regularization": 0}, "a finite number in (0, 1000000]"),
        ("als", {"iterations": 10**6}, "an integer in [1, 1000]"),
        ("als", {"seed": -1}, "an integer in [0, 4294967295]"),
        ("bpr", {"iterations": 1e9}, "an integer in [1, 10000]"),
        ("bpr", {"learning_rate": 0}, "a finite number in (0, 10]"),
        ("bpr", {"learning_rate": "nan"}, "(0, 10]"),
        ("bpr", {"seed": 2**63}, "an integer in [0, 4294967295]"),
        ("content", {"max_features": 0}, "an integer in [1, 1000000]"),
        ("trending", {"half_life_days": NAN}, "a finite number in (0, 36500]"),
    ],
)
def test_recommendation_params_out_of_range_are_refused(
    name: str, params: dict[str, Any], valid: str
) -> None:
    with pytest.raises(InvalidInputError) as exc:
        algos.make(name, params)
    detail = exc.value.detail
    assert f"{name}.{next(iter(params))}" in detail
    assert valid in detail
    with pytest.raises(InvalidInputError):  # the training entry point checks them too
        check_params({name: params})
    with pytest.raises(InvalidInputError):  # and the CLI's --param ALGORITHM=JSON
        check_recommendation_params({name: params})


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ease", {"l2": 1e-6, "max_items": 100_000, "min_item_users": 1}),
        ("als", {"factors": 1024, "iterations": 1, "alpha": 0, "seed": 2**32 - 1}),
        ("als", {"factors": 32.0}),  # a whole float is an integer
        ("bpr", {"learning_rate": 10, "iterations": 10_000, "regularization": 0}),
        ("content", {"min_df": 1, "max_features": 1_000_000}),
        ("trending", {"half_life_days": "7"}),
        ("popularity", {}),
    ],
)
def test_boundaries_and_defaults_are_accepted(name: str, params: dict[str, Any]) -> None:
    algos.make(name, params)
    algos.make(name, None)


def test_constructors_refuse_nan_too() -> None:
    """``nan <= 0`` is false: the old ``if l2 <= 0`` let NaN through."""
    with pytest.raises(InvalidInputError, match=r"ease\.l2"):
        algos.EASE(l2=NAN)
    with pytest.raises(InvalidInputError, match=r"trending\.half_life_days"):
        algos.Trending(half_life_days=NAN)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"C": NAN}, "C=nan: Input should be a finite number (valid: a finite number in (0, "),
        ({"C": "NaN"}, "valid: a finite number in (0, 1000000]"),
        ({"C": "-Infinity"}, "valid: a finite number in (0, 1000000]"),
        ({"C": 1e7}, "valid: a finite number in (0, 1000000]"),
        ({"C": 0}, "valid: a finite number in (0, 1000000]"),
        ({"max_iter": 1e9}, "valid: an integer in [10, 100000]"),
        ({"seed": -1}, "valid: an integer in [0, 4294967295]"),
        ({"n_features_log2": 40}, "valid: an integer in [10, 24]"),
        ({"char_ngram_min": 6, "char_ngram_max": 3}, "must not exceed"),
        ({"nope": 1}, "unknown parameter 'nope'"),
    ],
)
def test_classifier_params_out_of_range_are_refused(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_params(params)
    assert fragment in exc.value.detail
    assert "errors.pydantic.dev" not in exc.value.detail  # words, not a pydantic dump


def test_classifier_defaults_and_minilm_c() -> None:
    assert parse_params({}) == TrainParams()
    assert parse_params({"features": "minilm"}).C == 8.0
    assert parse_params({"C": "4", "seed": 2**32 - 1}).C == 4.0


# ---- memory bound and cooperative stop --------------------------------------------------------


def interactions(n_users: int = 60, n_items: int = 80, per_user: int = 20) -> Interactions:
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(n_users):
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            users.append(f"u{u}")
            items.append(f"i{i}")
            times.append(float(t))
    return Interactions.build(users, items, times)


def test_fit_memory_check_names_estimate_and_limit() -> None:
    with pytest.raises(InvalidInputError) as exc:
        base.check_fit_memory("als with factors=1024", 3 * 10**12, "lower factors", limit=10**9)
    detail = exc.value.detail
    assert "3,000,000 MB" in detail
    assert "1,000 MB" in detail
    assert "lower factors" in detail
    base.check_fit_memory("small", 10**6, "", limit=10**9)  # under the limit: no error
    available = base.available_memory_bytes()
    assert available is not None
    assert available > 0


@pytest.mark.parametrize("name", ["als", "bpr", "ease"])
def test_fits_refuse_before_allocating_above_the_memory_limit(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = interactions()
    algo = algos.make(name, {"factors": 1024} if name != "ease" else {"min_item_users": 1})
    monkeypatch.setattr(base, "FIT_MEMORY_FRACTION", 1e-12)  # a limit of a few bytes
    with pytest.raises(InvalidInputError, match="MB of memory to fit"):
        algo.fit(data, [ItemText()] * data.n_items)
    assert getattr(algo, "item_factors_", None) is None
    assert getattr(algo, "weights_", None) is None


def test_factor_memory_estimate_grows_with_factors_and_data() -> None:
    small = algos.ALS(factors=8).memory_bytes(1000, 1000, 10_000)
    big = algos.ALS(factors=1024).memory_bytes(10**7, 10**6, 10**8)
    assert small < 10**8 < 10**11 < big
    assert algos.EASE.memory_bytes(20_000) > 8 * 20_000**2


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_iterative_fits_report_progress_and_stop_when_the_callback_raises(name: str) -> None:
    """What a cancelled job's ``progress`` does: the fit ends at the next iteration
    instead of running its 1000 (ALS) / 10000 (BPR) iterations."""
    data = interactions()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) >= 3:
            raise Stop

    algo = algos.make(name, {"iterations": 1000 if name == "als" else 10_000, "factors": 256})
    started = time.monotonic()
    with pytest.raises(Stop), base.fit_progress(progress):
        algo.fit(data, [ItemText()] * data.n_items)
    assert time.monotonic() - started < 5
    assert seen == sorted(seen)
    assert 0 < seen[0] < 0.01
    with base.fit_progress(None):  # no callback: a normal (short) fit
        algos.make(name, {"iterations": 2}).fit(data, [])


# ---- non-finite evaluations ------------------------------------------------------------------


def test_non_finite_metrics_are_found_and_nulled() -> None:
    report = {
        "ndcg": NAN,
        "recall": 0.5,
        "algorithms": {"als": {"test": {"ndcg": INF, "map": np.float32("nan")}}},
        "per_class": [{"f1": -INF}],
        "evaluated": True,
    }
    assert non_finite_metrics(report) == [
        "ndcg",
        "algorithms.als.test.ndcg",
        "algorithms.als.test.map",
        "per_class[0].f1",
    ]
    clean = non_finite_as_null(report)
    assert clean["ndcg"] is None
    assert clean["recall"] == 0.5
    assert clean["evaluated"] is True
    assert non_finite_metrics(clean) == []
    json.dumps(clean, allow_nan=False)
    # what training stores: the nulls and where they were
    assert non_finite_metrics({**clean, "non_finite_metrics": ["ndcg"]}) == ["ndcg"]


# ---- server paths in job errors --------------------------------------------------------------


def test_scrub_paths_leaves_no_server_directory(tmp_path: Path) -> None:
    home = tmp_path / "aiweb"
    workdir = home / "tmp" / "jobs" / "0f3a"
    message = (
        f"{workdir}/reviews.csv: need at least 2 distinct labels; "
        f"also {home}/datasets/ab/x.csv and {workdir}"
    )
    scrubbed = scrub_paths(message, workdir, home)
    assert scrubbed == "reviews.csv: need at least 2 distinct labels; also datasets/ab/x.csv and …"
    assert str(tmp_path) not in scrubbed
    assert scrub_paths("no paths here", workdir, home) == "no paths here"
