"""``aiweb train tabular-classification|tabular-regression|anomaly-detection NAME …``:
train a tabular model from a CSV (or a known public dataset), print its report and
register it as a new version.

The commands join ``aiweb train`` through :func:`register` (``cli/__init__.py``:
``train_tabular.register(train.app)``). Heavy imports (scikit-learn) happen inside the
commands.
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

#: the known public datasets (``--dataset``); :data:`aiweb.tabular.data.DATASETS`
DATASETS_HELP = "german_credit, bank_marketing, adult or wine_quality (from AIWEB_DATA_HOME)"
#: confusion matrices larger than this (classes per side) are not printed
MAX_CONFUSION_LABELS = 20


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report_table(name: str, version: int, report: dict[str, Any]) -> Table:
    """The evaluation report of a tabular version as a rich table: the split, the test
    metrics, and for a costed binary classifier the chosen threshold and expected cost
    (with the costs of always answering one class, for comparison)."""
    split = report.get("split") or {}
    metrics = report.get("metrics") or {}
    title = f"{name}:{version} ({report.get('algorithm')} {report.get('problem')})"
    table = Table("metric", "value", title=title)
    sizes = ", ".join(f"{k} {split.get(k)}" for k in ("train", "validation", "test"))
    table.add_row("split", f"{split.get('method')}: {sizes}")
    table.add_section()
    problem = report.get("problem")
    if problem == "classification":
        for key, label in (
            ("accuracy", "accuracy"),
            ("balanced_accuracy", "balanced accuracy"),
            ("roc_auc", "ROC-AUC"),
            ("pr_auc", "PR-AUC"),
            ("log_loss", "log loss"),
            ("brier", "Brier score"),
        ):
            table.add_row(label, _fmt(metrics.get(key)))
        calibration = report.get("calibration") or {}
        table.add_row("calibration", str(calibration.get("method") or "none"))
        if report.get("threshold") is not None:
            table.add_section()
            table.add_row(
                f"threshold on p({report.get('positive_class')})", _fmt(report["threshold"])
            )
        costs = report.get("costs")
        if costs:
            table.add_row("costs", f"fp {costs['fp']:g}, fn {costs['fn']:g}")
            table.add_row("expected cost per row", _fmt(metrics.get("expected_cost")))
            table.add_row("  always negative", _fmt(metrics.get("expected_cost_all_negative")))
            table.add_row("  always positive", _fmt(metrics.get("expected_cost_all_positive")))
    elif problem == "regression":
        for key, label in (
            ("rmse", "RMSE"),
            ("mae", "MAE"),
            ("r2", "R²"),
            ("rmse_constant", "RMSE of the mean"),
            ("mae_constant", "MAE of the median"),
        ):
            table.add_row(label, _fmt(metrics.get(key)))
    else:
        table.add_row("threshold (score)", _fmt(report.get("threshold")))
        table.add_row("flagged", f"{metrics.get('flagged')} of {metrics.get('n')}")
        table.add_row("flagged share", _fmt(metrics.get("flagged_share")))
        table.add_row("ROC-AUC vs label", _fmt(metrics.get("roc_auc")))
        table.add_row("PR-AUC vs label", _fmt(metrics.get("pr_auc")))
    return table


def schema_table(report: dict[str, Any]) -> Table:
    """The inferred (or overridden) column types."""
    table = Table("column", "type", title="columns")
    for spec in report.get("schema") or []:
        table.add_row(spec["name"], spec["kind"])
    for column in report.get("ignored") or []:
        table.add_row(column, "[dim]not a feature[/]")
    return table


def confusion_table(report: dict[str, Any]) -> Table | None:
    """The confusion matrix at the chosen threshold (rows: true, columns: predicted)."""
    cm = (report.get("metrics") or {}).get("confusion_matrix")
    if not cm or len(cm["labels"]) > MAX_CONFUSION_LABELS:
        return None
    table = Table("true \\ predicted", *cm["labels"], title="confusion matrix")
    for label, row in zip(cm["labels"], cm["matrix"], strict=True):
        table.add_row(label, *(str(v) for v in row))
    return table


def run_tabular_training(
    task: str,
    name: str,
    *,
    data: Path | None,
    dataset: str | None,
    target: str | None,
    drop: str | None,
    eval_data: Path | None,
    test_size: float | None,
    time_column: str | None,
    params: dict[str, Any],
    alias: str | None,
) -> Any:
    """Load the rows, train, print the report and register the version (the commands'
    shared body).

    Raises:
        InvalidInputError: conflicting or invalid options, unusable data.
    """
    from aiweb.config import get_settings
    from aiweb.errors import InvalidInputError
    from aiweb.tabular.training import TabularTrainingData, build_params, train_tabular

    if (dataset is None) == (data is None):
        raise InvalidInputError("give exactly one of --data FILE or --dataset NAME")
    if eval_data is not None and data is None:
        raise InvalidInputError("--eval-data goes with --data (a known dataset has its split)")
    if eval_data is not None and test_size is not None:
        raise InvalidInputError("give --eval-data or --test-size, not both")
    drop_columns = [c.strip() for c in (drop or "").split(",") if c.strip()]
    with training_progress() as progress:
        load_task = progress.add_task("loading data", total=1)
        if dataset is not None:
            training = TabularTrainingData.from_dataset(dataset, get_settings())
        else:
            assert data is not None
            training = TabularTrainingData.from_files(data, eval_path=eval_data)
        train_params = build_params(
            task,
            drop=drop_columns,
            test_size=test_size,
            time_column=time_column,
            params=params,
            default_costs=training.costs,
        )
        progress.update(
            load_task,
            completed=1,
            description=f"loaded {len(training.rows):,} rows of {training.name}",
        )
        fit_task = progress.add_task("training", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(fit_task, completed=round(fraction * 100), description=stage)

        with open_registry() as registry:
            result = train_tabular(
                registry,
                name,
                task,
                training,
                target=target,
                params=train_params,
                alias=alias,
                actor="cli",
                progress=on_progress,
            )
        progress.update(fit_task, completed=100)
    version, report = result.version, result.report
    out.print(schema_table(report))
    out.print(report_table(name, version.version, report))
    confusion = confusion_table(report)
    if confusion is not None:
        out.print(confusion)
    for note in report.get("notes") or []:
        err.print(f"note: {note}", highlight=False)
    for caveat in training.caveats:
        err.print(f"[dim]{training.name}: {caveat}[/]", highlight=False)
    aliases = ", ".join(version.aliases) or "none"
    err.print(f"registered [bold]{name}:{version.version}[/] (aliases: {aliases})")
    return result


_DATA = typer.Option(None, "--data", exists=True, dir_okay=False, help="CSV or JSONL file.")
_DATASET = typer.Option(None, "--dataset", help=f"A known dataset: {DATASETS_HELP}.")
_DROP = typer.Option(None, "--drop", help="Columns not to learn from, comma-separated.")
_EVAL = typer.Option(
    None, "--eval-data", exists=True, dir_okay=False, help="Evaluate on this file."
)
_TEST_SIZE = typer.Option(
    None, "--test-size", min=0.01, max=0.99, help="Held-out fraction (default 0.2)."
)
_TIME = typer.Option(
    None,
    "--time-column",
    help="Split by this column's time: the latest rows are held out (no future rows in training).",
)
_PARAM = typer.Option(
    [],
    "--param",
    help='KEY=VALUE: algorithm=hgb|linear, column_types=\'{"zip": "categorical"}\', '
    'costs=\'{"fp": 1, "fn": 5}\', seed, learning_rate, C …',
)
_ALIAS = typer.Option(None, "--alias", help="Also point this alias at the new version.")


@friendly_errors
def tabular_classification(
    name: str = typer.Argument(..., help="Model name, e.g. credit."),
    data: Path | None = _DATA,
    dataset: str | None = _DATASET,
    target: str | None = typer.Option(None, "--target", help="The column to predict."),
    drop: str | None = _DROP,
    eval_data: Path | None = _EVAL,
    test_size: float | None = _TEST_SIZE,
    time_column: str | None = _TIME,
    param: list[str] = _PARAM,
    alias: str | None = _ALIAS,
) -> None:
    """Train a classifier on rows of a CSV (boosted trees with calibrated probabilities;
    with --param costs=… the decision threshold minimises the expected cost), print its
    report and register a version."""
    run_tabular_training(
        "tabular-classification",
        name,
        data=data,
        dataset=dataset,
        target=target,
        drop=drop,
        eval_data=eval_data,
        test_size=test_size,
        time_column=time_column,
        params=parse_key_values(param, "--param", strings=("time_column", "label_column")),
        alias=alias,
    )


@friendly_errors
def tabular_regression(
    name: str = typer.Argument(..., help="Model name, e.g. prices."),
    data: Path | None = _DATA,
    dataset: str | None = _DATASET,
    target: str | None = typer.Option(None, "--target", help="The numeric column to predict."),
    drop: str | None = _DROP,
    eval_data: Path | None = _EVAL,
    test_size: float | None = _TEST_SIZE,
    time_column: str | None = _TIME,
    param: list[str] = _PARAM,
    alias: str | None = _ALIAS,
) -> None:
    """Train a regressor on rows of a CSV (boosted trees, or --param algorithm=linear for
    ridge regression), print its report (RMSE, MAE, R²) and register a version."""
    run_tabular_training(
        "tabular-regression",
        name,
        data=data,
        dataset=dataset,
        target=target,
        drop=drop,
        eval_data=eval_data,
        test_size=test_size,
        time_column=time_column,
        params=parse_key_values(param, "--param", strings=("time_column", "label_column")),
        alias=alias,
    )


@friendly_errors
def anomaly_detection(
    name: str = typer.Argument(..., help="Model name, e.g. transactions."),
    data: Path | None = _DATA,
    dataset: str | None = _DATASET,
    drop: str | None = _DROP,
    eval_data: Path | None = _EVAL,
    test_size: float | None = _TEST_SIZE,
    time_column: str | None = _TIME,
    param: list[str] = _PARAM,
    alias: str | None = _ALIAS,
) -> None:
    """Train an IsolationForest on rows of a CSV (no labels; --param label_column=COL
    evaluates the scores against a known true/false column without learning from it),
    print the score distribution and register a version."""
    run_tabular_training(
        "anomaly-detection",
        name,
        data=data,
        dataset=dataset,
        target=None,
        drop=drop,
        eval_data=eval_data,
        test_size=test_size,
        time_column=time_column,
        params=parse_key_values(param, "--param", strings=("time_column", "label_column")),
        alias=alias,
    )


def register(train_app: typer.Typer) -> None:
    """Add the three commands to ``aiweb train``."""
    train_app.command("tabular-classification")(tabular_classification)
    train_app.command("tabular-regression")(tabular_regression)
    train_app.command("anomaly-detection")(anomaly_detection)
