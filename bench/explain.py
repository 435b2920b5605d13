"""Explanations: faithfulness and speed of aiweb's explainers against LIME and SHAP.

Run from the project root (``make bench-explain``)::

    .venv/bin/python -m bench.explain [--export-dir DIR | --home DIR] [--baseline-n 60]
        [--intent-n 300] [--no-intent] [--markdown FILE]

What it does, in one run:

1. Trains the demo ``sentiment`` model exactly as ``make demo`` does (``aiweb demo`` runs
   :func:`aiweb.classification.training.train_text_classification` on GLUE SST-2 with
   the default parameters) in a temporary registry, and loads it as the server does.
2. Explains every SST-2 dev sentence (872) with aiweb's ``linear`` explainer
   (:class:`aiweb.classification.explain.LinearTextExplainer`), one sentence per call:
   p50/p99 time per explanation, the largest additivity error
   ``|base_value + Σ weights - logit|``, and faithfulness (below).
3. On the first ``--baseline-n`` dev sentences, explains the same model with LIME
   (``lime``'s ``LimeTextExplainer``, 1,000 samples, its default word splitting) and with
   SHAP's ``KernelExplainer`` on the same words as aiweb (a word is present or deleted;
   the background is the text with every word deleted; ``nsamples="auto"``, i.e.
   ``2·words + 2048`` model calls; the explained output is the target's logit, so SHAP's
   values are in aiweb's units and sum to the same ``logit - base_value``). Reports their
   p50/p99 time, the faithfulness of all three on that subset, and the Spearman
   correlation of aiweb's word weights with SHAP's (mean and median over the sentences).
   Every explainer is timed one sentence per call, on the same machine in the same run;
   on a shared machine the load moves all of them (see docs/benchmarks.md).
4. Trains an intent model on all-MiniLM-L6-v2 features (``--features minilm``) on
   Banking77 train (10,003 queries, 77 intents) and measures the faithfulness of the
   ``occlusion`` explainer on ``--intent-n`` test queries (a seeded sample) and its time.

Faithfulness is comprehensiveness (DeYoung et al. 2020, "ERASER: A Benchmark to
Evaluate Rationalized NLP Models", ACL): the drop of p(target) — target: the answered
class — after deleting the top 20% of the text's words (``round(0.2 · words)``, at least
one) ranked by contribution towards the target (signed weight, largest first), against
deleting as many words chosen at random (mean over 5 seeds). A word is deleted by cutting
its characters out of the text. Words are aiweb's (``\\w+|[^\\w\\s]+``); for LIME, a word's
weight is LIME's weight of its text (LIME scores word types and ignores punctuation:
weight 0).

Bars (exit status 1 when one fails): sentiment comprehensiveness >= 3x the random
deletion's; aiweb's p50 <= 5 ms per explanation; aiweb's p50 at least 100x below LIME's.
The intent model's faithfulness and the agreement with SHAP are reported, not barred.

The embedding model for step 4 (as ``bench.features``): ``--home DIR`` uses an
``AIWEB_HOME`` where ``aiweb embeddings install`` has run; ``--export-dir DIR`` registers an
existing export in a fresh temporary home; with neither, ``aiweb embeddings install`` runs
in a temporary home (about 3 minutes of PyTorch). ``--no-intent`` skips step 4.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

REPO = Path(__file__).resolve().parent.parent
FRACTION = 0.2
SEEDS = 5
LIME_SAMPLES = 1000
COMPREHENSIVENESS_RATIO_MIN = 3.0
P50_MS_MAX = 5.0
LIME_SPEEDUP_MIN = 100.0

Spans = list[tuple[int, int]]


def delete(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the characters of ``spans`` (word spans, in any order)."""
    out, last = [], 0
    for a, b in sorted(spans):
        out.append(text[last:a])
        last = b
    out.append(text[last:])
    return "".join(out)


def k_of(n_words: int) -> int:
    """Words deleted: 20% of the text's words, rounded, at least one."""
    return max(1, round(FRACTION * n_words))


