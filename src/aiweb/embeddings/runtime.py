"""One process-wide pool of loaded embedders, micro-batched across requests.

The embed route, search collections and classifiers with MiniLM features all embed
through :class:`EmbedderPool`, so a process holds each embedding model version once
(one onnxruntime session, ~90 MB fp32 / ~60 MB int8) however many use it, and
concurrent single-sentence requests share model calls.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import anyio.to_thread

from aiweb.config import EmbeddingSettings
from aiweb.embeddings.install import DEFAULT_EMBEDDING_MODEL, EMBEDDING_TASK
from aiweb.embeddings.model import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    EmbedderConfig,
    Embeddings,
    OnnxEmbedder,
)
from aiweb.errors import (
    AliasNotFound,
    EmbeddingModelNotInstalled,
    InvalidInputError,
    ModelNotFound,
)
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.registry.loader import read_verified
from aiweb.registry.service import RegistryService
from aiweb.serving.background import BackgroundRefresh
from aiweb.serving.batching import MicroBatcher

INSTALL_HINT = "run `aiweb embeddings install` (needs pip install 'aiweb[export]' once)"


def load_embedder(
    registry: RegistryService, version: ModelVersion, *, threads: int = 0, spin: bool = False
) -> OnnxEmbedder:
    """Read a registered embedding version's files (sha256-checked) and start it.

    Raises:
        InvalidInputError: the version is not a ``feature-extraction`` model.
        CorruptArtifactError: a file is missing or differs from its recorded sha256.
    """
    if version.task != EMBEDDING_TASK:
        raise InvalidInputError(
            f"{version.name} is a {version.task} model, not an embedding model "
            f"(task {EMBEDDING_TASK})"
        )
    what = f"{version.name}:{version.version}"
    if version.artifact_uri is None:
        raise EmbeddingModelNotInstalled(f"{what} has no artifact")
    model = read_verified(
        registry.artifacts, version.artifact_uri, version.artifact_sha256, f"artifact of {what}"
    )
    files = version.evaluation.get("files", {})
    tokenizer = read_verified(
        registry.artifacts,
        version.file_uri(TOKENIZER_FILE),
        files.get(TOKENIZER_FILE),
        f"{TOKENIZER_FILE} of {what}",
    )
    config = read_verified(
        registry.artifacts,
        version.file_uri(CONFIG_FILE),
        files.get(CONFIG_FILE),
        f"{CONFIG_FILE} of {what}",
    )
    return OnnxEmbedder(
        model,
        tokenizer.decode("utf-8"),
        EmbedderConfig.from_json(config),
        threads=threads,
        spin=spin,
    )


class EmbedderPool:
    """Loaded embedders keyed by (model name, version), shared by a whole process.

    Args:
        registry: resolves references and reads artifacts.
        settings: threads and micro-batching limits.
        on_batch: optional hook ``(model, version, batch_size, seconds)`` for metrics.
        refresh_s: how long :meth:`embed` serves a reference's last resolution before it
            re-resolves it in the background (stale-while-revalidate: requests never
            wait on the registry for a reference seen before); an alias moved elsewhere
            is followed within about this long (``AIWEB_SERVING__ALIAS_REFRESH_S``).
    """

    def __init__(
        self,
        registry: RegistryService,
        settings: EmbeddingSettings | None = None,
        *,
        on_batch: Callable[[str, int, int, float], None] | None = None,
        refresh_s: float = 2.0,
    ) -> None:
        self.registry = registry
        self.settings = settings or EmbeddingSettings()
        self._on_batch = on_batch
        self.refresh_s = refresh_s
        self._resolved: dict[str, tuple[float, ModelVersion]] = {}
        self._background = BackgroundRefresh("embedder pool")
        self._embedders: dict[tuple[str, int], OnnxEmbedder] = {}
        self._batchers: dict[tuple[str, int], MicroBatcher[str, Embeddings]] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def resolve(self, ref: str | ModelRef | None) -> ModelVersion:
        """The version ``ref`` names: ``"minilm"``, ``"minilm@int8"``, ``"minilm:2"``;
        None means ``minilm@production``.

        Raises:
            EmbeddingModelNotInstalled: the default model is not registered.
            ModelNotFound, AliasNotFound, ModelVersionNotFound: another ref does not resolve.
            InvalidInputError: a malformed ref, or a model of another task.
        """
        parsed = (
            ref if isinstance(ref, ModelRef) else ModelRef.parse(ref or DEFAULT_EMBEDDING_MODEL)
        )
        try:
            version = self.registry.resolve(parsed)
        except (ModelNotFound, AliasNotFound) as exc:
            if parsed.name == DEFAULT_EMBEDDING_MODEL:
                raise EmbeddingModelNotInstalled(
                    f"the embedding model {parsed} is not installed: {INSTALL_HINT}"
                ) from exc
            raise
        if version.task != EMBEDDING_TASK:
            raise InvalidInputError(
                f"{version.name} is a {version.task} model, not an embedding model"
            )
        return version

    def get(self, version: ModelVersion) -> OnnxEmbedder:
        """The loaded embedder of ``version`` (loaded on first use; thread-safe)."""
        key = (version.name, version.version)
        embedder = self._embedders.get(key)
        if embedder is not None:
            return embedder
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            embedder = self._embedders.get(key)
            if embedder is None:
                embedder = load_embedder(self.registry, version, threads=self.settings.threads)
                embedder.embed(["warm-up"])  # first call allocates; do it before traffic
                self._embedders[key] = embedder
        return embedder

    def _batcher(
        self, version: ModelVersion, embedder: OnnxEmbedder
    ) -> MicroBatcher[str, Embeddings]:
        key = (version.name, version.version)
        batcher = self._batchers.get(key)
        if batcher is None:
            hook = self._on_batch
            name, number = key

            def on_batch(size: int, seconds: float) -> None:
                if hook is not None:
                    hook(name, number, size, seconds)

            batcher = MicroBatcher(
                embedder.embed,
                max_batch_size=self.settings.max_batch_size,
                max_wait_ms=self.settings.max_wait_ms,
                max_queue=self.settings.max_queue,
                on_batch=on_batch,
            )
            self._batchers[key] = batcher
        return batcher

    async def embed(
        self, ref: str | ModelRef | ModelVersion | None, texts: list[str]
    ) -> tuple[ModelVersion, Embeddings]:
        """Embed ``texts`` with the version ``ref`` names, batched with concurrent calls.

        Returns:
            the version used and :class:`~aiweb.embeddings.model.Embeddings` (float32
            ``(len(texts), dim)``, L2-normalised rows, truncation flags).

        Raises:
            see :meth:`resolve`; QueueFullError (503) when too many requests wait.
        """
        version = ref if isinstance(ref, ModelVersion) else await self._resolve_cached(ref)
        key = (version.name, version.version)
        embedder = self._embedders.get(key)
        if embedder is None:
            embedder = await anyio.to_thread.run_sync(self.get, version)
        return version, await self._batcher(version, embedder).submit(texts)

    async def _resolve_cached(self, ref: str | ModelRef | None) -> ModelVersion:
        """:meth:`resolve`, answered from the last resolution of ``ref`` when there is
        one; one older than ``refresh_s`` is renewed by a background task (the registry
        query costs a thread hop and several GIL hand-offs: 33% of an embed request's
        samples when it ran on every request). A renewal that fails forgets ``ref``, so
        the next request gets the error."""
        text = str(ref) if ref is not None else DEFAULT_EMBEDDING_MODEL
        cached = self._resolved.get(text)
        now = time.monotonic()
        if cached is None:
            version = await anyio.to_thread.run_sync(self.resolve, ref)
            self._resolved[text] = (time.monotonic(), version)
            return version
        seen, version = cached
        if now - seen > self.refresh_s:
            self._background.start(text, lambda: self._revalidate(text, ref))
        return version

    async def _revalidate(self, text: str, ref: str | ModelRef | None) -> None:
        try:
            version = await anyio.to_thread.run_sync(self.resolve, ref)
        except Exception:
            self._resolved.pop(text, None)
            raise
        self._resolved[text] = (time.monotonic(), version)

    def loaded(self) -> list[tuple[str, int]]:
        """(name, version) of every loaded embedder."""
        return sorted(self._embedders)

    async def aclose(self) -> None:
        """Stop the batchers (waiting requests are answered 503)."""
        await self._background.aclose()
        batchers = list(self._batchers.values())
        self._batchers.clear()
        await asyncio.gather(*(b.aclose() for b in batchers))
