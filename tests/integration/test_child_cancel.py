"""A cancel reaches the long single-call fits (issue 18, finding 8) over the real job API,
on SQLite and PostgreSQL with the embedded runner: EASE's inverse and the classifier's
lbfgs fit run in a child process (:func:`aiweb.jobs.child.run_in_child`) that
``POST /v1/jobs/{id}/cancel`` ends mid-fit; the job reads ``cancelled`` within seconds
and no process is left behind. A classifier fitted in a child trains and serves as one
fitted in process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_jobs_api import upload, wait_job
from test_training_bounds import store_interactions

from aiweb.app import create_app
from aiweb.classification import trainer
from aiweb.config import Settings
from aiweb.jobs.child import live_children


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def cancel_in_child(client: TestClient, job_id: str, *, running_s: float) -> None:
    """Wait for the job's child process, let it work ``running_s`` seconds, cancel the
    job and check that it ends ``cancelled`` at once, its child gone."""
    deadline = time.monotonic() + 90
    while not live_children():
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("pending", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    (pid,) = live_children()
    time.sleep(running_s)
    assert not gone(pid), "the fit ended before the cancel: make it larger"
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    cancelled_at = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_job(client, job_id, timeout=30)
    took = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled", job
    # the fits below have >= 14 s left at the cancel (more on a loaded machine, where the
    # fit slows down as much as the cancel): 10 s separates "reached the fit" from "waited
    # for it" with room for a busy machine
    assert took < 10, f"the cancel took {took:.1f} s to reach the fit"
    assert gone(pid), "the child process outlived the cancel"
    assert not live_children()
    assert client.get("/livez").status_code == 200


def test_a_cancel_ends_an_ease_fit_mid_inverse(client: TestClient, settings: Settings) -> None:
    """5,000 items: the fit takes ~16 s in its child on one BLAS thread (``aiweb serve``'s
    default; measured on the 2-core reference machine); the cancel comes 2 s into the
    child, mid-inverse, and ends it."""
    assert store_interactions(settings, n_users=1000, n_items=5000) == 40_000
    r = client.post(
        "/v1/jobs",
        json={"type": "train", "task": "recommendation", "model": "big", "algorithm": "ease"},
    )
    assert r.status_code == 202, r.text
    cancel_in_child(client, r.json()["id"], running_s=2.0)
    assert client.get("/v1/models/big").status_code == 404  # nothing registered


def labelled_csv(rows: int, labels: int, seed: int = 0) -> bytes:
    """``text,label`` rows of random words, each label with its own cue word."""
    rng = np.random.default_rng(seed)
    words = [f"word{i}" for i in range(3000)]
    lines = ["text,label"]
    for i in range(rows):
        y = i % labels
        lines.append(" ".join([f"cue{y}", *rng.choice(words, 12).tolist()]) + f",class{y}")
    return ("\n".join(lines) + "\n").encode()


def test_a_cancel_ends_a_classifier_fit_in_its_child(client: TestClient) -> None:
    """Six classes on the default hashed features (6 x 2²⁰ weights: well above
    ``LBFGS_CHILD_MIN_WORK``) fit for tens of seconds in a child; the cancel ends it."""
    dataset = upload(client, labelled_csv(900, 6)).json()
    r = client.post(
        "/v1/jobs", json={"type": "train", "model": "many", "dataset_id": dataset["id"]}
    )
    assert r.status_code == 202, r.text
    cancel_in_child(client, r.json()["id"], running_s=1.5)
    assert client.get("/v1/models/many").status_code == 404


def test_a_classifier_fitted_in_a_child_trains_and_serves(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainer, "LBFGS_CHILD_MIN_WORK", 0)  # every fit in a child
    dataset = upload(client, labelled_csv(200, 2, seed=1)).json()
    r = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "model": "small",
            "dataset_id": dataset["id"],
            "params": {"n_features_log2": 12},
        },
    )
    assert r.status_code == 202, r.text
    job: dict[str, Any] = wait_job(client, r.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    answer = client.post(
        "/v1/models/small/predict", json={"inputs": ["cue1 word3 word4", "cue0 word9"]}
    )
    assert answer.status_code == 200, answer.text
    assert [p["label"] for p in answer.json()["predictions"]] == ["class1", "class0"]
    assert not live_children()
