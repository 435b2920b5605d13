"""Load, cache, warm and atomically swap served model versions.

The loader keeps a snapshot ``{(name, alias): version}`` of every alias and the loaded
versions they point at. When an alias moves (through this process's API, or another
process's, seen by the periodic :meth:`ModelLoader.refresh`), the new version is loaded
and warmed *first*, then the snapshot is replaced in one assignment: requests already
running finish on the old version, new requests get the new one, none fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from aiweb.classification.embedding_features import ARTIFACT_FORMAT as EMBEDDING_HEAD_FORMAT
from aiweb.classification.rejection import Rejection
from aiweb.config import ServingSettings
from aiweb.errors import AiwebError, ModelNotReadyError
from aiweb.registry.artifacts import ArtifactStore
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.batching import MicroBatcher
from aiweb.serving.gc import tune_after_load

if TYPE_CHECKING:
    from aiweb.embeddings.runtime import EmbedderPool

log = logging.getLogger(__name__)

SERVED_TASKS = frozenset({"text-classification"})
"""Tasks whose versions this loader serves; other tasks' aliases (recommendation …) are
left to their own services and do not count towards readiness."""


class CorruptArtifactError(AiwebError):
    slug = "corrupt-artifact"
    title = "Artifact does not match its checksum"


class Runtime(Protocol):
    """What a served model offers: class names and batch scoring."""

    labels: list[str]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]: ...


RuntimeFactory = Callable[[ModelVersion, bytes], Runtime]


def needs_embedder(version: ModelVersion) -> bool:
    """Whether ``version`` embeds its inputs with a registered embedding model."""
    return version.task == "text-classification" and (
        version.artifact_format == EMBEDDING_HEAD_FORMAT
    )


def default_runtime_factory(
    version: ModelVersion, data: bytes, *, embedders: EmbedderPool | None = None
) -> Runtime:
    """Build the runtime for ``version`` from its artifact bytes (by task and format).

    Args:
        version: the model version.
        data: its artifact (sha256 already checked).
        embedders: the pool classifiers on sentence-embedding features take their
            pinned embedding model from (required for them, unused otherwise).

    Raises:
        ModelNotReadyError: a task or format this server cannot serve, or (embedding
            features) the pinned embedding model cannot be loaded.
        UnsafeArtifactError: the artifact holds untrusted types.
    """
    if version.task == "text-classification" and version.artifact_format == "skops":
        from aiweb.classification.model import TextClassifier

        return TextClassifier.from_bytes(data)
    if needs_embedder(version):
        from aiweb.classification.embedding_features import EmbeddingTextClassifier

        if embedders is None:
            raise ModelNotReadyError(
                f"{version.name}:{version.version} embeds its inputs, and no embedding "
                "model pool was given to load it"
            )
        return EmbeddingTextClassifier.from_bytes(data, embedders)
    raise ModelNotReadyError(
        f"{version.name}:{version.version} has task {version.task!r} and format "
        f"{version.artifact_format!r}, which this server cannot serve"
    )


def read_verified(artifacts: ArtifactStore, uri: str, sha256: str | None, what: str) -> bytes:
    """The bytes at ``uri``, checked against ``sha256`` (when one was recorded).

    Args:
        what: names the file in errors, e.g. ``"artifact of sentiment:3"``.

    Raises:
        CorruptArtifactError: the file is missing, or its sha256 differs.
    """
    try:
        data = artifacts.read_bytes(uri)
    except FileNotFoundError:
        raise CorruptArtifactError(f"{what} ({uri}) is missing from the artifact store") from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256:
        raise CorruptArtifactError(
            f"{what} has sha256 {digest[:12]}…, the registry recorded {sha256[:12]}…; "
            "refusing to load it"
        )
    return data


def load_runtime(
    registry: RegistryService,
    version: ModelVersion,
    factory: RuntimeFactory | None = None,
    serving: ServingSettings | None = None,
    *,
    embedders: EmbedderPool | None = None,
) -> Runtime:
    """Read ``version``'s artifact, check its sha256 against the registry, build it.

    With ``serving`` given, a text classifier whose ONNX export agreed with it is served
    by onnxruntime as ``serving.runtime`` says (:func:`aiweb.classification.onnx_export.with_onnx`).

    Args:
        factory: builds the runtime; :func:`default_runtime_factory` when ``None``.
        embedders: where a classifier on sentence-embedding features takes its pinned
            embedding model from; when ``None`` and the version needs one, a pool of its
            own is made on ``registry`` (CLI, jobs).

    Raises:
        ModelNotReadyError: the version is not ``ready`` or has no artifact.
        CorruptArtifactError: the artifact is missing, or its sha256 differs from the
            recorded one.
        UnsafeArtifactError: the artifact holds untrusted types.
    """
    if version.status != "ready" or not version.artifact_uri:
        raise ModelNotReadyError(f"{version.name}:{version.version} is {version.status!r}")
    data = read_verified(
        registry.artifacts,
        version.artifact_uri,
        version.artifact_sha256,
        f"artifact of {version.name}:{version.version}",
    )
    if factory is None:
        if embedders is None and needs_embedder(version):
            from aiweb.embeddings.runtime import EmbedderPool

            embedders = EmbedderPool(registry)
        factory = partial(default_runtime_factory, embedders=embedders)
    runtime = factory(version, data)
    if serving is not None and version.task == "text-classification":
        from aiweb.classification.model import TextClassifier
        from aiweb.classification.onnx_export import with_onnx

        if isinstance(runtime, TextClassifier):
            return with_onnx(runtime, version, registry.artifacts, serving)
    return runtime


@dataclass
class LoadedModel:
    """A version in memory, with its micro-batcher."""

    version: ModelVersion
    runtime: Runtime
    batcher: MicroBatcher[str, npt.NDArray[np.float64]]
    loaded_at: float
    #: the training vocabulary (drift's out-of-vocabulary feature), when profiled
    vocabulary: frozenset[str] | None = None
    #: the version's out-of-scope rule (answer its label below a top probability)
    rejection: Rejection | None = None

    async def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Score ``texts`` through the batcher: float64 array ``(len(texts), n_classes)``."""
        return await self.batcher.submit(texts)


