"""Sentence embeddings on onnxruntime: the served all-MiniLM-L6-v2.

The ONNX graph (written by :mod:`aiweb.embeddings.export`) takes BERT's ``input_ids``,
``attention_mask`` and ``token_type_ids`` and returns ``sentence_embedding``: the mean of
the token states over the attention mask, L2-normalised — the pooling of
sentence-transformers' all-MiniLM-L6-v2 (Reimers & Gurevych, 2019, "Sentence-BERT",
https://arxiv.org/abs/1908.10084). Word pieces come from the model's own
``tokenizer.json`` through Hugging Face ``tokenizers``; no PyTorch is needed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.errors import InvalidInputError

#: Files of an exported embedder, in a directory or as registry artifacts.
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedder.json"

#: Texts are embedded in model calls of at most this many texts (sorted by length, so
#: each call pads little).
CALL_BATCH = 32


@dataclass(frozen=True)
class Embeddings:
    """Sentence vectors and which texts were cut to fit the model.

    Attributes:
        vectors: float32 array of shape ``(n, dim)``; each row has L2 norm 1 (cosine
            similarity is the dot product).
        truncated: ``n`` flags; True where the text had more than ``max_tokens`` word
            pieces (special tokens included) and only its start was embedded.
    """

    vectors: npt.NDArray[np.float32]
    truncated: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def __getitem__(self, index: slice, /) -> Embeddings:
        """Rows ``index`` (a slice) as new :class:`Embeddings`."""
        return Embeddings(self.vectors[index], self.truncated[index])


@dataclass(frozen=True)
class EmbedderConfig:
    """What an exported embedder is (``embedder.json``).

    Attributes:
        dim: vector dimension (384 for all-MiniLM-L6-v2).
        max_tokens: longest input in word pieces, ``[CLS]`` and ``[SEP]`` included (256,
            sentence-transformers' ``max_seq_length`` for this model).
        precision: ``fp32`` or ``int8``.
        source: where the weights came from.
    """

    dim: int = 384
    max_tokens: int = 256
    precision: str = "fp32"
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "dim": self.dim,
                "max_tokens": self.max_tokens,
                "precision": self.precision,
                "source": self.source,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EmbedderConfig:
        raw = json.loads(text)
        return cls(
            dim=int(raw["dim"]),
            max_tokens=int(raw["max_tokens"]),
            precision=str(raw.get("precision", "fp32")),
            source=str(raw.get("source", "")),
        )


def word_pieces(tokenizer_json: str, max_tokens: int) -> Any:
    """A Hugging Face ``tokenizers`` word-piece tokenizer from ``tokenizer.json``'s text,
    without padding (callers pad per call) and truncating to ``max_tokens`` pieces."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def pad(pieces: list[list[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(input_ids, attention_mask)``: int64 ``(n, longest)``, zeros after each text."""
    longest = max((len(p) for p in pieces), default=0)
    ids = np.zeros((len(pieces), longest), dtype=np.int64)
    mask = np.zeros((len(pieces), longest), dtype=np.int64)
    for j, piece in enumerate(pieces):
        ids[j, : len(piece)] = piece
        mask[j, : len(piece)] = 1
    return ids, mask


def cpu_session(model: bytes | Path, *, threads: int = 0, spin: bool = False) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU provider for a BERT-style graph.

    Args:
        model: the ONNX model, as bytes or a file path.
        threads: intra-op threads; 0 lets onnxruntime use every core.
        spin: let idle worker threads spin-wait for work (onnxruntime's default). Off
            here: in a server, spinning threads take the CPU the event loop needs
            between model calls.

    Raises:
        Exception: onnxruntime's own error types for a graph it cannot load.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_padded(
    session: Any,
    pieces: list[list[int]],
    output: str,
    width: int,
    *,
    call_batch: int = CALL_BATCH,
) -> npt.NDArray[np.float32]:
    """Run a BERT-style graph over texts already cut into word-piece ids.

    The texts are sorted by length and run in calls of at most ``call_batch``, each
    padded to its longest text (dynamic padding); ``token_type_ids`` are zeros when the
    graph takes them.

    Args:
        session: from :func:`cpu_session`.
        pieces: ``n`` lists of word-piece ids (special tokens included, truncated).
        output: the graph output to read.
        width: its last dimension.
        call_batch: most texts per call.

    Returns:
        float32 ``(n, width)``, rows in the order of ``pieces``.
    """
    n = len(pieces)
    inputs = {i.name for i in session.get_inputs()}
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=n)
    order = np.argsort(lengths, kind="stable")
    out = np.empty((n, width), dtype=np.float32)
    for start in range(0, n, call_batch):
        rows = order[start : start + call_batch]
        ids, mask = pad([pieces[int(row)] for row in rows])
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        out[rows] = session.run([output], feed)[0]
    return out


