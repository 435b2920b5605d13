"""The public surface of aiweb, pinned (as httpx pins ``httpx.__all__``).

Every package's ``__all__`` lists its public modules (each module or subpackage whose name
does not start with ``_``) and the names it re-exports, and :data:`PUBLIC` pins those
lists. Adding, renaming, moving or removing a module or a re-exported name fails here
until the pin is updated in the same change, so the surface never changes by accident.
The lists hold module names, not imports: an ``__init__`` imports nothing it does not
need, so importing a package stays cheap and adds no import cycle.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import aiweb

ROOT = Path(aiweb.__file__).resolve().parent
#: Not a Python API: Alembic's migration environment and scripts, run by Alembic only.
NOT_API = ("aiweb.db.migrations",)

PUBLIC: dict[str, list[str]] = {
    "aiweb": [
        "__version__",
        "api",
        "app",
        "assistant",
        "classification",
        "cli",
        "client",
        "config",
        "contract",
        "dashboard",
        "datasets",
        "db",
        "documents",
        "embeddings",
        "entities",
        "errors",
        "images",
        "jobs",
        "monitoring",
        "names",
        "recommendations",
        "registry",
        "rollout",
        "search",
        "security",
        "serving",
        "tabular",
        "tasks",
        "vision",
        "webhooks",
    ],
    "aiweb.api": [
        "apidocs",
        "deps",
        "health",
        "hygiene",
        "limits",
        "middleware",
        "oip",
        "openapi_facts",
        "preauth",
        "predict",
        "problems",
        "queries",
        "router",
        "routes",
    ],
    "aiweb.api.routes": [
        "datasets",
        "documents",
        "images",
        "jobs",
        "keys",
        "models",
        "monitoring",
        "privacy",
        "rollout",
        "webhooks",
    ],
    "aiweb.classification": [
        "embedding_features",
        "evaluation",
        "explain",
        "finetune",
        "jobs",
        "loader",
        "model",
        "onnx_export",
        "rejection",
        "schemas",
        "service",
        "stacked_features",
        "task",
        "trainer",
        "training",
        "transformer",
    ],
    "aiweb.client": [
        "AiwebError",
        "AsyncClient",
        "Client",
        "RetryPolicy",
        "TransportError",
        "errors",
        "models",
        "webhooks",
    ],
    "aiweb.cli": [
        "accounts",
        "app",
        "assistants",
        "collections",
        "datasets",
        "db",
        "documents",
        "embeddings",
        "grpc_server",
        "images",
        "info",
        "jobs",
        "keys",
        "main",
        "models",
        "predict",
        "recommend",
        "rollout",
        "screen",
        "serve",
        "train",
        "train_entities",
        "train_tabular",
    ],
    "aiweb.dashboard": [
        "routes",
        "session",
        "throttle",
        "users",
        "views",
        "web",
    ],
    "aiweb.datasets": [
        "TABLE_FORMATS",
        "DatasetInfo",
        "DatasetSpec",
        "DatasetSplits",
        "LabeledTexts",
        "TableChunk",
        "TableInfo",
        "available",
        "banking77",
        "catalog",
        "clinc150",
        "decode_utf8",
        "fetch",
        "files",
        "info",
        "inspect_table",
        "iter_table",
        "job_description_entities",
        "load",
        "locate",
        "movielens",
        "read_labeled_file",
        "service",
        "skillspan",
        "sms_spam",
        "sst2",
        "table_format",
        "tables",
        "twitter_airline",
        "wnut17",
    ],
    "aiweb.db": [
        "base",
        "migrate",
        "migrations",
        "orm",
        "revisions",
        "session",
    ],
    "aiweb.documents": ["extract", "pii", "service"],
    "aiweb.images": ["decode", "service"],
    "aiweb.vision": [
        "builtin",
        "detectors",
        "jobs",
        "model",
        "ocr",
        "overlay",
        "pages",
        "schemas",
        "service",
        "task",
    ],
    "aiweb.embeddings": [
        "DEFAULT_EMBEDDING_MODEL",
        "EMBEDDING_TASK",
        "EmbedderConfig",
        "Embeddings",
        "OnnxEmbedder",
        "export",
        "features",
        "install",
        "model",
        "routes",
        "runtime",
        "schemas",
        "task",
    ],
    "aiweb.entities": [
        "crf",
        "data",
        "evaluation",
        "jobs",
        "model",
        "routes",
        "schemas",
        "screening",
        "service",
        "task",
        "training",
        "vectors",
    ],
    "aiweb.jobs": [
        "celery_app",
        "child",
        "context",
        "embedded",
        "entities",
        "env",
        "erasure",
        "events",
        "litter",
        "runner",
        "scheduler",
        "schedules",
        "schemas",
        "service",
        "store",
        "types",
    ],
    "aiweb.monitoring": [
        "alerts",
        "drift",
        "feedback",
        "logs",
        "metrics",
        "prediction_log",
        "retention",
        "schemas",
        "stats",
    ],
    "aiweb.recommendations": [
        "algorithms",
        "cache",
        "data",
        "evaluation",
        "explain",
        "importing",
        "jobs",
        "model",
        "orm",
        "rollout",
        "routes",
        "schemas",
        "service",
        "store",
        "task",
        "training",
    ],
    "aiweb.recommendations.algorithms": [
        "ALGORITHMS",
        "ALS",
        "BPR",
        "CLASSES",
        "EASE",
        "F32",
        "I32",
        "MIN_RELATIVE_WEIGHT",
        "Algorithm",
        "Content",
        "EmbeddingContent",
        "NotFittedError",
        "Popularity",
        "State",
        "Trending",
        "base",
        "catalog",
        "content",
        "ease",
        "factors",
        "from_state",
        "item_document",
        "make",
        "popularity",
        "recency_rows",
        "recency_weights",
        "standardize",
    ],
    "aiweb.registry": [
        "AliasEvent",
        "ModelRef",
        "ModelVersion",
        "RegisteredModel",
        "artifacts",
        "entities",
        "factory",
        "promotion",
        "schemas",
        "service",
        "sql_store",
        "store",
    ],
    "aiweb.tabular": [
        "batch",
        "columns",
        "data",
        "drift",
        "evaluation",
        "explain",
        "jobs",
        "model",
        "schemas",
        "service",
        "task",
        "trainer",
        "training",
    ],
    "aiweb.assistant": [
        "config",
        "dialogue",
        "extractors",
        "guard",
        "live",
        "orm",
        "routes",
        "schemas",
        "service",
        "store",
        "task",
    ],
    "aiweb.search": [
        "embedded",
        "entities",
        "filters",
        "index",
        "indexing",
        "jobs",
        "keyword",
        "orm",
        "pgvector",
        "routes",
        "schemas",
        "service",
        "store",
        "task",
    ],
    "aiweb.security": [
        "audit",
        "auth",
        "keys",
        "ratelimit",
        "schemas",
        "secrets",
    ],
    "aiweb.serving": [
        "background",
        "balance",
        "batching",
        "cache",
        "gc",
        "oip",
        "oip_grpc",
        "protocol",
        "threads",
        "versions",
    ],
    "aiweb.serving.oip_grpc": ["grpc_predict_v2_pb2"],
    "aiweb.rollout": ["guard", "router", "schemas", "service", "stats"],
    "aiweb.webhooks": [
        "EVENTS",
        "SIGNATURE_HEADER",
        "WebhookService",
        "delete_managed",
        "emit",
        "has_subscribers",
        "put_managed",
        "queue",
        "sender",
        "service",
        "sign",
        "signing",
    ],
}


def packages() -> list[str]:
    """Every package under ``aiweb`` (found on disk, not imported), but :data:`NOT_API`."""
    names = (
        ".".join(init.parent.relative_to(ROOT.parent).parts) for init in ROOT.rglob("__init__.py")
    )
    return sorted(
        name for name in names if not any(name == n or name.startswith(n + ".") for n in NOT_API)
    )


def public_modules(package: str) -> set[str]:
    """The modules and subpackages of ``package`` whose names do not start with ``_``."""
    path = ROOT.parent.joinpath(*package.split("."))
    return {m.name for m in pkgutil.iter_modules([str(path)]) if not m.name.startswith("_")}


def test_every_package_is_pinned() -> None:
    assert packages() == sorted(PUBLIC)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_the_pinned_list(package: str) -> None:
    listed = list(importlib.import_module(package).__all__)
    assert len(listed) == len(set(listed)), f"{package}.__all__ repeats a name"
    assert sorted(listed) == sorted(PUBLIC[package])


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_lists_every_public_module(package: str) -> None:
    unlisted = public_modules(package) - set(importlib.import_module(package).__all__)
    assert not unlisted, f"add to {package}.__all__ (and PUBLIC), or prefix with _: {unlisted}"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_listed_name_imports(package: str) -> None:
    module = importlib.import_module(package)
    modules = public_modules(package)
    for name in module.__all__:
        if name in modules:
            importlib.import_module(f"{package}.{name}")
        assert hasattr(module, name), f"{package}.__all__ lists {name!r}, which it lacks"


def test_aiweb_all_is_the_version_and_the_top_level_modules() -> None:
    assert aiweb.__all__[0] == "__version__"
    assert isinstance(aiweb.__version__, str)
    assert set(aiweb.__all__[1:]) == public_modules("aiweb")
