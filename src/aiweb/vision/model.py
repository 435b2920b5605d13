"""The runtime of a vision model version: a detector or the text reader, built from its
registry artifact.

A version's artifact (``model.json``, :data:`ARTIFACT_FORMAT`) is a manifest: which
built-in model it is (``kind``: ``faces``, ``people`` or ``ocr``) and its parameters.
The model files themselves ship inside packages (OpenCV's face cascade, its HOG people
detector, rapidocr's ONNX models):

- ``faces``: the cascade file is copied into the version at install (its extra artifact
  :data:`~aiweb.vision.detectors.FACE_CASCADE`), so the version keeps serving the model it
  was registered with whatever OpenCV is installed later;
- ``people`` and ``ocr``: the installed package's model is used, and refused at load
  when its sha256 is not the one the version's lineage recorded (the package was
  upgraded since the install: ``aiweb models install`` registers a version of the new
  one), so a version never silently changes its answers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from aiweb.errors import ModelNotReadyError, UnsafeArtifactError

__all__ = [
    "ARTIFACT_FORMAT",
    "KINDS",
    "Kind",
    "Manifest",
    "VisionModel",
    "combined_sha256",
]

#: the ``artifact_format`` of a vision version (its file is ``model.json``)
ARTIFACT_FORMAT = "json"

Kind = Literal["faces", "people", "ocr"]
#: the built-in models, by the name ``aiweb models install`` registers them under
KINDS: tuple[Kind, ...] = ("faces", "people", "ocr")


def combined_sha256(files: Mapping[str, str]) -> str:
    """One sha256 over several files' sha256 (``{file name: hex}``): of the lines
    ``"<hex>  <name>\\n"`` in name order (the ``sha256sum`` listing)."""
    listing = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A vision version's artifact: the built-in model ``kind`` and its parameters.

    Raises (``from_bytes``):
        UnsafeArtifactError: not a manifest of a known kind.
    """

    kind: Kind
    params: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps({"kind": self.kind, "params": self.params}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise UnsafeArtifactError("a vision artifact is not a JSON manifest") from None
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
            raise UnsafeArtifactError(f"a vision manifest names no known model ({KINDS})")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise UnsafeArtifactError("a vision manifest's params are not an object")
        return cls(cast(Kind, raw["kind"]), params)


class VisionModel:
    """A loaded vision model: ``predict(pixels)`` answers one image.

    Build it with :meth:`load`. Not safe to call from several threads at once (OpenCV's
    cascade keeps state between calls): the service runs one call at a time per version.
    """

    def __init__(self, kind: Kind, runtime: Any) -> None:
        self.kind = kind
        self._runtime = runtime

    @classmethod
    def load(
        cls, manifest: Manifest, files: Mapping[str, bytes], lineage: Mapping[str, Any]
    ) -> VisionModel:
        """Build the runtime of a version.

        Args:
            manifest: the version's artifact.
            files: its extra artifacts, ``{file name: bytes}`` (``faces``: the cascade).
            lineage: its lineage (``model_sha256``: the model it was registered with).

        Raises:
            ModelNotReadyError: the library is not installed (``aiweb[vision]``), or the
                installed package's model is not the registered one (503, says which).
            UnsafeArtifactError: the manifest's parameters or the cascade are refused.
        """
        from aiweb.vision.detectors import FACE_CASCADE, FaceDetector, PeopleDetector
        from aiweb.vision.ocr import OcrReader

        expected = lineage.get("model_sha256")
        try:
            if manifest.kind == "faces":
                cascade = files.get(FACE_CASCADE)
                if cascade is None:
                    raise UnsafeArtifactError(f"a faces version lacks its {FACE_CASCADE}")
                runtime: Any = FaceDetector(cascade, **manifest.params)
                found = runtime.sha256
            elif manifest.kind == "people":
                runtime = PeopleDetector(**manifest.params)
                found = runtime.sha256
            else:
                runtime = OcrReader(**manifest.params)
                found = combined_sha256(OcrReader.model_sha256())
        except ImportError as exc:
            raise ModelNotReadyError(
                f"the {manifest.kind} model needs {exc.name or 'its library'}: "
                "pip install 'aiweb[vision]'"
            ) from None
        except (TypeError, ValueError) as exc:
            raise UnsafeArtifactError(f"the {manifest.kind} manifest is refused: {exc}") from None
        if expected is not None and found != expected:
            raise ModelNotReadyError(
                f"the installed {lineage.get('library', 'library')}'s {manifest.kind} model "
                f"(sha256 {found[:12]}…) is not the one this version was registered with "
                f"({str(expected)[:12]}…): run `aiweb models install {manifest.kind}` to "
                "register a version of the installed one"
            )
        return cls(manifest.kind, runtime)

    def predict(self, pixels: npt.NDArray[np.uint8]) -> dict[str, Any]:
        """Answer one image.

        Args:
            pixels: uint8 array of shape ``(height, width, 3)``, RGB.

        Returns:
            Detectors: ``{"detections": [{"label", "score", "box": {"x", "y", "width",
            "height"}}]}``, best score first, ``score`` the detector's weight through the
            logistic function (in (0, 1); an ordering, not a probability). OCR:
            ``{"lines": [{"text", "score", "polygon"}], "text"}``, lines in reading order.

        Raises:
            ValueError: ``pixels`` is not uint8 RGB of that shape.
        """
        if self.kind == "ocr":
            result = self._runtime.read(pixels)
            return {"lines": [line.to_dict() for line in result.lines], "text": result.text}
        return {"detections": [_squashed(d.to_dict()) for d in self._runtime.detect(pixels)]}


def _squashed(detection: dict[str, Any]) -> dict[str, Any]:
    """``detection`` with its score (a cascade's level weight or an SVM's margin, any real
    number) mapped to (0, 1) by the logistic function: the order is kept; it is not a
    calibrated probability."""
    weight = float(detection["score"])
    detection["score"] = round(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, weight)))), 4)
    return detection
