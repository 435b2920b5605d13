"""Shared fixtures: settings on a temporary home, databases (SQLite and, when
``AIWEB_TEST_DATABASE_URL`` is set, PostgreSQL), and a small real model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Rich sizes tables and wraps text to the terminal; pytest-xdist workers have none (80
# columns) where a serial run inherits one. Tests read CLI output at a fixed width.
os.environ["COLUMNS"] = "160"

import pytest
from sqlalchemy import text

from aiweb.classification.model import TextClassifier
from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.config import Settings
from aiweb.db.session import make_engine

ROOT = Path(__file__).resolve().parent.parent


def data_home() -> Path | None:
    """``AIWEB_DATA_HOME`` resolved against the project root, or ``None`` when unset."""
    raw = os.environ.get("AIWEB_DATA_HOME")
    if not raw:
        return None
    path = Path(raw)
    return path if path.is_absolute() else (ROOT / path).resolve()


@pytest.fixture(autouse=True)
def _pillow_pixel_bound() -> Iterator[None]:
    """Each test starts from Pillow's own decompression-bomb bound: decoding an image sets
    ``Image.MAX_IMAGE_PIXELS`` to the caller's limit (process-wide, by design:
    :mod:`aiweb.images.decode`), and a test's tiny limit must not refuse the next test's
    large picture."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


@pytest.fixture(scope="session")
def shared_data() -> Path:
    home = data_home()
    if home is None or not (home / "sst2" / "train.tsv").is_file():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return home


def _pg_url_with_schema(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _database_params() -> list[Any]:
    """SQLite always; PostgreSQL when ``AIWEB_TEST_DATABASE_URL`` is set, marked
    ``postgres`` (``make test`` runs SQLite, ``make test-postgres`` the same tests on
    PostgreSQL: two stages of ``.ci/run``, so each stays within its time)."""
    params: list[Any] = ["sqlite"]
    if os.environ.get("AIWEB_TEST_DATABASE_URL"):
        params.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in the PostgreSQL test DB."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aiweb.db'}"
        return
    base = os.environ["AIWEB_TEST_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_url_with_schema(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on a temporary home and a fresh database, with fast refresh/flush."""
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        data_home=data_home(),
        serving={"alias_refresh_s": 0.2},
        prediction_log={"flush_interval_s": 0.1},
        rate_limit={"enabled": False},  # the rate-limit tests switch it on
        jobs={"poll_interval_s": 0.05, "scheduler_interval_s": 0.5, "retry_backoff_s": 0.05},
        secret_key="tests-" + uuid.uuid4().hex + uuid.uuid4().hex,
    )


TINY_TEXTS = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute",
    "brilliant and funny",
    "a delight from start to finish",
    "terrible and boring",
    "a dull, lifeless mess",
    "i hated every minute",
    "awful acting and a stupid plot",
    "a waste of time",
]
TINY_LABELS = ["positive"] * 5 + ["negative"] * 5


@pytest.fixture(scope="session")
def tiny_model() -> TextClassifier:
    """A real (tiny) fitted pipeline: fast to train, positive/negative."""
    return fit_text_classifier(TINY_TEXTS * 3, TINY_LABELS * 3, TrainParams(C=10.0))


@pytest.fixture(scope="session")
def tiny_model_bytes(tiny_model: TextClassifier) -> bytes:
    return tiny_model.to_bytes()


def create_key(
    settings: Settings, scopes: tuple[str, ...] = ("admin",), name: str = "tests"
) -> str:
    """Migrate the settings' database and create an API key there; returns its secret."""
    from aiweb.db.migrate import upgrade
    from aiweb.db.session import make_session_factory
    from aiweb.security.keys import KeyService

    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        _, secret = KeyService(make_session_factory(engine)).create(name, list(scopes))
    finally:
        engine.dispose()
    return secret


@pytest.fixture
def admin_key(settings: Settings) -> str:
    """An admin API key in the test database."""
    return create_key(settings)


