"""Rollouts on real stacks (issue 21): ``aiweb serve --workers 2`` on SQLite with its
embedded scheduler, and ``aiweb serve`` + ``aiweb worker`` + ``aiweb scheduler`` (Celery
beat) on PostgreSQL and Redis.

On each: users stay on one version across the workers; a bad candidate (SST-2 with its
labels swapped), judged on feedback from SST-2's dev split, is rolled back by itself
while a concurrent load sees no 5xx; then a sound candidate steps up and is promoted.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from stack import (
    PG_URL,
    REDIS_URL,
    Proc,
    Stack,
    base_env,
    create_admin_key,
    free_port,
    reachable,
    running,
    start_server,
    start_worker,
)

from aiweb.db.session import make_engine

pytestmark = pytest.mark.e2e

CLI_TIMEOUT = 600
TRAIN_ROWS = 8000


def sst2(shared_data: Path, split: str) -> list[tuple[str, str]]:
    lines = (shared_data / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    return [(t.strip(), "positive" if y.strip() == "1" else "negative") for t, y in rows]


def train(env: dict[str, str], home: Path, rows: list[tuple[str, str]], name: str) -> None:
    """``aiweb train text-classification sentiment --data <rows>``: the next version."""
    import subprocess

    from stack import CLI

    path = home / f"{name}.tsv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("sentence\tlabel\n")
        fh.writelines(f"{t}\t{y}\n" for t, y in rows)
    done = subprocess.run(
        [
            str(CLI),
            *("train", "text-classification", "sentiment", "--data", str(path)),
            *("--text-column", "sentence"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(params=["sqlite-2-workers", "postgres-celery"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, shared_data: Path) -> Iterator[Stack]:
    home = tmp_path / "home"
    home.mkdir()
    fast = {
        "AIWEB_JOBS__SCHEDULER_INTERVAL_S": "1",
        "AIWEB_PREDICTION_LOG__FLUSH_INTERVAL_S": "0.2",
        "AIWEB_RATE_LIMIT__ENABLED": "false",
        "AIWEB_SECRET_KEY": uuid.uuid4().hex * 2,
    }
    train_rows = sst2(shared_data, "train")[:TRAIN_ROWS]
    swapped = [(t, "negative" if y == "positive" else "positive") for t, y in train_rows]
    if request.param == "sqlite-2-workers":
        env = base_env(home, **fast)
        key = create_admin_key(env)
        train(env, home, train_rows, "good")  # v1: production
        train(env, home, swapped, "swapped")  # v2: the bad candidate
        train(env, home, train_rows[::-1], "good-again")  # v3: a sound one
        port = free_port()
        with running(start_server(env, home / "serve.log", port, workers=2)):
            yield Stack(env, home, port, key)
        return
    if not PG_URL:
        pytest.skip("AIWEB_TEST_DATABASE_URL is not set")
    if not reachable("127.0.0.1", 6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    env = base_env(
        home,
        AIWEB_DATABASE_URL=f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        AIWEB_BROKER_URL=REDIS_URL,
        AIWEB_REDIS_URL=REDIS_URL,
        AIWEB_JOBS__QUEUE=f"aiweb-test-{schema}",
        **fast,
    )
    try:
        key = create_admin_key(env)
        train(env, home, train_rows, "good")
        train(env, home, swapped, "swapped")
        train(env, home, train_rows[::-1], "good-again")
        port = free_port()
        with (
            running(start_server(env, home / "serve.log", port)),
            running(start_worker(env, home / "worker.log")),
            running(Proc(["scheduler"], env, home / "beat.log")),
        ):
            yield Stack(env, home, port, key)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Load:
    """Predict requests from 4 threads until stopped; every status is kept."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.statuses: list[int] = []
        self.versions: set[int] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def _run(self, n: int) -> None:
        with self.stack.client() as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                r = client.post(
                    "/v1/models/sentiment/predict",
                    json={"inputs": ["an honest, moving film"], "user_id": f"load-{n}-{i}"},
                )
                self.statuses.append(r.status_code)
                if r.status_code == 200:
                    self.versions.add(r.json()["version"])

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def feedback_until(
    client: httpx.Client, dev: list[tuple[str, str]], state: str, start: int
) -> tuple[dict[str, Any], int]:
    """Users of SST-2 dev predict and give the true label until the rollout is ``state``."""
    deadline = time.monotonic() + 240
    i = start
    while True:
        text_, label = dev[i % len(dev)]
        r = client.post(
            "/v1/models/sentiment/predict", json={"inputs": [text_], "user_id": f"user-{i}"}
        )
        assert r.status_code == 200, r.text
        pid = r.json()["predictions"][0]["id"]
        f = client.post(f"/v1/predictions/{pid}/feedback", json={"label": label})
        assert f.status_code in (200, 201), f.text
        i += 1
        if i % 10 == 0:
            report: dict[str, Any] = client.get("/v1/models/sentiment/rollout").json()
            if report["state"] == state:
                return report, i
            why = (report["id"], report["state"], report["decision"], report["gates"], i)
            assert report["state"] in ("running", "held"), why
            assert time.monotonic() < deadline, why


