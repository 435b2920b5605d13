"""The prediction log, written in batches off the request path.

Requests append rows to an in-memory queue (no I/O, no lock held for long); one
background thread inserts them in batches of up to ``max_batch_rows`` every
``flush_interval_s``; :meth:`PredictionLogger.close` flushes what is left, so a clean
stop loses nothing that was served. Listeners added with
:meth:`PredictionLogger.add_flush_listener` are called after each batch is written (the
feedback route waits on them for predictions still queued, without holding a thread).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert

from aiweb.db.orm import SqlPrediction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction, as logged."""

    id: str
    model: str
    version: int
    label: str
    scores: dict[str, float]
    latency_ms: float
    input_sha256: str
    input_text: str | None
    created_at: datetime
    input_chars: int | None = None
    oov_rate: float | None = None
    #: the bin of each binned drift feature (see :mod:`aiweb.monitoring.drift`)
    drift_bins: dict[str, int] | None = None
    #: the predicted number, for a model that predicts one (its feedback is a value)
    value: float | None = None
    #: the predicted spans ``(start, end, label)``, for a model whose predictions are
    #: spans (its feedback may be the corrected list: :mod:`aiweb.monitoring.feedback`)
    spans: list[tuple[int, int, str]] | None = None
    #: the objects found, for a model whose answers are objects in its input: ``{"boxes":
    #: [[label, x, y, width, height], …]}`` or ``{"text_sha256", "text"}`` (its feedback may
    #: be the corrected boxes or text: :mod:`aiweb.monitoring.feedback`)
    objects: dict[str, Any] | None = None


def text_sha256(text: str) -> str:
    """Hex sha256 of the UTF-8 bytes of ``text`` (what is logged instead of the text)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class PredictionLogger:
    """Batched writer of :class:`PredictionRecord` rows.

    Args:
        engine: database to write to.
        flush_interval_s: longest a row waits before it is written.
        max_batch_rows: most rows per INSERT transaction.
        max_queue_rows: rows held in memory at most; beyond it new rows are dropped and
            counted in :attr:`dropped` (the database cannot keep up).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval_s: float = 1.0,
        max_batch_rows: int = 1000,
        max_queue_rows: int = 200_000,
    ) -> None:
        self._engine = engine
        self._interval = flush_interval_s
        self._batch = max_batch_rows
        self._max = max_queue_rows
        self._queue: deque[PredictionRecord] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.dropped = 0
        self.written = 0

    def start(self) -> None:
        """Start the background writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="aiweb-prediction-log", daemon=True
            )
            self._thread.start()

    def record(self, rows: list[PredictionRecord]) -> None:
        """Queue ``rows`` for writing. Never blocks on I/O."""
        room = self._max - len(self._queue)
        if room < len(rows):
            self.dropped += len(rows) - max(room, 0)
            rows = rows[: max(room, 0)]
            log.warning("prediction log queue full; %d rows dropped so far", self.dropped)
        self._queue.extend(rows)
        if len(self._queue) >= self._batch:
            self._wake.set()

    def pending(self) -> int:
        """Rows queued and not yet written."""
        return len(self._queue)

    def add_flush_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every flush that wrote rows.

        It is called in the thread that flushed (usually the writer thread), so it must
        be quick and thread-safe, e.g. ``loop.call_soon_threadsafe(event.set)``; its
        exceptions are logged and ignored.
        """
        self._listeners.append(listener)

    def flush_soon(self) -> None:
        """Ask the writer thread to write the queue now instead of at its next interval
        (returns at once; listeners hear when it is written)."""
        self._wake.set()

    def flush(self) -> int:
        """Write every queued row now. Returns the number written."""
        written = 0
        with self._flush_lock:
            while self._queue:
                batch: list[PredictionRecord] = []
                while self._queue and len(batch) < self._batch:
                    batch.append(self._queue.popleft())
                try:
                    self._write(batch)
                except Exception:
                    # keep the rows for the next attempt (database briefly unavailable)
                    self._queue.extendleft(reversed(batch))
                    raise
                written += len(batch)
        self.written += written
        if written:
            for listener in self._listeners:
                try:
                    listener()
                except Exception:
                    log.exception("a prediction-log flush listener failed")
        return written

    def _write(self, batch: list[PredictionRecord]) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(SqlPrediction),
                [
                    {
                        "id": r.id,
                        "model": r.model,
                        "version": r.version,
                        "label": r.label,
                        "scores": r.scores,
                        "latency_ms": r.latency_ms,
                        "input_sha256": r.input_sha256,
                        "input_text": r.input_text,
                        "input_chars": r.input_chars,
                        "oov_rate": r.oov_rate,
                        "drift_bins": r.drift_bins,
                        "value": r.value,
                        "spans": None if r.spans is None else [list(x) for x in r.spans],
                        "objects": r.objects,
                        "created_at": r.created_at,
                    }
                    for r in batch
                ],
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("writing the prediction log failed; retrying")
                time.sleep(min(self._interval, 1.0))

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and write everything still queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.flush()
