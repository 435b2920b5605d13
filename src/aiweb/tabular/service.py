"""Serving tabular models: limits, model lookup, row checks, the prediction cache,
micro-batched scoring, ids, logging and explanations.

:class:`TabularService` is what the predict and explain routes (through the task's
predictor and explainer), the CLI and the tests call. Versions are held in the one
version cache (:class:`~aiweb.serving.versions.VersionCache`: resolved once, renewed in
the background every ``serving.alias_refresh_s``, loaded once, swapped when an alias
moves); each loaded version scores through its own
:class:`~aiweb.serving.batching.MicroBatcher`, so concurrent requests share model calls.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import orjson

from aiweb.config import Settings
from aiweb.errors import InvalidInputError, ModelNotReadyError, PayloadTooLargeError
from aiweb.monitoring.logs import MODEL, VERSION
from aiweb.monitoring.metrics import PREDICTIONS
from aiweb.monitoring.prediction_log import PredictionLogger, PredictionRecord
from aiweb.registry.artifacts import read_verified
from aiweb.registry.entities import PRODUCTION, ModelRef, ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.serving.batching import MicroBatcher
from aiweb.serving.cache import PredictionCache, text_key, version_key
from aiweb.serving.versions import VersionCache
from aiweb.tabular.drift import row_bins
from aiweb.tabular.explain import explain_rows
from aiweb.tabular.model import TabularModel
from aiweb.tabular.schemas import MAX_EXPLAIN_ROWS, MAX_ROWS, TASKS

log = logging.getLogger(__name__)

#: rows validated on the event loop; larger requests are checked in a worker thread
INLINE_CHECK_ROWS = 64
#: the prediction log's label column holds this many characters
MAX_LOGGED_LABEL = 255

Rows = list[dict[str, Any]]
FloatArray = npt.NDArray[np.float64]


@dataclass
class LoadedTabular:
    """A served tabular model version.

    Attributes:
        version: the registry's version.
        model: the runtime.
        batcher: scores rows in batches: raw feature rows in (float64 ``(n_features,)``
            each, from ``validate_rows``), one answer per row out.
        cache_key: names the version in prediction-cache keys (name, number, digest).
    """

    version: ModelVersion
    model: TabularModel
    batcher: MicroBatcher[FloatArray, list[dict[str, Any]]]
    cache_key: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)


def row_sha256(row: Mapping[str, Any]) -> str:
    """Hex sha256 of a row's canonical JSON (keys sorted): the prediction log's
    ``input_sha256`` and the prediction cache key's last part."""
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()


def encode_answer(problem: str, classes: Sequence[str], answer: Mapping[str, Any]) -> list[float]:
    """One row's answer as the float vector the prediction cache stores.

    classification ``[p(class) for class in classes] + [index of label]``; regression
    ``[value]``; anomaly ``[score, 1.0 if anomaly else 0.0]`` (see :func:`decode_answer`).
    """
    if problem == "classification":
        scores = answer["scores"]
        return [float(scores[c]) for c in classes] + [float(list(classes).index(answer["label"]))]
    if problem == "regression":
        return [float(answer["value"])]
    return [float(answer["score"]), 1.0 if answer["anomaly"] else 0.0]


def decode_answer(problem: str, classes: Sequence[str], row: Sequence[float]) -> dict[str, Any]:
    """The inverse of :func:`encode_answer`."""
    if problem == "classification":
        n = len(classes)
        return {
            "label": classes[int(row[n])],
            "scores": {c: float(p) for c, p in zip(classes, row[:n], strict=True)},
        }
    if problem == "regression":
        return {"value": float(row[0])}
    return {"score": float(row[0]), "anomaly": bool(row[1] >= 0.5)}


def answer_width(problem: str, classes: Sequence[str]) -> int:
    """Length of :func:`encode_answer`'s vector for a model."""
    return len(classes) + 1 if problem == "classification" else 1 if problem == "regression" else 2


