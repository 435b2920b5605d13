"""``aiweb train text-classification NAME …`` and ``aiweb train recommendation NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from aiweb.cli._common import (
    describe_parameters,
    err,
    friendly_errors,
    open_registry,
    out,
    parameter_problems,
    parse_key_values,
    training_progress,
)

app = typer.Typer(help="Train a model and register it as a new version.", no_args_is_help=True)

#: Largest confusion matrix printed after training (labels per side).
MAX_CONFUSION_LABELS = 20

#: What ``--features`` accepts (``TrainParams.features``), in the order help lists them.
FEATURE_KINDS: tuple[str, ...] = ("tfidf", "minilm", "stacked", "finetune", "auto")
#: Feature kinds whose texts are embedded by a registered embedding model: their versions
#: are never exported to ONNX, so the export hint does not apply to them.
EMBEDDING_FEATURE_KINDS: tuple[str, ...] = ("minilm", "stacked")


def report_table(name: str, version: int, report: dict[str, Any]) -> Table:
    """The evaluation report as a rich table (overall metrics, then per class)."""
    table = Table(
        "class",
        "precision",
        "recall",
        "f1",
        "support",
        title=f"{name}:{version} on {report.get('split')} (n={report.get('n')})",
    )
    for label, m in report.get("per_class", {}).items():
        table.add_row(
            label,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            str(m["support"]),
        )
    table.add_section()
    table.add_row("accuracy", "", "", f"{report['accuracy']:.4f}", str(report["n"]))
    table.add_row("macro-F1", "", "", f"{report['macro_f1']:.4f}", "")
    if "roc_auc" in report:
        table.add_row("ROC-AUC", "", "", f"{report['roc_auc']:.4f}", "")
    oos = report.get("out_of_scope")
    if oos:
        table.add_section()
        table.add_row(
            "in-scope accuracy", "", "", f"{oos['in_scope_accuracy']:.4f}", str(oos["n_in_scope"])
        )
        table.add_row(
            f"{oos['label']} recall", "", "", f"{oos['oos_recall']:.4f}", str(oos["n_oos"])
        )
        table.add_row(f"{oos['label']} precision", "", "", f"{oos['oos_precision']:.4f}", "")
        table.add_row(f"{oos['label']} threshold", "", "", f"{oos['threshold']:.4f}", "")
    return table


def confusion_table(report: dict[str, Any]) -> Table:
    """The confusion matrix (rows: true label, columns: predicted)."""
    cm = report["confusion_matrix"]
    table = Table("true \\ predicted", *cm["labels"], title="confusion matrix")
    for label, row in zip(cm["labels"], cm["matrix"], strict=True):
        table.add_row(label, *(str(v) for v in row))
    return table


def finetune_table(summary: dict[str, Any]) -> Table:
    """Each evaluation of a fine-tuning run (report ``finetune.history``)."""
    best = summary.get("best") or {}
    table = Table(
        "epoch",
        "step",
        "rows seen",
        "minutes",
        "train loss",
        "eval accuracy",
        "eval macro-F1",
        title=(
            f"fine-tuning {summary.get('base_model', '')}: {summary.get('train_rows', 0):,} "
            f"rows, stopped: {summary.get('stopped')} after "
            f"{summary.get('train_seconds', 0) / 60:.1f} min"
        ),
    )
    for h in summary.get("history", []):
        loss = h.get("train_loss")
        table.add_row(
            f"{h['epoch']:.2f}",
            f"{h['step']:,}",
            f"{h['rows_seen']:,}",
            f"{h['seconds'] / 60:.1f}",
            "" if loss is None else f"{loss:.4f}",
            f"{h['eval_accuracy']:.4f}",
            f"{h['eval_macro_f1']:.4f}" + ("  ← kept" if h == best else ""),
        )
    return table


def auto_table(auto: dict[str, Any]) -> Table:
    """``--features auto``'s comparison (report ``auto``)."""
    table = Table(
        "features",
        "macro-F1",
        "accuracy",
        "fit s",
        "artifact MB",
        title=f"--features auto: {auto.get('chosen')} chosen by evaluation macro-F1",
    )
    for row in auto.get("candidates", []):
        if "skipped" in row:
            table.add_row(row["features"], "skipped", row["skipped"], "", "")
            continue
        table.add_row(
            row["features"] + ("  ← chosen" if row["features"] == auto.get("chosen") else ""),
            f"{row['macro_f1']:.4f}",
            f"{row['accuracy']:.4f}",
            f"{row['fit_seconds']:.1f}",
            f"{row['artifact_bytes'] / 1e6:.1f}",
        )
    return table