class OnnxEmbedder:
    """all-MiniLM-L6-v2 (or any BERT-style mean-pooling encoder exported the same way)
    on onnxruntime's CPU provider.

    Thread-safe: one instance serves every request of a process (onnxruntime's
    ``InferenceSession.run`` and ``tokenizers``' encoding may be called concurrently).

    Args:
        model: the ONNX model, as bytes or a file path.
        tokenizer_json: the contents of the model's ``tokenizer.json``.
        config: dimension, token limit and precision.
        threads: onnxruntime intra-op threads; 0 lets onnxruntime use every core.
        spin: let onnxruntime's idle worker threads spin-wait for work (its default).
            Off here: in a server, spinning threads take the CPU the event loop needs
            between model calls.

    Attributes:
        dim: vector dimension.
        max_tokens: word-piece limit; longer texts are truncated.
    """

    def __init__(
        self,
        model: bytes | Path,
        tokenizer_json: str,
        config: EmbedderConfig,
        *,
        threads: int = 0,
        spin: bool = False,
    ) -> None:
        self.config = config
        self.dim = config.dim
        self.max_tokens = config.max_tokens
        self._tokenizer = word_pieces(tokenizer_json, config.max_tokens)
        self._session = cpu_session(model, threads=threads, spin=spin)

    @classmethod
    def from_dir(
        cls, path: Path, *, precision: str = "fp32", threads: int = 0, spin: bool = False
    ) -> OnnxEmbedder:
        """Load an export directory (``model.onnx`` or ``model-int8.onnx``, ``tokenizer.json``,
        ``embedder.json``).

        Raises:
            FileNotFoundError: a file is missing.
        """
        config = EmbedderConfig.from_json((path / CONFIG_FILE).read_text())
        config = EmbedderConfig(config.dim, config.max_tokens, precision, config.source)
        model_file = path / (INT8_MODEL_FILE if precision == "int8" else MODEL_FILE)
        if not model_file.is_file():
            raise FileNotFoundError(model_file)
        tokenizer = (path / TOKENIZER_FILE).read_text(encoding="utf-8")
        return cls(model_file, tokenizer, config, threads=threads, spin=spin)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, special tokens included, before truncation."""
        encodings = self._tokenizer.encode_batch(texts)
        return [
            len(e.ids) + sum(len(o.ids) - 2 for o in e.overflowing)  # overflow repeats specials
            for e in encodings
        ]

    def embed(self, texts: list[str]) -> Embeddings:
        """Embed ``texts``.

        Args:
            texts: ``n`` strings (empty strings are allowed: they embed ``[CLS] [SEP]``).

        Returns:
            :class:`Embeddings` with ``vectors`` float32 ``(n, dim)``, rows L2-normalised,
            in the order of ``texts``.

        Raises:
            InvalidInputError: an input is not a string.
        """
        n = len(texts)
        if n == 0:
            return Embeddings(np.zeros((0, self.dim), dtype=np.float32), [])
        for text in texts:
            if not isinstance(text, str):
                raise InvalidInputError("every input must be a string")
        encodings = self._tokenizer.encode_batch(texts)
        truncated = [bool(e.overflowing) for e in encodings]
        out = run_padded(self._session, [e.ids for e in encodings], "sentence_embedding", self.dim)
        return Embeddings(out, truncated)
