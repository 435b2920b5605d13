"""Prediction: limits, model lookup, micro-batched scoring, ids and logging."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from aiweb.classification.schemas import Prediction, PredictResponse
from aiweb.config import Settings
from aiweb.errors import InvalidInputError, PayloadTooLargeError
from aiweb.monitoring.prediction_log import PredictionLogger, PredictionRecord, text_sha256
from aiweb.registry.entities import ModelRef
from aiweb.registry.loader import ModelLoader


class PredictionService:
    """Serves ``POST /v1/models/{name}/predict`` (and ``aiweb predict``).

    Args:
        loader: the loaded models.
        logger: the prediction log writer.
        settings: limits and whether inputs are logged.
    """

    def __init__(self, loader: ModelLoader, logger: PredictionLogger, settings: Settings) -> None:
        self.loader = loader
        self.logger = logger
        self.settings = settings

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

    async def predict(self, ref: str, inputs: list[str]) -> PredictResponse:
        """Classify ``inputs`` with the model ``ref`` names.

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            inputs: texts; outputs align with them by index.

        Raises:
            InvalidInputError, PayloadTooLargeError: see :meth:`check_inputs`.
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference.
            QueueFullError: the model's queue is full (503).
        """
        self.check_inputs(inputs)
        started = time.perf_counter()
        model = await self.loader.get(ModelRef.parse(ref))
        proba = await model.predict_proba(inputs)
        latency_ms = (time.perf_counter() - started) * 1000.0
        labels = model.runtime.labels
        now = datetime.now(UTC)
        log_inputs = self.settings.log_inputs
        name, number = model.version.name, model.version.version
        predictions: list[Prediction] = []
        records: list[PredictionRecord] = []
        for text, row in zip(inputs, proba.tolist(), strict=True):
            scores = dict(zip(labels, row, strict=True))
            label = labels[max(range(len(row)), key=row.__getitem__)]
            pid = str(uuid.uuid4())
            predictions.append(Prediction(id=pid, label=label, scores=scores))
            records.append(
                PredictionRecord(
                    id=pid,
                    model=name,
                    version=number,
                    label=label,
                    scores=scores,
                    latency_ms=latency_ms,
                    input_sha256=text_sha256(text),
                    input_text=text if log_inputs else None,
                    created_at=now,
                )
            )
        self.logger.record(records)
        return PredictResponse(model=name, version=number, predictions=predictions)
