"""One process-wide pool of loaded embedders, micro-batched across requests.

The embed route and every task that embeds its inputs (the tasks above this layer) embed
through :class:`EmbedderPool`, so a process holds each embedding model version once
(one onnxruntime session, ~90 MB fp32 / ~60 MB int8) however many use it, and
concurrent single-sentence requests share model calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.background import BackgroundRefresh
from aiweb.serving.batching import MicroBatcher
from aiweb.serving.versions import VersionCache

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

    Versions are held by the one version cache (:class:`~aiweb.serving.versions.VersionCache`):
    a reference is resolved once and renewed in the background, a version is loaded and
    warmed once; an embedder stays loaded while the process runs (what pinned a version
    keeps using it).

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
        self._versions: VersionCache[OnnxEmbedder] = VersionCache(
            "embedder pool",
            resolve=lambda ref: self.resolve(ref),  # looked up per call: tests wrap it
            load=self._load,
            refresh_s=refresh_s,
            keep=None,
        )
        self._batchers: dict[tuple[str, int], MicroBatcher[str, Embeddings]] = {}

    @property
    def refresh_s(self) -> float:
        """Seconds a reference's resolution is answered before it is renewed."""
        return self._versions.refresh_s

    @refresh_s.setter
    def refresh_s(self, seconds: float) -> None:
        self._versions.refresh_s = seconds

    @property
    def background(self) -> BackgroundRefresh:
        """The background re-reads of references."""
        return self._versions.background

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

    def _load(self, version: ModelVersion) -> OnnxEmbedder:
        embedder = load_embedder(self.registry, version, threads=self.settings.threads)
        embedder.embed(["warm-up"])  # first call allocates; do it before traffic
        return embedder

    def get(self, version: ModelVersion) -> OnnxEmbedder:
        """The loaded embedder of ``version`` (loaded on first use; thread-safe, blocks)."""
        return self._versions.load_blocking(version).value

    def pinned(self, name: str, number: int) -> OnnxEmbedder:
        """The embedder of version ``number`` of ``name`` (what a model or a
        collection pinned), loaded on first use (thread-safe; blocks).

        Raises:
            ModelNotFound, ModelVersionNotFound: no such version.
            InvalidInputError: not an embedding model.
        """
        served = self._versions.peek_version(name, number)
        if served is None:
            version = self.registry.get_version(name, number)
            if version.task != EMBEDDING_TASK:
                raise InvalidInputError(f"{name} is a {version.task} model, not an embedding model")
            served = self._versions.load_blocking(version)
        return served.value

    def loaded_version(self, name: str, number: int) -> ModelVersion | None:
        """Version ``number`` of ``name`` as it was loaded, or ``None`` (never loads)."""
        served = self._versions.peek_version(name, number)
        return served.version if served is not None else None

    def loaded_embedder(self, name: str, number: int) -> OnnxEmbedder | None:
        """The embedder of version ``number`` of ``name`` if it is loaded (never loads)."""
        served = self._versions.peek_version(name, number)
        return served.value if served is not None else None

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

        A reference is answered from its last resolution; one older than ``refresh_s``
        is renewed by a background task (the registry query costs a thread hop and
        several GIL hand-offs: 33% of an embed request's samples when it ran on every
        request). A renewal that fails forgets the reference, so the next request gets
        the error.

        Returns:
            the version used and :class:`~aiweb.embeddings.model.Embeddings` (float32
            ``(len(texts), dim)``, L2-normalised rows, truncation flags).

        Raises:
            see :meth:`resolve`; QueueFullError (503) when too many requests wait.
        """
        if isinstance(ref, ModelVersion):
            served = await self._versions.load(ref)
        else:
            served = await self._versions.get(ref if ref is not None else DEFAULT_EMBEDDING_MODEL)
        return served.version, await self._batcher(served.version, served.value).submit(texts)

    def loaded(self) -> list[tuple[str, int]]:
        """(name, version) of every loaded embedder."""
        return sorted(served.key for served in self._versions.loaded())

    async def aclose(self) -> None:
        """Stop the background re-reads and the batchers (waiting requests are answered 503)."""
        await self._versions.aclose()
        batchers = list(self._batchers.values())
        self._batchers.clear()
        await asyncio.gather(*(b.aclose() for b in batchers))
