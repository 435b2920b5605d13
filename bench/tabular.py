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
latency of one row through :meth:`TabularModel.predict` (in process).

Bars (exit status 1 when one fails): adult accuracy and ROC-AUC within 0.5 point of
LightGBM's; German Credit expected cost below always-``good``'s.

Through the API (``--http-only`` runs only this part, ``--no-http`` skips it; needs Debian's
``wrk``): in a fresh temporary ``AIWEB_HOME``, ``aiweb train tabular-classification adult
--dataset adult`` (``--http-dataset german_credit``: with the 5:1 costs), timed from the
outside (wall seconds of the command) and from the inside (``fit_seconds`` of the version's
lineage); ``aiweb keys create --scopes predict``; then ``aiweb serve --workers auto`` on a
free loopback port, rate limit and prediction cache off, driven by wrk (one thread) with
``bench/wrk/requests.lua`` and the helpers of :mod:`bench.serving`. Request bodies are the
dataset's rows without the target, shuffled with the seed, numbers sent as JSON numbers and
missing values left out (as a web backend would send them): ``{"inputs": [row]}`` at 1 and
8 connections and ``{"inputs": [100 rows]}`` at 8 connections, ``--duration`` seconds each
after a discarded ``--warmup``. Baseline, in the same run and before the server starts: the
same registered version, loaded from its artifact, :meth:`TabularModel.predict` in process
on the same rows (1 row x 1,000 calls, 100 rows x 200 calls) — the same model, so the gap
is what the server path costs (HTTP, auth, JSON, validation, prediction log). No bars: the
issue asks for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
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
from bench.serving import (
    Server,
    base_env,
    create_key,
    find_wrk,
    free_port,
    machine_line,
    markdown_table,
    rich_table,
    run_wrk,
    server_rss,
    start_server,
    stop_server,
    wait_ready,
    work_dir,
)

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


# --------------------------------------------------------------------------- through the API

BATCH_ROWS = 100
MB = 1_000_000


@dataclass
class Line:
    """One row of the "through the API" table."""

    path: str
    scenario: str
    connections: int
    requests: int
    rows: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int | None = None
    first_error: str = ""

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def typed_rows(model: TabularModel, data: TabularData, seed: int) -> list[Row]:
    """The dataset's rows without the target, shuffled, as a web backend sends them:
    numeric columns as JSON numbers, missing values left out."""
    kinds = {spec.name: spec.kind for spec in model.schema}
    rows: list[Row] = []
    for raw in data.rows:
        row: Row = {}
        for column, value in raw.items():
            if column == data.target or value is None or column not in kinds:
                continue
            if kinds[column] == "numeric":
                number = float(str(value))
                row[column] = int(number) if number.is_integer() else number
            else:
                row[column] = value
        rows.append(row)
    random.Random(seed).shuffle(rows)
    return rows


def load_version(home: Path, name: str) -> tuple[TabularModel, float, str]:
    """The production version of ``name`` from its artifact; its ``fit_seconds`` and
    ``name:version``."""
    from aiweb.config import Settings
    from aiweb.registry.artifacts import read_verified
    from aiweb.registry.entities import ModelRef
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(Settings(home=home))
    try:
        version = registry.resolve(ModelRef.parse(name))
        ref = f"{version.name}:{version.version}"
        data = read_verified(
            registry.artifacts, version.artifact_uri or "", version.artifact_sha256, ref
        )
    finally:
        engine.dispose()
    model = TabularModel.from_bytes(data)
    return model, float(version.lineage.get("fit_seconds", float("nan"))), ref


def in_process(model: TabularModel, rows: list[Row], calls: int, batch_calls: int) -> list[Line]:
    """:meth:`TabularModel.predict` on 1 row ``calls`` times and on ``BATCH_ROWS`` rows
    ``batch_calls`` times, different rows each call, after a few warm-up calls."""
    model.warm()
    for k in range(20):
        model.predict([rows[k]])
    out: list[Line] = []
    pos = 0
    for n_rows, n_calls in ((1, calls), (BATCH_ROWS, batch_calls)):
        times: list[float] = []
        for _ in range(n_calls):
            chunk = [rows[(pos + j) % len(rows)] for j in range(n_rows)]
            pos += n_rows
            t0 = time.perf_counter()
            model.predict(chunk)
            times.append(time.perf_counter() - t0)
        out.append(
            Line(
                "in process",
                f"TabularModel.predict, {n_rows} row{'s' if n_rows > 1 else ''}",
                1,
                n_calls,
                n_calls * n_rows,
                sum(times),
                float(np.percentile(times, 50)) * 1000,
                float(np.percentile(times, 99)) * 1000,
            )
        )
    return out


