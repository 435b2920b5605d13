"""``aiweb train token-classification NAME (--dataset wnut17|skillspan | --data FILE)``:
train an entity (or skill) extractor, print its entity-level scores beside the CRF
baseline measured in the same run, and register it as a new version.

The command joins ``aiweb train`` through :func:`register` (``cli/__init__.py``). Heavy
imports (spaCy) happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from aiweb.cli._common import (
    err,
    friendly_errors,
    open_registry,
    out,
    parse_key_values,
    training_progress,
)

__all__ = ["cross_domain_table", "register", "report_table", "token_classification"]

#: the built-in datasets ``--dataset`` takes (:data:`aiweb.entities.jobs.TRAINABLE_DATASETS`)
DATASETS_HELP = "wnut17 or skillspan (from AIWEB_DATA_HOME)"


def _f(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4f}"


def report_table(name: str, version: int, report: dict[str, Any]) -> Table:
    """Precision, recall and F1 per entity type and micro-averaged (exact match, CoNLL
    rules), the model's beside the CRF baseline's when it was measured."""
    model = (report.get("model") or {}).get("report") or {}
    baseline = (report.get("baseline") or {}).get("report") or {}
    where = report.get("evaluated_on", "test")
    table = Table(title=f"{name}:{version} on the {where} split (entity-level, exact match)")
    table.add_column("type")
    table.add_column("support", justify="right")
    for column in ("precision", "recall", "F1"):
        table.add_column(column, justify="right")
    if baseline:
        table.add_column("CRF F1", justify="right")
    rows = [(t, s, (baseline.get("per_type") or {}).get(t)) for t, s in model["per_type"].items()]
    rows.append(("micro", model["micro"], baseline.get("micro")))
    for label, scores, crf in rows:
        cells = [
            f"[bold]{label}[/]" if label == "micro" else label,
            f"{scores['support']:,}",
            _f(scores["precision"]),
            _f(scores["recall"]),
            _f(scores["f1"]),
        ]
        if baseline:
            cells.append(_f(crf["f1"]) if crf else "—")
        table.add_row(*cells)
    return table


def cross_domain_table(scores: dict[str, Any]) -> Table:
    """The model's and the baseline's scores on another domain's test set
    (:func:`aiweb.entities.training.cross_domain_scores`), exact match and by overlap."""
    read_as = " + ".join(scores["predicted_labels"])
    table = Table(
        title=f"cross-domain: {scores['dataset']} test, its {scores['support']:,} "
        f"{scores['label']} spans",
        caption=f"predicted {read_as} read as {scores['label']}",
    )
    table.add_column("model")
    for column in ("exact P", "exact R", "exact F1", "overlap P", "overlap R", "overlap F1"):
        table.add_column(column, justify="right")
    for key, shown in (("model", "model"), ("baseline", "CRF")):
        if key in scores:
            exact, overlap = scores[key]["exact"], scores[key]["overlap"]
            table.add_row(
                shown,
                *(_f(s[k]) for s in (exact, overlap) for k in ("precision", "recall", "f1")),
            )
    return table


def timing_line(report: dict[str, Any]) -> str:
    """How long each fit took, and how many examples it saw."""
    model = report.get("model") or {}
    baseline = report.get("baseline") or {}
    sizes = report.get("examples") or {}
    shown = ", ".join(f"{k} {v:,}" for k, v in sizes.items() if v)
    line = f"examples: {shown}; model trained in {model.get('train_seconds', 0):.1f} s"
    if baseline:
        line += f", CRF baseline in {baseline.get('train_seconds', 0):.1f} s"
    return line


@friendly_errors
def token_classification(
    name: str = typer.Argument(..., help="Model name, e.g. skills."),
    data: Path | None = typer.Option(
        None,
        "--data",
        exists=True,
        dir_okay=False,
        help='CoNLL/IOB (token and tag per line) or JSONL ({"text", "spans"}) file.',
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help=f"A built-in dataset: {DATASETS_HELP}."
    ),
    eval_data: Path | None = typer.Option(
        None, "--eval-data", exists=True, dir_okay=False, help="Evaluate on this file."
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        help="KEY=VALUE: epochs (30), seed (0), patterns (true), baseline (true), "
        "test_size (0.2, without --eval-data), vectors (true: MiniLM word vectors), "
        "contextual (true: MiniLM contextual features).",
    ),
    alias: str | None = typer.Option(
        None, "--alias", help="Also point this alias at the new version."
    ),
) -> None:
    """Train an entity extractor (a spaCy pipeline from a blank English one), print its
    precision, recall and F1 per entity type beside a CRF baseline and register a version."""
    from aiweb.config import get_settings
    from aiweb.entities.data import EntitySplits, file_splits, load_cross_domain, load_dataset
    from aiweb.entities.jobs import TRAINABLE_DATASETS
    from aiweb.entities.training import parse_params, train_entities
    from aiweb.errors import InvalidInputError

    if (dataset is None) == (data is None):
        raise InvalidInputError("give exactly one of --data FILE or --dataset NAME")
    if eval_data is not None and data is None:
        raise InvalidInputError("--eval-data goes with --data (a built-in dataset has its split)")
    if dataset is not None and dataset not in TRAINABLE_DATASETS:
        raise InvalidInputError(
            f"--dataset {dataset!r}: a token-classification model trains on one of "
            f"{', '.join(TRAINABLE_DATASETS)}"
        )
    params = parse_params(parse_key_values(param, "--param"))
    with training_progress() as progress:
        load_task = progress.add_task("loading data", total=1)
        splits: EntitySplits
        cross_domain = None
        if dataset is not None:
            splits = load_dataset(dataset, get_settings())
            cross_domain = load_cross_domain(dataset, get_settings())
        else:
            assert data is not None
            splits = file_splits(
                data, eval_path=eval_data, test_size=params.test_size, seed=params.seed
            )
        sizes = ", ".join(f"{split} {len(rows):,}" for split, rows in splits.splits.items())
        progress.update(load_task, completed=1, description=f"loaded {splits.name}: {sizes}")
        fit_task = progress.add_task("training", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(fit_task, completed=round(fraction * 100), description=stage)

        with open_registry() as registry:
            result = train_entities(
                registry,
                name,
                splits,
                params=params,
                alias=alias,
                actor="cli",
                progress=on_progress,
                cross_domain=cross_domain,
            )
        progress.update(fit_task, completed=100)
    version, report = result.version, result.report
    out.print(report_table(name, version.version, report))
    if report.get("cross_domain"):
        out.print(cross_domain_table(report["cross_domain"]))
    err.print(timing_line(report), highlight=False)
    aliases = ", ".join(version.aliases) or "none"
    err.print(f"registered [bold]{name}:{version.version}[/] (aliases: {aliases})")


def register(train_app: typer.Typer) -> None:
    """Add ``token-classification`` to ``aiweb train``."""
    train_app.command("token-classification")(token_classification)
