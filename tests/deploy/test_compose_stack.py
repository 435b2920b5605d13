"""deploy/compose.yaml brought up for real by Docker Compose v2, as docs/production.md ("With
Docker") does: env files written from the examples with generated secrets, ``docker compose
up -d --wait``, a key from ``docker compose exec api aiweb keys create``, then

- ``migrate`` ran ``aiweb db upgrade`` to exit 0 before the api, the worker and the
  scheduler started, and the api's ``/readyz`` answers 200 on the published port;
- a train job submitted over HTTP runs in the worker container (Celery over the stack's
  Redis; the job's runner in the stack's PostgreSQL is the worker's hostname) and its model
  predicts over HTTP from the api container;
- Prometheus, in the api's network namespace, scrapes the api (target ``aiweb`` up) and
  loaded ``deploy/prometheus/alerts.yml``;
- ``docker compose down -v`` leaves no container, network or volume of the project, even
  when a check fails.

No registry is reachable here. PostgreSQL with pgvector, Redis and Prometheus run stand-ins
built from Debian's packages (``dockerkit.STANDINS``) under the tags compose.yaml names;
Debian has no Grafana, so the stack is brought up without the ``grafana`` service. The
project runs from a copy of deploy/ in a temporary directory (the env files never land in
the repository) with one test-only override: the published ports are free ones, so the
stack never clashes with services of the machine on 8000 and 9090.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dockerkit import ROOT, STANDINS, ensure_compose, run, standin_image
from test_job_containers import labeled_csv, submit, upload

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1500)]

# every service but grafana, which has no image here (Debian does not package it); migrate,
# postgres and redis come up as their dependencies
SERVICES = ("api", "worker", "scheduler", "prometheus")
LEFT_OUT = "grafana"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    project: str
    directory: Path
    tag: str  # AIWEB_TAG: compose.yaml runs aiweb:${AIWEB_TAG:-local}
    api_port: int
    prometheus_port: int

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        """``docker compose -p <project> -f compose.yaml -f <override> ARGS``; its stdout."""
        command = ["docker", "compose", "-p", self.project, "-f", "compose.yaml"]
        command += ["-f", "compose.test.yaml", *args]
        env = {"AIWEB_TAG": self.tag}
        proc = subprocess.run(
            command,
            cwd=self.directory,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}\n{self.logs()}"
            )
        return proc.stdout

    def logs(self) -> str:
        proc = subprocess.run(
            ["docker", "compose", "-p", self.project, "-f", "compose.yaml", "logs", "--tail", "40"],
            cwd=self.directory,
            env={**os.environ, "AIWEB_TAG": self.tag},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        return proc.stdout[-8000:]

    def container(self, service: str) -> dict[str, Any]:
        """``docker inspect`` of the service's (first) container, stopped ones included."""
        ids = self.compose("ps", "-a", "-q", service).split()
        assert ids, f"no container of {service}"
        found: dict[str, Any] = json.loads(run(["docker", "inspect", ids[0]]))[0]
        return found

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        )


def write_env_files(directory: Path) -> None:
    """deploy/*.env from the examples, as the docs say: a secret key, one database password
    in aiweb.env and postgres.env, Grafana's password; mode 0600."""
    password = secrets.token_hex(16)
    values = {
        "aiweb.env": {"AIWEB_SECRET_KEY": secrets.token_urlsafe(48)},
        "postgres.env": {"POSTGRES_PASSWORD": password},
        "grafana.env": {"GF_SECURITY_ADMIN_PASSWORD": secrets.token_urlsafe(16)},
    }
    for name, filled in values.items():
        lines = []
        for line in (directory / f"{name}.example").read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0]
            if not line.startswith("#") and key in filled:
                line = f"{key}={filled[key]}"
            lines.append(line.replace("DB_PASSWORD", password))
        path = directory / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.chmod(0o600)
    aiweb_env = (directory / "aiweb.env").read_text(encoding="utf-8")
    assert f"aiweb:{password}@postgres:5432/aiweb" in aiweb_env
    assert "AIWEB_SECRET_KEY=\n" not in aiweb_env


@pytest.fixture
def stack(image: str, tmp_path: Path) -> Iterator[Stack]:
    version = ensure_compose()
    print(f"\ndocker compose {version}; stand-ins: {[standin_image(n) for n in STANDINS]}")
    directory = tmp_path / "deploy"
    shutil.copytree(
        ROOT / "deploy", directory, ignore=shutil.ignore_patterns("kubernetes", "*.env")
    )
    write_env_files(directory)
    stack = Stack(
        project=f"aiweb-test-{uuid.uuid4().hex[:8]}",
        directory=directory,
        tag=image.split(":", 1)[1],
        api_port=free_port(),
        prometheus_port=free_port(),
    )
    # test-only: free host ports instead of 127.0.0.1:8000 and :9090 (!override replaces
    # the list; a plain list would be appended to compose.yaml's)
    override = {
        "services": {
            "api": {
                "ports": [
                    f"127.0.0.1:{stack.api_port}:8000",
                    f"127.0.0.1:{stack.prometheus_port}:9090",
                ]
            }
        }
    }
    text = yaml.safe_dump(override).replace("ports:", "ports: !override")
    (directory / "compose.test.yaml").write_text(text, encoding="utf-8")
    try:
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "60", timeout=300, check=False)
        label = f"label=com.docker.compose.project={stack.project}"
        left = {
            kind: run(["docker", *kind.split(), "-q", "--filter", label]).split()
            for kind in ("ps -a", "volume ls", "network ls")
        }
        assert left == {"ps -a": [], "volume ls": [], "network ls": []}, left


