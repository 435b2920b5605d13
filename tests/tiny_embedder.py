"""A tiny, real sentence embedder for tests: a word-level tokenizer and an ONNX graph
(embedding lookup, masked mean, L2 norm) that :class:`aiweb.embeddings.model.OnnxEmbedder`
runs on onnxruntime exactly as it runs all-MiniLM-L6-v2, in milliseconds and without the
export of the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aiweb.embeddings.model import (
    CONFIG_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    EmbedderConfig,
    OnnxEmbedder,
)

DIM = 16
#: the words the tokenizer knows (any other is [UNK])
VOCABULARY: tuple[str, ...] = (
    "a",
    "wonderful",
    "moving",
    "film",
    "great",
    "acting",
    "and",
    "clever",
    "story",
    "i",
    "loved",
    "every",
    "minute",
    "brilliant",
    "funny",
    "delight",
    "from",
    "start",
    "to",
    "finish",
    "terrible",
    "boring",
    "dull",
    "lifeless",
    "mess",
    "hated",
    "awful",
    "stupid",
    "plot",
    "waste",
    "of",
    "time",
    "not",
    "good",
    "movie",
    "but",
    "the",
    "was",
    "superb",
)


def tokenizer_json() -> str:
    """A lower-casing word-level tokenizer (``[CLS] … [SEP]``) over :data:`VOCABULARY`."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}
    for word in [*VOCABULARY, ",", ".", "!"]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return str(tok.to_str())


def model_bytes(vocab_size: int, seed: int = 0) -> bytes:
    """The ONNX graph: ``normalize(mean(E[ids] over the mask))`` -> ``sentence_embedding``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(seed).normal(size=(vocab_size, DIM)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("LpNormalization", ["mean"], ["sentence_embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-embedder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "t"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["n", "t"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["n", DIM])],
        initializer=[
            numpy_helper.from_array(table, "E"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def config() -> EmbedderConfig:
    return EmbedderConfig(dim=DIM, max_tokens=64, precision="fp32", source="tests/tiny")


def tiny_embedder() -> OnnxEmbedder:
    """The embedder, in memory."""
    tokenizer = tokenizer_json()
    size = len(json.loads(tokenizer)["model"]["vocab"])
    return OnnxEmbedder(model_bytes(size), tokenizer, config(), threads=1)


def write_export(directory: Path) -> Path:
    """The embedder as an export directory (``register_exported`` registers it)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_json()
    size = len(json.loads(tokenizer)["model"]["vocab"])
    (directory / MODEL_FILE).write_bytes(model_bytes(size))
    (directory / TOKENIZER_FILE).write_text(tokenizer, encoding="utf-8")
    (directory / CONFIG_FILE).write_text(config().to_json())
    return directory
