"""Every process that opens the registry to change it refuses to delete what a running
rollout serves: the API (tests/integration/test_rollout.py), the CLI and the job runners
(their registries come from other factories, each guarded by aiweb.rollout.guard)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import app as cli
from aiweb.config import Settings
from aiweb.errors import ConflictError
from aiweb.jobs.env import build_job_env

ROLLOUT = "/v1/models/sentiment/rollout"


def test_the_cli_and_the_job_runners_refuse_to_delete_a_version_in_a_running_rollout(
    settings: Settings,
    auth_headers: dict[str, str],
    tiny_model_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    registry, engine = open_registry(settings)
    try:
        for _ in range(3):
            register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert client.put(ROLLOUT, json={"candidate": 2}).status_code == 200

        for args in (["--version", "2"], []):
            result = CliRunner().invoke(cli, ["models", "delete", "sentiment", *args, "--yes"])
            assert result.exit_code != 0, result.stdout
            assert "running rollout" in result.stderr
        env = build_job_env(settings)
        try:
            with pytest.raises(ConflictError, match="running rollout"):
                env.registry.delete_version("sentiment", 2)
            with pytest.raises(ConflictError, match="running rollout"):
                env.registry.delete_model("sentiment")
            env.registry.delete_version("sentiment", 3)  # not in the rollout
        finally:
            env.close()
        assert client.get("/v1/models/sentiment/versions/2").status_code == 200
        assert client.get("/v1/models/sentiment/versions/3").status_code == 404

        assert client.post(f"{ROLLOUT}/abort").status_code == 200
        result = CliRunner().invoke(cli, ["models", "delete", "sentiment", "--yes"])
        assert result.exit_code == 0, result.stderr
        assert client.get(ROLLOUT).status_code == 404  # its ended rollouts went with it
