"""Sentence embeddings: all-MiniLM-L6-v2 exported to ONNX and served by onnxruntime.

Typical use::

    from aiweb.embeddings import OnnxEmbedder
    embedder = OnnxEmbedder.from_dir(export_dir)
    embedder.embed(["a sentence", "another"]).vectors    # float32 (2, 384), unit rows

In a server, everything embeds through the process-wide
:class:`aiweb.embeddings.runtime.EmbedderPool` at ``app.state.embedders``.
``aiweb embeddings install`` exports and registers the model (:mod:`.install`; the export
itself, :mod:`.export`, needs ``pip install 'aiweb[export]'``).
"""

from __future__ import annotations

from aiweb.embeddings.install import DEFAULT_EMBEDDING_MODEL, EMBEDDING_TASK
from aiweb.embeddings.model import EmbedderConfig, Embeddings, OnnxEmbedder

__all__ = [
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
]
