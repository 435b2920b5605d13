"""Quality of the token-classification model against its CRF baseline on a built-in dataset.

Trains the spaCy model (:func:`aiweb.entities.model.fit`, early stopping on dev) and the
CRF baseline (:func:`aiweb.entities.crf.fit_crf`) on the train split, scores both on the
test split (exact-match entity F1, predicted on the gold tokens), and prints per-label and
micro F1 side by side with each one's training time; the model is also scored without its
phrase patterns. The bar: wnut17 micro F1 >= 0.35 (``--bar``; exit 1 below it unless
``--no-check``).

``--cross-domain`` (with ``--dataset skillspan``) also scores both models on the gold test
set of ``job_description_entities`` (Green, Maynard & Lin, LREC 2022: job ads from
another source, annotated under other guidelines): its ``Skill`` spans against the
models' skill spans, read two ways (``Skill`` only, and ``Skill`` plus ``Knowledge``, as
the corpus's guidelines fold knowledge into skills), each by exact match (the CoNLL rule)
and by overlap (a predicted span counts as correct when it overlaps a gold one, and a gold
one as found when a predicted one overlaps it), since the two corpora draw span
boundaries differently.

    python -m bench.entities_quality --dataset wnut17
    python -m bench.entities_quality --dataset skillspan --epochs 20
    python -m bench.entities_quality --dataset skillspan --cross-domain

The standard library only at import, so that ``--help`` starts nothing heavy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import table

REPO = Path(__file__).resolve().parents[1]


def run(args: argparse.Namespace) -> tuple[str, float]:
    """Train, score and format; returns the text and the model's micro F1."""
    from aiweb.config import Settings
    from aiweb.entities.data import load_dataset
    from aiweb.entities.vectors import feature_cache

    data = load_dataset(args.dataset, Settings(), progress=False)
    started = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        if args.verbose:
            print(
                f"[{time.perf_counter() - started:6.0f} s] {fraction:4.0%} {message}",
                file=sys.stderr,
                flush=True,
            )

    with feature_cache():  # the test texts are predicted twice (with and without patterns)
        return _run(args, data, progress)


def _run(args: argparse.Namespace, data: Any, progress: Any) -> tuple[str, float]:
    from aiweb.entities.evaluation import EntityReport, evaluate_spans
    from aiweb.entities.training import train_and_evaluate

    outcome = train_and_evaluate(
        data,
        seed=args.seed,
        epochs=args.epochs,
        patterns=not args.no_patterns,
        baseline=not args.no_baseline,
        vectors=not args.no_vectors,
        contextual=not args.no_contextual,
        progress=progress,
    )
    held_out = data.splits[outcome.evaluated_on]
    reports: dict[str, EntityReport] = {"spaCy": outcome.report}
    if outcome.model.info.get("patterns"):
        predicted = outcome.model.extract_examples(held_out, patterns=False)
        reports["spaCy, no patterns"] = evaluate_spans(
            [e.spans for e in held_out], [[p.span() for p in row] for row in predicted]
        )
    if outcome.baseline is not None:
        reports["CRF"] = outcome.baseline
    labels = sorted({label for r in reports.values() for label in r.per_type})
    header = ["label", "support", *(f"{name} F1" for name in reports)]
    rows = [header]
    for label in labels:
        support = max(
            (r.per_type[label].support for r in reports.values() if label in r.per_type), default=0
        )
        rows.append(
            [
                label,
                str(support),
                *(
                    f"{r.per_type[label].f1:.4f}" if label in r.per_type else "-"
                    for r in reports.values()
                ),
            ]
        )
    for average in ("micro", "macro"):
        some = next(iter(reports.values()))
        rows.append(
            [
                f"{average} avg",
                str(getattr(some, average).support),
                *(f"{getattr(r, average).f1:.4f}" for r in reports.values()),
            ]
        )
    micro: Any = {name: r.micro for name, r in reports.items()}
    info = outcome.model.info
    text = table(
        f"{args.dataset}: train ({len(data.train or [])}) -> {outcome.evaluated_on} "
        f"({len(held_out)}), seed {args.seed}",
        rows,
    )
    text += "\n" + table(
        "training",
        [
            ["model", "train s", "notes"],
            [
                "spaCy",
                f"{outcome.train_seconds:.1f}",
                f"epochs {info['epochs_run']}, best {info['best_epoch']}, dev F1 {info['dev_f1']}, "
                f"{info['patterns']} patterns, {info['overlaps_dropped']} overlaps dropped",
            ],
            *(
                [
                    [
                        "CRF",
                        f"{outcome.baseline_seconds:.1f}",
                        "lbfgs, c1 0.1, c2 0.1, 100 iterations",
                    ]
                ]
                if outcome.baseline_seconds is not None
                else []
            ),
        ],
    )
    text += (
        "\nmicro P/R: "
        + ", ".join(f"{name} {s.precision:.3f}/{s.recall:.3f}" for name, s in micro.items())
        + "\n"
    )
    if args.cross_domain:
        text += "\n" + cross_domain(outcome)
    if args.save is not None:
        artifact = outcome.model.to_bytes()
        args.save.write_bytes(artifact)
        text += f"artifact: {len(artifact) / 1e6:.1f} MB -> {args.save}\n"
    return text, outcome.report.micro.f1


