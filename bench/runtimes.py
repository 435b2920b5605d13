"""Benchmark: the model runtimes aiweb can serve a text classifier with, in process.

For each pipeline the trainer builds, trained on SST-2 train and timed on SST-2 dev:

- ``hashing`` (the default: hashed word + char_wb n-grams) — not exportable to ONNX;
- ``tfidf`` (word n-grams with a vocabulary, linear tf) — exported with skl2onnx;

it times one text per call and 32 texts per call with

- ``sklearn pipeline``: ``pipeline.predict_proba`` as anyone would call it (the floor the
  serving benchmark compares against);
- ``aiweb sklearn``: :class:`aiweb.classification.model.TextClassifier`, which runs the
  same steps without per-call validation and Pipeline dispatch (same output);
- ``onnxruntime``: the ONNX export (``tfidf`` only), on one thread.

The result decides the ``auto`` runtime: onnxruntime for model calls of at most
``AIWEB_SERVING__ONNX_MAX_BATCH`` texts, scikit-learn above.

Run: ``python -m bench.runtimes [--data-home DIR]`` (SST-2 from ``--data-home``, else
``AIWEB_DATA_HOME``, else ``../shared/data``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.rounds import arg_parser


def _time(fn: Callable[[list[str]], object], batches: list[list[str]]) -> tuple[float, float]:
    """(p50 ms per call, texts per second) over ``batches``, after a warm-up."""
    for batch in batches[:20]:
        fn(batch)
    seconds = []
    for batch in batches:
        started = time.perf_counter()
        fn(batch)
        seconds.append(time.perf_counter() - started)
    texts = sum(len(b) for b in batches)
    return statistics.median(seconds) * 1000, texts / sum(seconds)


SIZES = (1, 2, 4, 8, 32)


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("bench.runtimes", __doc__)
    parser.add_argument(
        "--data-home",
        type=Path,
        default=Path(os.environ.get("AIWEB_DATA_HOME", "../shared/data")),
        help="where SST-2 is (default: AIWEB_DATA_HOME, else ../shared/data)",
    )
    args = parser.parse_args(argv)
    # the heavy imports wait until after --help
    from rich.console import Console
    from rich.table import Table

    from aiweb import datasets
    from aiweb.classification.onnx_export import OnnxTextClassifier, export_onnx
    from aiweb.classification.trainer import TrainParams, fit_text_classifier
    from aiweb.classification.training import TrainingData
    from aiweb.config import Settings

    console = Console()
    data_home: Path = args.data_home
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-") as home:
        settings = Settings(home=Path(home), data_home=data_home)
        data = TrainingData.from_splits(datasets.load("sst2", settings, progress=False))
    train_texts, train_labels = data.train_texts, data.train_labels
    dev_texts = data.eval_texts or []
    by_size = {
        n: [dev_texts[i : i + n] for i in range(0, len(dev_texts) - n + 1, n)] * max(1, 64 // n)
        for n in SIZES
    }

    table = Table(title="text-classification runtimes in process: p50 ms per call (SST-2 dev)")
    table.add_column("pipeline")
    table.add_column("runtime")
    for n in SIZES:
        table.add_column(f"{n} text{'s' if n > 1 else ''}", justify="right")
    table.add_column("texts/s at 32", justify="right")
    table.add_column("agreement with sklearn")
    notes: list[str] = []
    crossover: dict[str, int] = {}
    for vectorizer in ("hashing", "tfidf"):
        with console.status(f"training the {vectorizer} pipeline on SST-2 train"):
            model = fit_text_classifier(
                train_texts, train_labels, TrainParams(vectorizer=vectorizer)
            )
            onnx_bytes, check = export_onnx(model, dev_texts)
        runtimes: list[tuple[str, Callable[[list[str]], object], str]] = [
            ("sklearn pipeline", model.pipeline.predict_proba, "reference"),
            ("aiweb sklearn", model.predict_proba, "identical arrays"),
        ]
        if onnx_bytes is not None:
            onnx = OnnxTextClassifier(onnx_bytes, model.labels)
            agreement = f"same labels, max |Δp| {check['max_abs_diff']:.1e}"
            runtimes.append(("onnxruntime", onnx.predict_proba, agreement))
        else:
            notes.append(f"{vectorizer}: ONNX export {check['status']}: {check.get('reason')}")
        p50s: dict[str, dict[int, float]] = {}
        for name, fn, agreement in runtimes:
            p50s[name] = {}
            rate = 0.0
            for n in SIZES:
                p50s[name][n], rate = _time(fn, by_size[n])
            cells = [f"{p50s[name][n]:.3f}" for n in SIZES]
            table.add_row(vectorizer, name, *cells, f"{rate:,.0f}", agreement)
        if "onnxruntime" in p50s:
            faster = [n for n in SIZES if p50s["onnxruntime"][n] < p50s["aiweb sklearn"][n]]
            crossover[vectorizer] = max(faster, default=0)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
    for vectorizer, n in crossover.items():
        console.print(
            f"{vectorizer}: onnxruntime is faster than aiweb's scikit-learn call up to "
            f"{n} text(s) per call (AIWEB_SERVING__ONNX_MAX_BATCH, default 1)",
            highlight=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
