"""A vision job on a Celery worker: ``aiweb serve`` + ``aiweb worker`` on PostgreSQL, with
RabbitMQ or Redis as the broker, all real processes (as tests/e2e/test_celery_jobs.py).

The same ``faces`` job as on the embedded runner (tests/integration/test_vision_jobs.py):
grace_hopper.jpg and a plain picture, stored with ``POST /v1/images``; the job waits
``pending`` until a worker runs it, then its JSON Lines result has one line per image
(one face in the portrait, none in the picture) and its overlays are PNGs of the images'
sizes.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from stack import (
    AMQP_URL,
    PG_URL,
    REDIS_URL,
    Stack,
    base_env,
    create_admin_key,
    free_port,
    reachable,
    running,
    start_server,
    wait_job,
)

from aiweb.db.session import make_engine

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not PG_URL, reason="AIWEB_TEST_DATABASE_URL is not set"),
    pytest.mark.skipif(not reachable("127.0.0.1", 6379), reason="no Redis on 127.0.0.1:6379"),
]

pytest.importorskip("cv2")
pytest.importorskip("rapidocr")


def _broker_params() -> list[Any]:
    params = [pytest.param(REDIS_URL, id="redis")]
    if reachable("127.0.0.1", 5672):
        params.insert(0, pytest.param(AMQP_URL, id="rabbitmq"))
    return params


@pytest.fixture(scope="module", params=_broker_params())
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A PostgreSQL schema with the vision models installed, a queue of its own on the
    broker, and ``aiweb serve``."""
    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.registry.factory import build_registry
    from aiweb.vision.builtin import install

    assert PG_URL
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    home = tmp_path_factory.mktemp("vision-celery")
    sep = "&" if "?" in PG_URL else "?"
    env = base_env(
        home,
        AIWEB_DATABASE_URL=f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        AIWEB_BROKER_URL=request.param,
        AIWEB_REDIS_URL=REDIS_URL,
        AIWEB_SECRET_KEY=uuid.uuid4().hex * 2,
        AIWEB_RATE_LIMIT__ENABLED="false",
        AIWEB_JOBS__QUEUE=f"aiweb-test-{schema}",
        AIWEB_JOBS__LEASE_S="6",
        AIWEB_JOBS__RETRY_BACKOFF_S="0.5",
        AIWEB_JOBS__BROKER_VISIBILITY_TIMEOUT_S="8",
    )
    try:
        key = create_admin_key(env)  # migrates the schema
        registry, engine = build_registry(
            Settings(home=home, database_url=env["AIWEB_DATABASE_URL"])
        )
        try:
            upgrade(engine)
            install(registry, ["faces"], actor="tests")
        finally:
            engine.dispose()
        port = free_port()
        with running(start_server(env, home / "serve.log", port)):
            yield Stack(env=env, home=home, port=port, key=key)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def upload_image(client: httpx.Client, data: bytes, content_type: str) -> dict[str, Any]:
    r = client.post("/v1/images", content=data, headers={"Content-Type": content_type})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_faces_job_runs_on_the_celery_worker(stack: Stack, shared_data: Path) -> None:
    from PIL import Image

    picture = Image.new("RGB", (96, 64), (20, 40, 220))
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    hopper = (shared_data / "images" / "grace_hopper.jpg").read_bytes()
    with stack.client() as client:
        grace = upload_image(client, hopper, "image/jpeg")
        plain = upload_image(client, buf.getvalue(), "image/png")
        r = client.post(
            "/v1/jobs",
            json={"type": "vision", "model": "faces", "image_ids": [grace["id"], plain["id"]]},
        )
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] == "pending"  # nothing runs it in the API process
        assert job["params"]["model_version"] == 1
        with running(stack.worker("worker-vision")):
            done = wait_job(client, job["id"], timeout=300)
        assert done["status"] == "succeeded", (done["error"], done["message"])
        assert done["attempts"] == 1
        assert done["progress"] == 1.0
        result = done["result"]
        assert (result["model"], result["version"], result["images"], result["found"]) == (
            "faces",
            1,
            2,
            1,
        )
        answer = client.get(result["results"])
        assert answer.status_code == 200, answer.text
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [line["image_id"] for line in lines] == [grace["id"], plain["id"]]
    first, second = lines
    assert (first["width"], first["height"]) == (grace["width"], grace["height"])
    assert [d["label"] for d in first["detections"]] == ["face"]
    assert first["sha256"] == grace["sha256"]
    assert (second["width"], second["height"], second["detections"]) == (96, 64, [])
    # the worker wrote the overlays to the artifact store the server reads (<home>/artifacts)
    assert len(result["overlays"]) == 2
    for uri, image in zip(result["overlays"], (grace, plain), strict=True):
        data = (stack.home / "artifacts" / uri).read_bytes()
        with Image.open(io.BytesIO(data)) as overlay:
            assert (overlay.format, overlay.size) == ("PNG", (image["width"], image["height"]))
