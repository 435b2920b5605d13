"""Feedback on predictions, and the live accuracy computed from it.

A client that learns the right answer for a served prediction (a user corrects a label,
a moderator decides a message was spam) posts it:
``POST /v1/predictions/{id}/feedback {"label": "...", "comment": "..."}``. The row is
committed before the 2xx answer. Live performance of a model version is computed over
the predictions *made* in a window that have feedback, with the latest feedback per
prediction as the truth:

- accuracy = correct / n;
- macro-F1 = the unweighted mean over classes of F1 (Sokolova & Lapalme, 2009), over the
  classes that occur as truth or prediction in the window (scikit-learn's
  ``f1_score(average="macro", zero_division=0)``).

A model that predicts a number gets the true value instead,
``{"value": 129500.0}``, and its live performance is RMSE = sqrt(mean((y - ŷ)²)) and
MAE = mean(|y - ŷ|) over the window (gauge ``aiweb_model_live_rmse``).

A model whose predictions are spans of the text (entities: each ``start``, ``end``,
``label``) may get the corrected list of spans instead, ``{"entities": [{"start": 0,
"end": 6, "label": "ORG"}]}``: the prediction log keeps the predicted spans, the
feedback keeps the corrected ones. The prediction was correct when the two lists are
equal exactly (entity-level exact match, the CoNLL-2003 convention: Tjong Kim Sang & De
Meulder, 2003), and the answer counts the predicted spans against the corrected ones
(:func:`span_counts`: true positives, false positives, false negatives). The feedback's
label is the label the task logs a list of spans under (its :data:`SpanLabel`, given by
the task), so macro-F1 still compares labels; live accuracy is then the share of
predictions whose spans were exactly right.

A model whose answers are objects found in its input logs them with the prediction
(``objects``): a detector's boxes, or a reader's text (as its sha256; the text too with
``AIWEB_LOG_INPUTS``). Feedback on such a prediction may be the corrected boxes,
``{"boxes": [{"label": "face", "x": 10, "y": 20, "width": 64, "height": 64}]}``: the
prediction was correct when every predicted box pairs with a corrected box of the same
label at an intersection over union of at least 0.5 and none is left over on either
side (PASCAL VOC's criterion: Everingham et al., 2010), and the answer counts them
(:func:`box_counts`). Or the corrected text, ``{"text": "…"}``: correct when it equals the
text read exactly; the answer gives the character error rate (:func:`cer`) when the
text read was logged. The feedback's label is :func:`boxes_label` of the corrected boxes
(the label found most often, ``"none"`` for no box), or ``"text"`` (``"none"`` for an
empty text), as the task logs its predictions.

Every accuracy (live windows, the dashboard's series, a rollout's gate) counts the
feedback row's ``correct`` (:func:`correct_sql`): ``label == predicted_label``, or the
exact match of spans, boxes or text.

Windows are ``1h``, ``24h`` and ``7d`` back from now. Each computation also sets the
``aiweb_model_live_accuracy{model,version}`` gauge (24 h window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import numpy as np
from sklearn.metrics import f1_score
from sqlalchemy import ColumnElement, Integer, case, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlFeedback, SqlPrediction
from aiweb.errors import InvalidInputError, PredictionNotFound, ServiceUnavailableError
from aiweb.monitoring.metrics import FEEDBACK_WAITS_REFUSED, LIVE_ACCURACY, LIVE_RMSE
from aiweb.monitoring.prediction_log import PredictionLogger, text_sha256
from aiweb.registry.store import RegistryStore

log = logging.getLogger(__name__)

#: The live-performance windows, by name.
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


@dataclass(frozen=True, order=True)
class Span:
    """A span of a text: the characters ``start`` to ``end`` (code point offsets, end
    excluded) are one ``label``. Spans order by ``(start, end, label)``: text order."""

    start: int
    end: int
    label: str


#: ``label_of(spans) -> label``: the label a task logs a prediction of ``spans`` (in text
#: order) under, given by the task (:attr:`aiweb.contract.Task.span_label`); the label
#: of feedback that is a corrected list of spans
SpanLabel = Callable[[Sequence[Span]], str]


def span_counts(predicted: Iterable[Span], truth: Iterable[Span]) -> dict[str, int]:
    """Predicted spans against true ones, by exact match of ``start``, ``end`` and
    ``label`` (CoNLL-2003: a span one character off, or of another label, is both a false
    positive and a false negative; as ``seqeval`` counts entities).

    Returns:
        ``{"true_positives", "false_positives", "false_negatives"}``: spans in both, only
        predicted, only true. Precision = tp / (tp + fp), recall = tp / (tp + fn).
    """
    p, t = set(predicted), set(truth)
    return {
        "true_positives": len(p & t),
        "false_positives": len(p - t),
        "false_negatives": len(t - p),
    }


#: the least intersection over union of a predicted box and a true one counted a match
BOX_MATCH_IOU = 0.5
#: the logged label of an answer in which nothing was found
NOTHING = "none"
#: the logged label of an answer with text read
TEXT = "text"
#: the longest texts whose character error rate is computed (the edit distance is
#: quadratic in the lengths)
MAX_CER_CHARS = 5000


@dataclass(frozen=True)
class Box:
    """A box in an image: top-left corner ``(x, y)``, ``width`` and ``height`` in pixels,
    holding one ``label``."""

    label: str
    x: float
    y: float
    width: float
    height: float

    def as_list(self) -> list[Any]:
        return [self.label, self.x, self.y, self.width, self.height]

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
        }


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, in [0, 1] (0 when neither has area)."""
    iw = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    ih = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = iw * ih
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def box_counts(
    predicted: Sequence[Box], truth: Sequence[Box], iou_threshold: float = BOX_MATCH_IOU
) -> dict[str, int]:
    """Predicted boxes against true ones (PASCAL VOC: Everingham et al., 2010): each
    predicted box, in the order given (best score first), takes the unmatched true box of
    its label it overlaps most, when their intersection over union is at least
    ``iou_threshold``.

    Returns:
        ``{"true_positives", "false_positives", "false_negatives"}``: predicted boxes
        matched, predicted boxes not matched, true boxes not matched.
    """
    free = list(truth)
    matched = 0
    for box in predicted:
        best, at = 0.0, -1
        for i, other in enumerate(free):
            if other.label == box.label:
                overlap = box_iou(box, other)
                if overlap > best:
                    best, at = overlap, i
        if at >= 0 and best >= iou_threshold:
            free.pop(at)
            matched += 1
    return {
        "true_positives": matched,
        "false_positives": len(predicted) - matched,
        "false_negatives": len(free),
    }