class ModelLoader:
    """Keeps the served versions in memory.

    Args:
        registry: resolves aliases and reads artifacts.
        settings: batching and cache sizes.
        runtime_factory: builds a runtime from a version and its artifact bytes
            (:func:`default_runtime_factory` when ``None``).
        on_batch: hook ``(model, version, batch_size, seconds)`` for metrics.
        embedders: the process-wide embedding model pool, shared by every classifier on
            sentence-embedding features (one onnxruntime session per embedding version);
            made on ``registry`` when ``None``.
    """

    def __init__(
        self,
        registry: RegistryService,
        settings: ServingSettings,
        *,
        runtime_factory: RuntimeFactory | None = None,
        on_batch: Callable[[str, int, int, float], None] | None = None,
        embedders: EmbedderPool | None = None,
    ) -> None:
        if embedders is None:
            from aiweb.embeddings.runtime import EmbedderPool

            embedders = EmbedderPool(registry)
        self.registry = registry
        self.settings = settings
        self.embedders = embedders
        self._factory = runtime_factory or partial(default_runtime_factory, embedders=embedders)
        self._on_batch = on_batch
        self._aliases: dict[tuple[str, str], int] = {}
        self._loaded: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._refresh_lock = asyncio.Lock()
        self.ready = False
        #: ``{"name@alias": reason}`` of aliases whose target could not be loaded.
        self.failed: dict[str, str] = {}

    # -- loading ---------------------------------------------------------------------
    def _load_sync(self, version: ModelVersion) -> tuple[Runtime, frozenset[str] | None]:
        from aiweb.monitoring.drift import read_vocabulary

        runtime = load_runtime(self.registry, version, self._factory, self.settings)
        runtime.predict_proba(["warm-up"])  # first call allocates; do it before traffic
        return runtime, read_vocabulary(self.registry.artifacts, version)

    async def _ensure_loaded(self, version: ModelVersion) -> LoadedModel:
        key = (version.name, version.version)
        loaded = self._loaded.get(key)
        if loaded is not None:
            self._loaded.move_to_end(key)
            return loaded
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            loaded = self._loaded.get(key)
            if loaded is not None:
                return loaded
            started = time.perf_counter()
            runtime, vocabulary = await anyio.to_thread.run_sync(self._load_sync, version)
            name, number = version.name, version.version
            hook = self._on_batch

            def on_batch(size: int, seconds: float) -> None:
                if hook is not None:
                    hook(name, number, size, seconds)

            loaded = LoadedModel(
                version=version,
                runtime=runtime,
                batcher=MicroBatcher(
                    runtime.predict_proba,
                    max_batch_size=self.settings.max_batch_size,
                    max_wait_ms=self.settings.max_wait_ms,
                    max_queue=self.settings.max_queue,
                    on_batch=on_batch,
                ),
                loaded_at=time.time(),
                vocabulary=vocabulary,
                rejection=Rejection.of_lineage(version.lineage),
            )
            self._loaded[key] = loaded
            if self.ready:  # loaded while serving: keep the new model out of gc scans too
                tune_after_load(self.settings, collect=False)
            log.info("loaded %s:%s in %.2fs", name, number, time.perf_counter() - started)
            if not self._refresh_lock.locked():  # refresh evicts after its swap
                await self._evict()
            return loaded

    async def _evict(self) -> None:
        pinned = {(n, v) for (n, _a), v in self._aliases.items()}
        spare = [k for k in self._loaded if k not in pinned]
        while len(spare) > self.settings.keep_versions:
            key = spare.pop(0)
            model = self._loaded.pop(key)
            await model.batcher.aclose()

    # -- resolving -------------------------------------------------------------------
    async def get(self, ref: ModelRef) -> LoadedModel:
        """The loaded model ``ref`` names, loading it on first use.

        Aliases are resolved from the in-memory snapshot; an alias this process has not
        seen yet is looked up in the store once.

        Raises:
            ModelNotFound, AliasNotFound, ModelVersionNotFound, ModelNotReadyError.
        """
        if ref.version is not None:
            key = (ref.name, ref.version)
            loaded = self._loaded.get(key)
            if loaded is not None:
                return loaded
            version = await anyio.to_thread.run_sync(
                self.registry.store.get_version, ref.name, ref.version
            )
            return await self._ensure_loaded(version)
        alias = ref.alias or PRODUCTION
        number = self._aliases.get((ref.name, alias))
        if number is not None:
            loaded = self._loaded.get((ref.name, number))
            if loaded is not None:
                return loaded
        version = await anyio.to_thread.run_sync(self.registry.resolve, ref)
        loaded = await self._ensure_loaded(version)
        self._aliases = {**self._aliases, (ref.name, alias): version.version}
        return loaded

    # -- refreshing ------------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read every alias; load and warm new targets, then swap the snapshot.

        A version that fails to load keeps its alias on the old version in this process
        (logged), so a bad artifact never takes serving down.
        """
        async with self._refresh_lock:
            current = await anyio.to_thread.run_sync(self.registry.store.all_aliases)
            snapshot: dict[tuple[str, str], int] = {}
            failed: dict[str, str] = {}
            others: set[tuple[str, str]] = set()  # aliases of models other loaders serve
            for (name, alias), number in sorted(current.items()):
                try:
                    version = await anyio.to_thread.run_sync(
                        self.registry.store.get_version, name, number
                    )
                    if version.task not in SERVED_TASKS:
                        others.add((name, alias))
                        continue
                    await self._ensure_loaded(version)
                    snapshot[(name, alias)] = number
                except AiwebError as exc:
                    log.error("cannot serve %s@%s -> %s: %s", name, alias, number, exc.detail)
                    failed[f"{name}@{alias}"] = f"version {number}: {exc.detail}"
                    old = self._aliases.get((name, alias))
                    if old is not None:
                        snapshot[(name, alias)] = old
            self._aliases = snapshot  # the atomic swap
            await self._evict()
            self.failed = failed
            # ready: every production alias is served, by its target or (after a failed
            # move) by the version it pointed at before in this process
            self.ready = all(
                (name, alias) in snapshot and (name, snapshot[(name, alias)]) in self._loaded
                for (name, alias) in current
                if alias == PRODUCTION and (name, alias) not in others
            )

    async def refresh_forever(self, interval_s: float) -> None:
        """Call :meth:`refresh` every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception:  # keep serving on a transient database error
                log.exception("alias refresh failed")

    async def aclose(self) -> None:
        """Stop every batcher."""
        for model in list(self._loaded.values()):
            await model.batcher.aclose()
        self._loaded.clear()

    def status(self) -> dict[str, Any]:
        """A summary for ``/readyz``."""
        return {
            "ready": self.ready,
            "loaded": [f"{m.version.name}:{m.version.version}" for m in self._loaded.values()],
            "failed": dict(self.failed),
        }
