"""Contract of the registry store (SqlRegistryStore) and RegistryService, on every
database the suite runs against (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiweb.db.migrate import upgrade
from aiweb.db.session import make_engine, make_session_factory
from aiweb.errors import (
    AliasNotFound,
    ConflictError,
    InvalidInputError,
    ModelNotFound,
    ModelVersionNotFound,
)
from aiweb.registry.artifacts import LocalArtifactStore
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.service import RegistryService
from aiweb.registry.sql_store import SqlRegistryStore

TASK = "text-classification"
LABELS = ["negative", "positive"]


@pytest.fixture
def store(database_url: str) -> Iterator[SqlRegistryStore]:
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield SqlRegistryStore(make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def service(store: SqlRegistryStore, tmp_path: Path) -> RegistryService:
    return RegistryService(store, LocalArtifactStore(tmp_path / "artifacts"))


def new_version(store: SqlRegistryStore, name: str, *, ready: bool = True) -> int:
    version = store.create_version(
        name,
        labels=list(LABELS),
        signature={},
        lineage={"dataset": "unit"},
        evaluation={},
        artifact_format="skops",
    )
    assert version.status == "pending"
    if ready:
        done = store.finish_version(
            name,
            version.version,
            status="ready",
            artifact_uri=f"models/{name}/{version.version}/model.skops",
            artifact_sha256="0" * 64,
        )
        assert done.status == "ready"
    return version.version


def register(service: RegistryService, name: str, artifact: bytes, **kwargs: object) -> int:
    v = service.register_version(
        name,
        TASK,
        artifact=artifact,
        artifact_format="skops",
        labels=list(LABELS),
        signature={},
        lineage={},
        evaluation={},
        **kwargs,  # type: ignore[arg-type]
    )
    return v.version


def test_store_emits_no_deprecation_warning(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    store.set_alias("sentiment", PRODUCTION, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [m.name for m in store.list_models()] == ["sentiment"]
        assert store.all_aliases() == {("sentiment", PRODUCTION): 1}
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


# -- models ------------------------------------------------------------------------------
def test_ensure_model_is_idempotent(store: SqlRegistryStore) -> None:
    first = store.ensure_model("sentiment", TASK, "first")
    again = store.ensure_model("sentiment", TASK, "ignored")
    assert first.name == again.name == "sentiment"
    assert again.task == TASK
    assert again.description == "first"
    assert first.latest_version is None
    assert [m.name for m in store.list_models()] == ["sentiment"]


def test_ensure_model_with_another_task_conflicts(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    with pytest.raises(ConflictError):
        store.ensure_model("sentiment", "image-classification")


def test_unknown_model_raises_model_not_found(store: SqlRegistryStore) -> None:
    with pytest.raises(ModelNotFound):
        store.get_model("nope")
    with pytest.raises(ModelNotFound):
        store.list_versions("nope")
    with pytest.raises(ModelNotFound):
        store.get_version("nope", 1)
    with pytest.raises(ModelNotFound):
        store.resolve_alias("nope", PRODUCTION)
    with pytest.raises(ModelNotFound):
        store.create_version(
            "nope", labels=[], signature={}, lineage={}, evaluation={}, artifact_format="skops"
        )


@pytest.mark.parametrize("bad", ["Bad Name", "../x", "a" * 64, "", "-lead", "UPPER"])
def test_invalid_model_names_are_refused(store: SqlRegistryStore, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        store.ensure_model(bad, TASK)


def test_63_char_name_is_accepted(store: SqlRegistryStore) -> None:
    name = "a" * 63
    assert store.ensure_model(name, TASK).name == name


@pytest.mark.parametrize("bad", ["Bad Name", "../x", "a" * 64])
def test_invalid_alias_names_are_refused(store: SqlRegistryStore, bad: str) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    with pytest.raises(InvalidInputError):
        store.set_alias("sentiment", bad, 1)


# -- versions ----------------------------------------------------------------------------
def test_versions_are_numbered_per_name(store: SqlRegistryStore) -> None:
    store.ensure_model("alpha", TASK)
    store.ensure_model("beta", TASK)
    assert [new_version(store, "alpha") for _ in range(3)] == [1, 2, 3]
    assert [new_version(store, "beta") for _ in range(2)] == [1, 2]
    assert [v.version for v in store.list_versions("alpha")] == [1, 2, 3]
    assert store.get_model("alpha").latest_version == 3
    latest = {m.name: m.latest_version for m in store.list_models()}
    assert latest == {"alpha": 3, "beta": 2}


def test_get_version_round_trips_fields(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    v = store.get_version("sentiment", 1)
    assert v.name == "sentiment"
    assert v.task == TASK
    assert v.status == "ready"
    assert v.labels == LABELS
    assert v.lineage == {"dataset": "unit"}
    assert v.artifact_uri == "models/sentiment/1/model.skops"
    assert v.artifact_sha256 == "0" * 64
    assert v.created_at is not None


def test_unknown_version_raises(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    with pytest.raises(ModelVersionNotFound):
        store.get_version("sentiment", 2)


def test_concurrent_create_version_gives_distinct_consecutive_numbers(
    store: SqlRegistryStore,
) -> None:
    store.ensure_model("busy", TASK)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    numbers: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            n = new_version(store, "busy", ready=False)
            with lock:
                numbers.append(n)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(numbers) == list(range(1, threads_n + 1))
    assert [v.version for v in store.list_versions("busy")] == list(range(1, threads_n + 1))


# -- aliases -----------------------------------------------------------------------------
def test_set_alias_only_on_ready_versions(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    pending = new_version(store, "sentiment", ready=False)
    with pytest.raises(ConflictError):
        store.set_alias("sentiment", PRODUCTION, pending)
    store.finish_version("sentiment", pending, status="failed")
    with pytest.raises(ConflictError):
        store.set_alias("sentiment", PRODUCTION, pending)
    with pytest.raises(ModelVersionNotFound):
        store.set_alias("sentiment", PRODUCTION, 99)
    with pytest.raises(AliasNotFound):
        store.resolve_alias("sentiment", PRODUCTION)


def test_set_alias_records_events(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    new_version(store, "sentiment")
    first = store.set_alias("sentiment", PRODUCTION, 1, actor="alice")
    assert (first.from_version, first.to_version) == (None, 1)
    assert (first.action, first.actor, first.alias) == ("set", "alice", PRODUCTION)
    second = store.set_alias("sentiment", PRODUCTION, 2, action="promote")
    assert (second.from_version, second.to_version, second.action) == (1, 2, "promote")
    history = store.alias_history("sentiment", PRODUCTION)
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("set", None, 1),
        ("promote", 1, 2),
    ]
    assert store.alias_history("sentiment", "staging") == []
    assert store.resolve_alias("sentiment", PRODUCTION) == 2
    assert store.get_version("sentiment", 2).aliases == (PRODUCTION,)
    assert store.get_version("sentiment", 1).aliases == ()


def test_resolve_alias_and_all_aliases(store: SqlRegistryStore) -> None:
    for name in ("alpha", "beta"):
        store.ensure_model(name, TASK)
        new_version(store, name)
        new_version(store, name)
    store.set_alias("alpha", PRODUCTION, 2)
    store.set_alias("alpha", "staging", 1)
    store.set_alias("beta", PRODUCTION, 1)
    assert store.resolve_alias("alpha", "staging") == 1
    with pytest.raises(AliasNotFound):
        store.resolve_alias("beta", "staging")
    assert store.all_aliases() == {
        ("alpha", PRODUCTION): 2,
        ("alpha", "staging"): 1,
        ("beta", PRODUCTION): 1,
    }
    models = {m.name: m for m in store.list_models()}
    assert models["alpha"].aliases == {PRODUCTION: 2, "staging": 1}
    assert models["alpha"].latest_version == 2
    assert store.get_model("beta").aliases == {PRODUCTION: 1}


# -- RegistryService ---------------------------------------------------------------------
def test_first_version_becomes_production(
    service: RegistryService, tiny_model_bytes: bytes
) -> None:
    v1 = service.register_version(
        "sentiment",
        TASK,
        artifact=tiny_model_bytes,
        artifact_format="skops",
        labels=list(LABELS),
        signature={},
        lineage={},
        evaluation={},
    )
    assert v1.version == 1
    assert v1.status == "ready"
    assert v1.aliases == (PRODUCTION,)
    assert v1.artifact_uri is not None
    assert service.artifacts.read_bytes(v1.artifact_uri) == tiny_model_bytes
    assert register(service, "sentiment", tiny_model_bytes) == 2
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1
    assert service.get_version("sentiment", 2).aliases == ()


def test_register_with_alias_sets_it_too(service: RegistryService, tiny_model_bytes: bytes) -> None:
    register(service, "sentiment", tiny_model_bytes, alias="staging")
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1
    assert service.store.resolve_alias("sentiment", "staging") == 1
    register(service, "sentiment", tiny_model_bytes, alias="staging")
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1
    assert service.store.resolve_alias("sentiment", "staging") == 2


def test_register_refuses_bad_names(service: RegistryService, tiny_model_bytes: bytes) -> None:
    with pytest.raises(InvalidInputError):
        register(service, "Bad Name", tiny_model_bytes)
    with pytest.raises(InvalidInputError):
        register(service, "ok", tiny_model_bytes, alias="../x")
    assert service.list_models() == []


def test_rollback_walks_back(service: RegistryService, tiny_model_bytes: bytes) -> None:
    for _ in range(3):
        register(service, "sentiment", tiny_model_bytes)
    service.promote("sentiment", 2)
    service.promote("sentiment", 3)
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 3
    back = service.rollback("sentiment")
    assert (back.action, back.from_version, back.to_version) == ("rollback", 3, 2)
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 2
    back = service.rollback("sentiment")
    assert (back.from_version, back.to_version) == (2, 1)
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1
    with pytest.raises(ConflictError):
        service.rollback("sentiment")
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1


def test_rollback_without_history_conflicts(
    service: RegistryService, tiny_model_bytes: bytes
) -> None:
    register(service, "sentiment", tiny_model_bytes)
    with pytest.raises(ConflictError):
        service.rollback("sentiment")
    with pytest.raises(ModelNotFound):
        service.rollback("nope")


def test_promote_to_missing_version(service: RegistryService, tiny_model_bytes: bytes) -> None:
    register(service, "sentiment", tiny_model_bytes)
    with pytest.raises(ModelVersionNotFound):
        service.promote("sentiment", 5)
    with pytest.raises(ModelNotFound):
        service.promote("nope", 1)
    assert service.store.resolve_alias("sentiment", PRODUCTION) == 1


def test_latest_version(service: RegistryService, tiny_model_bytes: bytes) -> None:
    assert service.latest_version("sentiment") is None
    register(service, "sentiment", tiny_model_bytes)
    register(service, "sentiment", tiny_model_bytes)
    latest = service.latest_version("sentiment")
    assert latest is not None
    assert latest.version == 2


# -- evaluation reports ----------------------------------------------------------------------
def test_update_evaluation_sets_keys_and_keeps_the_others(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    store.create_version(
        "sentiment",
        labels=list(LABELS),
        signature={},
        lineage={},
        evaluation={"accuracy": 0.8, "split": "20%"},
        artifact_format="skops",
    )
    updated = store.update_evaluation("sentiment", 1, {"accuracy": 0.9, "reruns": [{"n": 1}]})
    assert updated.evaluation == {"accuracy": 0.9, "split": "20%", "reruns": [{"n": 1}]}
    assert store.get_version("sentiment", 1).evaluation == updated.evaluation
    store.update_evaluation("sentiment", 1, {"reruns": [{"n": 1}, {"n": 2}]})
    again = store.get_version("sentiment", 1)
    assert again.evaluation["reruns"] == [{"n": 1}, {"n": 2}]
    assert again.evaluation["split"] == "20%"
    assert again.status == "pending"  # nothing else changes
    with pytest.raises(ModelVersionNotFound):
        store.update_evaluation("sentiment", 2, {"accuracy": 1.0})
    with pytest.raises(ModelNotFound):
        store.update_evaluation("nope", 1, {"accuracy": 1.0})


def test_concurrent_evaluation_updates_of_different_keys_all_survive(
    store: SqlRegistryStore,
) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    errors: list[BaseException] = []

    def update(i: int) -> None:
        try:
            store.update_evaluation("sentiment", 1, {f"k{i}": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get_version("sentiment", 1).evaluation == {f"k{i}": i for i in range(6)}


def test_service_update_evaluation_is_audited(
    database_url: str, tmp_path: Path, tiny_model_bytes: bytes
) -> None:
    from aiweb.security.audit import AuditLog

    engine = make_engine(database_url)
    upgrade(engine)
    try:
        sessions = make_session_factory(engine)
        audit = AuditLog(sessions)
        service = RegistryService(
            SqlRegistryStore(sessions), LocalArtifactStore(tmp_path / "artifacts"), audit
        )
        register(service, "sentiment", tiny_model_bytes)
        version = service.update_evaluation(
            "sentiment", 1, {"recheck": {"accuracy": 0.5}}, actor="cli", request_id="r1"
        )
        assert version.evaluation == {"recheck": {"accuracy": 0.5}}
        events, _ = audit.list(action="version.evaluation_updated")
        assert len(events) == 1
        event = events[0]
        assert (event.actor, event.target, event.request_id) == ("cli", "model:sentiment:1", "r1")
        assert event.before == {"recheck": None}
        assert event.after == {"recheck": {"accuracy": 0.5}}
        with pytest.raises(InvalidInputError):
            service.update_evaluation("sentiment", 1, {})
        with pytest.raises(ModelVersionNotFound):
            service.update_evaluation("sentiment", 9, {"x": 1})
        assert len(audit.list(action="version.evaluation_updated")[0]) == 1
    finally:
        engine.dispose()


# -- deleting ----------------------------------------------------------------------------
def test_delete_version_removes_it_and_never_reuses_its_number(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK)
    for _ in range(3):
        new_version(store, "sentiment")
    store.set_alias("sentiment", PRODUCTION, 1)
    gone = store.delete_version("sentiment", 3)
    assert (gone.name, gone.version, gone.status) == ("sentiment", 3, "ready")
    assert [v.version for v in store.list_versions("sentiment")] == [1, 2]
    with pytest.raises(ModelVersionNotFound):
        store.get_version("sentiment", 3)
    with pytest.raises(ModelVersionNotFound):
        store.delete_version("sentiment", 3)
    # the newest number is gone, yet the next version is 4: a number names one version ever
    assert new_version(store, "sentiment") == 4
    assert store.get_model("sentiment").latest_version == 4


def test_delete_version_pointed_at_by_an_alias_conflicts_naming_it(
    store: SqlRegistryStore,
) -> None:
    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    new_version(store, "sentiment")
    store.set_alias("sentiment", PRODUCTION, 1)
    store.set_alias("sentiment", "staging", 2)
    store.set_alias("sentiment", "canary", 2)
    with pytest.raises(ConflictError) as caught:
        store.delete_version("sentiment", 2)
    assert "sentiment@canary" in caught.value.detail
    assert "sentiment@staging" in caught.value.detail
    assert [v.version for v in store.list_versions("sentiment")] == [1, 2]
    store.set_alias("sentiment", "staging", 1)
    store.set_alias("sentiment", "canary", 1)
    store.delete_version("sentiment", 2)
    assert [v.version for v in store.list_versions("sentiment")] == [1]
    with pytest.raises(ModelNotFound):
        store.delete_version("ghost", 1)


def test_delete_model_removes_versions_aliases_and_history(store: SqlRegistryStore) -> None:
    store.ensure_model("sentiment", TASK, "first")
    new_version(store, "sentiment")
    new_version(store, "sentiment", ready=False)
    store.set_alias("sentiment", PRODUCTION, 1)
    store.ensure_model("other", TASK)
    new_version(store, "other")
    store.set_alias("other", PRODUCTION, 1)

    deleted = store.delete_model("sentiment")
    assert deleted.model.name == "sentiment"
    assert deleted.model.aliases == {PRODUCTION: 1}
    assert [(v.version, v.status) for v in deleted.versions] == [(1, "ready"), (2, "pending")]
    assert deleted.schedule_removed is False
    with pytest.raises(ModelNotFound):
        store.get_model("sentiment")
    with pytest.raises(ModelNotFound):
        store.delete_model("sentiment")
    assert [m.name for m in store.list_models()] == ["other"]
    assert store.all_aliases() == {("other", PRODUCTION): 1}
    # the name is free again, with a fresh history and numbering
    store.ensure_model("sentiment", "recommendation")
    assert new_version(store, "sentiment") == 1
    assert store.alias_history("sentiment", PRODUCTION) == []


def test_delete_model_removes_its_schedule_and_drift_alert_claims(
    store: SqlRegistryStore, database_url: str
) -> None:
    from sqlalchemy import func, select

    from aiweb.db.orm import SqlDriftAlert, SqlPrediction, SqlSchedule, utcnow
    from aiweb.db.session import transaction

    store.ensure_model("sentiment", TASK)
    new_version(store, "sentiment")
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    now = utcnow()
    try:
        with transaction(sessions) as s:
            for model in ("sentiment", "other"):
                s.add(
                    SqlSchedule(
                        model=model, cron="0 3 * * *", job={}, promotion={}, next_run_at=now
                    )
                )
                s.add(
                    SqlDriftAlert(
                        model=model,
                        version=1,
                        feature="f",
                        payload={},
                        status="sent",
                        created_at=now,
                    )
                )
            s.add(
                SqlPrediction(
                    id="p1",
                    model="sentiment",
                    version=1,
                    label="x",
                    scores={},
                    latency_ms=1.0,
                    input_sha256="0" * 64,
                    created_at=now,
                )
            )
        assert store.delete_model("sentiment").schedule_removed is True
        with sessions() as s:
            assert s.scalars(select(SqlSchedule.model)).all() == ["other"]
            assert s.scalars(select(SqlDriftAlert.model)).all() == ["other"]
            # the prediction log is history: it stays
            assert s.scalar(select(func.count()).select_from(SqlPrediction)) == 1
    finally:
        engine.dispose()


def test_rollback_skips_deleted_versions(service: RegistryService, tiny_model_bytes: bytes) -> None:
    for _ in range(3):
        register(service, "sentiment", tiny_model_bytes)
    service.promote("sentiment", 2)
    service.promote("sentiment", 3)
    service.delete_version("sentiment", 2)
    event = service.rollback("sentiment")
    assert (event.from_version, event.to_version) == (3, 1)
    with pytest.raises(ConflictError):
        service.rollback("sentiment")


def test_service_delete_removes_files_and_is_audited(
    database_url: str, tmp_path: Path, tiny_model_bytes: bytes
) -> None:
    from aiweb.security.audit import AuditLog

    engine = make_engine(database_url)
    upgrade(engine)
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    try:
        sessions = make_session_factory(engine)
        audit = AuditLog(sessions)
        service = RegistryService(SqlRegistryStore(sessions), artifacts, audit)
        for _ in range(2):
            service.register_version(
                "sentiment",
                TASK,
                artifact=tiny_model_bytes,
                artifact_format="skops",
                labels=list(LABELS),
                signature={},
                lineage={"dataset": "unit"},
                evaluation={},
                extra_artifacts={"vocabulary.json": b"[]"},
            )
        register(service, "sentiment10", tiny_model_bytes)  # a name that shares a prefix
        assert artifacts.exists("models/sentiment/2/vocabulary.json")

        with pytest.raises(ConflictError, match="sentiment@production"):
            service.delete_version("sentiment", 1, actor="ops")
        assert artifacts.exists("models/sentiment/1/model.skops")

        service.delete_version("sentiment", 2, actor="ops", request_id="r1")
        assert not artifacts.exists("models/sentiment/2/model.skops")
        assert not artifacts.exists("models/sentiment/2/vocabulary.json")
        assert artifacts.exists("models/sentiment/1/model.skops")
        [event] = audit.list(action="version.delete")[0]
        assert (event.actor, event.target, event.request_id) == ("ops", "model:sentiment:2", "r1")
        assert event.before is not None
        assert event.before["status"] == "ready"
        assert event.after == {"artifact_files_removed": 2}

        deleted = service.delete_model("sentiment", actor="ops")
        assert [v.version for v in deleted.versions] == [1]
        assert not (tmp_path / "artifacts" / "models" / "sentiment").exists()
        assert artifacts.exists("models/sentiment10/1/model.skops")
        [event] = audit.list(action="model.delete")[0]
        assert (event.actor, event.target) == ("ops", "model:sentiment")
        assert event.before == {"task": TASK, "aliases": {PRODUCTION: 1}, "versions": [1]}
        assert event.after == {"schedule_removed": False, "artifact_files_removed": 2}
        with pytest.raises(InvalidInputError):
            service.delete_model("Bad Name!")
    finally:
        engine.dispose()


def test_delete_is_refused_while_an_active_job_uses_the_model(
    store: SqlRegistryStore, database_url: str
) -> None:
    from aiweb.jobs.store import SqlJobStore

    store.ensure_model("sentiment", TASK)
    for _ in range(3):
        new_version(store, "sentiment")
    store.set_alias("sentiment", PRODUCTION, 1)
    engine = make_engine(database_url)
    jobs = SqlJobStore(make_session_factory(engine))
    try:
        batch = jobs.create(
            "batch-predict",
            {"model": "sentiment@production", "model_name": "sentiment", "model_version": 2},
            submitted_by="tests",
            max_attempts=1,
        )
        jobs.create("train", {"model": "sentiment-2"}, submitted_by="tests", max_attempts=1)
        with pytest.raises(ConflictError, match=batch.id):
            store.delete_version("sentiment", 2)
        store.delete_version("sentiment", 3)  # no job uses version 3
        with pytest.raises(ConflictError, match=batch.id):
            store.delete_model("sentiment")
        jobs.cancel(batch.id)
        train = jobs.create("train", {"model": "sentiment"}, submitted_by="tests", max_attempts=1)
        store.delete_version("sentiment", 2)  # a training job makes a new version
        with pytest.raises(ConflictError, match=train.id):
            store.delete_model("sentiment")
        jobs.cancel(train.id)
        assert [v.version for v in store.delete_model("sentiment").versions] == [1]
    finally:
        engine.dispose()
