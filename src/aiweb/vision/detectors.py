"""Face and people detection on 8-bit RGB pixels with the models OpenCV ships.

- Faces: the Viola-Jones boosted cascade of Haar-like features (Viola & Jones, "Rapid
  Object Detection using a Boosted Cascade of Simple Features", CVPR 2001; Lienhart &
  Maydt's extended feature set, ICIP 2002) — OpenCV's ``haarcascade_frontalface_default.xml``
  from ``cv2.data.haarcascades`` (``opencv-python-headless<5``; 5.x dropped the cascades).
  A detection's score is the cascade's level weight (``detectMultiScale3`` with
  ``outputRejectLevels``): the sum of the last stage's weak classifiers, unbounded, larger
  is surer.
- People: histograms of oriented gradients with a linear SVM (Dalal & Triggs,
  "Histograms of Oriented Gradients for Human Detection", CVPR 2005) — OpenCV's
  ``HOGDescriptor_getDefaultPeopleDetector`` (64 x 128 windows of upright, whole people).
  The score is the SVM's decision value.

Images larger than ``max_side`` pixels on their longer side are scaled down before
detection (the cost grows with the pixel count; faces and people smaller than the
detection window at that scale are missed) and the boxes scaled back. Overlapping boxes
are merged by greedy non-maximum suppression (:func:`non_max_suppression`). Boxes are in
pixels of the image given, ``x``/``y`` its top-left corner, clipped to the image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FACE_CASCADE",
    "Box",
    "Detection",
    "FaceDetector",
    "PeopleDetector",
    "check_pixels",
    "face_cascade_path",
    "non_max_suppression",
]

#: the cascade file of the ``faces`` detector, in ``cv2.data.haarcascades``
FACE_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: top-left corner ``(x, y)``, ``width`` x ``height``."""

    x: int
    y: int
    width: int
    height: int

    def to_dict(self) -> dict[str, int]:
        """``{"x", "y", "width", "height"}``."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        label: ``"face"`` or ``"person"``.
        score: the detector's confidence (see the module docs: not a probability).
        box: where, in pixels of the image given.
    """

    label: str
    score: float
    box: Box

    def to_dict(self) -> dict[str, Any]:
        """``{"label", "score", "box": {"x", "y", "width", "height"}}``."""
        return {"label": self.label, "score": self.score, "box": self.box.to_dict()}


