"""``aiweb import items|interactions|movielens`` and ``aiweb evaluate recommendation NAME``."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from aiweb.cli._common import _open_database, err, friendly_errors, out, parse_key_values

if TYPE_CHECKING:
    from rich.progress import Progress

    from aiweb.recommendations.store import RecommendationStore
    from aiweb.registry.service import RegistryService

import_app = typer.Typer(
    help="Import recommendation data: items, interactions, or MovieLens.", no_args_is_help=True
)
evaluate_app = typer.Typer(help="Re-run a model's offline evaluation.", no_args_is_help=True)

#: re-runs of the offline evaluation kept in a version's report (the latest)
MAX_REEVALUATIONS = 10
METRIC_COLUMNS = (
    ("precision", "P@10"),
    ("recall", "Recall@10"),
    ("ndcg", "NDCG@10"),
    ("map", "MAP@10"),
    ("hit_rate", "HitRate@10"),
    ("coverage", "coverage"),
)


def _progress() -> Progress:
    from rich.progress import (  # imported by the commands that show one (start-up time)
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@contextmanager
def open_store() -> Iterator[tuple[RecommendationStore, RegistryService]]:
    """The recommendation store and the registry on the migrated database."""
    from aiweb.recommendations.store import RecommendationStore

    with _open_database() as (registry, engine):
        yield RecommendationStore(engine), registry


def comparison_table(report: dict[str, Any], title: str) -> Table:
    """Test metrics per algorithm, the selected one marked, popularity as the baseline."""
    table = Table(
        "algorithm",
        *(label for _, label in METRIC_COLUMNS),
        "fit s",
        title=f"{title} — {report.get('split')} ({report['protocol']['test_users']} users)",
    )
    selected = report.get("selected")
    for name, result in report.get("algorithms", {}).items():
        test = result.get("test", {})
        label = name
        if name == selected:
            label = f"[bold]{name} ✓[/]"
        elif name == report.get("baseline"):
            label = f"{name} (baseline)"
        if name == "hybrid" and result.get("weights"):
            label += " " + "+".join(f"{w:g}·{n}" for n, w in result["weights"].items())
        table.add_row(
            label,
            *(f"{test.get(m, 0.0):.4f}" for m, _ in METRIC_COLUMNS),
            f"{result.get('fit_seconds', 0.0):.1f}",
        )
    return table


def _advance(progress: Progress, task: Any, rows: int) -> None:
    progress.update(task, completed=rows)


def _columns(pairs: list[str]) -> dict[str, str]:
    keys = tuple(pair.partition("=")[0] for pair in pairs)
    return dict(parse_key_values(pairs, "--column", strings=keys))


@import_app.command("items")
@friendly_errors
def import_items(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSONL."),
    column: list[str] = typer.Option(
        [], "--column", help="FIELD=COLUMN when a column is named otherwise, e.g. item_id=sku."
    ),
) -> None:
    """Upsert catalogue items (item_id, title, text, categories, tags; lists split on |)."""
    from aiweb.recommendations.importing import import_items as run

    with open_store() as (store, _registry), _progress() as progress:
        for path in files:
            task = progress.add_task(f"items from {path.name}", total=None)
            rows = run(
                store,
                path,
                columns=_columns(column),
                progress=functools.partial(_advance, progress, task),
            )
            progress.update(task, total=rows, completed=rows)
    err.print(f"imported {rows:,} items")


@import_app.command("interactions")
@friendly_errors
def import_interactions(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSONL."),
    column: list[str] = typer.Option(
        [], "--column", help="FIELD=COLUMN, e.g. user_id=customer --column timestamp=ts."
    ),
    type_: str | None = typer.Option(
        None, "--type", help="Type of rows without a type column, e.g. rating."
    ),
) -> None:
    """Append interactions (user_id, item_id, type, value, timestamp as Unix seconds or
    ISO 8601, event_id)."""
    from aiweb.recommendations.importing import import_interactions as run

    stored = duplicates = 0
    with open_store() as (store, _registry), _progress() as progress:
        for path in files:
            task = progress.add_task(f"interactions from {path.name}", total=None)
            s, d = run(
                store,
                path,
                columns=_columns(column),
                default_type=type_,
                progress=functools.partial(_advance, progress, task),
            )
            progress.update(task, total=s + d, completed=s + d)
            stored, duplicates = stored + s, duplicates + d
    err.print(f"stored {stored:,} interactions ({duplicates:,} already stored)")


@import_app.command("movielens")
@friendly_errors
def import_movielens() -> None:
    """Load MovieLens ml-latest-small: movies as items (genres as categories, users' tags
    as tags) and ratings as interactions. Importing twice stores each rating once."""
    from aiweb.config import get_settings
    from aiweb.datasets import movielens
    from aiweb.recommendations.importing import import_movielens as run

    directory = movielens.locate(get_settings())
    with open_store() as (store, _registry), _progress() as progress:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"MovieLens {stage}", total=total)
            progress.update(tasks[stage], completed=done)

        items, stored = run(store, directory, progress=report)
    err.print(f"imported {items:,} movies and {stored:,} new ratings from {directory}")


def run_recommendation_training(
    name: str, algorithm: str, params: dict[str, Any], alias: str | None = None
) -> Any:
    """Train from the store, print the comparison (or why there is none: too little data
    to evaluate); shared by ``aiweb train recommendation``."""
    from aiweb.recommendations.training import RecommendationData, train_recommendation

    with open_store() as (store, registry), _progress() as progress:
        load = progress.add_task("loading interactions", total=1)
        data = RecommendationData.from_store(store)
        progress.update(
            load,
            completed=1,
            description=f"loaded {len(data.interactions):,} interactions of "
            f"{data.interactions.n_users:,} users on {data.interactions.n_items:,} items",
        )
        fit = progress.add_task("training", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(fit, completed=round(100 * fraction), description=stage)

        started = time.perf_counter()
        result = train_recommendation(
            registry,
            name,
            data,
            algorithm=algorithm,
            params=params,
            alias=alias,
            actor="cli",
            progress=on_progress,
        )
        seconds = time.perf_counter() - started
    aliases = ", ".join(result.version.aliases) or "none"
    if not result.evaluated:
        note = result.report.get("note")
        err.print(
            f"{result.report.get('reason')}\n"
            + (f"{note}\n" if note else "")
            + f"trained [bold]{result.report['selected']}[/] in {seconds:.1f} s; registered "
            f"[bold]{name}:{result.version.version}[/] (aliases: {aliases})"
        )
        if "production" not in result.version.aliases:
            err.print(
                "not in production: a version that was not evaluated is promoted only when "
                f"you say so: aiweb models promote {name} {result.version.version} "
                "(or train with --alias production)"
            )
        return result
    out.print(comparison_table(result.report, f"{name}:{result.version.version}"))
    err.print(
        f"selected [bold]{result.report['selected']}[/] — NDCG@10 {result.report['ndcg']:.4f}, "
        f"Recall@10 {result.report['recall']:.4f}; trained in {seconds:.1f} s; registered "
        f"[bold]{name}:{result.version.version}[/] (aliases: {aliases})"
    )
    return result


@evaluate_app.command("recommendation")
@friendly_errors
def evaluate_recommendation(
    name: str = typer.Argument(..., help="Model name, name@alias or name:version."),
) -> None:
    """Re-run the offline evaluation of a recommendation model's version on the data stored
    now (same algorithm choice and parameters), print the comparison table and store it in
    the version's report (``reevaluations``, the latest last)."""
    from aiweb.recommendations.training import (
        RecommendationData,
        compare,
        compared,
        reevaluation_entry,
        with_item_embeddings,
    )
    from aiweb.registry.entities import ModelRef

    with open_store() as (store, registry), _progress() as progress:
        version = registry.resolve(ModelRef.parse(name))
        algorithm = version.lineage.get("algorithm", "auto")
        task = progress.add_task("evaluating", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(task, completed=round(100 * fraction), description=stage)

        data = RecommendationData.from_store(store)
        # as at training: content-minilm is compared when an embedding model is installed
        data = with_item_embeddings(registry, data, algorithm, progress=on_progress)
        names, hybrid = compared(algorithm, data)
        comparison = compare(
            data,
            names,
            hybrid=hybrid,
            params=version.lineage.get("params") or None,
            progress=on_progress,
        )
        progress.update(task, completed=100)
        if not hybrid:
            comparison.select(algorithm)
        entry = reevaluation_entry(data, comparison, actor="cli")
        history = [*version.evaluation.get("reevaluations", []), entry][-MAX_REEVALUATIONS:]
        registry.update_evaluation(
            version.name, version.version, {"reevaluations": history}, actor="cli"
        )
    stored = version.evaluation.get("ndcg")
    out.print(comparison_table(comparison.report, f"{version.name}:{version.version} (re-run)"))
    err.print(
        f"NDCG@10 now {comparison.report['ndcg']:.4f}"
        + (f", at training {stored:.4f}" if stored is not None else "")
        + f"; stored in the report of {version.name}:{version.version} "
        f"(reevaluations, {len(history)} kept)"
    )
