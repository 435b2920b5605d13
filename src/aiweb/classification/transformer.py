"""A fine-tuned transformer text classifier served by onnxruntime (``--features finetune``).

The model (trained by :mod:`aiweb.classification.finetune`) is all-MiniLM-L6-v2's BERT
encoder, mean pooling over the attention mask and a linear classification head, exported
to one ONNX graph whose output is the softmax of the head (``probabilities``, float32
``[batch, n_classes]``). This module serves it and never imports PyTorch.

Artifact (format :data:`ARTIFACT_FORMAT`): a zip archive, stored uncompressed, of

* ``model.onnx`` — the served graph (inputs ``input_ids``, ``attention_mask``,
  ``token_type_ids``: int64 ``[batch, sequence]``; the int8 export when it passed its
  check at training, else fp32);
* ``tokenizer.json`` — the model's Hugging Face ``tokenizers`` word-piece tokenizer;
* ``classifier.json`` — ``{"labels", "max_tokens", "precision", "source"}``.

Reading the archive checks its member names and sizes before anything is inflated
(:data:`MAX_MEMBER_BYTES`), so a crafted archive cannot exhaust memory; no code is ever
executed from it (ONNX graphs and JSON only).

Batches are tokenised at once, sorted by length and run in calls of at most
:data:`CALL_BATCH` texts padded to the longest of the call (dynamic padding), so a batch
of short texts never pays for a long one. The int8 graph is run one text per call:
onnxruntime's dynamic quantisation picks one activation scale per tensor, so in a batch a
text's probabilities would depend on the texts batched with it (by up to 0.01 measured) —
and the micro-batcher makes those whatever else arrived at the same moment.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiweb.embeddings.model import cpu_session, run_padded, word_pieces
from aiweb.errors import InvalidInputError, UnsafeArtifactError

__all__ = [
    "ARTIFACT_FORMAT",
    "FEATURES",
    "MAX_MEMBER_BYTES",
    "ClassifierConfig",
    "FineTunedTextClassifier",
    "pack",
    "unpack",
]

#: Artifact format of a fine-tuned transformer classifier (a zip, see the module doc).
ARTIFACT_FORMAT = "onnx-transformer"
#: Name of the feature kind, as in ``--features finetune``.
FEATURES = "finetune"
#: Largest member of an artifact archive: an fp32 MiniLM-L6 graph is ~90 MB.
MAX_MEMBER_BYTES = 1 << 30
#: Most texts per onnxruntime call.
CALL_BATCH = 64
MODEL_MEMBER = "model.onnx"
TOKENIZER_MEMBER = "tokenizer.json"
CONFIG_MEMBER = "classifier.json"
_MEMBERS = (MODEL_MEMBER, TOKENIZER_MEMBER, CONFIG_MEMBER)


@dataclass(frozen=True)
class ClassifierConfig:
    """What the archive says of its model.

    Attributes:
        labels: class names, in the column order of the graph's ``probabilities``.
        max_tokens: word pieces per text, special tokens included; longer texts are
            truncated (the training setting).
        precision: ``fp32`` or ``int8`` (which export ``model.onnx`` is).
        source: the pretrained model fine-tuned, and its package version.
    """

    labels: list[str]
    max_tokens: int
    precision: str
    source: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "labels": self.labels,
                "max_tokens": self.max_tokens,
                "precision": self.precision,
                "source": self.source,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: bytes) -> ClassifierConfig:
        """Parse ``classifier.json``.

        Raises:
            UnsafeArtifactError: not the expected object.
        """
        try:
            data = json.loads(text)
            labels = data["labels"]
            max_tokens = data["max_tokens"]
            if (
                not isinstance(labels, list)
                or len(labels) < 2
                or not all(isinstance(x, str) for x in labels)
                or not isinstance(max_tokens, int)
                or not 8 <= max_tokens <= 4096
            ):
                raise ValueError("labels or max_tokens")
            return cls(labels, max_tokens, str(data.get("precision", "fp32")), str(data["source"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsafeArtifactError(f"classifier.json is not valid: {exc}") from None


def pack(model: bytes, tokenizer_json: str, config: ClassifierConfig) -> bytes:
    """The artifact archive of a model (see the module doc)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(MODEL_MEMBER, model)
        archive.writestr(TOKENIZER_MEMBER, tokenizer_json.encode("utf-8"))
        archive.writestr(CONFIG_MEMBER, config.to_json().encode("utf-8"))
    return out.getvalue()


