"""``aiweb models install faces people ocr``: register the built-in vision models.

Each becomes a version of the model of the same name (registry task ``object-detection``
for ``faces`` and ``people``, ``ocr`` for ``ocr``) whose lineage names the library, its
version and the sha256 of the model file it ships (:mod:`aiweb.vision.model` says how
a version is tied to that file). Installing again registers nothing when the newest
ready version already holds the same model with the same parameters.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiweb import __version__
from aiweb.errors import InvalidInputError
from aiweb.registry.entities import ModelVersion
from aiweb.registry.service import RegistryService
from aiweb.vision.model import ARTIFACT_FORMAT, KINDS, Kind, Manifest, combined_sha256
from aiweb.vision.schemas import DETECTION_TASK, OCR_TASK

__all__ = ["BuiltinModel", "Installed", "builtin_model", "install"]

_DESCRIPTIONS: dict[str, str] = {
    "faces": "Frontal faces: OpenCV's Haar cascade (Viola & Jones 2001) with non-maximum "
    "suppression",
    "people": "Standing people: OpenCV's HOG + linear SVM detector (Dalal & Triggs 2005)",
    "ocr": "Lines of text: rapidocr's PP-OCR detection and recognition models on onnxruntime",
}


@dataclass(frozen=True)
class BuiltinModel:
    """What :func:`install` registers for one built-in model."""

    name: str
    task: str
    manifest: Manifest
    lineage: dict[str, Any]
    labels: list[str]
    extra_artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Installed:
    """One model of :func:`install`: its version, and whether it was there already."""

    version: ModelVersion
    already_installed: bool


def _dist_version(*names: str) -> tuple[str, str]:
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return names[0], "unknown"


def builtin_model(kind: str) -> BuiltinModel:
    """The version :func:`install` would register for ``kind``, built from the installed
    packages.

    Raises:
        InvalidInputError: ``kind`` is not one of ``faces``, ``people``, ``ocr``.
        ImportError: OpenCV or rapidocr is not installed (``pip install 'aiweb[vision]'``).
        FileNotFoundError: this OpenCV has no cascades (5.x).
    """
    if kind not in KINDS:
        raise InvalidInputError(f"no built-in model {kind!r}; there are: {', '.join(KINDS)}")
    installed_at = datetime.now(UTC).isoformat()
    if kind in ("faces", "people"):
        from aiweb.vision.detectors import (
            FACE_CASCADE,
            FaceDetector,
            PeopleDetector,
            face_cascade_path,
        )

        library, version = _dist_version("opencv-python-headless", "opencv-python")
        if kind == "faces":
            cascade = face_cascade_path().read_bytes()
            face = FaceDetector(cascade)
            return BuiltinModel(
                name=kind,
                task=DETECTION_TASK,
                manifest=Manifest("faces", dict(face.params)),
                lineage={
                    "library": library,
                    "library_version": version,
                    "model_file": FACE_CASCADE,
                    "model_sha256": face.sha256,
                    "aiweb_version": __version__,
                    "installed_at": installed_at,
                },
                labels=[FaceDetector.label],
                extra_artifacts={FACE_CASCADE: cascade},
            )
        people = PeopleDetector()
        return BuiltinModel(
            name=kind,
            task=DETECTION_TASK,
            manifest=Manifest("people", dict(people.params)),
            lineage={
                "library": library,
                "library_version": version,
                "model_file": "HOGDescriptor.getDefaultPeopleDetector() (float32 SVM weights)",
                "model_sha256": people.sha256,
                "aiweb_version": __version__,
                "installed_at": installed_at,
            },
            labels=[PeopleDetector.label],
        )
    from aiweb.vision.ocr import OcrReader

    files = OcrReader.model_sha256()
    library, version = _dist_version("rapidocr")
    runtime, runtime_version = _dist_version("onnxruntime")
    return BuiltinModel(
        name=kind,
        task=OCR_TASK,
        manifest=Manifest("ocr", {"text_score": 0.5}),
        lineage={
            "library": library,
            "library_version": version,
            "runtime": f"{runtime} {runtime_version}",
            "model_files": files,
            "model_sha256": combined_sha256(files),
            "aiweb_version": __version__,
            "installed_at": installed_at,
        },
        labels=[],
    )


def _same(version: ModelVersion, model: BuiltinModel) -> bool:
    return (
        version.status == "ready"
        and version.lineage.get("model_sha256") == model.lineage["model_sha256"]
        and version.signature.get("params") == model.manifest.params
    )


def install(
    registry: RegistryService, names: Sequence[str], *, actor: str = "cli"
) -> list[Installed]:
    """Register a version of each built-in model named (first version: ``production``).

    Args:
        names: ``faces``, ``people``, ``ocr`` (each once; order kept).

    Returns:
        One :class:`Installed` per name: the new version, or the newest ready one when it
        already holds the same model and parameters.

    Raises:
        InvalidInputError: an unknown name (nothing is registered).
        ConflictError: a model of that name exists with another task (409).
        ImportError, FileNotFoundError: see :func:`builtin_model`.
    """
    kinds: list[Kind] = []
    for name in dict.fromkeys(names):
        if name not in KINDS:
            raise InvalidInputError(f"no built-in model {name!r}; there are: {', '.join(KINDS)}")
        kinds.append(name)
    models = [builtin_model(kind) for kind in kinds]
    done: list[Installed] = []
    for model in models:
        latest = registry.latest_version(model.name)
        if latest is not None and latest.task == model.task and _same(latest, model):
            done.append(Installed(latest, already_installed=True))
            continue
        version = registry.register_version(
            model.name,
            model.task,
            artifact=model.manifest.to_bytes(),
            artifact_format=ARTIFACT_FORMAT,
            labels=model.labels,
            signature={
                "inputs": "one image: image/jpeg, image/png or image/webp",
                "outputs": "detections" if model.task == DETECTION_TASK else "lines, text",
                "params": model.manifest.params,
            },
            lineage=model.lineage,
            evaluation={"benchmark": "docs/benchmarks.md, section Vision"},
            description=_DESCRIPTIONS[model.name],
            actor=actor,
            extra_artifacts=model.extra_artifacts,
        )
        done.append(Installed(version, already_installed=False))
    return done