def comprehensiveness(
    texts: Sequence[str],
    words: Sequence[Spans],
    weights: Sequence[npt.NDArray[np.float64]],
    targets: Sequence[int],
    proba: Callable[[list[str]], npt.NDArray[np.float64]],
) -> dict[str, float]:
    """Mean drop of p(target) after deleting the top-20% words by weight, and after
    deleting as many random words (mean of :data:`SEEDS` seeds); texts without words are
    left out."""
    kept = [i for i in range(len(texts)) if words[i]]
    batch: list[str] = []
    for i in kept:
        batch.append(texts[i])
        k = k_of(len(words[i]))
        order = np.argsort(-np.asarray(weights[i]), kind="stable")[:k]
        batch.append(delete(texts[i], [words[i][j] for j in order]))
        for seed in range(SEEDS):
            rng = np.random.default_rng([seed, i])
            chosen = rng.choice(len(words[i]), size=k, replace=False)
            batch.append(delete(texts[i], [words[i][j] for j in chosen]))
    p = proba(batch)
    step = 2 + SEEDS
    top, rand = [], []
    for n, i in enumerate(kept):
        t = targets[i]
        full = p[n * step, t]
        top.append(full - p[n * step + 1, t])
        rand.append(float(np.mean([full - p[n * step + 2 + s, t] for s in range(SEEDS)])))
    mean_top, mean_rand = float(np.mean(top)), float(np.mean(rand))
    return {
        "n": len(kept),
        "top": mean_top,
        "random": mean_rand,
        "ratio": mean_top / mean_rand if mean_rand > 0 else math.inf,
    }


def quantiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


@contextmanager
def registry_home(args: argparse.Namespace, data_home: Path) -> Iterator[Path]:
    """A home for the run: with the embedding model when the intent step runs."""
    if args.no_intent:
        with tempfile.TemporaryDirectory(prefix="aiweb-bench-explain-") as tmp:
            yield Path(tmp)
        return
    from bench.features import home_with_embedder

    with home_with_embedder(args, data_home) as home:
        yield home


def answered(row: npt.NDArray[np.float64]) -> int:
    return int(np.argmax(row))


# -- sentiment: aiweb, LIME, SHAP --------------------------------------------------------------


def explain_linear(explainer: Any, texts: list[str]) -> tuple[list[Any], list[float], float]:
    """One explanation per text, each timed alone: ``(explained, seconds, max additivity
    error)``."""
    explainer.explain(texts[:20], answered)  # warm-up
    out, seconds, worst = [], [], 0.0
    for text in texts:
        started = time.perf_counter()
        e = explainer.explain([text], answered)[0]
        seconds.append(time.perf_counter() - started)
        out.append(e)
        error = abs(e.base_value + float(e.weights.sum()) - float(e.logits[e.target]))
        worst = max(worst, error)
    return out, seconds, worst


def lime_weights(
    runtime: Any, texts: list[str], words: list[Spans], targets: list[int]
) -> tuple[list[npt.NDArray[np.float64]], list[float]]:
    """LIME's weight of each aiweb word (its text's LIME weight), and LIME's time."""
    from lime.lime_text import LimeTextExplainer

    lime = LimeTextExplainer(class_names=runtime.labels, random_state=0)
    out, seconds = [], []
    for text, spans, target in zip(texts, words, targets, strict=True):
        started = time.perf_counter()
        exp = lime.explain_instance(
            text,
            runtime.predict_proba,
            labels=(target,),
            num_features=10,
            num_samples=LIME_SAMPLES,
        )
        seconds.append(time.perf_counter() - started)
        by_word = dict(exp.as_list(label=target))
        out.append(np.array([by_word.get(text[a:b], 0.0) for a, b in spans], dtype=np.float64))
    return out, seconds


def shap_weights(
    explainer: Any, texts: list[str], words: list[Spans], targets: list[int]
) -> tuple[list[npt.NDArray[np.float64]], list[float]]:
    """SHAP KernelExplainer values of aiweb's words (present/deleted), in logits of the
    target, and SHAP's time per text."""
    import shap

    out, seconds = [], []
    for text, spans, target in zip(texts, words, targets, strict=True):
        n = len(spans)
        if n == 0:
            out.append(np.zeros(0))
            seconds.append(0.0)
            continue

        def f(
            z: npt.NDArray[np.float64], text: str = text, spans: Spans = spans, t: int = target
        ) -> npt.NDArray[np.float64]:
            variants = [delete(text, [spans[j] for j in np.flatnonzero(row < 0.5)]) for row in z]
            x = explainer.logits(sparse.hstack(explainer.features(variants)).tocsr())
            return np.asarray(x[:, t], dtype=np.float64)

        started = time.perf_counter()
        kernel = shap.KernelExplainer(f, np.zeros((1, n)))
        values = kernel.shap_values(np.ones((1, n)), nsamples="auto", silent=True)
        seconds.append(time.perf_counter() - started)
        out.append(np.asarray(values, dtype=np.float64).reshape(-1)[:n])
    return out, seconds


