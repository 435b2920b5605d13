"""The one version cache (aiweb.serving.versions): resolve, load once, swap, evict."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest

from aiweb.errors import AliasNotFound, ModelNotReadyError, ModelVersionNotFound
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.serving.versions import VersionCache


def _version(name: str, number: int) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=number,
        task="text-classification",
        status="ready",
        artifact_uri=None,
        artifact_format=None,
        artifact_sha256=None,
        labels=[],
        signature={},
        lineage={},
        evaluation={},
        created_at=datetime.now(UTC),
    )


class Registry:
    """Aliases in a dict; counts resolutions; can be made slow or failing."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], int] = {("m", "production"): 1}
        self.resolved = 0
        #: version numbers that were deleted
        self.deleted: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()

    def resolve(self, ref: ModelRef) -> ModelVersion:
        self.gate.wait(10)
        self.resolved += 1
        if ref.version in self.deleted:
            raise ModelVersionNotFound(f"{ref} was deleted")
        if ref.version is not None:
            return _version(ref.name, ref.version)
        number = self.aliases.get((ref.name, ref.alias or "production"))
        if number is None:
            raise AliasNotFound(f"{ref} does not exist")
        return _version(ref.name, number)


class Loader:
    """Builds ``"name:version"`` strings; counts loads; refuses the versions in ``bad``."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, int]] = []
        self.bad: set[int] = set()
        self.delay_s = 0.0

    def __call__(self, version: ModelVersion) -> str:
        time.sleep(self.delay_s)
        if version.version in self.bad:
            raise ModelNotReadyError(f"{version.name}:{version.version} is broken")
        self.loads.append((version.name, version.version))
        return f"{version.name}:{version.version}"


def _cache(
    registry: Registry, loader: Loader, *, refresh_s: float = 60.0, keep: int | None = 0
) -> tuple[VersionCache[str], list[str]]:
    released: list[str] = []

    async def release(value: str) -> None:
        released.append(value)

    cache = VersionCache(
        "test",
        resolve=registry.resolve,
        load=loader,
        refresh_s=refresh_s,
        keep=keep,
        release=release,
    )
    return cache, released


def test_concurrent_first_requests_load_a_version_once() -> None:
    registry, loader = Registry(), Loader()
    loader.delay_s = 0.05
    cache, _ = _cache(registry, loader)

    async def main() -> list[str]:
        served = await asyncio.gather(*(cache.get("m") for _ in range(8)))
        return [s.value for s in served]

    assert asyncio.run(main()) == ["m:1"] * 8
    assert loader.loads == [("m", 1)]


def test_a_reference_is_answered_from_memory_and_renewed_behind_the_request() -> None:
    registry, loader = Registry(), Loader()
    cache, released = _cache(registry, loader, refresh_s=0.05)

    async def main() -> None:
        assert (await cache.get("m")).value == "m:1"
        assert registry.resolved == 1
        for _ in range(5):
            await cache.get("m")
        assert registry.resolved == 1  # from memory
        registry.aliases[("m", "production")] = 2
        registry.gate.clear()  # the registry is slow to answer
        await asyncio.sleep(0.06)
        assert (await cache.get("m")).value == "m:1"  # answered at once, renewal behind
        registry.gate.set()
        for _ in range(100):
            if not cache.background.running():
                break
            await asyncio.sleep(0.01)
        assert (await cache.get("m")).value == "m:2"
        assert released == ["m:1"]  # nothing points at version 1 any more
        await cache.aclose()

    asyncio.run(main())


def test_a_target_that_cannot_load_leaves_the_reference_where_it_was() -> None:
    registry, loader = Registry(), Loader()
    cache, _ = _cache(registry, loader)

    async def main() -> None:
        await cache.get("m")
        registry.aliases[("m", "production")] = 2
        loader.bad = {2}
        with pytest.raises(ModelNotReadyError):
            await cache.renew("m")
        assert (await cache.get("m")).value == "m:1"
        assert "version 2" in cache.failed["m"]
        loader.bad = set()
        assert (await cache.renew("m")).value == "m:2"
        assert cache.failed == {}

    asyncio.run(main())


def test_a_reference_that_no_longer_resolves_is_forgotten_and_its_error_reaches_the_next() -> None:
    registry, loader = Registry(), Loader()
    cache, _ = _cache(registry, loader, refresh_s=0.0)

    async def main() -> None:
        registry.aliases[("m", "staging")] = 1
        await cache.get("m@staging")
        del registry.aliases[("m", "staging")]
        await cache.get("m@staging")  # stale: answered, renewal fails behind it
        for _ in range(100):
            if not cache.background.running():
                break
            await asyncio.sleep(0.01)
        assert "m@staging" not in cache.resolutions()
        with pytest.raises(AliasNotFound):
            await cache.get("m@staging")
        await cache.aclose()

    asyncio.run(main())


def test_alias_moved_switches_before_returning_and_keep_holds_spare_versions() -> None:
    registry, loader = Registry(), Loader()
    cache, released = _cache(registry, loader, keep=1)

    async def main() -> None:
        await cache.get("m")
        for number in (2, 3):
            registry.aliases[("m", "production")] = number
            await cache.alias_moved("m")
            assert (await cache.get("m")).value == f"m:{number}"
        # versions 1 and 2 are spare; one is kept (the more recently used)
        assert [s.value for s in cache.loaded()] == ["m:2", "m:3"]
        assert released == ["m:1"]
        resolved = registry.resolved
        await cache.alias_moved("other")  # not a reference of this cache: nothing moves
        assert registry.resolved == resolved

    asyncio.run(main())


def test_alias_moved_releases_deleted_versions_and_forgets_their_references() -> None:
    registry, loader = Registry(), Loader()
    cache, released = _cache(registry, loader, keep=None)

    async def main() -> None:
        await cache.get("m")
        await cache.get("m:2")
        await cache.load(_version("m", 3))  # loaded, no reference (``name:3`` of a loader)
        await cache.load(_version("other", 2))
        registry.deleted = {2, 3}
        await cache.alias_moved("m")
        assert sorted(s.value for s in cache.loaded()) == ["m:1", "other:2"]
        assert sorted(released) == ["m:2", "m:3"]
        assert set(cache.resolutions()) == {"m"}
        with pytest.raises(ModelVersionNotFound):
            await cache.get("m:2")
        # nothing else is gone: nothing more is released
        assert await cache.drop_missing("m") == []

    asyncio.run(main())


def test_explicit_versions_load_from_threads_once_and_never_pin() -> None:
    registry, loader = Registry(), Loader()
    cache, _ = _cache(registry, loader, keep=None)
    version = _version("m", 7)
    threads = [threading.Thread(target=cache.load_blocking, args=(version,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.loads == [("m", 7)]
    assert cache.peek(version) is not None
    assert cache.resolutions() == {}


def test_aclose_releases_every_loaded_value() -> None:
    registry, loader = Registry(), Loader()
    cache, released = _cache(registry, loader, keep=None)

    async def main() -> None:
        await cache.get("m")
        await cache.load(_version("m", 5))
        await cache.aclose()

    asyncio.run(main())
    assert sorted(released) == ["m:1", "m:5"]