def wait_healthy(stack: Stack, service: str, timeout: float = 300) -> None:
    """What the docs have the reader watch in ``docker compose ps``: the service healthy."""
    deadline = time.monotonic() + timeout
    while (state := stack.container(service)["State"])["Health"]["Status"] != "healthy":
        assert state["Status"] == "running", (service, state, stack.logs())
        assert time.monotonic() < deadline, (service, state, stack.logs())
        time.sleep(1)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    """Poll every 0.5 s: the admin key's budget is 300 requests a minute."""
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.5)


def test_compose_stack_serves_trains_and_is_scraped(stack: Stack) -> None:
    config = yaml.safe_load(stack.compose("config"))
    assert set(SERVICES) | {LEFT_OUT, "migrate", "postgres", "redis"} == set(config["services"])
    assert config["services"]["api"]["image"] == f"aiweb:{stack.tag}"

    started = time.monotonic()
    # --pull never: the images are local (no registry here), the aiweb image the session's,
    # so nothing is pulled or built. No --wait: Compose fails it on services whose
    # healthcheck is disabled (docker/compose#13522) - the worker, the scheduler, migrate
    stack.compose("up", "-d", "--pull", "never", *SERVICES)
    wait_healthy(stack, "api")
    up_s = time.monotonic() - started
    print(
        f"\ncompose up until the api is healthy ({', '.join(SERVICES)}; without {LEFT_OUT}): "
        f"{up_s:.0f} s"
    )

    states = {s: stack.container(s)["State"] for s in (*SERVICES, "migrate", "postgres", "redis")}
    migrate = states["migrate"]
    assert (migrate["Status"], migrate["ExitCode"]) == ("exited", 0), stack.logs()
    for name in ("api", "worker", "scheduler"):
        assert states[name]["Status"] == "running", (name, stack.logs())
        # RFC 3339 timestamps of one clock, same format: they compare as strings
        assert migrate["FinishedAt"] <= states[name]["StartedAt"], (name, migrate)
    assert states["api"]["Health"]["Status"] == "healthy"
    assert states["postgres"]["Health"]["Status"] == "healthy"
    assert states["redis"]["Health"]["Status"] == "healthy"
    assert stack.compose("ps", "-a", "-q", LEFT_OUT).strip() == ""

    key = stack.compose("exec", "-T", "api", "aiweb", "keys", "create", "ops", "--scopes", "admin")
    key = key.strip().splitlines()[-1]
    assert httpx.get(f"http://127.0.0.1:{stack.api_port}/readyz", timeout=10).status_code == 200

    with stack.client(key) as client:
        dataset = upload(client, "train.csv", labeled_csv(20))
        job_id = submit(client, {"type": "train", "model": "spam", "dataset_id": dataset["id"]})
        job = wait_job(client, job_id)
        assert job["status"] == "succeeded", (job, stack.logs())
        pred = client.post("/v1/models/spam/predict", json={"inputs": ["i loved every minute"]})
        assert pred.status_code == 200, pred.text
        assert pred.json()["predictions"][0]["label"] == "positive"
    # the job ran in the worker container: its runner (celery:<hostname>:<pid>), read from
    # the stack's PostgreSQL
    rows = stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "aiweb", "-d", "aiweb", "-tA", "-F", " ",
        "-c", "SELECT id, runner FROM jobs",
    )  # fmt: skip
    runners = dict(line.split(" ", 1) for line in rows.splitlines() if line.strip())
    worker_host = stack.container("worker")["Config"]["Hostname"]
    assert runners[job_id].startswith(f"celery:{worker_host}:"), (runners, worker_host)

    # Prometheus scrapes the api from its network namespace (published with the api's ports)
    prometheus = f"http://127.0.0.1:{stack.prometheus_port}"
    deadline = time.monotonic() + 90  # scrape_interval is 15 s
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{prometheus}/api/v1/targets", timeout=10)
            targets = resp.json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError):
            targets = []
        if any(t["labels"].get("job") == "aiweb" and t["health"] == "up" for t in targets):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"no aiweb target up: {targets}\n{stack.logs()}")
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    alert_file = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert {g["name"] for g in rules} == {g["name"] for g in alert_file["groups"]}
    print(f"stack checked {time.monotonic() - started:.0f} s after `up`")