def unpack(data: bytes) -> tuple[bytes, str, ClassifierConfig]:
    """``(onnx model, tokenizer json, config)`` of an archive written by :func:`pack`.

    Raises:
        UnsafeArtifactError: not a zip archive, other or missing members, a member
            over :data:`MAX_MEMBER_BYTES` (checked before inflating it), or an invalid
            ``classifier.json``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnsafeArtifactError("the artifact is not a zip archive") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        if sorted(infos) != sorted(_MEMBERS):
            raise UnsafeArtifactError(
                f"the artifact holds {sorted(infos)[:10]}, not {sorted(_MEMBERS)}"
            )
        for info in infos.values():
            if info.file_size > MAX_MEMBER_BYTES:
                raise UnsafeArtifactError(f"{info.filename} is {info.file_size:,} bytes")
        try:
            model = archive.read(MODEL_MEMBER)
            tokenizer = archive.read(TOKENIZER_MEMBER).decode("utf-8")
            config = ClassifierConfig.from_json(archive.read(CONFIG_MEMBER))
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError) as exc:
            raise UnsafeArtifactError(f"the artifact archive is corrupt: {exc}") from None
    return model, tokenizer, config


class FineTunedTextClassifier:
    """A fine-tuned encoder + classification head on onnxruntime's CPU provider.

    Thread-safe (onnxruntime sessions and ``tokenizers`` may be called concurrently).

    Args:
        model: the ONNX graph (see the module doc).
        tokenizer_json: the contents of ``tokenizer.json``.
        config: labels, token limit, precision.
        threads: onnxruntime intra-op threads; 0 lets onnxruntime use every core.

    Attributes:
        labels: class names, in the column order of :meth:`predict_proba`.
        name: the feature kind, ``finetune``.
    """

    name = FEATURES

    def __init__(
        self, model: bytes, tokenizer_json: str, config: ClassifierConfig, *, threads: int = 0
    ) -> None:
        self.config = config
        self.labels: list[str] = list(config.labels)
        self._tokenizer = word_pieces(tokenizer_json, config.max_tokens)
        try:
            self._session = cpu_session(model, threads=threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UnsafeArtifactError(f"the ONNX model cannot be loaded: {exc}") from None
        # int8: one text per call, so a text's answer never depends on its batch-mates
        self._call_batch = 1 if config.precision == "int8" else CALL_BATCH
        width = self._session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(self.labels):
            raise UnsafeArtifactError(
                f"the model gives {width} probabilities for {len(self.labels)} labels"
            )

    @classmethod
    def from_bytes(cls, data: bytes, *, threads: int = 0) -> FineTunedTextClassifier:
        """Load an artifact archive (its sha256 already checked by the registry loader).

        Raises:
            UnsafeArtifactError: see :func:`unpack`; or the graph cannot be loaded.
        """
        model, tokenizer, config = unpack(data)
        return cls(model, tokenizer, config, threads=threads)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids of each text, special tokens included, truncated to
        ``config.max_tokens``."""
        return [e.ids for e in self._tokenizer.encode_batch(texts)]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities.

        Args:
            texts: ``n`` strings (beyond ``config.max_tokens`` word pieces only their
                start is read; empty strings are allowed).

        Returns:
            float64 array ``(n, len(self.labels))``; rows sum to 1, aligned with ``texts``.

        Raises:
            InvalidInputError: an input is not a string.
        """
        n = len(texts)
        if n == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        for text in texts:
            if not isinstance(text, str):
                raise InvalidInputError("every input must be a string")
        proba = run_padded(
            self._session,
            self.encode(texts),
            "probabilities",
            len(self.labels),
            call_batch=self._call_batch,
        )
        return proba.astype(np.float64)