def boxes_label(labels: Sequence[str]) -> str:
    """The label an answer of boxes is logged under: the label found most often (a tie:
    the one listed first), ``"none"`` when there is no box."""
    if not labels:
        return NOTHING
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return max(counts, key=lambda label: counts[label])  # max keeps the first of a tie


def cer(predicted: str, truth: str) -> float | None:
    """Character error rate: the Levenshtein distance (insertions, deletions and
    substitutions of code points) from ``predicted`` to ``truth``, over ``len(truth)``
    (Morris et al., 2004; may exceed 1). 0 for two empty texts, 1 for a text read where
    there is none; ``None`` when either is over :data:`MAX_CER_CHARS` characters."""
    if len(predicted) > MAX_CER_CHARS or len(truth) > MAX_CER_CHARS:
        return None
    if not truth:
        return 0.0 if not predicted else 1.0
    previous = list(range(len(truth) + 1))
    for i, p in enumerate(predicted, 1):
        current = [i]
        for j, t in enumerate(truth, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (p != t)))
        previous = current
    return previous[-1] / len(truth)


def check_spans(
    spans: Iterable[Span], *, text_chars: int | None = None, labels: Sequence[str] | None = None
) -> list[Span]:
    """``spans`` in text order, checked as one text's list of spans.

    Args:
        spans: the spans.
        text_chars: the text's length in characters, when known: every span ends at or
            before it.
        labels: the labels a span may have, when restricted.

    Returns:
        The spans sorted by ``(start, end, label)``.

    Raises:
        InvalidInputError: a span with ``start < 0`` or ``end <= start``, two spans that
            overlap (or the same span twice), a span past the end of the text, or one of a
            label not in ``labels``.
    """
    ordered = sorted(spans)
    allowed = None if labels is None else set(labels)
    previous: Span | None = None
    for span in ordered:
        if span.start < 0 or span.end <= span.start:
            raise InvalidInputError(
                f"span {span.start}-{span.end} ({span.label!r}) is empty: each span needs "
                "0 <= start < end"
            )
        if text_chars is not None and span.end > text_chars:
            raise InvalidInputError(
                f"span {span.start}-{span.end} ({span.label!r}) ends past the text, "
                f"which has {text_chars} characters"
            )
        if allowed is not None and span.label not in allowed:
            raise InvalidInputError(
                f"span {span.start}-{span.end} has label {span.label!r}, not one of "
                f"{', '.join(sorted(allowed))}"
            )
        if previous is not None and span.start < previous.end:
            raise InvalidInputError(
                f"spans {previous.start}-{previous.end} ({previous.label!r}) and "
                f"{span.start}-{span.end} ({span.label!r}) overlap: a text's spans never do"
            )
        previous = span
    return ordered