def write_bodies(path: Path, url_path: str, rows: list[Row], per_request: int) -> None:
    """``PATH<TAB>JSON`` lines for ``requests.lua``: every row once, ``per_request`` a line."""
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, len(rows) - per_request + 1, per_request):
            body = json.dumps({"inputs": rows[start : start + per_request]}, separators=(",", ":"))
            fh.write(f"{url_path}\t{body}\n")


def http_scenario(
    server: Server,
    wrk: str,
    key: str,
    name: str,
    rows: list[Row],
    per_request: int,
    connections: int,
    seconds: int,
    work: Path,
) -> Line:
    """One wrk run of ``per_request``-row predict requests at ``connections``."""
    bodies = work / "bodies.txt"
    write_bodies(bodies, f"/v1/models/{name}/predict", rows, per_request)
    summary = run_wrk(wrk, server.url, bodies, key, connections, seconds)
    if server.proc.poll() is not None:
        raise RuntimeError(f"aiweb serve died:\n{server.log_tail()}")
    return Line(
        "HTTP",
        f"{per_request} row{'s' if per_request > 1 else ''}/request",
        connections,
        summary["requests"],
        summary["requests"] * per_request,
        summary["duration_us"] / 1e6,
        summary["p50_us"] / 1000,
        summary["p99_us"] / 1000,
        summary["errors"],
        summary["first_error"],
    )


HTTP_HEADERS = ["path", "scenario", "conns", "requests/s", "rows/s", "p50 ms", "p99 ms", "errors"]


def http_rows(lines: list[Line]) -> list[list[str]]:
    return [
        [
            line.path,
            line.scenario,
            str(line.connections),
            f"{line.requests_per_s:,.0f}",
            f"{line.rows_per_s:,.0f}",
            f"{line.p50_ms:.2f}",
            f"{line.p99_ms:.2f}",
            "-" if line.errors is None else f"{line.errors:,}",
        ]
        for line in lines
    ]