def log_label(problem: str, answer: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """``(label, scores)`` of one answer for the prediction log: the class and its
    probabilities (classification), the value as text and ``{"value": v}``
    (regression), ``anomaly``/``normal`` and ``{"score": s}`` (anomaly detection)."""
    if problem == "classification":
        return str(answer["label"])[:MAX_LOGGED_LABEL], dict(answer["scores"])
    if problem == "regression":
        value = float(answer["value"])
        return f"{value:.6g}", {"value": value}
    return ("anomaly" if answer["anomaly"] else "normal"), {"score": float(answer["score"])}


class TabularService:
    """Serves ``POST /v1/models/{name}/predict`` and ``…/explain`` for tabular models.

    Args:
        registry: resolves references and reads artifacts.
        settings: batching, refresh interval, whether inputs are logged.
        logger: the prediction log writer.
        cache: the prediction cache, or ``None`` for none.
        on_batch: metrics hook ``(model, version, batch_size, seconds)``.
    """

    def __init__(
        self,
        registry: RegistryService,
        settings: Settings,
        logger: PredictionLogger,
        cache: PredictionCache | None = None,
        on_batch: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.logger = logger
        self.cache = cache
        self._on_batch = on_batch
        self._versions: VersionCache[LoadedTabular] = VersionCache(
            "tabular models",
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
        if version.task not in TASKS:
            raise InvalidInputError(
                f"model {version.name!r} has task {version.task!r}, not one of {', '.join(TASKS)}"
            )
        return version

    def _load(self, version: ModelVersion) -> LoadedTabular:
        """Read, check, build and warm ``version`` (on a worker thread)."""
        if version.status != "ready" or not version.artifact_uri:
            raise ModelNotReadyError(f"{version.name}:{version.version} is {version.status!r}")
        data = read_verified(
            self.registry.artifacts,
            version.artifact_uri,
            version.artifact_sha256,
            f"artifact of {version.name}:{version.version}",
        )
        model = TabularModel.from_bytes(data)
        model.warm()  # the first call allocates; do it before traffic

        def score(raw_rows: list[FloatArray]) -> list[dict[str, Any]]:
            return model.predict_matrix(np.vstack(raw_rows))

        name, number = version.name, version.version
        hook = self._on_batch

        def on_batch(size: int, seconds: float) -> None:
            if hook is not None:
                hook(name, number, size, seconds)

        serving = self.settings.serving
        return LoadedTabular(
            version=version,
            model=model,
            batcher=MicroBatcher(
                score,
                max_batch_size=serving.max_batch_size,
                max_wait_ms=serving.max_wait_ms,
                max_queue=serving.max_queue,
                on_batch=on_batch,
            ),
            cache_key=version_key(version, prefix="aiweb:tab"),
        )

    async def get(self, ref: str) -> LoadedTabular:
        """The loaded version ``ref`` names (``credit``, ``credit@staging``, ``credit:2``).

        Raises:
            InvalidInputError: a malformed reference, or a model of another task (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            ModelNotReadyError, CorruptArtifactError: the version cannot be loaded.
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
        """Load the production version of every tabular model (at start). A model that
        cannot be loaded is logged, listed in :attr:`failed` and left to the first
        request that asks for it.

        Returns:
            ``name:version`` of the versions loaded.
        """
        models = await anyio.to_thread.run_sync(self.registry.list_models)
        warmed: list[str] = []
        failed: dict[str, str] = {}
        for m in models:
            if m.task not in TASKS or PRODUCTION not in m.aliases:
                continue
            try:
                loaded = await self.get(m.name)
            except Exception as exc:  # serving starts even when a version cannot be loaded
                log.exception("could not load tabular model %s at start", m.name)
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

    async def _checked(self, model: TabularModel, rows: Rows) -> FloatArray:
        """The raw feature matrix of ``rows`` (float64 ``(n, n_features)``), or the
        model's 422 for the first bad row, naming it and the column (``validate_rows``)."""
        if len(rows) <= INLINE_CHECK_ROWS:
            return model.validate_rows(rows)
        return await anyio.to_thread.run_sync(model.validate_rows, rows)

    async def predict(self, ref: str, rows: Rows) -> dict[str, Any]:
        """Score ``rows`` with the model ``ref`` names.

        Answers of rows seen before by the same version come from the prediction cache
        when it is on; every row still gets its own prediction id and is logged.

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            rows: 1 to :data:`~aiweb.tabular.schemas.MAX_ROWS` rows (column -> value);
                answers align with them by index.

        Returns:
            ``{"model", "version", "predictions"}``, each prediction ``{"id", "label",
            "scores"}`` (classification), ``{"id", "value"}`` (regression) or ``{"id",
            "score", "anomaly"}`` (anomaly detection): a plain dict, serialised with orjson.

        Raises:
            PayloadTooLargeError: more than ``MAX_ROWS`` rows (413).
            InvalidInputError: no row, a malformed reference, a model of another task,
                or a row the model cannot take (422, naming the row and the column).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            QueueFullError, ModelNotReadyError: retry later (503).
        """
        _check_count(rows, MAX_ROWS)
        started = time.perf_counter()
        loaded = await self.get(ref)
        MODEL.set(loaded.version.name)  # for the logs of this request
        VERSION.set(loaded.version.version)
        model = loaded.model
        raw = await self._checked(model, rows)
        digests = [row_sha256(r) for r in rows]
        answers = await self._answers(loaded, raw, digests)
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        log_inputs = self.settings.log_inputs
        name, number = loaded.version.name, loaded.version.version
        reference = loaded.version.evaluation.get("drift_reference") or {}
        bins = row_bins(model, reference, raw, rows, answers)
        regression = model.problem == "regression"
        predictions: list[dict[str, Any]] = []
        records: list[PredictionRecord] = []
        labels: list[str] = []
        for row, digest, answer, row_bin in zip(rows, digests, answers, bins, strict=True):
            pid = str(uuid.uuid4())
            predictions.append({"id": pid, **answer})
            label, scores = log_label(model.problem, answer)
            labels.append(label if model.problem != "regression" else "value")
            text = orjson.dumps(row).decode("utf-8") if log_inputs else None
            records.append(
                PredictionRecord(
                    id=pid,
                    model=name,
                    version=number,
                    label=label,
                    scores=scores,
                    latency_ms=latency_ms,
                    input_sha256=digest,
                    input_text=text,
                    created_at=now,
                    drift_bins=row_bin or None,
                    value=float(answer["value"]) if regression else None,
                )
            )
        self.logger.record(records)
        version_label = str(number)
        for label, count in Counter(labels).items():
            PREDICTIONS.labels(name, version_label, label).inc(count)
        return {"model": name, "version": number, "predictions": predictions}

    async def _answers(
        self, loaded: LoadedTabular, raw: FloatArray, digests: list[str]
    ) -> list[dict[str, Any]]:
        """One answer per row of the raw matrix ``raw`` (without ids): cached ones, the
        rest from the model."""
        cache = self.cache
        if cache is None:
            return list(await loaded.batcher.submit(list(raw)))
        model = loaded.model
        classes = list(model.classes or [])
        width = answer_width(model.problem, classes)
        keys = [text_key(loaded.cache_key, d) for d in digests]
        cached = await cache.get_many(keys, width)
        answers: list[dict[str, Any] | None] = [
            decode_answer(model.problem, classes, row.tolist()) if row is not None else None
            for row in cached
        ]
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            scored = await loaded.batcher.submit([raw[i] for i in missing])
            fresh: dict[str, npt.NDArray[np.float64]] = {}
            for i, answer in zip(missing, scored, strict=True):
                answers[i] = answer
                fresh[keys[i]] = np.asarray(
                    encode_answer(model.problem, classes, answer), dtype=np.float64
                )
            await cache.set_many(fresh)
        return [a for a in answers if a is not None]

    async def explain(
        self, ref: str, rows: Rows, *, target: str | None = None, top_k: int = 10
    ) -> dict[str, Any]:
        """Explain the answers of the model ``ref`` names to ``rows``: per row, the
        contribution of each column (:func:`aiweb.tabular.explain.explain_rows`).

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            rows: 1 to :data:`~aiweb.tabular.schemas.MAX_EXPLAIN_ROWS` rows.
            target: the class to explain (classification); each row's answer when ``None``.
            top_k: most contributions per row (0: all).

        Returns:
            ``{"model", "version", "explanations"}``, explanations aligned with ``rows``.

        Raises:
            PayloadTooLargeError: more than ``MAX_EXPLAIN_ROWS`` rows (413).
            InvalidInputError: see :meth:`predict`; also an unknown ``target`` class, or a
                ``target`` given to a model without classes (422).
        """
        _check_count(rows, MAX_EXPLAIN_ROWS)
        loaded = await self.get(ref)
        MODEL.set(loaded.version.name)
        VERSION.set(loaded.version.version)
        model = loaded.model
        if target is not None:
            classes = list(model.classes or [])
            if not classes:
                raise InvalidInputError(
                    f"target: a {loaded.version.task} model has no classes; leave target out"
                )
            if target not in classes:
                raise InvalidInputError(
                    f"target {target[:100]!r} is not a class of {loaded.version.name}; its "
                    f"classes: {', '.join(classes)}"
                )
        await self._checked(model, rows)
        explanations = await anyio.to_thread.run_sync(
            lambda: explain_rows(model, rows, top_k, target=target)
        )
        return {
            "model": loaded.version.name,
            "version": loaded.version.version,
            "explanations": explanations,
        }


def _check_count(rows: Rows, limit: int) -> None:
    if not rows:
        raise InvalidInputError("inputs must hold at least one row")
    if len(rows) > limit:
        raise PayloadTooLargeError(f"{len(rows):,} rows in one request; the limit is {limit:,}")


async def _close(loaded: LoadedTabular) -> None:
    await loaded.batcher.aclose()