def test_rollback_under_load_and_promotion(stack: Stack, shared_data: Path) -> None:
    dev = sst2(shared_data, "dev")
    with stack.client() as client:
        assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 1
        started = client.put(
            "/v1/models/sentiment/rollout",
            json={
                "candidate": 2,
                "traffic": 0.5,
                "steps": [0.5, 1.0],
                "step_every": "1h",
                "gates": {"min_samples": 100, "min_accuracy_delta": -0.02},
            },
        )
        assert started.status_code == 200, started.text
        time.sleep(2.5)  # every process follows within twice the refresh period
        # the same user meets the same version on every worker (fresh connections)
        for u in range(20):
            seen = {
                httpx.post(
                    f"http://127.0.0.1:{stack.port}/v1/models/sentiment/predict",
                    json={"inputs": ["fine"], "user_id": f"sticky-{u}"},
                    headers={"Authorization": f"Bearer {stack.key}"},
                ).json()["version"]
                for _ in range(10)
            }
            assert len(seen) == 1, (u, seen)

        with Load(stack) as load:
            report, used = feedback_until(client, dev, "rolled_back", 0)
            time.sleep(2.5)
            after = {
                client.post(
                    "/v1/models/sentiment/predict",
                    json={"inputs": ["fine"], "user_id": f"after-{u}"},
                ).json()["version"]
                for u in range(40)
            }
        assert load.statuses
        assert [s for s in load.statuses if s >= 500] == []  # zero 5xx during the change
        assert load.versions == {1, 2}  # the load met both before the rollback
        assert after == {1}
        assert report["decision"]["gate"] == "min_accuracy_delta"
        variants = report["variants"]
        assert variants["candidate"]["live_accuracy"] < variants["baseline"]["live_accuracy"]
        (accuracy,) = [g for g in report["gates"] if g["gate"] == "min_accuracy_delta"]
        assert accuracy["interval"][1] < -0.02  # shown worse at 95% confidence
        assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 1
        audit = client.get("/v1/audit", params={"action": "rollout.rolled_back"}).json()
        assert audit["events"][0]["after"]["candidate"] == 2

        # a sound candidate: the same data in another order. Its bound is loose on purpose:
        # the two arms are judged on different users' texts and the gate looks every
        # second, so with -0.1 a candidate as good as the baseline is rolled back in 1.5%
        # of runs (simulated looks at 5…80 samples a side, accuracy 0.78 on both: 4/10
        # against 10/10 already fails it; CI met one); with -0.3, none in 3,000. It still
        # needs 60 samples a side to pass, and the swapped candidate above shows that
        # the gate fails a bad one.
        started = client.put(
            "/v1/models/sentiment/rollout",
            json={
                "candidate": 3,
                "steps": [0.5, 1.0],
                "step_every": "2s",
                "gates": {"min_samples": 60, "min_accuracy_delta": -0.3},
            },
        )
        assert started.status_code == 200, started.text
        report, _ = feedback_until(client, dev, "promoted", used)
        assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 3
        assert report["variants"]["candidate"]["feedback_n"] >= 60
        time.sleep(2.5)
        versions = {
            client.post(
                "/v1/models/sentiment/predict", json={"inputs": ["fine"], "user_id": f"z{u}"}
            ).json()["version"]
            for u in range(40)
        }
        assert versions == {3}
