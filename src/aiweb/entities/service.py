"""Serving token-classification models: limits, input checks, model lookup,
micro-batched extraction, ids, logging and drift bins.

:class:`EntityService` is what the predict route (through the task's predictor), the CLI
and the tests call. Versions are held in the one version cache
(:class:`~aiweb.serving.versions.VersionCache`: resolved once, renewed in the background
every ``serving.alias_refresh_s``, loaded once, swapped when an alias moves); each loaded
version extracts through its own :class:`~aiweb.serving.batching.MicroBatcher`, so
concurrent requests share ``nlp.pipe`` calls.

What is logged per text (:class:`~aiweb.monitoring.prediction_log.PredictionRecord`):
its ``label`` is the entity type found most often in it (ties: the type found first in
the text; ``"none"`` when it has no entity: :func:`text_label`), ``scores`` the count of
each type found, ``input_chars`` its length and the bins of its two drift features,
``text_length`` (characters) and ``entities`` (entities found), under the version's
reference profile (:func:`drift_reference`, stored at training in the version's
evaluation report under ``"drift_reference"``), and ``spans`` the entities found as
``(start, end, label)`` (feedback on the prediction may be the corrected list:
:mod:`aiweb.monitoring.feedback`). The text itself only with ``AIWEB_LOG_INPUTS``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
import numpy as np

from aiweb.config import Settings
from aiweb.entities.data import TASK
from aiweb.entities.model import Entity, EntityModel
from aiweb.errors import InvalidInputError, ModelNotReadyError, PayloadTooLargeError
from aiweb.monitoring.drift import (
    CHI2_P_THRESHOLD,
    PSI_THRESHOLD,
    assign_bins,
    numeric_profile,
)
from aiweb.monitoring.logs import MODEL, VERSION
from aiweb.monitoring.metrics import PREDICTIONS
from aiweb.monitoring.prediction_log import PredictionLogger, PredictionRecord, text_sha256
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.batching import MicroBatcher
from aiweb.serving.versions import VersionCache

__all__ = [
    "ENTITIES_FEATURE",
    "LENGTH_FEATURE",
    "NO_ENTITY",
    "EntityService",
    "LoadedEntities",
    "drift_reference",
    "text_label",
]

log = logging.getLogger(__name__)

#: the logged label of a text without any entity
NO_ENTITY = "none"
#: the binned drift feature of a text's length in characters
LENGTH_FEATURE = "text_length"
#: the binned drift feature of the number of entities found in a text
ENTITIES_FEATURE = "entities"
#: the prediction log's label column holds this many characters
MAX_LOGGED_LABEL = 255
#: the text the model is warmed with at load (the first ``nlp.pipe`` call allocates)
_WARM_TEXT = "Ada Lovelace wrote Python and SQL in London."


class _Labelled(Protocol):
    @property
    def label(self) -> str: ...


@dataclass
class LoadedEntities:
    """A served token-classification version.

    Attributes:
        version: the registry's version.
        model: the runtime.
        batcher: extracts in batches: texts in, one list of entities per text out.
    """

    version: ModelVersion
    model: EntityModel
    batcher: MicroBatcher[str, list[list[Entity]]]

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)


def text_label(entities: Sequence[_Labelled]) -> str:
    """The label a text's prediction is logged (and counted, and drift-checked) under:
    the entity type found most often in it; on a tie, the type whose first entity comes
    first in ``entities`` (they are in text order); :data:`NO_ENTITY` when there is none.
    """
    counts = Counter(e.label for e in entities)  # insertion order: first appearance
    if not counts:
        return NO_ENTITY
    best = max(counts.values())
    return next(label for label, n in counts.items() if n == best)


def _float(values: Sequence[int]) -> Any:
    return np.asarray(values, dtype=np.float64)


def drift_reference(
    texts: Sequence[str],
    predictions: Sequence[Sequence[_Labelled]],
    *,
    labels: Sequence[str] = (),
) -> dict[str, Any]:
    """The reference profile of a token-classification version, from the texts it was
    evaluated on (what live traffic should resemble) and its predictions on them.

    Args:
        texts: the evaluation texts.
        predictions: the entities the version found in each text (aligned with
            ``texts``; anything with a ``label``, e.g. :class:`~aiweb.entities.model.Entity`).
        labels: every entity type of the version (``model.labels``): types never the
            label of an evaluation text are then in the label profile with share 0
            (floored by the chi-square test) instead of absent (ignored).

    Returns:
        ``{"n", "labels": {label: share}, "binned_features": {"text_length": profile,
        "entities": profile}, "psi_threshold", "chi2_p_threshold"}``, as
        :class:`aiweb.monitoring.drift.DriftService` reads it: ``labels`` are the shares of
        the per-text labels (:func:`text_label`, ``"none"`` included), the profiles
        :func:`aiweb.monitoring.drift.numeric_profile`'s (decile bins).

    Raises:
        ValueError: ``texts`` and ``predictions`` differ in length.
    """
    if len(texts) != len(predictions):
        raise ValueError(f"{len(texts)} texts but {len(predictions)} predictions")
    n = len(texts)
    per_text = [text_label(p) for p in predictions]
    counts = Counter(per_text)
    names = list(dict.fromkeys([*labels, *sorted(counts), NO_ENTITY]))
    return {
        "n": n,
        "labels": {label: counts.get(label, 0) / max(1, n) for label in names},
        "binned_features": {
            LENGTH_FEATURE: numeric_profile(_float([len(t) for t in texts])),
            ENTITIES_FEATURE: numeric_profile(_float([len(p) for p in predictions])),
        },
        "psi_threshold": PSI_THRESHOLD,
        "chi2_p_threshold": CHI2_P_THRESHOLD,
    }


def drift_bins(
    reference: Mapping[str, Any], texts: Sequence[str], predictions: Sequence[Sequence[Entity]]
) -> list[dict[str, int]]:
    """The bin of each profiled feature per text (``{}`` each when the version has no
    reference profile): what the prediction log keeps, never the values."""
    profiles: Mapping[str, Any] = reference.get("binned_features") or {}
    out: list[dict[str, int]] = [{} for _ in texts]
    features = (
        (LENGTH_FEATURE, [len(t) for t in texts]),
        (ENTITIES_FEATURE, [len(p) for p in predictions]),
    )
    for name, values in features:
        profile = profiles.get(name)
        if not isinstance(profile, Mapping) or profile.get("kind") != "numeric":
            continue
        for i, b in enumerate(assign_bins(dict(profile), _float(values)).tolist()):
            out[i][name] = int(b)
    return out


def _unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be served (a NUL character, a lone surrogate), or ``None``."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


class EntityService:
    """Serves ``POST /v1/models/{name}/predict`` for ``token-classification`` models.

    Args:
        registry: resolves references and reads artifacts.
        settings: limits, batching, refresh interval, whether inputs are logged.
        logger: the prediction log writer.
        on_batch: metrics hook ``(model, version, batch_size, seconds)``.
    """

    def __init__(
        self,
        registry: RegistryService,
        settings: Settings,
        logger: PredictionLogger,
        on_batch: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.logger = logger
        self._on_batch = on_batch
        self._versions: VersionCache[LoadedEntities] = VersionCache(
            "entity models",
            resolve=self._resolve,
            load=self._load,
            refresh_s=settings.serving.alias_refresh_s,
            keep=settings.serving.keep_versions,
            release=_close,
        )
        self.ready = False
        #: ``{"name@production": reason}`` of models that could not be loaded at start
        self.failed: dict[str, str] = {}

    # ------------------------------------------------------------------ versions

    def _resolve(self, ref: ModelRef) -> ModelVersion:
        version = self.registry.resolve(ref)
        if version.task != TASK:
            raise InvalidInputError(
                f"model {version.name!r} has task {version.task!r}, not {TASK!r}: the "
                "entity service serves token-classification models only"
            )
        return version

    def _load(self, version: ModelVersion) -> LoadedEntities:
        """Read, check, build and warm ``version`` (on a worker thread)."""
        if version.status != "ready" or not version.artifact_uri:
            raise ModelNotReadyError(f"{version.name}:{version.version} is {version.status!r}")
        data = read_verified(
            self.registry.artifacts,
            version.artifact_uri,
            version.artifact_sha256,
            f"artifact of {version.name}:{version.version}",
        )
        model = EntityModel.from_bytes(data)
        model.extract([_WARM_TEXT])  # the first call allocates; do it before traffic

        name, number = version.name, version.version
        hook = self._on_batch

        def on_batch(size: int, seconds: float) -> None:
            if hook is not None:
                hook(name, number, size, seconds)

        serving = self.settings.serving
        return LoadedEntities(
            version=version,
            model=model,
            batcher=MicroBatcher(
                model.extract,
                max_batch_size=serving.max_batch_size,
                max_wait_ms=serving.max_wait_ms,
                max_queue=serving.max_queue,
                on_batch=on_batch,
            ),
        )

    async def get(self, ref: str) -> LoadedEntities:
        """The loaded version ``ref`` names (``skills``, ``skills@staging``, ``skills:2``).

        Raises:
            InvalidInputError: a malformed reference, or a model of another task (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            ModelNotReadyError, CorruptArtifactError, UnsafeArtifactError: the version
                cannot be loaded.
        """
        try:
            parsed = ModelRef.parse(ref)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        return (await self._versions.get(parsed)).value

    async def preload(self, ref: str) -> None:
        """Load (and warm) the version ``ref`` names ahead of its first request (see
        :meth:`get` for the errors)."""
        await self.get(ref)

    async def alias_moved(self, name: str) -> None:
        """Follow an alias of ``name`` moved in this process at once; stop serving its
        versions the registry no longer has."""
        await self._versions.alias_moved(name)
        await self._versions.drop_missing(name)

    async def warm(self) -> list[str]:
        """Load the production version of every token-classification model (at start).
        A model that cannot be loaded is logged, listed in :attr:`failed` and left to the
        first request that asks for it.

        Returns:
            ``name:version`` of the versions loaded.
        """
        models = await anyio.to_thread.run_sync(self.registry.list_models)
        warmed: list[str] = []
        failed: dict[str, str] = {}
        for m in models:
            if m.task != TASK or PRODUCTION not in m.aliases:
                continue
            try:
                loaded = await self.get(m.name)
            except Exception as exc:  # serving starts even when a version cannot be loaded
                log.exception("could not load entity model %s at start", m.name)
                failed[f"{m.name}@{PRODUCTION}"] = str(getattr(exc, "detail", exc))
                continue
            warmed.append(f"{loaded.version.name}:{loaded.version.version}")
        self.failed = failed
        self.ready = True
        return warmed

    def status(self) -> dict[str, Any]:
        """``{"ready", "loaded", "failed"}`` for ``/readyz``."""
        resolved = self._versions.resolutions()  # a model loaded since is served again
        failed = {k: v for k, v in self.failed.items() if k not in resolved}
        return {
            "ready": self.ready and not failed,
            "loaded": [f"{s.version.name}:{s.version.version}" for s in self._versions.loaded()],
            "failed": failed,
        }

    async def aclose(self) -> None:
        """Stop every batcher."""
        await self._versions.aclose()

    # ------------------------------------------------------------------ serving

    def check_inputs(self, inputs: Sequence[str]) -> None:
        """Enforce the request limits (the text classifier's) and what a text may hold.

        Raises:
            PayloadTooLargeError: more than ``serving.max_inputs`` texts (413).
            InvalidInputError: no text, a text that is not a string, over
                ``serving.max_text_chars`` characters, or holding a NUL character or a
                lone surrogate (422, naming the input). Over HTTP the last two never get
                here: the input limits refuse such a body first, also with a 422.
        """
        limits = self.settings.serving
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise InvalidInputError("inputs must be a list of texts")
        if not inputs:
            raise InvalidInputError("inputs must hold at least one text")
        if len(inputs) > limits.max_inputs:
            raise PayloadTooLargeError(
                f"{len(inputs)} inputs in one request; the limit is {limits.max_inputs} "
                "(AIWEB_SERVING__MAX_INPUTS)"
            )
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise InvalidInputError(f"inputs[{i}] is a {type(text).__name__}, not a text")
            if len(text) > limits.max_text_chars:
                raise InvalidInputError(
                    f"inputs[{i}] has {len(text)} characters; the limit is "
                    f"{limits.max_text_chars} (AIWEB_SERVING__MAX_TEXT_CHARS)"
                )
            problem = _unicode_problem(text)
            if problem is not None:
                raise InvalidInputError(f"inputs[{i}] {problem}")

    async def predict(self, ref: str, inputs: Sequence[str]) -> dict[str, Any]:
        """Extract the entities of ``inputs`` with the model ``ref`` names.

        Every text gets its own prediction id and is logged (see the module docstring).

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            inputs: texts; outputs align with them by index.

        Returns:
            ``{"model", "version", "predictions"}``, each prediction ``{"id",
            "entities": [{"text", "label", "start", "end", "score"}]}`` with
            ``inputs[i][start:end] == text`` (code point offsets), entities in text order:
            a plain dict, serialised with orjson
            (:class:`~aiweb.entities.schemas.EntitiesPredictResponse`).

        Raises:
            InvalidInputError, PayloadTooLargeError: see :meth:`check_inputs`; also a
                malformed reference or a model of another task (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            QueueFullError, ModelNotReadyError: retry later (503).
        """
        self.check_inputs(inputs)
        texts = list(inputs)
        started = time.perf_counter()
        loaded = await self.get(ref)
        MODEL.set(loaded.version.name)  # for the logs of this request
        VERSION.set(loaded.version.version)
        found = await loaded.batcher.submit(texts)
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        log_inputs = self.settings.log_inputs
        name, number = loaded.version.name, loaded.version.version
        kept = [
            _slicing(text, entities, name, number)
            for text, entities in zip(texts, found, strict=True)
        ]
        reference = loaded.version.evaluation.get("drift_reference") or {}
        bins = drift_bins(reference, texts, kept)
        predictions: list[dict[str, Any]] = []
        records: list[PredictionRecord] = []
        labels: list[str] = []
        for text, entities, text_bins in zip(texts, kept, bins, strict=True):
            pid = str(uuid.uuid4())
            predictions.append(
                {
                    "id": pid,
                    "entities": [
                        {
                            "text": e.text,
                            "label": e.label,
                            "start": e.start,
                            "end": e.end,
                            "score": e.score,
                        }
                        for e in entities
                    ],
                }
            )
            label = text_label(entities)[:MAX_LOGGED_LABEL]
            labels.append(label)
            records.append(
                PredictionRecord(
                    id=pid,
                    model=name,
                    version=number,
                    label=label,
                    scores={k: float(v) for k, v in Counter(e.label for e in entities).items()},
                    latency_ms=latency_ms,
                    input_sha256=text_sha256(text),
                    input_text=text if log_inputs else None,
                    created_at=now,
                    input_chars=len(text),
                    drift_bins=text_bins or None,
                    spans=[(e.start, e.end, e.label) for e in entities],
                )
            )
        self.logger.record(records)
        version_label = str(number)
        for label, count in Counter(labels).items():
            PREDICTIONS.labels(name, version_label, label).inc(count)
        return {"model": name, "version": number, "predictions": predictions}


def _slicing(text: str, entities: Sequence[Entity], name: str, number: int) -> list[Entity]:
    """``entities`` whose offsets slice ``text`` to their text (all of them, as the
    runtime promises); one that does not is logged and left out rather than answered
    wrong."""
    kept = [
        e for e in entities if 0 <= e.start < e.end <= len(text) and text[e.start : e.end] == e.text
    ]
    if len(kept) != len(entities):
        log.error(
            "%s:%s: %d entities whose offsets do not slice the input were left out",
            name,
            number,
            len(entities) - len(kept),
        )
    return kept


async def _close(loaded: LoadedEntities) -> None:
    await loaded.batcher.aclose()