@pytest.fixture
def auth_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """A PostgreSQL with the pgvector extension (PyPI ``pgserver``: its own binaries, a
    throw-away data directory, a unix socket only), for the whole session. Yields the
    SQLAlchemy URL of its ``postgres`` database."""
    import shutil
    import tempfile
    import warnings

    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

        root = Path(tempfile.mkdtemp(prefix="aiweb-pgvector-"))
        server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pgvector_database_url(pgvector_server: str) -> Iterator[str]:
    """A fresh, empty database on :func:`pgvector_server` (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pgvector_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pgvector_server.replace("/postgres?", f"/{name}?", 1)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class MinilmInstall:
    """What ``aiweb embeddings install`` did in a fresh home, once per test session.

    Attributes:
        home: its AIWEB_HOME (SQLite registry with model ``minilm``).
        export_dir: the kept export (``model.onnx``, ``model-int8.onnx``, ``tokenizer.json``,
            ``embedder.json``), for tests that register it in their own registry.
        stdout: what the command printed (the check table).
        seconds: wall time of the command.
    """

    def __init__(self, home: Path, export_dir: Path, stdout: str, seconds: float) -> None:
        self.home = home
        self.export_dir = export_dir
        self.stdout = stdout
        self.seconds = seconds


@pytest.fixture(scope="session")
def minilm_install(tmp_path_factory: pytest.TempPathFactory) -> MinilmInstall:
    """Run the real ``aiweb embeddings install`` (torch export, int8 quantization, the
    1,000-sentence check) once per test run; skipped without the shared data.

    Under pytest-xdist the workers share one install: the first to get the file lock
    runs it and writes ``install.json``; the others read it.
    """
    import json
    import subprocess
    import sys
    import time

    from filelock import FileLock

    shared = data_home()
    if shared is None or not (shared / "sst2" / "dev.tsv").is_file():
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    home = root / "minilm-home"
    export_dir = home / "export"
    record = root / "minilm-install.json"
    with FileLock(str(root / "minilm-install.lock")):
        if record.is_file():
            done = json.loads(record.read_text())
            return MinilmInstall(home, export_dir, done["stdout"], done["seconds"])
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "AIWEB_DATABASE_URL"}  # SQLite
        env.update(AIWEB_HOME=str(home), AIWEB_DATA_HOME=str(shared))
        aiweb = Path(sys.executable).with_name("aiweb")
        started = time.perf_counter()
        proc = subprocess.run(
            [str(aiweb), "embeddings", "install", "--export-dir", str(export_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        seconds = time.perf_counter() - started
        assert proc.returncode == 0, proc.stderr[-3000:]
        record.write_text(json.dumps({"stdout": proc.stdout, "seconds": seconds}))
    return MinilmInstall(home, export_dir, proc.stdout, seconds)


@pytest.fixture(scope="session")
def minilm_dir(minilm_install: MinilmInstall) -> Path:
    """The exported all-MiniLM-L6-v2 directory (see :class:`MinilmInstall`)."""
    return minilm_install.export_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL variants of ``sqlite_only`` tests, and run the files with
    full-dataset (``slow``) and end-to-end (``e2e``) tests first.

    ``sqlite_only`` marks tests of what no database changes (route protection, rendering,
    documents, protocol shapes): the storage under them is tested on PostgreSQL by the
    store, API and job tests, and their PostgreSQL variants would only lengthen
    ``make test-postgres``.

    ``make test`` hands whole files to two pytest-xdist workers in collection order; a
    long file started last would leave the other worker idle at the end. The order of
    the tests within a file is kept.
    """
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    weight: dict[str, int] = {}
    for item in items:
        rank = 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("e2e") else 2
        weight[item.path.as_posix()] = min(rank, weight.get(item.path.as_posix(), 2))
    items.sort(key=lambda item: weight[item.path.as_posix()])


@pytest.fixture(scope="session")
def image() -> str:
    """Tag of aiweb's container image, built offline from a debootstrapped base once per
    session (tests/deploy/dockerkit.py; `make test-deploy`).

    Defined here, not in a tests/deploy/conftest.py: the test modules import this file as
    ``conftest``, and a second module of that name would shadow it. The deploy tests need a
    running Docker daemon (`.ci/run` starts `dockerd`); they fail, not skip, without one.
    """
    from dockerkit import build_image, docker_ready, image_size  # tests/deploy, on sys.path

    reason = docker_ready()
    if reason:
        pytest.fail(f"the deploy tests need Docker: {reason}")
    tag, seconds = build_image()
    print(f"\nimage {tag}: {image_size(tag) / 1e6:.0f} MB, built in {seconds:.0f} s")
    return tag
