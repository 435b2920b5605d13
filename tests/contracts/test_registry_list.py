"""``list_models`` (read with Core statements, no ORM loading: issue #19's start-up) gives
each model exactly as ``get_model`` does, on every database the suite runs against."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import pytest

from aiweb.db.migrate import upgrade
from aiweb.db.session import make_engine, make_session_factory
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.sql_store import SqlRegistryStore


@pytest.fixture
def store(database_url: str) -> Iterator[SqlRegistryStore]:
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield SqlRegistryStore(make_session_factory(engine))
    finally:
        engine.dispose()


def _version(store: SqlRegistryStore, name: str) -> int:
    version = store.create_version(
        name, labels=["a", "b"], signature={}, lineage={}, evaluation={}, artifact_format="skops"
    )
    return store.finish_version(
        name, version.version, status="ready", artifact_uri="x", artifact_sha256="0" * 64
    ).version


def test_list_models_agrees_with_get_model(store: SqlRegistryStore) -> None:
    assert store.list_models() == []
    store.ensure_model("zeta", "text-classification", "last by name")
    store.ensure_model("alpha", "text-classification", "two versions, three aliases")
    store.ensure_model("mid", "recommendations", "")  # no version, no alias
    for _ in range(2):
        _version(store, "alpha")
    _version(store, "zeta")
    for alias, version in (("zulu", 1), (PRODUCTION, 2), ("beta", 1)):  # not in name order
        store.set_alias("alpha", alias, version)
    store.set_alias("zeta", PRODUCTION, 1)
    _version(store, "zeta")
    store.delete_version("zeta", 2)  # the latest is the highest version left

    listed = store.list_models()
    assert [m.name for m in listed] == ["alpha", "mid", "zeta"]
    for model in listed:
        assert model == store.get_model(model.name)
        assert list(model.aliases) == sorted(model.aliases)  # in alias order, as before
        assert model.created_at.tzinfo is not None
        assert model.created_at.utcoffset() == UTC.utcoffset(None)
    by_name = {m.name: m for m in listed}
    assert by_name["alpha"].aliases == {"beta": 1, PRODUCTION: 2, "zulu": 1}
    assert by_name["alpha"].latest_version == 2
    assert by_name["mid"].aliases == {}
    assert by_name["mid"].latest_version is None
    assert by_name["zeta"].latest_version == 1
