"""Load, cache, warm and atomically swap served model versions.

The loader keeps a snapshot ``{(name, alias): version}`` of every alias and the loaded
versions they point at. When an alias moves (through this process's API, or another
process's, seen by the periodic :meth:`ModelLoader.refresh`), the new version is loaded
and warmed *first*, then the snapshot is replaced in one assignment: requests already
running finish on the old version, new requests get the new one, none fails.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio.to_thread
import numpy as np
import numpy.typing as npt

from aiweb.classification.embedding_features import ARTIFACT_FORMAT as EMBEDDING_HEAD_FORMAT
from aiweb.classification.embedding_features import EmbeddingTextClassifier
from aiweb.classification.model import TextClassifier
from aiweb.classification.onnx_export import with_onnx
from aiweb.classification.rejection import Rejection
from aiweb.classification.stacked_features import ARTIFACT_FORMAT as STACKED_FORMAT
from aiweb.classification.stacked_features import StackedTextClassifier
from aiweb.classification.transformer import ARTIFACT_FORMAT as TRANSFORMER_FORMAT
from aiweb.classification.transformer import FineTunedTextClassifier
from aiweb.config import ServingSettings
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import AiwebError, ModelNotReadyError
from aiweb.monitoring.drift import read_vocabulary
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.batching import BatchGroup, MicroBatcher
from aiweb.serving.gc import tune_after_load
from aiweb.serving.versions import VersionCache

log = logging.getLogger(__name__)

SERVED_TASKS = frozenset({"text-classification"})
"""Tasks whose versions this loader serves; other tasks' aliases (recommendation …) are
left to their own services and do not count towards readiness."""


class Runtime(Protocol):
    """What a served model offers: class names and batch scoring."""

    labels: list[str]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]: ...


RuntimeFactory = Callable[[ModelVersion, bytes], Runtime]


def needs_embedder(version: ModelVersion) -> bool:
    """Whether ``version`` embeds its inputs with a registered embedding model (minilm
    and stacked features)."""
    return version.task == "text-classification" and (
        version.artifact_format in (EMBEDDING_HEAD_FORMAT, STACKED_FORMAT)
    )


def default_runtime_factory(
    version: ModelVersion, data: bytes, *, embedders: EmbedderPool | None = None
) -> Runtime:
    """Build the runtime for ``version`` from its artifact bytes (by task and format).

    Args:
        version: the model version.
        data: its artifact (sha256 already checked).
        embedders: the pool classifiers on sentence-embedding (or stacked) features take
            their pinned embedding model from (required for them, unused otherwise).

    Raises:
        ModelNotReadyError: a task or format this server cannot serve, or (embedding
            features) the pinned embedding model cannot be loaded.
        UnsafeArtifactError: the artifact holds untrusted types (or, fine-tuned
            transformers, is not the expected archive).
    """
    if version.task == "text-classification" and version.artifact_format == "skops":
        return TextClassifier.from_bytes(data)
    if version.task == "text-classification" and version.artifact_format == TRANSFORMER_FORMAT:
        # a transformer like the embedders: the same onnxruntime thread setting
        threads = embedders.settings.threads if embedders is not None else 0
        return FineTunedTextClassifier.from_bytes(data, threads=threads)
    if needs_embedder(version):
        if embedders is None:
            raise ModelNotReadyError(
                f"{version.name}:{version.version} embeds its inputs, and no embedding "
                "model pool was given to load it"
            )
        if version.artifact_format == STACKED_FORMAT:
            return StackedTextClassifier.from_bytes(data, embedders)
        return EmbeddingTextClassifier.from_bytes(data, embedders)
    raise ModelNotReadyError(
        f"{version.name}:{version.version} has task {version.task!r} and format "
        f"{version.artifact_format!r}, which this server cannot serve"
    )


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
            embedders = EmbedderPool(registry)
        factory = partial(default_runtime_factory, embedders=embedders)
    runtime = factory(version, data)
    if serving is not None and isinstance(runtime, TextClassifier):
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
    """Keeps the served text classifiers in memory, on the one version cache
    (:class:`~aiweb.serving.versions.VersionCache`).

    Every alias of a text-classification model is re-read by :meth:`refresh` (at start,
    when this process moves an alias, and every ``serving.alias_refresh_s``); its new
    target is loaded and warmed before the alias switches to it. Explicit versions
    (``name:3``) are loaded on first use and kept while fewer than
    ``serving.keep_versions`` versions no alias points at are loaded.

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
            embedders = EmbedderPool(registry)
        self.registry = registry
        self.settings = settings
        self.embedders = embedders
        self._factory = runtime_factory or partial(default_runtime_factory, embedders=embedders)
        self._on_batch = on_batch
        self._versions: VersionCache[LoadedModel] = VersionCache(
            "text classifiers",
            resolve=lambda ref: self.registry.resolve(ref),
            load=self._load,
            refresh_s=math.inf,  # :meth:`refresh` re-reads every alias itself
            keep=settings.keep_versions,
            release=_close,
        )
        self._refresh_lock = asyncio.Lock()
        #: one batch consumer per model name, shared by its loaded versions (a canary's
        #: two versions fill one window: :class:`~aiweb.serving.batching.BatchGroup`)
        self._groups: dict[str, BatchGroup[str, npt.NDArray[np.float64]]] = {}
        self.ready = False
        #: ``{"name@alias": reason}`` of aliases whose target could not be loaded.
        self.failed: dict[str, str] = {}

    # -- loading ---------------------------------------------------------------------
    def _load(self, version: ModelVersion) -> LoadedModel:
        """Build, warm and wrap ``version`` (on a worker thread)."""
        runtime = load_runtime(self.registry, version, self._factory, self.settings)
        runtime.predict_proba(["warm-up"])  # first call allocates; do it before traffic
        vocabulary = read_vocabulary(self.registry.artifacts, version)
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
                on_batch=on_batch,
                group=self._group(name),
            ),
            loaded_at=time.time(),
            vocabulary=vocabulary,
            rejection=Rejection.of_lineage(version.lineage),
        )
        if self.ready:  # loaded while serving: keep the new model out of gc scans too
            tune_after_load(self.settings, collect=False)
        return loaded

    def _group(self, name: str) -> BatchGroup[str, npt.NDArray[np.float64]]:
        """The batch consumer of model ``name``'s versions (created on first use; loads
        run on worker threads, hence ``setdefault``)."""
        group = self._groups.get(name)
        if group is None:
            group = self._groups.setdefault(
                name,
                BatchGroup(
                    max_batch_size=self.settings.max_batch_size,
                    max_wait_ms=self.settings.max_wait_ms,
                    max_queue=self.settings.max_queue,
                ),
            )
        return group

    # -- resolving -------------------------------------------------------------------
    async def get(self, ref: ModelRef) -> LoadedModel:
        """The loaded model ``ref`` names, loading it on first use.

        Aliases are answered from memory; an alias this process has not seen yet is
        looked up in the store once.

        Raises:
            ModelNotFound, AliasNotFound, ModelVersionNotFound, ModelNotReadyError.
        """
        if ref.version is not None:
            version = self._versions.peek_version(ref.name, ref.version)
            if version is not None:
                return version.value
            found = await anyio.to_thread.run_sync(
                self.registry.store.get_version, ref.name, ref.version
            )
            served = await self._versions.load(found)
            await self._versions.evict()
            return served.value
        return (await self._versions.get(_alias_ref(ref.name, ref.alias or PRODUCTION))).value

    # -- refreshing ------------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read every alias; load and warm new targets, then switch the aliases.

        A version that fails to load keeps its alias on the old version in this process
        (logged, and listed in :attr:`failed`), so a bad artifact never takes serving down.
        """
        async with self._refresh_lock:
            current = await anyio.to_thread.run_sync(self.registry.store.all_aliases)
            failed: dict[str, str] = {}
            served: set[tuple[str, str]] = set()  # aliases of text classifiers
            for (name, alias), number in sorted(current.items()):
                text = _alias_ref(name, alias)
                try:
                    version = await anyio.to_thread.run_sync(
                        self.registry.store.get_version, name, number
                    )
                    if version.task not in SERVED_TASKS:
                        continue  # left to the services of other tasks
                    served.add((name, alias))
                    await self._versions.renew(text, version)
                except AiwebError as exc:
                    served.add((name, alias))
                    log.error("cannot serve %s@%s -> %s: %s", name, alias, number, exc.detail)
                    failed[text] = f"version {number}: {exc.detail}"
            for text in self._versions.resolutions():
                name, _, alias = text.partition("@")
                if (name, alias) not in served:
                    self._versions.forget(text)  # the alias is gone
            await self._versions.evict()
            self.failed = failed
            # ready: every production alias is served, by its target or (after a failed
            # move) by the version it pointed at before in this process
            resolved = self._versions.resolutions()
            targets = [resolved.get(_alias_ref(n, a)) for (n, a) in served if a == PRODUCTION]
            self.ready = all(t is not None and self._versions.peek(t) for t in targets)

    async def drop_missing(self, name: str) -> None:
        """Stop serving the loaded versions of ``name`` the registry no longer has (a
        deleted version or model), ``name:3`` included."""
        await self._versions.drop_missing(name)

    async def refresh_forever(self, interval_s: float) -> None:
        """Call :meth:`refresh` every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception:  # keep serving on a transient database error
                log.exception("alias refresh failed")

    def loaded(self) -> list[LoadedModel]:
        """Every loaded version, least recently used first."""
        return [served.value for served in self._versions.loaded()]

    async def aclose(self) -> None:
        """Stop every batcher and the models' shared consumers."""
        await self._versions.aclose()
        for group in self._groups.values():
            await group.aclose()
        self._groups.clear()

    def status(self) -> dict[str, Any]:
        """A summary for ``/readyz``."""
        return {
            "ready": self.ready,
            "loaded": [f"{m.version.name}:{m.version.version}" for m in self.loaded()],
            "failed": dict(self.failed),
        }


def _alias_ref(name: str, alias: str) -> str:
    return f"{name}@{alias}"


async def _close(model: LoadedModel) -> None:
    await model.batcher.aclose()