def spearman(
    a: Sequence[npt.NDArray[np.float64]], b: Sequence[npt.NDArray[np.float64]]
) -> tuple[float, float, int]:
    """Mean and median per-text Spearman correlation (texts of 3+ words, non-constant)."""
    from scipy.stats import spearmanr

    rhos = []
    for x, y in zip(a, b, strict=True):
        if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        rhos.append(float(spearmanr(x, y).statistic))
    return float(np.mean(rhos)), float(np.median(rhos)), len(rhos)


def sentiment(registry: Any, settings: Any, baseline_n: int) -> dict[str, Any]:
    from aiweb import datasets
    from aiweb.classification.explain import LinearTextExplainer
    from aiweb.classification.loader import load_runtime
    from aiweb.classification.training import TrainingData, train_text_classification

    data = TrainingData.from_splits(datasets.load("sst2", settings, progress=False))
    started = time.perf_counter()
    result = train_text_classification(registry, "sentiment", data)
    print(
        f"sentiment: trained in {time.perf_counter() - started:.0f} s, dev accuracy "
        f"{result.report['accuracy']:.4f}",
        file=sys.stderr,
    )
    runtime = load_runtime(registry, result.version)
    explainer = LinearTextExplainer(runtime)
    texts = list(data.eval_texts or [])
    explained, seconds, worst = explain_linear(explainer, texts)
    words = [e.words for e in explained]
    weights = [e.weights for e in explained]
    targets = [e.target for e in explained]
    p50, p99 = quantiles_ms(seconds)
    faith = comprehensiveness(texts, words, weights, targets, runtime.predict_proba)
    print(
        f"aiweb linear: p50 {p50:.2f} ms, p99 {p99:.2f} ms; comprehensiveness "
        f"{faith['top']:.4f} vs random {faith['random']:.4f} ({faith['ratio']:.1f}x); "
        f"max additivity error {worst:.2e}",
        file=sys.stderr,
    )
    n = min(baseline_n, len(texts))
    sub = slice(0, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lime_w, lime_s = lime_weights(runtime, texts[sub], words[sub], targets[sub])
        print(f"LIME: p50 {quantiles_ms(lime_s)[0]:.0f} ms", file=sys.stderr)
        shap_w, shap_s = shap_weights(explainer, texts[sub], words[sub], targets[sub])
        print(f"SHAP: p50 {quantiles_ms(shap_s)[0]:.0f} ms", file=sys.stderr)
    sub_args = (texts[sub], words[sub])
    return {
        "accuracy": result.report["accuracy"],
        "n": len(texts),
        "baseline_n": n,
        "aiweb": {"ms": (p50, p99), "faith": faith, "max_error": worst},
        "aiweb_sub": {
            "ms": quantiles_ms(seconds[sub]),
            "faith": comprehensiveness(
                *sub_args, weights[sub], targets[sub], runtime.predict_proba
            ),
        },
        "lime": {
            "ms": quantiles_ms(lime_s),
            "faith": comprehensiveness(*sub_args, lime_w, targets[sub], runtime.predict_proba),
        },
        "shap": {
            "ms": quantiles_ms(shap_s),
            "faith": comprehensiveness(*sub_args, shap_w, targets[sub], runtime.predict_proba),
        },
        "spearman": spearman(weights[sub], shap_w),
    }


# -- intent on MiniLM features: occlusion -----------------------------------------------------


def intent(registry: Any, settings: Any, n: int) -> dict[str, Any]:
    from aiweb import datasets
    from aiweb.classification.explain import OcclusionExplainer
    from aiweb.classification.loader import load_runtime
    from aiweb.classification.trainer import TrainParams
    from aiweb.classification.training import TrainingData, train_text_classification
    from aiweb.embeddings.runtime import EmbedderPool

    pool = EmbedderPool(registry, settings.embeddings)
    data = TrainingData.from_splits(datasets.load("banking77", settings, progress=False))
    started = time.perf_counter()
    result = train_text_classification(
        registry, "intent", data, params=TrainParams(features="minilm"), embedders=pool
    )
    print(
        f"intent (banking77, minilm): trained in {time.perf_counter() - started:.0f} s, "
        f"test accuracy {result.report['accuracy']:.4f}",
        file=sys.stderr,
    )
    runtime = load_runtime(registry, result.version, embedders=pool)
    explainer = OcclusionExplainer(runtime)
    everything = list(data.eval_texts or [])
    rng = np.random.default_rng(0)
    texts = [everything[i] for i in sorted(rng.choice(len(everything), n, replace=False))]
    explainer.explain(texts[:4], answered)  # warm-up
    explained, seconds = [], []
    for text in texts:
        started = time.perf_counter()
        explained.append(explainer.explain([text], answered)[0])
        seconds.append(time.perf_counter() - started)
    faith = comprehensiveness(
        texts,
        [e.words for e in explained],
        [e.weights for e in explained],
        [e.target for e in explained],
        runtime.predict_proba,
    )
    return {
        "accuracy": result.report["accuracy"],
        "n": len(texts),
        "ms": quantiles_ms(seconds),
        "faith": faith,
        "words": float(np.mean([len(e.words) for e in explained])),
    }


# -- report -----------------------------------------------------------------------------------


def verdicts(s: dict[str, Any]) -> list[tuple[str, bool]]:
    faith = s["aiweb"]["faith"]
    p50 = s["aiweb"]["ms"][0]
    lime_p50 = s["lime"]["ms"][0]
    return [
        (
            f"comprehensiveness {faith['ratio']:.1f}x random (>= {COMPREHENSIVENESS_RATIO_MIN:g}x)",
            faith["ratio"] >= COMPREHENSIVENESS_RATIO_MIN,
        ),
        (f"aiweb p50 {p50:.2f} ms (<= {P50_MS_MAX:g} ms)", p50 <= P50_MS_MAX),
        (
            f"aiweb {lime_p50 / p50:.0f}x faster than LIME at p50 (>= {LIME_SPEEDUP_MIN:g}x; "
            f"{p50:.2f} ms vs {lime_p50:.0f} ms)",
            lime_p50 >= LIME_SPEEDUP_MIN * p50,
        ),
    ]


def markdown(s: dict[str, Any], i: dict[str, Any] | None) -> str:
    def row(name: str, part: dict[str, Any], n: int, rho: str = "—") -> str:
        f = part["faith"]
        return (
            f"| {name} | {n} | {part['ms'][0]:.2f} | {part['ms'][1]:.2f} | {f['top']:.4f} | "
            f"{f['random']:.4f} | {f['ratio']:.1f}x | {rho} |"
        )

    rho_mean, rho_median, rho_n = s["spearman"]
    bn = s["baseline_n"]
    lines = [
        "| explainer (model) | sentences | p50 ms | p99 ms | Δp top 20% | Δp random 20% "
        "| ratio | Spearman vs SHAP |",
        "|---|---|---|---|---|---|---|---|",
        row("aiweb `linear`, exact (sentiment, SST-2 dev)", s["aiweb"], s["n"]),
        row(
            "aiweb `linear`, exact (same, first sentences)",
            s["aiweb_sub"],
            bn,
            f"{rho_mean:.3f} (median {rho_median:.3f}, {rho_n} sentences)",
        ),
        row(f"LIME, {LIME_SAMPLES:,} samples (same sentences)", s["lime"], bn),
        row("SHAP KernelExplainer, auto samples (same sentences)", s["shap"], bn, "1 (itself)"),
    ]
    if i is not None:
        lines.append(row("aiweb `occlusion` (intent, MiniLM features, Banking77 test)", i, i["n"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--home", default=None, help="AIWEB_HOME with minilm installed")
    parser.add_argument("--export-dir", default=None, help="register this export instead")
    parser.add_argument("--baseline-n", type=int, default=60, help="sentences for LIME/SHAP")
    parser.add_argument("--intent-n", type=int, default=300, help="Banking77 test queries")
    parser.add_argument("--no-intent", action="store_true", help="skip the MiniLM intent step")
    parser.add_argument("--markdown", default=None, help="also write the table here")
    args = parser.parse_args()
    data_home = Path(
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    ).resolve()

    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.registry.factory import build_registry

    with registry_home(args, data_home) as home:
        settings = Settings(home=home, data_home=data_home)
        registry, engine = build_registry(settings)
        try:
            upgrade(engine)
            s = sentiment(registry, settings, args.baseline_n)
            i = None if args.no_intent else intent(registry, settings, args.intent_n)
        finally:
            engine.dispose()
    table = markdown(s, i)
    print()
    print(table)
    print(
        f"sentiment dev accuracy {s['accuracy']:.4f}; max additivity error "
        f"{s['aiweb']['max_error']:.1e} (logit units) over {s['n']} sentences"
    )
    if i is not None:
        print(
            f"intent test accuracy {i['accuracy']:.4f}; {i['words']:.1f} words per query on average"
        )
    failed = False
    for text, ok in verdicts(s):
        print(f"{text}: {'PASS' if ok else 'FAIL'}")
        failed |= not ok
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
