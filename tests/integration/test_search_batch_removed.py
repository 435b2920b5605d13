"""The batch file of an ``index-documents`` job is gone by the time the job reads
``succeeded`` (a flaky failure of ``test_large_batch_becomes_a_job``: the runner recorded
``succeeded`` first and removed the file after, so a client polling in between saw both).

The handler is driven by hand here, between its return and the runner's ``finish``, which
is exactly where the old code still had the file."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from test_search_api import LONG, install_minilm, with_search

from aiweb.app import create_app
from aiweb.config import JobSettings, Settings
from aiweb.jobs.context import JobContext
from aiweb.search.jobs import index_documents


def test_batch_file_is_removed_before_the_job_succeeds(
    settings: Settings, minilm_dir: Path, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    settings = with_search(settings, sync_max_documents=16)
    # no job slots: the embedded runner leaves the job pending, this test runs it
    jobs = settings.jobs.model_dump() | {"concurrency": 0}
    settings = settings.model_copy(update={"jobs": JobSettings(**jobs)})
    install_minilm(settings, minilm_dir)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert client.put("/v1/collections/books", json={}).status_code == 201
        docs = [{"id": f"b{i}", "text": f"book number {i}"} for i in range(40)]
        docs.append({"id": "big", "text": LONG})
        resp = client.post("/v1/collections/books/documents", json={"documents": docs})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        env = client.app.state.job_env  # type: ignore[attr-defined]
        job = env.jobs.claim(job_id, "tests", lease_s=60)
        assert job is not None
        batch = settings.resolved_artifacts_dir / job.params["batch_uri"]
        assert batch.exists()
        ctx = JobContext(job, tmp_path / "work", threading.Event())
        result = index_documents(env, ctx)
        assert result["upserted"] == 41
        # the handler returned: the runner writes ``succeeded`` next, so it must be gone
        assert not batch.exists()
        env.jobs.finish(job_id, job.attempts, "succeeded", result=result)
        ctx.run_cleanups()  # removing it again is no error
        body = client.get(f"/v1/jobs/{job_id}").json()
        assert body["status"] == "succeeded"
        assert client.get("/v1/collections/books").json()["documents"] == 41
