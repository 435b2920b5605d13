"""Hostile training parameters over the real job API (issue 18, findings 7, 8 and 16), on
SQLite and PostgreSQL with the embedded runner:

- NaN and infinity (as the strings ``"NaN"``/``"Infinity"``, which survive an edge that
  refuses the JSON literals) and absurd sizes are refused at submit with 422 naming the
  range, for recommenders and classifiers; no job is created;
- a long fit (BPR, 10,000 epochs of 1,024 factors) is cancelled through
  ``POST /v1/jobs/{id}/cancel`` and the job reads ``cancelled`` within seconds;
- a version whose evaluation is not finite is never promoted, not even as a model's first;
- a failed job's error names the file, never the server's directories.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from test_jobs_api import upload, wait_job

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv, build_job_env
from aiweb.jobs.runner import execute
from aiweb.jobs.types import JobType, JobTypes
from aiweb.recommendations.store import Interaction, Item, RecommendationStore
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.promotion import decide_promotion
from aiweb.tasks import job_types


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def submit(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/jobs", json={"type": "train", **body})


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"ease": {"l2": "NaN"}}, "ease.l2='NaN': must be a finite number in (0, 1000000000]"),
        ({"ease": {"l2": "-Infinity"}}, "must be a finite number in (0, 1000000000]"),
        ({"als": {"factors": 1_000_000}}, "als.factors=1000000: must be an integer in [1, 1024]"),
        ({"als": {"factors": 1e6}}, "must be an integer in [1, 1024]"),
        ({"bpr": {"iterations": 1_000_000_000}}, "must be an integer in [1, 10000]"),
        ({"trending": {"half_life_days": "nan"}}, "(0, 36500]"),
    ],
)
def test_recommendation_params_out_of_range_are_422_at_submit(
    client: TestClient, params: dict[str, Any], fragment: str
) -> None:
    r = submit(client, {"task": "recommendation", "model": "recs", "params": params})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert fragment in r.json()["detail"]
    assert client.get("/v1/jobs").json()["total"] == 0  # refused before any job exists
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"C": "NaN"}, "C='NaN': Input should be a finite number (valid: a finite number in (0, "),
        ({"C": "Infinity"}, "valid: a finite number in (0, 1000000]"),
        ({"max_iter": 10**9}, "valid: an integer in [10, 100000]"),
        ({"seed": 2**40}, "valid: an integer in [0, 4294967295]"),
    ],
)
def test_classifier_params_out_of_range_are_422_at_submit(
    client: TestClient, params: dict[str, Any], fragment: str
) -> None:
    r = submit(client, {"model": "reviews", "dataset": "sst2", "params": params})
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    assert client.get("/v1/jobs").json()["total"] == 0


# ---- cancelling a long fit -------------------------------------------------------------------


def store_interactions(settings: Settings, n_users: int = 300, n_items: int = 1500) -> int:
    """Random interactions (40 distinct items per user) stored for training."""
    _registry, engine = open_registry(settings)
    try:
        store = RecommendationStore(engine)
        store.upsert_items([Item(f"i{i}", f"item {i}") for i in range(n_items)])
        rng = np.random.default_rng(0)
        start = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
        events = [
            Interaction(
                f"u{u}",
                f"i{i}",
                "view",
                datetime.fromtimestamp(start + 60 * t + u, tz=UTC),
                event_id=f"e{u}-{t}",
            )
            for u in range(n_users)
            for t, i in enumerate(rng.choice(n_items, 40, replace=False).tolist())
        ]
        stored, _ = store.add_interactions(events)
        return stored
    finally:
        engine.dispose()


def test_a_long_fit_is_cancelled_within_seconds(client: TestClient, settings: Settings) -> None:
    """``bpr.iterations=10000`` at 1,024 factors runs for minutes; before the fix a cancel
    reached it only when the fit ended."""
    assert store_interactions(settings) == 12_000
    r = submit(
        client,
        {
            "task": "recommendation",
            "model": "long",
            "algorithm": "bpr",
            "params": {"bpr": {"iterations": 10_000, "factors": 1024}},
        },
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while True:  # until the fit is under way (its progress moves)
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("pending", "running"), job
        if "fitting bpr" in job["message"] and job["progress"] > 0.1:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    cancelled_at = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_job(client, job_id, timeout=30)
    took = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled", job
    assert took < 5, f"the cancel took {took:.1f} s to reach the fit"
    assert client.get("/v1/models/long").status_code == 404  # nothing registered
    assert client.get("/livez").status_code == 200


# ---- never promote a non-finite evaluation -------------------------------------------------


def test_a_version_with_non_finite_metrics_is_never_promoted(
    settings: Settings, tiny_model_bytes: bytes
) -> None:
    registry, engine = open_registry(settings)
    try:

        def register(evaluation: dict[str, Any]) -> Any:
            return registry.register_version(
                "m",
                "text-classification",
                artifact=tiny_model_bytes,
                artifact_format="skops",
                labels=["negative", "positive"],
                signature={},
                lineage={},
                evaluation=evaluation,
                production_if_first=False,
            )

        # as training stores one: the NaN as null, named in non_finite_metrics
        broken = register({"macro_f1": None, "non_finite_metrics": ["macro_f1"]})
        first = decide_promotion(
            registry,
            broken,
            metric="macro_f1",
            min_delta=0.0,
            candidate_score=float("nan"),
            score_production=lambda _v: 0.5,
            unscored="-",
            actor="tests",
        )
        assert first["promoted"] is False  # even as the model's first version
        assert "not finite" in first["reason"]
        assert first["candidate"] is None
        assert PRODUCTION not in registry.get_version("m", broken.version).aliases

        good = register({"macro_f1": 0.8})
        assert decide_promotion(
            registry,
            good,
            metric="macro_f1",
            min_delta=0.0,
            candidate_score=0.8,
            score_production=lambda _v: 0.5,
            unscored="-",
            actor="tests",
        )["promoted"]
        again = register({"macro_f1": 0.9, "roc_auc": None, "non_finite_metrics": ["roc_auc"]})
        decision = decide_promotion(
            registry,
            again,
            metric="macro_f1",
            min_delta=-1.0,  # a rule that would take anything
            candidate_score=0.9,
            score_production=lambda _v: 0.8,
            unscored="-",
            actor="tests",
        )
        assert decision["promoted"] is False
        assert "roc_auc" in decision["reason"]
        assert registry.get_model("m").aliases[PRODUCTION] == good.version
    finally:
        engine.dispose()


# ---- no server paths in job errors -------------------------------------------------------------


def test_job_errors_name_the_file_not_the_server_path(
    client: TestClient, settings: Settings
) -> None:
    dataset = upload(
        client, b"text,label\n" + b"".join(f"t{i},same\n".encode() for i in range(20))
    ).json()
    r = submit(client, {"model": "reviews", "dataset_id": dataset["id"]})
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "failed"
    assert "need at least 2 distinct labels" in job["error"]
    assert str(settings.home) not in job["error"]
    assert str(settings.home.resolve()) not in job["error"]
    assert "tmp/jobs" not in job["error"]
    assert "/" not in job["error"].split(":")[0]


def test_the_runner_scrubs_server_paths_from_any_error(settings: Settings) -> None:
    """The safety net: an error from code that still names a path (here a handler that
    puts its scratch file and the home in the message) is stored without them."""

    def leaky(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        raise OSError(f"cannot read {ctx.workdir / 'upload.csv'} under {env.settings.home}")

    env = build_job_env(settings, migrate=True)
    try:
        types = JobTypes([*job_types(), JobType("leaky", leaky)])
        job = env.jobs.create("leaky", {}, submitted_by="tests", max_attempts=1)
        outcome = execute(env, job.id, "tests", types)
        assert outcome.kind == "failed"
        error = env.jobs.get(job.id).error
        assert error is not None
        assert error == "OSError: cannot read upload.csv under …"
        assert str(settings.home) not in error
    finally:
        env.close()