def onnx_summary(check: dict[str, Any]) -> str:
    """One line on the version's ONNX export check (see aiweb.classification.onnx_export)."""
    status = check.get("status")
    if status == "agrees" and check.get("precision"):  # a fine-tuned transformer
        int8 = check.get("int8") or {}
        why = (
            f"int8 accuracy {int8['accuracy']:.4f} vs fp32 {int8['fp32_accuracy']:.4f}"
            if "accuracy" in int8
            else "no int8 export"
        )
        return (
            f"ONNX export gives PyTorch's label on {check['same_label_rate']:.1%} of "
            f"{check['rows']:,} rows: onnxruntime serves it, {check['precision']} ({why})"
        )
    if status == "agrees":
        return (
            f"ONNX export agrees with scikit-learn on {check['rows']:,} rows (max |Δp| "
            f"{check['max_abs_diff']:.1e}): onnxruntime serves small batches"
        )
    if status is None:
        return "ONNX export: not attempted (trained before aiweb exported models)"
    hint = (
        " (--param vectorizer=tfidf trains a pipeline that can be exported)"
        if status == "unsupported"
        and not str(check.get("reason", "")).startswith(EMBEDDING_FEATURE_KINDS)
        else ""
    )
    return f"ONNX: not used, {check.get('reason', status)}; scikit-learn serves it{hint}"


def onnx_wanted(params: dict[str, Any]) -> bool:
    """Whether the user asked for ONNX (``--param vectorizer=tfidf``, the exportable
    pipeline, or ``AIWEB_SERVING__RUNTIME=onnx``): only then is the export's outcome
    worth a line after training; a default run is served by scikit-learn either way."""
    from aiweb.config import get_settings

    return params.get("vectorizer") == "tfidf" or get_settings().serving.runtime == "onnx"


def run_training(
    name: str,
    *,
    dataset: str | None,
    data: Path | None,
    text_column: str,
    label_column: str,
    eval_data: Path | None,
    test_size: float,
    alias: str | None,
    params: dict[str, Any],
    skip_if_same: bool = False,
    features: str | None = None,
) -> Any:
    """Load data, train, print the report; shared by ``train`` and ``demo``."""
    from aiweb import datasets
    from aiweb.classification.jobs import check_dataset
    from aiweb.classification.trainer import TrainParams, parse_params
    from aiweb.classification.training import TrainingData, train_text_classification
    from aiweb.config import get_settings
    from aiweb.errors import InvalidInputError

    if (dataset is None) == (data is None):
        raise InvalidInputError("give exactly one of --data FILE or --dataset NAME")
    if dataset is not None:
        check_dataset(dataset)  # before any progress bar: a wrong name says so at once
    if features is not None:
        if features not in FEATURE_KINDS:
            raise InvalidInputError(
                f"--features must be {', '.join(FEATURE_KINDS[:-1])} or {FEATURE_KINDS[-1]}, "
                f"not {features!r}"
            )
        params = {**params, "features": features}
    try:
        train_params = parse_params(params)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{str(exc).replace('invalid params', 'invalid --param', 1)}. Valid parameters: "
            f"{describe_parameters(TrainParams)}"
        ) from None

    with training_progress() as progress:
        load_task = progress.add_task("loading data", total=1)
        if dataset is not None:
            training = TrainingData.from_splits(datasets.load(dataset, get_settings()))
        else:
            assert data is not None
            training = TrainingData.from_files(
                data, text_column=text_column, label_column=label_column, eval_path=eval_data
            )
        progress.update(
            load_task,
            completed=1,
            description=f"loaded {len(training.train_texts):,} rows of {training.name}",
        )
        fit_task = progress.add_task("training", total=100)

        def on_progress(stage: str, fraction: float) -> None:
            progress.update(fit_task, completed=round(fraction * 100), description=stage)

        with open_registry() as registry:
            result = train_text_classification(
                registry,
                name,
                training,
                params=train_params,
                test_size=test_size,
                alias=alias,
                skip_if_same=skip_if_same,
                actor="cli",
                progress=on_progress,
            )
        progress.update(fit_task, completed=100)
    version = result.version
    if result.skipped:
        err.print(
            f"[yellow]{name}:{version.version} was already trained on the same data and "
            "parameters; skipped[/]"
        )
    out.print(report_table(name, version.version, result.report))
    if len(result.report["confusion_matrix"]["labels"]) <= MAX_CONFUSION_LABELS:
        out.print(confusion_table(result.report))
    else:
        err.print(
            f"confusion matrix: {len(result.report['confusion_matrix']['labels'])} labels, "
            f"not printed (see `aiweb models show {name}` or the dashboard)"
        )
    if "finetune" in result.report:
        out.print(finetune_table(result.report["finetune"]))
    if "auto" in result.report:
        out.print(auto_table(result.report["auto"]))
    if onnx_wanted(params) or "finetune" in result.report:
        err.print(onnx_summary(result.report.get("onnx") or {}), highlight=False)
    aliases = ", ".join(version.aliases) or "none"
    err.print(f"registered [bold]{name}:{version.version}[/] (aliases: {aliases})")
    return result


