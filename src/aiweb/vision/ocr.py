"""Text in images (OCR) with ``rapidocr`` and the ONNX models its wheel ships
(PP-OCR text detection — DB, Liao et al., "Real-time Scene Text Detection with
Differentiable Binarization", AAAI 2020 — an angle classifier, and CRNN-style text
recognition, Shi et al., TPAMI 2017; PaddleOCR's PP-OCRv6 small models) on onnxruntime.
Nothing is downloaded: the models are files of the installed package (their sha256 is
:attr:`OcrReader.model_sha256`).

:meth:`OcrReader.read` gives the lines of text with their recognition scores and
polygons, in reading order (:func:`reading_order`), and the text: the lines joined, a
line break between rows, a space between lines of one row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["OcrLine", "OcrReader", "OcrResult", "engine_params", "reading_order"]


@dataclass(frozen=True)
class OcrLine:
    """One line of text.

    Attributes:
        text: what it says.
        score: the recognition's confidence, in ``[0, 1]``.
        polygon: its outline, ``[[x, y], …]`` (4 corners, clockwise from the top left),
            in pixels of the image given.
    """

    text: str
    score: float
    polygon: list[list[float]]

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "score", "polygon"}``."""
        return {"text": self.text, "score": self.score, "polygon": self.polygon}


@dataclass(frozen=True)
class OcrResult:
    """The lines of an image, in reading order, and its text (module docs)."""

    lines: list[OcrLine]
    text: str


def reading_order(polygons: Sequence[Sequence[Sequence[float]]]) -> list[list[int]]:
    """Rows of line indices in reading order.

    Two lines belong to one row when their vertical extents overlap by at least half the
    shorter one's height, and rows are closed under that (a slightly rotated line that the
    detector cut in pieces, each a little higher than the last, stays one row). Rows go
    top to bottom by the vertical centre of their leftmost line; lines within a row left
    to right.

    Args:
        polygons: each line's corners ``[[x, y], …]``.

    Returns:
        The rows, each a list of indices into ``polygons``.
    """
    boxes = []
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        boxes.append(
            (float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 1].max()))
        )
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, top_i, bottom_i) in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            _, top_j, bottom_j = boxes[j]
            overlap = min(bottom_i, bottom_j) - max(top_i, top_j)
            if overlap >= 0.5 * min(bottom_i - top_i, bottom_j - top_j):
                parent[root(j)] = root(i)
    rows: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        rows.setdefault(root(i), []).append(i)
    ordered = [sorted(row, key=lambda i: boxes[i][0]) for row in rows.values()]
    ordered.sort(key=lambda row: (boxes[row[0]][1] + boxes[row[0]][2]) / 2)
    return ordered


def engine_params(*, text_score: float = 0.5, threads: int = -1) -> dict[str, Any]:
    """The ``RapidOCR(params=…)`` of :class:`OcrReader`: rapidocr's defaults but the log
    level, the score threshold and the threads. Its ``Global.width_height_ratio`` stays 8
    (lines wider than 8 times their height are padded before recognition): -1 read long
    lines better but cost short ones their exact reading (docs/benchmarks.md, 2026-12-05).
    """
    return {
        "Global.log_level": "warning",
        "Global.text_score": text_score,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
    }


class OcrReader:
    """rapidocr on onnxruntime, with its packaged models (module docs).

    Args:
        text_score: lowest recognition score a line must have to be kept, in ``[0, 1]``.
        threads: onnxruntime intra-op threads (``-1``: its default, every core).

    Raises:
        ImportError: ``rapidocr`` is not installed.
    """

    def __init__(self, *, text_score: float = 0.5, threads: int = -1) -> None:
        from rapidocr import RapidOCR

        self._engine = RapidOCR(params=engine_params(text_score=text_score, threads=threads))
        self.params = {"text_score": text_score}

    @staticmethod
    def model_files() -> list[Path]:
        """The ONNX model files of the installed ``rapidocr`` (sorted by name)."""
        import rapidocr

        return sorted((Path(rapidocr.__file__).parent / "models").glob("*.onnx"))

    @classmethod
    def model_sha256(cls) -> dict[str, str]:
        """``{file name: sha256}`` of :meth:`model_files`."""
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cls.model_files()}

    def read(self, pixels: npt.NDArray[np.uint8]) -> OcrResult:
        """The text in an image.

        Args:
            pixels: uint8 array of shape ``(height, width, 3)``, RGB.

        Returns:
            Its :class:`OcrResult` (no line: ``lines == []``, ``text == ""``).

        Raises:
            ValueError: ``pixels`` is not uint8 RGB of that shape.
        """
        if (
            not isinstance(pixels, np.ndarray)
            or pixels.dtype != np.uint8
            or pixels.ndim != 3
            or pixels.shape[2] != 3
        ):
            shape = getattr(pixels, "shape", None)
            raise ValueError(f"expected uint8 RGB pixels of shape (H, W, 3), got {shape}")
        out: Any = self._engine(np.ascontiguousarray(pixels[:, :, ::-1]))  # rapidocr reads BGR
        boxes = getattr(out, "boxes", None)
        if boxes is None or not len(boxes):
            return OcrResult(lines=[], text="")
        texts, scores = list(out.txts or ()), list(out.scores or ())
        polygons = [[[round(float(x), 1), round(float(y), 1)] for x, y in box] for box in boxes]
        rows = reading_order(polygons)
        lines = [
            OcrLine(texts[i], round(float(scores[i]), 4), polygons[i]) for row in rows for i in row
        ]
        text = "\n".join(" ".join(texts[i] for i in row) for row in rows)
        return OcrResult(lines=lines, text=text)