def correct_sql() -> ColumnElement[int]:
    """1 for a feedback row whose prediction was right, else 0, as SQL: its ``correct``
    column, or ``label = predicted_label`` for a row written without one (sum it for the
    number right; rows of values are excluded by the caller)."""
    return func.coalesce(
        cast(SqlFeedback.correct, Integer),
        case((SqlFeedback.label == SqlFeedback.predicted_label, 1), else_=0),
    )


def value_metrics(truth: list[float], predicted: list[float]) -> dict[str, Any]:
    """``{"n", "accuracy": None, "macro_f1": None, "rmse", "mae"}`` of aligned lists of
    true and predicted numbers (``None`` when empty)."""
    n = len(truth)
    if n == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None, "rmse": None, "mae": None}
    error = np.asarray(truth, dtype=np.float64) - np.asarray(predicted, dtype=np.float64)
    return {
        "n": n,
        "accuracy": None,
        "macro_f1": None,
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def window_metrics(
    truth: list[str], predicted: list[str], correct: Sequence[bool | None] | None = None
) -> dict[str, Any]:
    """``{"n", "accuracy", "macro_f1"}`` of aligned label lists (``None`` when empty).

    Args:
        truth: the true labels.
        predicted: the predicted labels.
        correct: whether each prediction was right, when it is not (only) its label that
            says so (spans: exact match); ``None`` items, or no list: ``truth ==
            predicted``. Accuracy counts these; macro-F1 compares the labels.
    """
    n = len(truth)
    if n == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None}
    flags = list(correct) if correct is not None else [None] * n
    right = sum(
        1 for t, p, c in zip(truth, predicted, flags, strict=True) if (t == p if c is None else c)
    )
    labels = sorted(set(truth) | set(predicted))
    macro = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
    return {"n": n, "accuracy": right / n, "macro_f1": float(macro)}