def non_max_suppression(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], iou_threshold: float
) -> list[int]:
    """Greedy non-maximum suppression: keep the best-scoring box, drop every box whose
    intersection over union with a kept one exceeds ``iou_threshold``, repeat (as in
    Dalal & Triggs 2005, and ``cv2.dnn.NMSBoxes``).

    Args:
        boxes: float array of shape ``(n, 4)``: ``x, y, width, height`` in pixels.
        scores: float array of shape ``(n,)``.
        iou_threshold: in ``[0, 1]``.

    Returns:
        Indices of the kept boxes, best score first.

    Raises:
        ValueError: shapes that do not match, or a threshold outside ``[0, 1]``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order:
        best = int(order.pop(0))
        kept.append(best)
        if not order:
            break
        rest = np.asarray(order)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = w * h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = [int(i) for i, o in zip(rest, iou, strict=True) if o <= iou_threshold]
    return kept


def check_pixels(pixels: npt.NDArray[np.uint8]) -> None:
    """Refuse anything but 8-bit RGB pixels of shape ``(height, width, 3)``, both sides
    at least 1.

    Raises:
        ValueError: saying the dtype and shape found.
    """
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 3
        or pixels.shape[2] != 3
        or pixels.shape[0] < 1
        or pixels.shape[1] < 1
    ):
        shape = getattr(pixels, "shape", None)
        dtype = getattr(pixels, "dtype", type(pixels).__name__)
        raise ValueError(f"expected uint8 RGB pixels of shape (H, W, 3), got {dtype} {shape}")


def _scaled(pixels: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.uint8], float]:
    """The pixels scaled so that the longer side is at most ``max_side``, and the factor
    that maps boxes back (1.0 when not scaled)."""
    import cv2

    height, width = pixels.shape[:2]
    factor = max(height, width) / max_side
    if factor <= 1.0:
        return pixels, 1.0
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.asarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)), factor


def _detections(
    label: str,
    rects: Any,
    weights: Any,
    *,
    factor: float,
    width: int,
    height: int,
    score_threshold: float,
    iou_threshold: float,
) -> list[Detection]:
    boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) * factor
    scores = np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = scores >= score_threshold
    boxes, scores = boxes[keep], scores[keep]
    found = []
    for i in non_max_suppression(boxes, scores, iou_threshold):
        x, y, w, h = boxes[i]
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(width, round(x + w)), min(height, round(y + h))
        if x1 > x0 and y1 > y0:
            found.append(
                Detection(label, round(float(scores[i]), 4), Box(x0, y0, x1 - x0, y1 - y0))
            )
    return found


def face_cascade_path() -> Path:
    """The path of :data:`FACE_CASCADE` in the installed OpenCV.

    Raises:
        FileNotFoundError: this OpenCV has no cascades (5.x, or a build without data).
    """
    import cv2

    directory = Path(getattr(cv2, "data").haarcascades)  # noqa: B009 (not in cv2's stubs)
    path = directory / FACE_CASCADE
    if not path.is_file():
        raise FileNotFoundError(
            f"{FACE_CASCADE} is not in {directory}: install opencv-python-headless<5"
        )
    return path


class FaceDetector:
    """Faces by OpenCV's frontal-face Haar cascade (module docs).

    Args:
        cascade_xml: the cascade file's bytes (:func:`face_cascade_path`).
        scale_factor: step between detection scales (``> 1``; 1.1: 10% per scale).
        min_neighbors: overlapping raw detections needed to keep one (higher: fewer false
            positives, more misses).
        min_size: smallest face side, in pixels of the (scaled) image.
        max_side: longer side the image is scaled down to first, in pixels.
        score_threshold: lowest level weight kept.
        iou_threshold: overlap above which the weaker of two boxes is dropped.

    Raises:
        ValueError: the cascade cannot be read, or a parameter is out of range.
    """

    label = "face"

    def __init__(
        self,
        cascade_xml: bytes,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        max_side: int = 1280,
        score_threshold: float = 0.0,
        iou_threshold: float = 0.3,
    ) -> None:
        import cv2

        if not scale_factor > 1.0 or min_neighbors < 0 or min_size < 1 or max_side < 32:
            raise ValueError("scale_factor > 1, min_neighbors >= 0, min_size >= 1, max_side >= 32")
        self._cascade = cv2.CascadeClassifier()
        try:
            storage = cv2.FileStorage(
                cascade_xml.decode("utf-8"), cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY
            )
            loaded = self._cascade.read(storage.getFirstTopLevelNode())
        except (cv2.error, SystemError, UnicodeDecodeError):  # OpenCV's parser raises these
            loaded = False
        if not loaded:
            raise ValueError("not an OpenCV cascade classifier file")
        self.sha256 = hashlib.sha256(cascade_xml).hexdigest()
        self.params = {
            "scale_factor": scale_factor,
            "min_neighbors": min_neighbors,
            "min_size": min_size,
            "max_side": max_side,
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
        }

    @classmethod
    def from_package(cls, **params: Any) -> FaceDetector:
        """The detector on the cascade of the installed OpenCV (:func:`face_cascade_path`)."""
        return cls(face_cascade_path().read_bytes(), **params)

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[Detection]:
        """Faces in an image.

        Args:
            pixels: uint8 array of shape ``(height, width, 3)``, RGB.

        Returns:
            The faces, best score first.

        Raises:
            ValueError: ``pixels`` is not uint8 RGB of that shape.
        """
        import cv2

        check_pixels(pixels)
        p = self.params
        small, factor = _scaled(pixels, int(p["max_side"]))
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=float(p["scale_factor"]),
            minNeighbors=int(p["min_neighbors"]),
            minSize=(int(p["min_size"]), int(p["min_size"])),
            outputRejectLevels=True,
        )
        return _detections(
            self.label,
            rects,
            weights,
            factor=factor,
            width=pixels.shape[1],
            height=pixels.shape[0],
            score_threshold=float(p["score_threshold"]),
            iou_threshold=float(p["iou_threshold"]),
        )


class PeopleDetector:
    """Upright people by OpenCV's HOG descriptor and its default linear SVM (module docs).

    Args:
        win_stride: step of the detection window, in pixels.
        padding: padding around the image, in pixels.
        scale: step between detection scales (``> 1``).
        max_side: longer side the image is scaled down to first, in pixels.
        score_threshold: lowest SVM decision value kept.
        iou_threshold: overlap above which the weaker of two boxes is dropped.

    Raises:
        ValueError: a parameter is out of range.
    """

    label = "person"

    def __init__(
        self,
        *,
        win_stride: int = 8,
        padding: int = 8,
        scale: float = 1.05,
        max_side: int = 1280,
        score_threshold: float = 0.0,
        iou_threshold: float = 0.45,
    ) -> None:
        import cv2

        if win_stride < 1 or padding < 0 or not scale > 1.0 or max_side < 128:
            raise ValueError("win_stride >= 1, padding >= 0, scale > 1, max_side >= 128")
        self._hog = cv2.HOGDescriptor()
        detector = np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32)
        self._hog.setSVMDetector(detector)
        self.sha256 = hashlib.sha256(detector.tobytes()).hexdigest()
        self.params = {
            "win_stride": win_stride,
            "padding": padding,
            "scale": scale,
            "max_side": max_side,
            "score_threshold": score_threshold,
            "iou_threshold": iou_threshold,
        }

    def detect(self, pixels: npt.NDArray[np.uint8]) -> list[Detection]:
        """People in an image.

        Args:
            pixels: uint8 array of shape ``(height, width, 3)``, RGB.

        Returns:
            The people, best score first.

        Raises:
            ValueError: ``pixels`` is not uint8 RGB of that shape.
        """
        check_pixels(pixels)
        p = self.params
        small, factor = _scaled(pixels, int(p["max_side"]))
        stride, pad = int(p["win_stride"]), int(p["padding"])
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(small),
            winStride=(stride, stride),
            padding=(pad, pad),
            scale=float(p["scale"]),
        )
        return _detections(
            self.label,
            rects,
            weights,
            factor=factor,
            width=pixels.shape[1],
            height=pixels.shape[0],
            score_threshold=float(p["score_threshold"]),
            iou_threshold=float(p["iou_threshold"]),
        )