def http_part(args: argparse.Namespace, data_home: Path, console: Console) -> tuple[str, str]:
    """Train, serve, measure; print the table. Returns (plain text, markdown) of it."""
    wrk = find_wrk()
    if wrk is None:
        raise RuntimeError("the HTTP part needs wrk: apt-get install wrk (or pass --no-http)")
    aiweb = str(Path(sys.executable).parent / "aiweb")
    name = args.http_dataset
    with work_dir(args.keep) as home:
        env = base_env(home, data_home)
        cmd = [aiweb, "train", "tabular-classification", name, "--dataset", name]
        if name == "german_credit":
            cmd += ["--param", "costs=" + json.dumps({"fp": 1, "fn": 5})]
        with console.status(f"{' '.join(cmd[1:])} …"):
            t0 = time.perf_counter()
            proc = subprocess.run(
                cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False
            )
            train_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"aiweb train failed ({proc.returncode}):\n{proc.stderr}")
        key = create_key(aiweb, env)
        model, fit_seconds, ref = load_version(home, name)
        rows = typed_rows(model, load_dataset(name, data_home), args.seed)
        with console.status(f"in process: {ref} TabularModel.predict …"):
            lines = in_process(model, rows, 1000, 200)
        del model

        port = free_port()
        server_env = env | {
            "AIWEB_RATE_LIMIT__ENABLED": "false",
            "AIWEB_CACHE__ENABLED": "false",
        }
        server = start_server(
            "aiweb",
            [aiweb, "serve", "--port", str(port), "--workers", args.workers],
            server_env,
            port,
            home,
        )
        try:
            with console.status("aiweb serve: loading the model …"):
                n_workers = (
                    len(os.sched_getaffinity(0)) if args.workers == "auto" else int(args.workers)
                )
                wait_ready(server, lambda c: c.get("/readyz").status_code == 200, 2 * n_workers + 1)
            plan = [(1, 1), (1, 8), (BATCH_ROWS, 8)]
            if args.warmup:
                http_scenario(server, wrk, key, name, rows, 1, 8, args.warmup, home)
            for per_request, connections in plan:
                with console.status(f"wrk: {per_request} row(s)/request, c={connections} …"):
                    line = http_scenario(
                        server,
                        wrk,
                        key,
                        name,
                        rows,
                        per_request,
                        connections,
                        args.duration,
                        home,
                    )
                lines.append(line)
            rss = server_rss(server.proc.pid)
        finally:
            stop_server(server)

    load = os.getloadavg()
    machine = (
        machine_line(wrk, args.workers)
        + f" · load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )
    title = (
        f"{ref} through the API: {args.duration} s per wrk run, wrk -t1, "
        "rate limit and prediction cache off"
    )
    one = {(ln.path, ln.scenario, ln.connections): ln for ln in lines}
    c1 = one[("HTTP", "1 row/request", 1)]
    floor1 = one[("in process", "TabularModel.predict, 1 row", 1)]
    floor100 = one[("in process", f"TabularModel.predict, {BATCH_ROWS} rows", 1)]
    batch = one[("HTTP", f"{BATCH_ROWS} rows/request", 8)]
    notes = [
        f"training: `aiweb train` {train_wall:.1f} s wall, fit_seconds {fit_seconds:.1f} s",
        f"one row at c=1: HTTP p50 {c1.p50_ms:.2f} ms vs in process {floor1.p50_ms:.2f} ms "
        f"(+{c1.p50_ms - floor1.p50_ms:.2f} ms for the server path)",
        f"{BATCH_ROWS} rows/request at c=8: {batch.rows_per_s:,.0f} rows/s, "
        f"{batch.rows_per_s / floor100.rows_per_s:.2f}x in-process single-thread "
        f"{floor100.rows_per_s:,.0f} rows/s",
        f"aiweb: {rss.workers} worker process(es), largest {rss.max_worker / MB:,.0f} MB RSS",
        *(
            f"errors: {ln.scenario} c={ln.connections}: {ln.errors}; first: {ln.first_error}"
            for ln in lines
            if ln.errors
        ),
    ]
    table_rows = http_rows(lines)
    console.print(machine, highlight=False, markup=False)
    console.print(rich_table(title, HTTP_HEADERS, table_rows, numeric=2))
    for note in notes:
        console.print(note, highlight=False, markup=False)
    md = "\n\n".join(
        [
            machine,
            f"**{title}**",
            markdown_table(HTTP_HEADERS, table_rows, numeric=2),
            "\n".join(f"- {n}" for n in notes),
        ]
    )
    return machine, md


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", default=None, help="also write the table(s) here")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--http-only", action="store_true", help="only the 'through the API' part")
    part.add_argument("--no-http", action="store_true", help="skip the 'through the API' part")
    parser.add_argument(
        "--http-dataset", choices=("adult", "german_credit"), default="adult", help="(adult)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded wrk seconds (2)")
    parser.add_argument("--workers", default="auto", help="aiweb serve --workers (auto)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIWEB_HOME")
    args = parser.parse_args()
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration >= 1, --warmup >= 0")
    data_home = Path(
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    ).resolve()
    console = Console(width=None if sys.stdout.isatty() else 130)
    parts: list[str] = []
    failed = False
    if not args.http_only:
        quality, failed = quality_part(args, data_home, console)
        parts.append(quality)
    if not args.no_http:
        try:
            parts.append(http_part(args, data_home, console)[1])
        except RuntimeError as exc:  # no wrk, a failed training, a server that died
            console.print(f"through the API: {exc}", highlight=False, markup=False)
            sys.exit(2)
    if args.markdown:
        Path(args.markdown).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    if failed:
        sys.exit(1)


def quality_part(args: argparse.Namespace, data_home: Path, console: Console) -> tuple[str, bool]:
    """The four datasets against LightGBM; print the table and the bars. Returns the table
    as markdown and whether a bar failed."""
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    # lightgbm 4.7 renames eval_set (eval_X/eval_y); eval_set keeps older versions working
    warnings.filterwarnings("ignore", message="The argument 'eval_set' is deprecated")
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
    return markdown(lines), failed


if __name__ == "__main__":
    main()