def cross_domain(outcome: Any) -> str:
    """Score the trained models' skill spans on job_description_entities' gold ``Skill``
    spans (module docs, :func:`aiweb.entities.training.cross_domain_scores`), read as
    ``Skill`` only and as ``Skill`` plus ``Knowledge`` (the reading ``aiweb train``
    reports); the table as text."""
    from dataclasses import replace

    from aiweb.config import Settings
    from aiweb.entities.data import load_cross_domain
    from aiweb.entities.training import cross_domain_scores

    found = load_cross_domain("skillspan", Settings())
    if found is None:
        return "cross-domain: job_description_entities is not in AIWEB_DATA_HOME\n"
    spec, examples = found
    models = {"spaCy": outcome.model}
    if outcome.baseline_model is not None:
        models["CRF"] = outcome.baseline_model
    rows = [["model", "read as", "predicted", "exact P/R/F1", "overlap P/R/F1"]]
    support = 0
    for reading in (replace(spec, predicted=(spec.label,)), spec):
        scores = cross_domain_scores(models, reading, examples)
        support = scores["support"]
        for name in models:
            exact, overlap = scores[name]["exact"], scores[name]["overlap"]
            rows.append(
                [
                    name,
                    "+".join(reading.predicted),
                    str(exact["predicted"]),
                    "{precision:.3f}/{recall:.3f}/{f1:.4f}".format(**exact),
                    "{precision:.3f}/{recall:.3f}/{f1:.4f}".format(**overlap),
                ]
            )
    return table(
        f"cross-domain: {spec.dataset} test ({len(examples)} sentences, "
        f"{support} gold {spec.label} spans)",
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.entities_quality",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument(
        "--dataset", choices=("wnut17", "skillspan"), default="wnut17", help="(wnut17)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (30)")
    parser.add_argument("--seed", type=int, default=0, help="(0)")
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument("--no-patterns", action="store_true", help="train without patterns")
    parser.add_argument("--no-baseline", action="store_true", help="skip the CRF baseline")
    parser.add_argument(
        "--no-contextual", action="store_true", help="train without MiniLM contextual features"
    )
    parser.add_argument(
        "--no-vectors", action="store_true", help="train without MiniLM word vectors"
    )
    parser.add_argument(
        "--cross-domain",
        action="store_true",
        help="with skillspan: also score on job_description_entities' gold Skill spans",
    )
    parser.add_argument("--bar", type=float, default=0.35, help="micro F1 to reach (0.35)")
    parser.add_argument("--no-check", action="store_true", help="exit 0 below the bar")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--save", type=Path, default=None, help="write the model's artifact here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print progress")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs >= 1")
    if args.cross_domain and args.dataset != "skillspan":
        parser.error("--cross-domain goes with --dataset skillspan")
    data_home = (
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    )
    os.environ["AIWEB_DATA_HOME"] = str(Path(data_home).resolve())
    text, f1 = run(args)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text("```\n" + text + "```\n", encoding="utf-8")
    if f1 < args.bar:
        print(f"micro F1 {f1:.4f} is below the bar {args.bar}", file=sys.stderr)
        if not args.no_check:
            sys.exit(1)


if __name__ == "__main__":
    main()
