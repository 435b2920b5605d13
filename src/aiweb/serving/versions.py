"""One version cache for every task: resolve a reference, load, warm, swap, evict.

Each task serves model versions the same way, and :class:`VersionCache` is that way:

1. **resolve** a reference (``movies``, ``movies@staging``, ``movies:2``) to a version
   through the registry, once; later requests answer from that resolution, and one
   older than ``refresh_s`` is re-resolved by a background task (stale-while-revalidate:
   a request never waits on the database for a reference seen before);
2. **load** the version once per process (a worker thread runs the task's ``load``,
   which reads the sha256-checked artifact, builds the runtime and warms it), however
   many requests ask for it at the same time;
3. **swap** atomically: a reference moves to a new version only once that version is
   loaded, so requests in flight finish on the old one and none waits or fails;
4. **evict** the versions no reference points at any more (``keep`` spare ones stay,
   most recently used first);
5. re-resolve at once when told an alias moved (:meth:`alias_moved`; the registry
   publishes the moves made in this process, :meth:`RegistryService.on_alias_moved`).

The task gives what differs: how a version is loaded (and checked to be of its task),
how an unresolvable reference is explained, and how a value is released on eviction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio.to_thread

from aiweb.errors import NotFoundError
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.serving.background import BackgroundRefresh

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Served(Generic[T]):
    """A loaded version and what its task built from it.

    Attributes:
        version: the model version.
        value: the task's runtime (a model, an embedder …).
        loaded_at: when it was loaded (seconds since the epoch).
    """

    version: ModelVersion
    value: T
    loaded_at: float

    @property
    def key(self) -> tuple[str, int]:
        """``(name, version)``."""
        return (self.version.name, self.version.version)


class VersionCache(Generic[T]):
    """Model versions in memory, reached by reference (see the module docstring).

    Args:
        what: the owner's name in logs (``"embedder pool"``).
        resolve: ``(ref) -> version`` (blocking; run in a worker thread): usually the
            registry's ``resolve``, wrapped by the task to check the version's task or to
            explain a missing default model. Its errors reach the caller; a background
            re-read that fails to resolve forgets the reference, so the next request
            gets the error.
        load: ``(version) -> value`` (blocking; run in a worker thread): read, build and
            warm the version's runtime. Its errors reach the caller and nothing is kept;
            when a reference moves to a version that cannot be loaded, the reference
            stays on the version it had (a bad artifact never takes serving down) and
            :attr:`failed` says why.
        refresh_s: how long a resolution is answered before it is renewed in the
            background (``AIWEB_SERVING__ALIAS_REFRESH_S``); ``math.inf`` when the owner
            renews references itself (:meth:`renew`).
        keep: how many versions no reference points at stay loaded (least recently used
            go first); ``None`` keeps every loaded version.
        release: ``async (value)``: frees an evicted value (stops its batcher …).
    """

    def __init__(
        self,
        what: str,
        *,
        resolve: Callable[[ModelRef], ModelVersion],
        load: Callable[[ModelVersion], T],
        refresh_s: float = 2.0,
        keep: int | None = 0,
        release: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self.what = what
        self._resolve = resolve
        self._load = load
        self.refresh_s = refresh_s
        self.keep = keep
        self._release = release
        #: reference text -> (switched to the version at, monotonic seconds; the version)
        self._refs: dict[str, tuple[float, ModelVersion]] = {}
        #: loaded versions, least recently used first; changed under ``_guard`` (loads
        #: finish on worker threads)
        self._served: OrderedDict[tuple[str, int], Served[T]] = OrderedDict()
        self._guard = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self.background = BackgroundRefresh(what)
        #: ``{reference: reason}`` of references whose new target could not be loaded
        self.failed: dict[str, str] = {}

    # -- the request path ----------------------------------------------------------
    async def get(self, ref: str | ModelRef) -> Served[T]:
        """The loaded version ``ref`` names, resolved and loaded on first use.

        Raises:
            InvalidInputError: a malformed reference (from :meth:`ModelRef.parse`).
            whatever ``resolve`` and ``load`` raise (unknown model, not ready, corrupt
            artifact …).
        """
        text = str(ref)
        cached = self._refs.get(text)
        if cached is None:
            return await self._switch(text, ref, keep_old=False)
        seen, version = cached
        if time.monotonic() - seen > self.refresh_s:
            self.background.start(text, lambda: self._revalidate(text, ref))
        served = self._served.get((version.name, version.version))
        if served is None:
            return await self.load(version)
        if self.keep is not None:
            with self._guard:
                if served.key in self._served:
                    self._served.move_to_end(served.key)
        return served

    async def load(self, version: ModelVersion) -> Served[T]:
        """``version`` loaded (once per process; concurrent callers wait for one load)."""
        served = self._served.get((version.name, version.version))
        if served is not None:
            return served
        return await anyio.to_thread.run_sync(self.load_blocking, version)

    def load_blocking(self, version: ModelVersion) -> Served[T]:
        """:meth:`load` for callers on worker threads (thread-safe; blocks)."""
        key = (version.name, version.version)
        served = self._served.get(key)
        if served is not None:
            return served
        with self._guard:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            served = self._served.get(key)
            if served is None:
                started = time.perf_counter()
                served = Served(version, self._load(version), time.time())
                with self._guard:
                    self._served[key] = served
                    self._loading.pop(key, None)
                log.info(
                    "%s: loaded %s:%s in %.2fs",
                    self.what,
                    version.name,
                    version.version,
                    time.perf_counter() - started,
                )
        return served

    def peek(self, version: ModelVersion) -> Served[T] | None:
        """``version`` if it is loaded, else ``None`` (never loads)."""
        return self._served.get((version.name, version.version))

    def peek_version(self, name: str, number: int) -> Served[T] | None:
        """Version ``number`` of ``name`` if it is loaded, else ``None`` (never loads)."""
        served = self._served.get((name, number))
        if served is not None and self.keep is not None:
            with self._guard:
                if served.key in self._served:
                    self._served.move_to_end(served.key)
        return served

    # -- moving references ------------------------------------------------------------
    async def renew(self, ref: str | ModelRef, version: ModelVersion | None = None) -> Served[T]:
        """Resolve ``ref`` again now (or take ``version`` as its resolution) and switch it
        to that version once it is loaded.

        A target that cannot be loaded leaves ``ref`` on the version it had (recorded
        in :attr:`failed`) and raises.

        Raises:
            see :meth:`get`.
        """
        return await self._switch(str(ref), ref, keep_old=True, version=version)

    async def _switch(
        self,
        text: str,
        ref: str | ModelRef,
        *,
        keep_old: bool,
        version: ModelVersion | None = None,
    ) -> Served[T]:
        """Resolve ``ref`` (unless ``version`` is its resolution), load its version, then
        point ``text`` at it (the swap); the resolution's age counts from the swap."""
        if version is None:
            parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
            version = await anyio.to_thread.run_sync(self._resolve, parsed)
        try:
            served = await self.load(version)
        except Exception as exc:
            if keep_old and text in self._refs:
                self.failed[text] = f"version {version.version}: {_reason(exc)}"
            raise
        self._refs[text] = (time.monotonic(), version)
        self.failed.pop(text, None)
        await self.evict()
        return served

    async def _revalidate(self, text: str, ref: str | ModelRef) -> None:
        """The background re-read of ``ref``: a reference that no longer resolves (alias
        removed, version archived …) is forgotten, so the next request gets the error;
        one whose new target cannot be loaded stays where it was."""
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        try:
            version = await anyio.to_thread.run_sync(self._resolve, parsed)
        except Exception:
            self._refs.pop(text, None)
            raise
        await self._switch(text, ref, keep_old=True, version=version)

    async def alias_moved(self, name: str) -> None:
        """Re-resolve now every reference to model ``name`` this cache answers (the new
        targets are loaded before the references switch), then release the loaded
        versions of ``name`` the registry no longer has (:meth:`drop_missing`)."""
        for text in [t for t in self._refs if ModelRef.parse(t).name == name]:
            try:
                await self._revalidate(text, text)
            except Exception as exc:
                log.warning("%s: cannot follow %s: %s", self.what, text, _reason(exc))
        await self.drop_missing(name)

    async def drop_missing(self, name: str) -> list[tuple[str, int]]:
        """Release the loaded versions of model ``name`` that no longer resolve (a
        deleted version, or a deleted model) and forget the references to them, so
        nothing answers from memory for them. Versions a reference points at are not
        looked up (call this after re-resolving the references of ``name``); a version
        that cannot be looked up for another reason (the database is down …) stays.

        Returns:
            ``(name, version)`` of the versions released.
        """
        # a reference still answered was just resolved: its version exists
        live = {(v.name, v.version) for _, v in self._refs.values()}
        gone: set[tuple[str, int]] = set()
        for key in [key for key in list(self._served) if key[0] == name and key not in live]:
            try:
                await anyio.to_thread.run_sync(self._resolve, ModelRef(name, version=key[1]))
            except NotFoundError:
                gone.add(key)
            except Exception as exc:
                log.warning("%s: cannot check %s:%s: %s", self.what, *key, _reason(exc))
        if not gone:
            return []
        for text, (_, version) in list(self._refs.items()):
            if (version.name, version.version) in gone:
                self.forget(text)
        with self._guard:
            released = [self._served.pop(key) for key in sorted(gone) if key in self._served]
        if self._release is not None:
            for served in released:
                await self._release(served.value)
        for served in released:
            log.info("%s: released %s:%s (no longer registered)", self.what, *served.key)
        return sorted(gone)

    def forget(self, ref: str | ModelRef) -> None:
        """Stop answering ``ref`` from memory (its version stays loaded until evicted)."""
        self._refs.pop(str(ref), None)
        self.failed.pop(str(ref), None)

    async def evict(self) -> None:
        """Release the loaded versions beyond ``keep`` that no reference points at."""
        if self.keep is None:
            return
        live = {(v.name, v.version) for _, v in self._refs.values()}
        released: list[Served[T]] = []
        with self._guard:
            spare = [key for key in self._served if key not in live and key not in self._loading]
            while len(spare) > self.keep:
                released.append(self._served.pop(spare.pop(0)))
        if self._release is not None:
            for served in released:
                await self._release(served.value)

    # -- looking on -------------------------------------------------------------------
    def loaded(self) -> list[Served[T]]:
        """Every loaded version, least recently used first."""
        with self._guard:
            return list(self._served.values())

    def resolutions(self) -> dict[str, ModelVersion]:
        """``{reference: version}`` of the references answered from memory."""
        return {text: version for text, (_, version) in self._refs.items()}

    async def aclose(self) -> None:
        """Stop the background re-reads and release every loaded value."""
        await self.background.aclose()
        with self._guard:
            served = list(self._served.values())
            self._served.clear()
        self._refs.clear()
        if self._release is not None:
            for item in served:
                await self._release(item.value)


def _reason(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    return detail if isinstance(detail, str) else str(exc) or type(exc).__name__