@app.command("text-classification")
@friendly_errors
def text_classification(
    name: str = typer.Argument(..., help="Model name, e.g. sentiment."),
    data: Path | None = typer.Option(
        None, "--data", exists=True, dir_okay=False, help="CSV, TSV or JSONL file."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="A known dataset: sst2, clinc150 … (aiweb datasets list)."
    ),
    text_column: str = typer.Option("text", help="Column holding the text."),
    label_column: str = typer.Option("label", help="Column holding the label."),
    eval_data: Path | None = typer.Option(
        None, "--eval-data", exists=True, dir_okay=False, help="Evaluate on this file."
    ),
    test_size: float = typer.Option(0.2, help="Held-out fraction when there is no eval data."),
    alias: str | None = typer.Option(None, help="Also point this alias at the new version."),
    param: list[str] = typer.Option(
        [], "--param", help="Hyper-parameter KEY=VALUE (C, n_features_log2, word_ngram_max …)."
    ),
    features: str = typer.Option(
        "tfidf",
        "--features",
        help="tfidf (word + character n-grams), minilm (all-MiniLM-L6-v2 sentence "
        "embeddings; needs `aiweb embeddings install`), stacked (both models, their "
        "probabilities blended: better across domains; needs `aiweb embeddings install`), "
        "finetune (all-MiniLM-L6-v2 fine-tuned on this CPU, served from ONNX; needs "
        "aiweb[export]; --param max_train_minutes=30) or auto (the best of them on the "
        "evaluation split; finetune only with --param max_train_minutes=N).",
    ),
) -> None:
    """Train a text classifier (TF-IDF, sentence-embedding or stacked features +
    LogisticRegression, or a fine-tuned transformer), print its evaluation and register a
    version. When the labels include `oos`, an out-of-scope
    threshold is calibrated on the evaluation split (intent detection)."""
    run_training(
        name,
        dataset=dataset,
        data=data,
        text_column=text_column,
        label_column=label_column,
        eval_data=eval_data,
        test_size=test_size,
        alias=alias,
        params=parse_key_values(param, "--param"),
        features=features,
    )


@app.command("recommendation")
@friendly_errors
def recommendation(
    name: str = typer.Argument(..., help="Model name, e.g. movies."),
    algorithm: str = typer.Option(
        "auto",
        help="auto (best on validation), hybrid, als, bpr, ease, content, content-minilm "
        "(sentence embeddings; needs `aiweb embeddings install`) or popularity.",
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Per-algorithm parameters ALGORITHM=JSON, e.g. ease='{\"l2\": 300}'."
    ),
    alias: str | None = typer.Option(
        None,
        help="Also point this alias at the new version (`production` promotes a version "
        "trained on too little data to be evaluated, which is otherwise not promoted).",
    ),
) -> None:
    """Train recommenders on the stored items and interactions, print their comparison
    and register the chosen one as a new version. With too little data to evaluate (no
    user with 11 distinct items) one is trained anyway, `auto` trains popularity, and the
    version is not made production unless `--alias production` says so."""
    from aiweb.cli.recommend import run_recommendation_training

    params = parse_key_values(param, "--param")
    check_recommendation_params(params)
    run_recommendation_training(name, algorithm, params, alias)


def check_recommendation_params(params: dict[str, Any]) -> None:
    """Check ``--param ALGORITHM=JSON`` before any data is loaded: known algorithms, JSON
    objects, and parameters each algorithm takes (the error lists them with their types).

    Raises:
        InvalidInputError: what is wrong, and what would be right.
    """
    from pydantic import ValidationError

    from aiweb.errors import InvalidInputError
    from aiweb.recommendations.algorithms.catalog import ALGORITHMS, parameters

    for algorithm, value in params.items():
        if algorithm not in ALGORITHMS:
            raise InvalidInputError(
                f"--param takes ALGORITHM=JSON, e.g. ease='{{\"l2\": 300}}'; {algorithm!r} is "
                f"not an algorithm (known: {', '.join(ALGORITHMS)})"
            )
        model = parameters(algorithm)
        if not isinstance(value, dict):
            raise InvalidInputError(
                f'--param {algorithm}= takes a JSON object, e.g. {algorithm}=\'{{"name": '
                f"value}}'; parameters of {algorithm}: {describe_parameters(model)}"
            )
        try:
            model.model_validate(value)
        except ValidationError as exc:
            raise InvalidInputError(
                f"invalid --param {algorithm}=…: {parameter_problems(exc)}. Parameters of "
                f"{algorithm}: {describe_parameters(model)}"
            ) from None
