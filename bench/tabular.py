"""Tabular models: aiweb's defaults against a LightGBM baseline on the same splits.

Run from the project root::

    .venv/bin/python -m bench.tabular [--data-home DIR] [--seed 0] [--markdown FILE]

What it does, in one run (needs ``lightgbm`` from PyPI, a benchmark-only dependency):

- ``adult`` (training file, 32,561 rows): a stratified 20 % test split; accuracy, ROC-AUC,
  PR-AUC, log loss.
- ``german_credit`` (1,000 rows): stratified 5-fold cross-validation; mean ROC-AUC and mean
  expected cost per applicant under the published 5:1 matrix (a bad applicant predicted
  good costs 5, the reverse 1), against always predicting ``good`` (cost 1.5).
- ``bank_marketing`` without ``duration`` (45,211 rows): a stratified 20 % test split;
  ROC-AUC and PR-AUC.
- ``wine_quality`` (red + white, exact duplicates removed, regression on ``quality``): a
  random 20 % test split; RMSE and MAE, against predicting the training mean.

aiweb: :func:`aiweb.tabular.trainer.fit_tabular` with its defaults (HistGradientBoosting,
categorical splits, early stopping on its own 15 % validation slice of the training rows,
no class weights, calibration; on German Credit ``costs={"fp": 1, "fn": 5}``), the
test rows passed as ``eval_rows``. LightGBM (``LGBMClassifier``/``LGBMRegressor``, default
parameters, up to 2,000 rounds with early stopping after 50 on a stratified 15 % validation
slice of the same training rows, the same encoded features: categorical codes declared as
``categorical_feature``, missing values NaN); on German Credit its threshold is chosen on
that slice by the same expected-cost rule. Also: training seconds of each, and p50 / p99
latency of one row through :meth:`TabularModel.predict` (in process; the HTTP path is
measured by ``bench.serving``).

Bars (exit status 1 when one fails): adult accuracy and ROC-AUC within 0.5 point of
LightGBM's; German Credit expected cost below always-``good``'s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import StratifiedKFold, train_test_split

from aiweb.tabular.data import TabularData, load_dataset
from aiweb.tabular.evaluation import choose_threshold, expected_cost
from aiweb.tabular.model import TabularModel
from aiweb.tabular.trainer import TabularParams, fit_tabular

REPO = Path(__file__).resolve().parents[1]
COSTS = {"fp": 1.0, "fn": 5.0}

Row = dict[str, Any]


def _lightgbm(
    model: TabularModel,
    train: list[Row],
    test: list[Row],
    data: TabularData,
    seed: int,
    costs: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Fit LightGBM on aiweb's encoding of ``train``; its scores on ``test``."""
    import lightgbm as lgb

    x_train, x_test = model.validate_rows(train), model.validate_rows(test)
    cats = [
        k
        for k, (name, column) in enumerate(
            zip(model.feature_names, model.feature_columns, strict=True)
        )
        if name == column
        and next(s for s in model.schema if s.name == column).kind == "categorical"
    ]
    classification = data.problem == "classification"
    if classification:
        y_train = np.asarray([r[data.target] == data.positive_class for r in train], dtype=int)
        strata: Any = y_train
    else:
        y_train = np.asarray([float(r[data.target]) for r in train])
        strata = None
    fit_idx, val_idx = train_test_split(
        np.arange(len(train)), test_size=0.15, random_state=seed + 1, stratify=strata
    )
    params: dict[str, Any] = {"n_estimators": 2000, "random_state": seed, "verbose": -1}
    est = lgb.LGBMClassifier(**params) if classification else lgb.LGBMRegressor(**params)
    started = time.perf_counter()
    est.fit(
        x_train[fit_idx],
        y_train[fit_idx],
        eval_set=[(x_train[val_idx], y_train[val_idx])],
        categorical_feature=cats or "auto",
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    seconds = time.perf_counter() - started
    if not classification:
        return {"pred": est.predict(x_test), "seconds": seconds}
    proba = np.asarray(est.predict_proba(x_test))[:, 1]
    threshold = 0.5
    if costs is not None:
        p_val = np.asarray(est.predict_proba(x_train[val_idx]))[:, 1]
        threshold, _ = choose_threshold(y_train[val_idx], p_val, costs)
    return {"proba": proba, "threshold": threshold, "seconds": seconds}


def _latency(model: TabularModel, rows: list[Row], n: int = 300) -> tuple[float, float]:
    times = []
    for row in rows[:n]:
        started = time.perf_counter()
        model.predict([row])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def binary_holdout(data: TabularData, seed: int) -> dict[str, Any]:
    """Stratified 20 % test split; aiweb and LightGBM on the same rows."""
    y = [r[data.target] for r in data.rows]
    train_idx, test_idx = train_test_split(
        np.arange(len(data.rows)), test_size=0.2, random_state=seed, stratify=y
    )
    train = [data.rows[i] for i in train_idx]
    test = [data.rows[i] for i in test_idx]
    result = fit_tabular(
        train, data.target, "classification", TabularParams(seed=seed), eval_rows=test
    )
    m = result.report["metrics"]
    truth = np.asarray([r[data.target] == data.positive_class for r in test], dtype=int)
    base = _lightgbm(result.model, train, test, data, seed)
    p = base["proba"]
    p50, p99 = _latency(result.model, test)
    return {
        "aiweb": {
            "accuracy": m["accuracy"],
            "roc_auc": m["roc_auc"],
            "pr_auc": m["pr_auc"],
            "log_loss": m["log_loss"],
            "seconds": result.report["fit_seconds"],
            "p50_ms": p50,
            "p99_ms": p99,
        },
        "lightgbm": {
            "accuracy": accuracy_score(truth, p >= 0.5),
            "roc_auc": roc_auc_score(truth, p),
            "pr_auc": average_precision_score(truth, p),
            "log_loss": log_loss(truth, p),
            "seconds": base["seconds"],
        },
        "n_test": len(test),
    }


def german_cv(data: TabularData, seed: int) -> dict[str, Any]:
    """Stratified 5-fold CV: ROC-AUC and expected cost (5:1) per fold, averaged."""
    y = np.asarray([r[data.target] == data.positive_class for r in data.rows], dtype=int)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    ours: dict[str, list[float]] = {"roc_auc": [], "cost": [], "seconds": [], "threshold": []}
    theirs: dict[str, list[float]] = {"roc_auc": [], "cost": [], "seconds": [], "threshold": []}
    always_good: list[float] = []
    for train_idx, test_idx in folds.split(np.zeros(len(y)), y):
        train = [data.rows[i] for i in train_idx]
        test = [data.rows[i] for i in test_idx]
        result = fit_tabular(
            train,
            data.target,
            "classification",
            TabularParams(seed=seed, costs=COSTS),
            eval_rows=test,
        )
        m = result.report["metrics"]
        ours["roc_auc"].append(m["roc_auc"])
        ours["cost"].append(m["expected_cost"])
        ours["seconds"].append(result.report["fit_seconds"])
        ours["threshold"].append(result.report["threshold"])
        always_good.append(m["expected_cost_all_negative"])
        base = _lightgbm(result.model, train, test, data, seed, COSTS)
        truth = y[test_idx]
        theirs["roc_auc"].append(roc_auc_score(truth, base["proba"]))
        theirs["cost"].append(expected_cost(truth, base["proba"] >= base["threshold"], COSTS))
        theirs["seconds"].append(base["seconds"])
        theirs["threshold"].append(base["threshold"])
    mean = {k: float(np.mean(v)) for k, v in ours.items()}
    mean_b = {k: float(np.mean(v)) for k, v in theirs.items()}
    return {"aiweb": mean, "lightgbm": mean_b, "always_good": float(np.mean(always_good))}


def wine(data: TabularData, seed: int) -> dict[str, Any]:
    """Random 20 % test split, regression on quality."""
    train_idx, test_idx = train_test_split(
        np.arange(len(data.rows)), test_size=0.2, random_state=seed
    )
    train = [data.rows[i] for i in train_idx]
    test = [data.rows[i] for i in test_idx]
    result = fit_tabular(train, data.target, "regression", TabularParams(seed=seed), eval_rows=test)
    m = result.report["metrics"]
    truth = np.asarray([float(r[data.target]) for r in test])
    base = _lightgbm(result.model, train, test, data, seed)
    mean = float(np.mean([float(r[data.target]) for r in train]))
    p50, p99 = _latency(result.model, test)
    return {
        "aiweb": {
            "rmse": m["rmse"],
            "mae": m["mae"],
            "seconds": result.report["fit_seconds"],
            "p50_ms": p50,
            "p99_ms": p99,
        },
        "lightgbm": {
            "rmse": root_mean_squared_error(truth, base["pred"]),
            "mae": mean_absolute_error(truth, base["pred"]),
            "seconds": base["seconds"],
        },
        "constant": {
            "rmse": root_mean_squared_error(truth, np.full(len(truth), mean)),
            "mae": mean_absolute_error(truth, np.full(len(truth), mean)),
        },
    }


def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def rows_of(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(dataset, metric, aiweb, lightgbm, other baseline)`` lines of the table."""
    out: list[tuple[str, str, str, str, str]] = []
    for name in ("adult", "bank_marketing"):
        r = results[name]
        for metric in ("accuracy", "roc_auc", "pr_auc", "log_loss"):
            out.append((name, metric, _f(r["aiweb"][metric]), _f(r["lightgbm"][metric]), ""))
        out.append(
            (name, "train s", _f(r["aiweb"]["seconds"], 1), _f(r["lightgbm"]["seconds"], 1), "")
        )
        out.append(
            (
                name,
                "1-row p50 / p99 ms",
                f"{r['aiweb']['p50_ms']:.2f} / {r['aiweb']['p99_ms']:.2f}",
                "",
                "",
            )
        )
    g = results["german_credit"]
    out.append(
        (
            "german_credit (5-fold)",
            "roc_auc",
            _f(g["aiweb"]["roc_auc"]),
            _f(g["lightgbm"]["roc_auc"]),
            "",
        )
    )
    out.append(
        (
            "german_credit (5-fold)",
            "expected cost 5:1",
            _f(g["aiweb"]["cost"]),
            _f(g["lightgbm"]["cost"]),
            f"always good {g['always_good']:.4f}",
        )
    )
    out.append(
        (
            "german_credit (5-fold)",
            "threshold (mean)",
            _f(g["aiweb"]["threshold"], 3),
            _f(g["lightgbm"]["threshold"], 3),
            "",
        )
    )
    out.append(
        (
            "german_credit (5-fold)",
            "train s (mean)",
            _f(g["aiweb"]["seconds"], 1),
            _f(g["lightgbm"]["seconds"], 1),
            "",
        )
    )
    w = results["wine_quality"]
    for metric in ("rmse", "mae"):
        out.append(
            (
                "wine_quality",
                metric,
                _f(w["aiweb"][metric]),
                _f(w["lightgbm"][metric]),
                f"mean {w['constant'][metric]:.4f}",
            )
        )
    out.append(
        (
            "wine_quality",
            "train s",
            _f(w["aiweb"]["seconds"], 1),
            _f(w["lightgbm"]["seconds"], 1),
            "",
        )
    )
    out.append(
        (
            "wine_quality",
            "1-row p50 / p99 ms",
            f"{w['aiweb']['p50_ms']:.2f} / {w['aiweb']['p99_ms']:.2f}",
            "",
            "",
        )
    )
    return out


def verdicts(results: dict[str, Any]) -> list[tuple[str, bool]]:
    a = results["adult"]
    g = results["german_credit"]
    return [
        (
            "adult accuracy within 0.5 point of LightGBM",
            a["aiweb"]["accuracy"] >= a["lightgbm"]["accuracy"] - 0.005,
        ),
        (
            "adult ROC-AUC within 0.5 point of LightGBM",
            a["aiweb"]["roc_auc"] >= a["lightgbm"]["roc_auc"] - 0.005,
        ),
        ("german_credit expected cost below always 'good'", g["aiweb"]["cost"] < g["always_good"]),
    ]


def markdown(lines: list[tuple[str, str, str, str, str]]) -> str:
    head = "| dataset | metric | aiweb | LightGBM | other baseline |\n|---|---|---|---|---|\n"
    return head + "".join(f"| {' | '.join(line)} |\n" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", default=None, help="also write the table here")
    args = parser.parse_args()
    data_home = Path(
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    ).resolve()
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    # lightgbm 4.7 renames eval_set (eval_X/eval_y); eval_set keeps older versions working
    warnings.filterwarnings("ignore", message="The argument 'eval_set' is deprecated")
    console = Console()
    results: dict[str, Any] = {}
    with console.status("adult") as status:
        results["adult"] = binary_holdout(load_dataset("adult", data_home), args.seed)
        status.update("bank_marketing")
        results["bank_marketing"] = binary_holdout(
            load_dataset("bank_marketing", data_home), args.seed
        )
        status.update("german_credit")
        results["german_credit"] = german_cv(load_dataset("german_credit", data_home), args.seed)
        status.update("wine_quality")
        results["wine_quality"] = wine(load_dataset("wine_quality", data_home), args.seed)
    lines = rows_of(results)
    table = Table(title="Tabular models: aiweb vs LightGBM (same splits, same run)")
    for column in ("dataset", "metric", "aiweb", "LightGBM", "other baseline"):
        table.add_column(column)
    for line in lines:
        table.add_row(*line)
    console.print(table)
    import lightgbm

    console.print(f"lightgbm {lightgbm.__version__}, seed {args.seed}")
    failed = False
    for text, ok in verdicts(results):
        console.print(f"{text}: {'PASS' if ok else 'FAIL'}")
        failed |= not ok
    if args.markdown:
        Path(args.markdown).write_text(markdown(lines), encoding="utf-8")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