class PredictionWaiters:
    """Feedback requests waiting, on the event loop, for predictions not yet written.

    A prediction served by another worker process reaches the database within that
    worker's flush interval; feedback that names it before then waits here. Waiting holds
    no thread: one poller task per process looks all waited-for ids up in one query every
    ``poll_s`` (and at once when this process's prediction log writes a batch), each
    lookup a short trip to a worker thread. At most ``max_waiters`` requests wait at once.

    Args:
        lookup: ``ids -> {id: prediction row}`` for the ids found (runs in a thread).
        poll_s: seconds between two lookups while anyone waits.
        max_waiters: requests allowed to wait at once in this process.
    """

    def __init__(
        self,
        lookup: Callable[[list[str]], dict[str, SqlPrediction]],
        *,
        poll_s: float = 0.25,
        max_waiters: int = 64,
    ) -> None:
        self._lookup = lookup
        self._poll_s = poll_s
        self.max_waiters = max_waiters
        self._waiting: dict[str, list[asyncio.Future[SqlPrediction]]] = {}
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return self._count

    def wake_threadsafe(self) -> None:
        """Look the waited-for ids up now (callable from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def wait(self, prediction_id: str, timeout_s: float) -> SqlPrediction | None:
        """The prediction row once it is written, or ``None`` after ``timeout_s``.

        Raises:
            ServiceUnavailableError: ``max_waiters`` requests already wait (503 with
                ``Retry-After``: the client sends the feedback again a little later).
        """
        if self._count >= self.max_waiters:
            FEEDBACK_WAITS_REFUSED.inc()
            raise ServiceUnavailableError(
                f"prediction {prediction_id!r} is not logged yet and {self.max_waiters} "
                "feedback requests already wait for theirs; send it again in a second",
                headers={"Retry-After": str(max(1, math.ceil(timeout_s)))},
            )
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use (or a new loop: tests start apps anew)
            self._loop, self._wake, self._poller = loop, asyncio.Event(), None
        future: asyncio.Future[SqlPrediction] = loop.create_future()
        self._waiting.setdefault(prediction_id, []).append(future)
        self._count += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = loop.create_task(self._poll(), name="aiweb-feedback-waiters")
            try:
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                return None
        finally:
            self._count -= 1
            futures = self._waiting.get(prediction_id)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiting[prediction_id]

    async def _poll(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while self._waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._poll_s)
            wake.clear()
            ids = list(self._waiting)
            if not ids:
                break
            try:
                found = await anyio.to_thread.run_sync(self._lookup, ids)
            except Exception:
                log.exception("looking up predictions for feedback failed; retrying")
                continue
            for prediction_id, row in found.items():
                for future in self._waiting.pop(prediction_id, []):
                    if not future.done():
                        future.set_result(row)


class FeedbackService:
    """Stores feedback and computes live performance.

    Args:
        sessions: database sessions.
        store: the registry store (a version's labels).
        logger: this process's prediction log, flushed when feedback names a prediction
            that is still queued in memory.
        wait_s: how long to wait for a prediction queued by another process to be
            written before answering 404 (the log's flush interval, plus a margin).
        max_waiters: feedback requests that may wait at once (per process); more get
            503 with ``Retry-After`` at once.
        poll_s: seconds between two lookups of the predictions waited for.
        clock: the current time (tests pass their own).
        span_labels: ``{registry task: its SpanLabel}`` of the tasks whose predictions
            are spans: feedback on their predictions may be a corrected list of spans.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: RegistryStore,
        logger: PredictionLogger,
        *,
        wait_s: float = 2.0,
        max_waiters: int = 64,
        poll_s: float = 0.25,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        span_labels: Mapping[str, SpanLabel] | None = None,
    ) -> None:
        self._sessions = sessions
        self._span_labels = dict(span_labels or {})
        self._store = store
        self._logger = logger
        self._wait_s = wait_s
        self._clock = clock
        self.waiters = PredictionWaiters(self._lookup, poll_s=poll_s, max_waiters=max_waiters)
        logger.add_flush_listener(self.waiters.wake_threadsafe)

    def _lookup(self, ids: list[str]) -> dict[str, SqlPrediction]:
        """The prediction rows of ``ids`` that exist (detached), by id."""
        with self._sessions() as session:
            rows = session.scalars(select(SqlPrediction).where(SqlPrediction.id.in_(ids))).all()
            session.expunge_all()
        return {row.id: row for row in rows}

    async def find_prediction(self, prediction_id: str) -> SqlPrediction | None:
        """The prediction ``prediction_id``, waiting up to ``wait_s`` for it to be written
        (by this process's prediction log, asked to flush now, or another process's),
        without holding a thread while it waits; ``None`` when it never appears.

        Raises:
            ServiceUnavailableError: too many requests wait already (503, Retry-After).
        """
        found = await anyio.to_thread.run_sync(self._lookup, [prediction_id])
        if prediction_id in found:
            return found[prediction_id]
        if self._logger.pending():
            self._logger.flush_soon()  # it may be in this process's queue
        return await self.waiters.wait(prediction_id, self._wait_s)

    async def submit(
        self,
        prediction_id: str,
        label: str | None,
        comment: str | None,
        actor: str,
        *,
        value: float | None = None,
        spans: Sequence[Span] | None = None,
        boxes: Sequence[Box] | None = None,
        text: str | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """Record that ``prediction_id`` should have been ``label`` (a prediction of a
        label), ``value`` (a prediction of a number), ``spans`` (a prediction of spans:
        the corrected list, ``[]`` for none), ``boxes`` (a prediction of boxes: the
        corrected list, ``[]`` for none) or ``text`` (a prediction of text read): exactly
        one of them.

        A prediction not yet written waits as :meth:`find_prediction` says; the writes
        run in a worker thread.

        Returns:
            ``(created, feedback)``: ``created`` is false when it replaced earlier feedback.

        Raises:
            PredictionNotFound: no such prediction (404).
            ServiceUnavailableError: not written yet, and too many requests wait already
                (503 with ``Retry-After``).
            InvalidInputError: ``label`` is not a class of the prediction's model version;
                a label for a prediction of a number, or a value for one of a label; a
                value that is not a finite number; spans for a model whose predictions
                are not spans, or for a prediction logged without its spans; spans that
                :func:`check_spans` refuses (empty, overlapping, past the text, of a
                label the version does not have); boxes or text for a prediction that
                logged none, boxes of a label the version does not have.
        """
        if sum(x is not None for x in (label, value, spans, boxes, text)) != 1:
            raise InvalidInputError("give exactly one of label, value, spans, boxes and text")
        if value is not None and not math.isfinite(value):
            raise InvalidInputError("value must be a finite number")
        prediction = await self.find_prediction(prediction_id)
        if prediction is None:
            raise PredictionNotFound(
                f"no prediction {prediction_id!r}: send the id a predict response gave"
            )
        return await anyio.to_thread.run_sync(
            self._record, prediction, label, comment, actor, value, spans, boxes, text
        )

    def _record(
        self,
        prediction: SqlPrediction,
        label: str | None,
        comment: str | None,
        actor: str,
        value: float | None = None,
        spans: Sequence[Span] | None = None,
        boxes: Sequence[Box] | None = None,
        text: str | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        prediction_id = prediction.id
        what = f"{prediction.model}:{prediction.version}"
        correct: bool | None = None
        truth: list[Span] | None = None
        predicted: list[Span] | None = None
        objects: dict[str, Any] | None = None
        found: dict[str, Any] = {}  # the answer's fields of object feedback
        if prediction.value is not None:
            if value is None:
                raise InvalidInputError(
                    f'{what} predicts a number: send the true value as {{"value": …}}, not a label'
                )
            label = f"{value:.6g}"
        elif spans is not None:
            label, truth, predicted = self._span_truth(prediction, spans)
            correct = truth == predicted
        elif boxes is not None:
            true_boxes, predicted_boxes = self._box_truth(prediction, boxes)
            label = boxes_label([b.label for b in true_boxes])[:255]
            counts = box_counts(predicted_boxes, true_boxes)
            correct = counts["false_positives"] == 0 and counts["false_negatives"] == 0
            objects = {"boxes": [b.as_list() for b in true_boxes]}
            found = {
                "boxes": [b.as_dict() for b in true_boxes],
                "predicted_boxes": [b.as_dict() for b in predicted_boxes],
                "counts": counts,
            }
        elif text is not None:
            read = self._text_read(prediction)
            label = TEXT if text else NOTHING
            correct = text_sha256(text) == read["text_sha256"]
            objects = {"text": text}
            predicted_text = read.get("text")
            found = {
                "text": text,
                "predicted_text": predicted_text,
                "cer": None if predicted_text is None else cer(predicted_text, text),
            }
        else:
            if label is None:
                raise InvalidInputError(
                    f'{what} predicts a label: send the true label as {{"label": …}}'
                )
            labels = self._store.get_version(prediction.model, prediction.version).labels
            if label not in labels:
                raise InvalidInputError(
                    f"{label!r} is not a label of {what}; it has {', '.join(labels)}"
                )
            correct = label == prediction.label
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(SqlFeedback, prediction_id)
            created = row is None
            if row is None:
                row = SqlFeedback(
                    prediction_id=prediction_id,
                    model=prediction.model,
                    version=prediction.version,
                    predicted_label=prediction.label,
                    predicted_at=prediction.created_at,
                )
                session.add(row)
            row.label = label
            row.value = value
            row.predicted_value = prediction.value
            row.spans = None if truth is None else [[x.start, x.end, x.label] for x in truth]
            row.objects = objects
            row.correct = correct
            row.comment = comment
            row.submitted_by = actor
            row.created_at = now
            out = {
                "prediction_id": prediction_id,
                "model": prediction.model,
                "version": prediction.version,
                "predicted_label": prediction.label,
                "label": label,
                "correct": correct,
                "value": value,
                "predicted_value": prediction.value,
                "entities": _span_dicts(truth),
                "predicted_entities": _span_dicts(predicted),
                "counts": (
                    None if truth is None or predicted is None else span_counts(predicted, truth)
                ),
                "comment": comment,
                "created_at": now,
                **found,
            }
        self._windows(prediction.model, prediction.version, ("24h",))  # sets the gauge
        return created, out

    def _span_truth(
        self, prediction: SqlPrediction, spans: Sequence[Span]
    ) -> tuple[str, list[Span], list[Span]]:
        """``(label, corrected spans, predicted spans)`` of span feedback on
        ``prediction``, both lists in text order (see :meth:`submit` for the errors)."""
        what = f"{prediction.model}:{prediction.version}"
        version = self._store.get_version(prediction.model, prediction.version)
        label_of = self._span_labels.get(version.task)
        if label_of is None:
            raise InvalidInputError(
                f"{what} is a {version.task!r} model, whose predictions are not spans: "
                'send the true label as {"label": …} (or a number as {"value": …})'
            )
        if prediction.spans is None:
            raise InvalidInputError(
                f"prediction {prediction.id!r} was logged without its spans (before they "
                'were kept): send its true label as {"label": …}'
            )
        truth = check_spans(spans, text_chars=prediction.input_chars, labels=version.labels)
        predicted = sorted(Span(int(s), int(e), str(lab)) for s, e, lab in prediction.spans)
        return label_of(truth)[:255], truth, predicted

    def _box_truth(
        self, prediction: SqlPrediction, boxes: Sequence[Box]
    ) -> tuple[list[Box], list[Box]]:
        """``(corrected boxes, predicted boxes)`` of box feedback on ``prediction`` (see
        :meth:`submit` for the errors)."""
        what = f"{prediction.model}:{prediction.version}"
        logged = (prediction.objects or {}).get("boxes")
        if not isinstance(logged, list):
            raise InvalidInputError(
                f"the predictions of {what} are not boxes (or this one was logged without "
                'them): send the true label as {"label": …}'
            )
        labels = self._store.get_version(prediction.model, prediction.version).labels
        for box in boxes:
            if labels and box.label not in labels:
                raise InvalidInputError(
                    f"{box.label!r} is not a label of {what}; it has {', '.join(labels)}"
                )
        predicted = [Box(str(b[0]), *(float(v) for v in b[1:5])) for b in logged]
        return list(boxes), predicted

    @staticmethod
    def _text_read(prediction: SqlPrediction) -> dict[str, Any]:
        """The logged text read of ``prediction``: ``{"text_sha256", "text"?}``."""
        logged = prediction.objects or {}
        if not isinstance(logged.get("text_sha256"), str):
            raise InvalidInputError(
                f"the predictions of {prediction.model}:{prediction.version} are not text "
                'read from an image: send the true label as {"label": …}'
            )
        return logged

    def performance(self, name: str, version: int) -> dict[str, Any]:
        """Live accuracy and macro-F1 (RMSE and MAE for a model of numbers) of
        ``name:version`` per window.

        Raises:
            ModelNotFound, ModelVersionNotFound: unknown model or version.
        """
        self._store.get_version(name, version)  # 404 for unknown versions
        return {"model": name, "version": version, "windows": self._windows(name, version)}

    def _windows(
        self, name: str, version: int, which: tuple[str, ...] = tuple(WINDOWS)
    ) -> dict[str, dict[str, Any]]:
        """``{window: {"n", "accuracy", "macro_f1"}}`` for the windows named (one query
        back to the longest), and the live-accuracy gauge when the 24 h window is among
        them."""
        now = self._clock()
        oldest = now - max(WINDOWS[w] for w in which)
        query = (
            select(
                SqlFeedback.label,
                SqlFeedback.predicted_label,
                SqlFeedback.predicted_at,
                SqlFeedback.value,
                SqlFeedback.predicted_value,
                SqlFeedback.correct,
            )
            .where(SqlFeedback.model == name)
            .where(SqlFeedback.version == version)
            .where(SqlFeedback.predicted_at > oldest)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        windows: dict[str, dict[str, Any]] = {}
        numbers = any(r.predicted_value is not None for r in rows)
        for window in which:
            start = now - WINDOWS[window]
            inside = [r for r in rows if start < r.predicted_at <= now]
            if numbers:
                pairs = [
                    (r.value, r.predicted_value)
                    for r in inside
                    if r.value is not None and r.predicted_value is not None
                ]
                windows[window] = value_metrics([t for t, _ in pairs], [p for _, p in pairs])
            else:
                windows[window] = window_metrics(
                    [r.label for r in inside],
                    [r.predicted_label for r in inside],
                    [r.correct for r in inside],
                )
        day = windows.get("24h", {})
        if day.get("accuracy") is not None:
            LIVE_ACCURACY.labels(name, str(version)).set(day["accuracy"])
        if day.get("rmse") is not None:
            LIVE_RMSE.labels(name, str(version)).set(day["rmse"])
        return windows


def _span_dicts(spans: Sequence[Span] | None) -> list[dict[str, Any]] | None:
    if spans is None:
        return None
    return [{"start": x.start, "end": x.end, "label": x.label} for x in spans]
