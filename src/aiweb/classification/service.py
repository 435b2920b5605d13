"""Prediction: limits, model lookup, the cache, micro-batched scoring, ids and logging."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.classification.loader import LoadedModel, ModelLoader
from aiweb.classification.rejection import decide
from aiweb.config import Settings
from aiweb.errors import InvalidInputError, PayloadTooLargeError
from aiweb.monitoring.drift import oov_rate
from aiweb.monitoring.logs import MODEL, VERSION
from aiweb.monitoring.metrics import PREDICTIONS
from aiweb.monitoring.prediction_log import PredictionLogger, PredictionRecord, text_sha256
from aiweb.registry.entities import ModelRef
from aiweb.serving.cache import PredictionCache, text_key, version_key


class PredictionService:
    """Serves ``POST /v1/models/{name}/predict`` (and ``aiweb predict``).

    Args:
        loader: the loaded models.
        logger: the prediction log writer.
        settings: limits and whether inputs are logged.
        cache: the prediction cache, or ``None`` for none.
    """

    def __init__(
        self,
        loader: ModelLoader,
        logger: PredictionLogger,
        settings: Settings,
        cache: PredictionCache | None = None,
    ) -> None:
        self.loader = loader
        self.logger = logger
        self.settings = settings
        self.cache = cache

    def check_inputs(self, inputs: list[str]) -> None:
        """Enforce the request limits.

        Raises:
            PayloadTooLargeError: more than ``serving.max_inputs`` texts (413).
            InvalidInputError: no text, or a text over ``serving.max_text_chars`` (422).
        """
        limits = self.settings.serving
        if not inputs:
            raise InvalidInputError("inputs must hold at least one text")
        if len(inputs) > limits.max_inputs:
            raise PayloadTooLargeError(
                f"{len(inputs)} inputs in one request; the limit is {limits.max_inputs} "
                "(AIWEB_SERVING__MAX_INPUTS)"
            )
        for i, text in enumerate(inputs):
            if len(text) > limits.max_text_chars:
                raise InvalidInputError(
                    f"inputs[{i}] has {len(text)} characters; the limit is "
                    f"{limits.max_text_chars} (AIWEB_SERVING__MAX_TEXT_CHARS)"
                )

    async def predict(self, ref: str, inputs: list[str]) -> dict[str, Any]:
        """Classify ``inputs`` with the model ``ref`` names.

        Scores of texts seen before by the same model version come from the prediction
        cache when it is on; every prediction still gets its own id and is logged. The
        label is the most probable class, or, for a version with an out-of-scope rule,
        its label (``oos``) when the top probability is below the version's threshold
        (:mod:`aiweb.classification.rejection`); scores are the classifier's either way.

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            inputs: texts; outputs align with them by index.

        Returns:
            The response body, shaped as :class:`~aiweb.classification.schemas.PredictResponse`
            (a plain dict: it is serialised with orjson, skipping a validation pass).

        Raises:
            InvalidInputError, PayloadTooLargeError: see :meth:`check_inputs`.
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference.
            QueueFullError: the model's queue is full (503).
        """
        self.check_inputs(inputs)
        started = time.perf_counter()
        model = await self.loader.get(ModelRef.parse(ref))
        MODEL.set(model.version.name)  # for the logs of this request
        VERSION.set(model.version.version)
        labels = model.runtime.labels
        digests = [text_sha256(t) for t in inputs]
        proba = await self._scores(model, inputs, digests, len(labels))
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC)
        log_inputs = self.settings.log_inputs
        name, number = model.version.name, model.version.version
        answered = decide(labels, proba, model.rejection)
        predictions: list[dict[str, Any]] = []
        records: list[PredictionRecord] = []
        vocabulary = model.vocabulary
        for text, digest, row, label in zip(inputs, digests, proba.tolist(), answered, strict=True):
            scores = dict(zip(labels, row, strict=True))
            pid = str(uuid.uuid4())
            predictions.append({"id": pid, "label": label, "scores": scores})
            records.append(
                PredictionRecord(
                    id=pid,
                    model=name,
                    version=number,
                    label=label,
                    scores=scores,
                    latency_ms=latency_ms,
                    input_sha256=digest,
                    input_text=text if log_inputs else None,
                    created_at=now,
                    input_chars=len(text),
                    oov_rate=oov_rate(text, vocabulary) if vocabulary is not None else None,
                )
            )
        self.logger.record(records)
        version_label = str(number)
        for label, count in Counter(answered).items():
            PREDICTIONS.labels(name, version_label, label).inc(count)
        return {"model": name, "version": number, "predictions": predictions}

    async def _scores(
        self, model: LoadedModel, inputs: list[str], digests: list[str], n_classes: int
    ) -> npt.NDArray[np.float64]:
        """Scores ``(len(inputs), n_classes)``: cached rows, the rest from the model.

        ``digests`` are the texts' hex sha256, the cache keys' last part."""
        cache = self.cache
        if cache is None:
            return await model.predict_proba(inputs)
        limit = cache.settings.max_text_chars
        vkey = version_key(model.version)
        keys = {i: text_key(vkey, digests[i]) for i, t in enumerate(inputs) if len(t) <= limit}
        cached = await cache.get_many(list(keys.values()), n_classes) if keys else []
        rows: dict[int, npt.NDArray[np.float64]] = {
            i: row for i, row in zip(keys, cached, strict=True) if row is not None
        }
        if len(rows) == len(inputs):
            return np.vstack([rows[i] for i in range(len(inputs))])
        missing = [i for i in range(len(inputs)) if i not in rows]
        scored = await model.predict_proba([inputs[i] for i in missing])
        fresh = {keys[i]: scored[j].copy() for j, i in enumerate(missing) if i in keys}
        if fresh:
            await cache.set_many(fresh)
        if not rows:
            return scored
        out = np.empty((len(inputs), n_classes), dtype=np.float64)
        for i, row in rows.items():
            out[i] = row
        out[missing] = scored
        return out
