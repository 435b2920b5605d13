"""Text classification quality and cost of each feature kind (issue #28): ``tfidf``,
``minilm``, ``stacked`` and ``finetune`` trained on the same data, scored in domain and
across domains, then served.

Run from the project root (``make bench-quality``; the full run takes hours: ``finetune``
alone may train up to 30 minutes per dataset)::

    .venv/bin/python -m bench.quality [--features tfidf,minilm,stacked,finetune]
        [--datasets sst2,banking77,clinc150] [--param KIND.KEY=VALUE ...]
        [--max-train-rows N] [--requests N] [--markdown FILE] [--check]
        [--home DIR | --export-dir DIR] [--no-http] [--keep]

Needs the shared datasets (``--data-home``, else ``AIWEB_DATA_HOME``, else
``../shared/data``; GoEmotions is read from ``goemotions/`` there, aiweb has no loader for
it) and, for ``minilm`` and ``stacked``, the embedding model, found as
:mod:`bench.features` finds it: ``--home DIR`` uses an ``AIWEB_HOME`` where ``aiweb
embeddings install`` has run (the bench's models are trained into it, named
``bench-quality-<dataset>-<kind>``; a model trained there before on the same data and
parameters is reused, its training time then read from its lineage); ``--export-dir DIR``
registers an existing export in a fresh temporary home; with neither, ``aiweb embeddings
install`` runs in a fresh temporary home (~3 min). ``finetune`` needs ``aiweb[export]``.

Every kind is a name passed through to :class:`~aiweb.classification.trainer.TrainParams`
(``features=KIND``) and trained by the code ``aiweb train text-classification NAME
--dataset X --features KIND`` runs
(:func:`aiweb.classification.training.train_text_classification`), default parameters
except: ``--param KIND.KEY=VALUE`` (values parsed as JSON when they are JSON, e.g.
``--param finetune.max_train_minutes=25``), and on ``clinc150`` ``n_features_log2=16``
for the kinds with a TF-IDF part (``tfidf``, ``stacked``; the default 2 x 2**19 columns
do not fit in memory there, see :data:`bench.features.TFIDF_PARAMS`). Every kind's
parameters are checked before anything is trained. ``--max-train-rows N`` trains on a
seeded random sample of N training rows of each dataset (quick runs; the bars are then
not the issue's).

What is measured, per kind:

1. **SST-2**: train (67,349 phrases) -> GLUE dev (872 sentences), accuracy and macro-F1
   from the version's evaluation report; the rows trained on (``finetune`` may subsample
   them to fit its time budget: ``report["finetune"]["train_rows"]`` when present, else
   the lineage's ``split.train_rows``).
2. **Cross-domain**: the same SST-2 version, loaded by
   :func:`aiweb.classification.loader.load_runtime` in this process, ``predict_proba`` on
   (a) ``twitter_airline_sentiment``: the tweets labelled ``positive`` or ``negative``
   (de-duplicated by tweet id as aiweb loads them; ``neutral`` dropped) and (b) GoEmotions
   dev: a comment is ``positive`` (``negative``) when every one of its emotions is in that
   group of ``goemotions/sentiment_mapping.json``; comments with an ``ambiguous`` or
   ``neutral`` emotion, or emotions of both groups, are dropped. The answer is the label
   of the top probability; accuracy and macro-F1 over the two labels. ``cross mean`` is
   the mean of the two accuracies.
3. **Intents** (``--datasets``): Banking77 train -> test (3,080), CLINC150 train -> val
   (3,000 in scope + 100 out of scope): accuracy and macro-F1 from the report, and for
   CLINC150 ``report["out_of_scope"]``: in-scope accuracy and out-of-scope recall at the
   threshold calibrated on val.
4. **Cost**: training time (wall time of ``train_text_classification``, embedding, export
   and registration included; ``fit s`` the lineage's ``fit_seconds``); the artifact's
   size (the registered file; ``minilm`` and ``stacked`` also load the pinned embedding
   model, whose artifact is listed beside); and, through the API (``--no-http`` skips
   it), for the SST-2 version of each kind: one ``aiweb serve --workers 1`` per kind, the
   predict rate limit lifted and the prediction cache off (as :mod:`bench.serving` runs
   it), on a free port, serving that version alone: its own copy of the SQLite registry
   with every other model's rows deleted (the embedding model it pins kept), the
   artifact directory shared, an API key of scope ``predict``. After ``/readyz`` answers
   200 and a discarded warm-up (``min(--requests, 50)`` requests at each concurrency),
   ``POST /v1/models/{name}/predict`` with ``{"inputs": [one sentence]}``, SST-2 dev
   sentences cycled, ``--requests`` requests at concurrency 1 (p50, p99 of each request's
   time from sending to the parsed JSON) and at concurrency 32 (texts/s = requests / wall
   time), each client thread its own keep-alive ``httpx.Client``; the clients run on the
   same cores as the server. ``RSS`` is ``VmRSS`` summed over the server's process tree
   after the runs (``peak``: ``VmHWM``); ``CPU ms/text`` the server tree's CPU over both
   runs per text; ``same label`` how many HTTP answers equal the in-process label.

``tfidf`` is the baseline measured in the same run: the other rows give their accuracy
difference to it (points) and their cost as a multiple of its cost (``x tfidf``).

Bars (PASS/FAIL; exit status 1 on FAIL with ``--check``; a bar whose kinds did not run is
``not checked``):

* ``finetune``: SST-2 dev accuracy >= 0.88, trained within 30 minutes (the SST-2 model's
  wall time);
* ``finetune`` and ``stacked``: cross mean above both ``tfidf``'s and ``minilm``'s;
* ``finetune``: p50 through the API <= 10 ms for one sentence (concurrency 1).

Standard library only at import, so that ``--help`` starts nothing heavy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import table

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KINDS = ("tfidf", "minilm", "stacked", "finetune")
DATASETS = ("sst2", "banking77", "clinc150")
#: the kinds that embed their texts with the registered embedding model
EMBEDDING_KINDS = frozenset({"minilm", "stacked"})
#: the kinds with a TF-IDF part: they get bench.features.TFIDF_PARAMS
TFIDF_KINDS = frozenset({"tfidf", "stacked"})
BASELINE = "tfidf"
TWEETS = "twitter_airline_sentiment"
GOEMOTIONS = "goemotions"
CROSS_NAMES = {TWEETS: "airline tweets", GOEMOTIONS: "GoEmotions dev"}
SENTIMENT = ("negative", "positive")
CONCURRENCIES = (1, 32)
WARMUP_MAX = 50
REQUEST_TIMEOUT_S = 60.0
MB = 1_000_000

# bars (issue #28)
FINETUNE_SST2_MIN = 0.88
FINETUNE_TRAIN_MAX_S = 30 * 60.0
FINETUNE_P50_MAX_MS = 10.0


# --------------------------------------------------------------------------- results


@dataclass
class Trained:
    """One kind trained on one dataset."""

    kind: str
    dataset: str
    model: str
    version: int
    split: str
    n_eval: int
    accuracy: float
    macro_f1: float
    train_rows: int
    wall_s: float | None  # None: reused from an earlier run (--home)
    fit_s: float
    artifact_bytes: int
    embedder: str | None = None  # name:version of the pinned embedding model
    embedder_bytes: int = 0
    oos: dict[str, Any] | None = None
    dev_labels: dict[str, str] = field(default_factory=dict)  # SST-2 dev text -> label

    @property
    def train_s(self) -> float:
        return self.fit_s if self.wall_s is None else self.wall_s


@dataclass
class Cross:
    """The SST-2 version of a kind scored on another domain."""

    kind: str
    dataset: str
    n: int
    accuracy: float
    macro_f1: float
    seconds: float


@dataclass
class Sample:
    """Requests at one concurrency."""

    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: list[str]
    server_cpu_s: float
    same_label: int
    compared: int

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[98]


@dataclass
class Served:
    """One kind's SST-2 version through ``aiweb serve``."""

    kind: str
    model: str
    loaded: list[str]
    rss_ready: int
    rss_after: int
    peak: int
    processes: int
    samples: dict[int, Sample]

    @property
    def cpu_ms_per_text(self) -> float:
        texts = sum(len(s.latencies_ms) for s in self.samples.values())
        return 1000 * sum(s.server_cpu_s for s in self.samples.values()) / max(1, texts)


@dataclass
class Results:
    trained: list[Trained] = field(default_factory=list)
    cross: list[Cross] = field(default_factory=list)
    cross_sizes: dict[str, int] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, kind: str, dataset: str) -> Trained | None:
        return next((t for t in self.trained if t.kind == kind and t.dataset == dataset), None)

    def cross_of(self, kind: str, dataset: str) -> Cross | None:
        return next((c for c in self.cross if c.kind == kind and c.dataset == dataset), None)

    def cross_mean(self, kind: str) -> float | None:
        scores = [self.cross_of(kind, d) for d in CROSS_NAMES]
        if any(s is None for s in scores):
            return None
        return statistics.fmean(s.accuracy for s in scores if s is not None)

    def served_of(self, kind: str) -> Served | None:
        return next((s for s in self.served if s.kind == kind), None)


# --------------------------------------------------------------------------- parameters


def parse_param_options(pairs: list[str], kinds: list[str]) -> dict[str, dict[str, Any]]:
    """``["finetune.max_train_minutes=25"]`` -> ``{"finetune": {"max_train_minutes": 25}}``
    (values parsed as JSON when they are JSON, else kept as strings)."""
    extra: dict[str, dict[str, Any]] = {k: {} for k in kinds}
    for pair in pairs:
        target, sep, raw = pair.partition("=")
        kind, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise SystemExit(f"--param takes KIND.KEY=VALUE, not {pair!r}")
        if kind not in extra:
            raise SystemExit(f"--param {pair!r}: {kind!r} is not one of --features {kinds}")
        try:
            extra[kind][key] = json.loads(raw)
        except json.JSONDecodeError:
            extra[kind][key] = raw
    return extra


def params_for(kind: str, dataset: str, extra: dict[str, dict[str, Any]]) -> Any:
    """The :class:`TrainParams` of ``kind`` on ``dataset`` (``--param`` wins).

    Raises:
        SystemExit: the parameters are refused (an unknown kind, parameter or value).
    """
    from aiweb.classification.trainer import parse_params
    from aiweb.errors import InvalidInputError
    from bench.features import TFIDF_PARAMS

    base = TFIDF_PARAMS.get(dataset, {}) if kind in TFIDF_KINDS else {}
    try:
        return parse_params({**base, **extra.get(kind, {}), "features": kind})
    except InvalidInputError as exc:
        raise SystemExit(f"--features {kind} on {dataset}: {exc.detail}") from None


# --------------------------------------------------------------------------- data


def subsample(data: Any, max_rows: int | None, seed: int = 0) -> Any:
    """``data`` (a TrainingData) with at most ``max_rows`` training rows, a seeded random
    sample in the original order; its digest changes with the sample."""
    if max_rows is None or len(data.train_texts) <= max_rows:
        return data
    keep = sorted(random.Random(seed).sample(range(len(data.train_texts)), max_rows))
    digest = hashlib.sha256(f"{data.sha256}:sample:{max_rows}:{seed}".encode()).hexdigest()
    return replace(
        data,
        train_texts=[data.train_texts[i] for i in keep],
        train_labels=[data.train_labels[i] for i in keep],
        sha256=digest,
    )


def airline_tweets(settings: Any) -> tuple[list[str], list[str]]:
    """The positive and negative tweets of ``twitter_airline_sentiment`` (as aiweb loads it:
    one row per tweet id, HTML entities unescaped)."""
    from aiweb import datasets

    rows = datasets.load(TWEETS, settings, progress=False).train
    pairs = [(t, y) for t, y in zip(rows.texts, rows.labels, strict=True) if y in SENTIMENT]
    return [t for t, _ in pairs], [y for _, y in pairs]


def goemotions_dev(data_home: Path) -> tuple[list[str], list[str]]:
    """GoEmotions dev comments whose emotions all fall in the ``positive`` or all in the
    ``negative`` group of ``sentiment_mapping.json`` (see the module docstring)."""
    directory = data_home / GOEMOTIONS
    names = (directory / "emotions.txt").read_text(encoding="utf-8").split()
    mapping = json.loads((directory / "sentiment_mapping.json").read_text(encoding="utf-8"))
    group = {emotion: g for g, emotions in mapping.items() for emotion in emotions}
    texts: list[str] = []
    labels: list[str] = []
    with (directory / "dev.tsv").open(encoding="utf-8", newline="") as f:
        for text, ids, _comment_id in csv.reader(f, delimiter="\t"):
            groups = {group.get(names[int(i)], "neutral") for i in ids.split(",")}
            if len(groups) == 1 and (label := groups.pop()) in SENTIMENT:
                texts.append(text.strip())
                labels.append(label)
    return texts, labels


def cross_sets(settings: Any, data_home: Path, notes: list[str]) -> dict[str, Any]:
    sets: dict[str, tuple[list[str], list[str]]] = {}
    try:
        sets[TWEETS] = airline_tweets(settings)
    except Exception as exc:  # a missing dataset is reported, the run goes on
        notes.append(f"{TWEETS} not scored: {exc}")
    try:
        sets[GOEMOTIONS] = goemotions_dev(data_home)
    except OSError as exc:
        notes.append(f"{GOEMOTIONS} not scored: {exc}")
    return sets


def score(runtime: Any, texts: list[str], gold: list[str]) -> tuple[float, float, list[str]]:
    """Accuracy and macro-F1 over the two sentiment labels; the answers."""
    import numpy as np
    from sklearn.metrics import f1_score

    proba = runtime.predict_proba(texts)
    predicted = [runtime.labels[i] for i in np.argmax(proba, axis=1)]
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    f1 = float(f1_score(gold, predicted, labels=list(SENTIMENT), average="macro"))
    return accuracy, f1, predicted


# --------------------------------------------------------------------------- training


@contextmanager
def bench_home(args: argparse.Namespace, data_home: Path, embedder: bool) -> Iterator[Path]:
    """The AIWEB_HOME to train in: with the embedding model when a kind needs it."""
    if embedder or args.home is not None:
        from bench.features import home_with_embedder

        with home_with_embedder(args, data_home) as home:
            yield home
        return
    with tempfile.TemporaryDirectory(prefix="aiweb-bench-quality-") as tmp:
        yield Path(tmp)


def model_name(dataset: str, kind: str) -> str:
    return f"bench-quality-{dataset.replace('_', '-')}-{kind}"


def train_all(
    kinds: list[str],
    names: list[str],
    extra: dict[str, dict[str, Any]],
    home: Path,
    data_home: Path,
    max_rows: int | None,
) -> Results:
    from aiweb import datasets
    from aiweb.classification.loader import load_runtime
    from aiweb.classification.training import TrainingData, train_text_classification
    from aiweb.config import Settings
    from aiweb.db.migrate import upgrade
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.registry.entities import ModelRef
    from aiweb.registry.factory import build_registry

    params = {(k, d): params_for(k, d, extra) for d in names for k in kinds}  # checked first
    results = Results()
    settings = Settings(home=home, data_home=data_home)
    registry, engine = build_registry(settings)
    try:
        upgrade(engine)
        pool = EmbedderPool(registry, settings.embeddings)
        crosses = cross_sets(settings, data_home, results.notes) if "sst2" in names else {}
        results.cross_sizes = {name: len(texts) for name, (texts, _) in crosses.items()}
        for dataset in names:
            data = subsample(
                TrainingData.from_splits(datasets.load(dataset, settings, progress=False)),
                max_rows,
            )
            for kind in kinds:
                log(f"{dataset}, {kind}: training on {len(data.train_texts):,} rows …")
                started = time.perf_counter()
                result = train_text_classification(
                    registry,
                    model_name(dataset, kind),
                    data,
                    params=params[kind, dataset],
                    embedders=pool,
                    skip_if_same=True,
                )
                wall = None if result.skipped else time.perf_counter() - started
                version = result.version
                report = result.report
                lineage = version.lineage
                finetune = report.get("finetune") or {}
                pinned = lineage.get("embedding_model")
                trained = Trained(
                    kind=kind,
                    dataset=dataset,
                    model=version.name,
                    version=version.version,
                    split=str(report.get("split", "eval")),
                    n_eval=int(report.get("n", 0)),
                    accuracy=float(report["accuracy"]),
                    macro_f1=float(report["macro_f1"]),
                    train_rows=int(
                        finetune.get("train_rows") or lineage.get("split", {}).get("train_rows", 0)
                    ),
                    wall_s=wall,
                    fit_s=float(lineage.get("fit_seconds", 0.0)),
                    artifact_bytes=artifact_bytes(registry, version),
                    oos=report.get("out_of_scope"),
                )
                if pinned:
                    ref = ModelRef.parse(f"{pinned['name']}:{pinned['version']}")
                    embedding_version = registry.resolve(ref)
                    trained.embedder = f"{pinned['name']}:{pinned['version']}"
                    trained.embedder_bytes = artifact_bytes(registry, embedding_version)
                results.trained.append(trained)
                log(
                    f"{dataset}, {kind}: accuracy {trained.accuracy:.4f} on {trained.split} "
                    f"({trained.n_eval:,}), "
                    + ("reused" if wall is None else f"{wall:.0f} s")
                    + f", {trained.artifact_bytes / MB:.1f} MB"
                )
                if dataset != "sst2":
                    continue
                runtime = load_runtime(registry, version, embedders=pool)
                eval_texts = result.eval_texts or []
                if eval_texts:
                    _, _, answers = score(runtime, eval_texts, list(result.eval_labels or []))
                    trained.dev_labels = dict(zip(eval_texts, answers, strict=True))
                for name, (texts, gold) in crosses.items():
                    t0 = time.perf_counter()
                    accuracy, f1, _ = score(runtime, texts, gold)
                    cross = Cross(kind, name, len(texts), accuracy, f1, time.perf_counter() - t0)
                    results.cross.append(cross)
                    log(f"  {CROSS_NAMES[name]} ({len(texts):,}): accuracy {accuracy:.4f}")
    finally:
        engine.dispose()
    return results


def artifact_bytes(registry: Any, version: Any) -> int:
    """The size of the version's registered artifact file (0 when it has none)."""
    if not version.artifact_uri:
        return 0
    try:
        return int(registry.artifacts.size(version.artifact_uri))
    except OSError:
        return 0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- serving


def serving_registry(source: Path, home: Path, artifacts: Path, keep: set[str]) -> None:
    """A copy of the SQLite database ``source`` in ``home`` holding only the models
    ``keep`` (rows deleted; the artifact files, shared, stay)."""
    from aiweb.config import Settings
    from aiweb.registry.factory import build_registry

    home.mkdir(parents=True)
    with sqlite3.connect(source) as src, sqlite3.connect(home / "aiweb.db") as dst:
        src.backup(dst)
    src.close()
    dst.close()
    registry, engine = build_registry(
        Settings(home=home, artifacts_dir=artifacts, database_url=None, artifacts_url=None)
    )
    try:
        for model in registry.list_models():
            if model.name not in keep:
                registry.store.delete_model(model.name)  # rows only, not the shared files
    finally:
        engine.dispose()


def serve_kind(
    trained: Trained,
    training_home: Path,
    work: Path,
    data_home: Path,
    texts: list[str],
    requests: int,
) -> Served:
    """Serve ``trained`` (an SST-2 version) alone and drive it at each concurrency."""
    import httpx

    from aiweb.config import Settings
    from bench.serving import (
        UNLIMITED,
        base_env,
        create_key,
        free_port,
        start_server,
        stop_server,
        tree_cpu_s,
        wait_ready,
    )
    from bench.vision_http import rss

    settings = Settings(home=training_home, data_home=data_home)
    database = settings.resolved_database_url.removeprefix("sqlite:///")
    artifacts = settings.resolved_artifacts_dir
    keep = {trained.model} | ({trained.embedder.split(":")[0]} if trained.embedder else set())
    home = work / f"serve-{trained.kind}"
    serving_registry(Path(database), home, artifacts, keep)
    production(home, artifacts, trained.model, trained.version)
    env = base_env(home, data_home) | UNLIMITED | {"AIWEB_ARTIFACTS_DIR": str(artifacts)}
    for name in ("AIWEB_DATABASE_URL", "AIWEB_ARTIFACTS_URL"):
        env.pop(name, None)
    aiweb = str(BIN / "aiweb")
    key = create_key(aiweb, env, "bench-quality")
    port = free_port()
    cmd = [aiweb, "serve", "--port", str(port), "--workers", "1"]
    server = start_server(f"aiweb-{trained.kind}", cmd, env, port, work)
    try:
        wait_ready(server, lambda c: c.get("/readyz").status_code == 200, 2)
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
            loaded = list(client.get("/readyz").json().get("loaded", []))
        ready = rss(server.proc.pid)

        def server_cpu() -> float:
            return tree_cpu_s(server.proc.pid)

        warmup = min(requests, WARMUP_MAX)
        for c in CONCURRENCIES:
            drive(server.url, key, trained, texts, c, warmup, server_cpu)
        samples: dict[int, Sample] = {}
        for c in CONCURRENCIES:
            sample = drive(server.url, key, trained, texts, c, requests, server_cpu)
            samples[c] = sample
            log(
                f"{trained.kind} through HTTP, c={c}: {len(sample.latencies_ms)} requests, "
                f"{sample.rate:.1f} texts/s, p50 {sample.p50:.2f} ms, p99 {sample.p99:.2f} ms"
                + (f", {len(sample.errors)} failed: {sample.errors[0]}" if sample.errors else "")
            )
        after = rss(server.proc.pid)
    finally:
        stop_server(server)
    return Served(
        trained.kind,
        trained.model,
        loaded,
        ready["rss"],
        after["rss"],
        after["hwm"],
        after["processes"],
        samples,
    )


def production(home: Path, artifacts: Path, name: str, version: int) -> None:
    """Point ``name@production`` at ``version`` in the serving copy (a reused ``--home``
    may hold older versions of the bench's models)."""
    from aiweb.config import Settings
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(
        Settings(home=home, artifacts_dir=artifacts, database_url=None, artifacts_url=None)
    )
    try:
        if registry.store.resolve_alias(name, "production") != version:
            registry.set_alias(name, "production", version, actor="bench-quality")
    finally:
        engine.dispose()


def drive(
    url: str,
    key: str,
    trained: Trained,
    texts: list[str],
    concurrency: int,
    requests: int,
    server_cpu: Any,
) -> Sample:
    """``requests`` requests of one text each (``texts`` cycled) handed out from a shared
    counter to ``concurrency`` threads, each with its own keep-alive client."""
    import httpx

    clients = [
        httpx.Client(
            base_url=url,
            headers={"authorization": f"Bearer {key}"},
            timeout=REQUEST_TIMEOUT_S,
        )
        for _ in range(concurrency)
    ]
    path = f"/v1/models/{trained.model}/predict"
    counter = iter(range(requests))
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    latencies: list[float] = []
    errors: list[str] = []
    answers: dict[str, str] = {}

    def worker(client: httpx.Client) -> None:
        start.wait()
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            text = texts[n % len(texts)]
            t0 = time.perf_counter()
            try:
                resp = client.post(path, json={"inputs": [text]})
                if resp.status_code != 200:
                    raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                label = resp.json()["predictions"][0]["label"]
            except Exception as exc:  # counted and shown, the run goes on
                with lock:
                    errors.append(str(exc))
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                answers[text] = label

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    cpu0 = server_cpu()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    cpu = server_cpu() - cpu0
    for client in clients:
        client.close()
    if not latencies:
        raise RuntimeError(f"{trained.kind}: every request failed: {errors[:3]}")
    compared = [t for t in answers if t in trained.dev_labels]
    same = sum(answers[t] == trained.dev_labels[t] for t in compared)
    return Sample(concurrency, seconds, latencies, errors, cpu, same, len(compared))


def serve_all(
    results: Results,
    kinds: list[str],
    training_home: Path,
    data_home: Path,
    requests: int,
    keep: bool,
) -> None:
    from aiweb import datasets
    from aiweb.config import Settings
    from bench.serving import work_dir

    settings = Settings(home=training_home, data_home=data_home)
    if not settings.resolved_database_url.startswith("sqlite:///") or settings.artifacts_url:
        results.notes.append(
            "HTTP part skipped: it copies a SQLite registry with a local artifact directory "
            f"(this home's database: {settings.resolved_database_url.split(':')[0]})"
        )
        return
    texts = datasets.load("sst2", settings, progress=False).eval
    sentences = list(texts.texts) if texts is not None else []
    with work_dir(keep) as work:
        for kind in kinds:
            trained = results.get(kind, "sst2")
            if trained is not None:
                results.served.append(
                    serve_kind(trained, training_home, work, data_home, sentences, requests)
                )


# --------------------------------------------------------------------------- report


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return ""
    return f"{value / base:.2f}x"


def diff(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return ""
    return f"{value - base:+.4f}"


def quality_rows(results: Results, kinds: list[str]) -> list[list[str]]:
    names = [f"{CROSS_NAMES[d]} ({results.cross_sizes[d]:,})" for d in results.cross_sizes]
    rows = [
        [
            "kind",
            "rows trained",
            "SST-2 dev acc",
            "macro-F1",
            *(f"{n} acc (F1)" for n in names),
            "cross mean",
            f"cross mean vs {BASELINE}",
        ]
    ]
    base = results.cross_mean(BASELINE)
    for kind in kinds:
        t = results.get(kind, "sst2")
        if t is None:
            continue
        crosses = [results.cross_of(kind, d) for d in results.cross_sizes]
        mean = results.cross_mean(kind)
        rows.append(
            [
                kind,
                f"{t.train_rows:,}",
                f"{t.accuracy:.4f}",
                f"{t.macro_f1:.4f}",
                *(f"{c.accuracy:.4f} ({c.macro_f1:.4f})" if c else "" for c in crosses),
                f"{mean:.4f}" if mean is not None else "",
                "" if kind == BASELINE else diff(mean, base),
            ]
        )
    return rows


def intent_rows(results: Results, kinds: list[str]) -> list[list[str]]:
    rows = [
        [
            "dataset",
            "kind",
            "evaluated on",
            "rows trained",
            "accuracy",
            "macro-F1",
            "in-scope acc",
            "oos recall",
            "threshold",
            "train s",
        ]
    ]
    for dataset in ("banking77", "clinc150"):
        for kind in kinds:
            t = results.get(kind, dataset)
            if t is None:
                continue
            oos = t.oos or {}
            rows.append(
                [
                    dataset,
                    kind,
                    f"{t.split} ({t.n_eval:,})",
                    f"{t.train_rows:,}",
                    f"{t.accuracy:.4f}",
                    f"{t.macro_f1:.4f}",
                    f"{oos['in_scope_accuracy']:.4f}" if oos else "",
                    f"{oos['oos_recall']:.4f}" if oos else "",
                    f"{oos['threshold']:.3f}" if oos else "",
                    f"{t.train_s:.0f}" + ("" if t.wall_s is not None else " (reused)"),
                ]
            )
    return rows


def cost_rows(results: Results, kinds: list[str]) -> list[list[str]]:
    rows = [
        [
            "kind",
            "train s",
            "fit s",
            "x tfidf",
            "artifact MB",
            "+ embedding model",
            "p50 ms c=1",
            "p99 ms c=1",
            "x tfidf",
            "texts/s c=32",
            "x tfidf",
            "RSS MB",
            "x tfidf",
            "peak MB",
            "CPU ms/text",
            "same label",
            "errors",
        ]
    ]
    base_t = results.get(BASELINE, "sst2")
    base_s = results.served_of(BASELINE)
    for kind in kinds:
        t = results.get(kind, "sst2")
        if t is None:
            continue
        s = results.served_of(kind)
        one = s.samples.get(1) if s else None
        many = s.samples.get(32) if s else None
        b_one = base_s.samples.get(1) if base_s else None
        b_many = base_s.samples.get(32) if base_s else None
        same = sum(x.same_label for x in s.samples.values()) if s else 0
        compared = sum(x.compared for x in s.samples.values()) if s else 0
        first = kind == BASELINE
        rows.append(
            [
                kind,
                f"{t.train_s:.0f}" + ("" if t.wall_s is not None else " (reused)"),
                f"{t.fit_s:.0f}",
                "" if first else ratio(t.train_s, base_t.train_s if base_t else None),
                f"{t.artifact_bytes / MB:.3g}",
                f"{t.embedder} ({t.embedder_bytes / MB:.0f} MB)" if t.embedder else "",
                f"{one.p50:.2f}" if one else "",
                f"{one.p99:.2f}" if one else "",
                "" if first or not one else ratio(one.p50, b_one.p50 if b_one else None),
                f"{many.rate:.0f}" if many else "",
                "" if first or not many else ratio(many.rate, b_many.rate if b_many else None),
                f"{s.rss_after / MB:.0f}" if s else "",
                "" if first or not s else ratio(s.rss_after, base_s.rss_after if base_s else None),
                f"{s.peak / MB:.0f}" if s else "",
                f"{s.cpu_ms_per_text:.2f}" if s else "",
                f"{same}/{compared}" if s else "",
                str(sum(len(x.errors) for x in s.samples.values())) if s else "",
            ]
        )
    return rows


def verdicts(results: Results, kinds: list[str]) -> list[tuple[str, bool | None]]:
    """Each bar's text and outcome (``None``: not checked)."""
    out: list[tuple[str, bool | None]] = []
    ft = results.get("finetune", "sst2")
    if ft is None:
        out.append(("finetune SST-2 dev accuracy and training time: not checked (not run)", None))
    else:
        ok = ft.accuracy >= FINETUNE_SST2_MIN
        out.append((f"finetune SST-2 dev accuracy {ft.accuracy:.4f} >= {FINETUNE_SST2_MIN}", ok))
        ok = ft.train_s <= FINETUNE_TRAIN_MAX_S
        out.append(
            (
                f"finetune trained in {ft.train_s / 60:.1f} min "
                f"<= {FINETUNE_TRAIN_MAX_S / 60:.0f} min",
                ok,
            )
        )
    baselines = {k: results.cross_mean(k) for k in ("tfidf", "minilm")}
    for kind in ("finetune", "stacked"):
        mean = results.cross_mean(kind)
        missing = [k for k, v in {kind: mean, **baselines}.items() if v is None]
        if missing:
            out.append(
                (
                    f"{kind} cross mean above tfidf's and minilm's: not checked "
                    f"({', '.join(missing)} not run on both cross-domain sets)",
                    None,
                )
            )
            continue
        assert mean is not None
        best = max(v for v in baselines.values() if v is not None)
        text = ", ".join(f"{k} {v:.4f}" for k, v in baselines.items())
        out.append((f"{kind} cross mean {mean:.4f} > {text}", mean > best))
    served = results.served_of("finetune")
    if served is None or 1 not in served.samples:
        out.append(("finetune p50 through the API: not checked (not served)", None))
    else:
        p50 = served.samples[1].p50
        out.append(
            (
                f"finetune p50 through the API {p50:.2f} ms <= {FINETUNE_P50_MAX_MS:.0f} ms",
                p50 <= FINETUNE_P50_MAX_MS,
            )
        )
    return out


def markdown_table(title: str, rows: list[list[str]]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(rows[0]) + " |"]
    lines.append("|" + "|".join("---" if k == 0 else "---:" for k in range(len(rows[0]))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def report(results: Results, kinds: list[str], args: argparse.Namespace) -> tuple[str, str, bool]:
    """The printed text, the markdown and whether every checked bar passed."""
    from bench.vision_http import machine

    sections: list[tuple[str, list[list[str]]]] = []
    rows = quality_rows(results, kinds)
    if len(rows) > 1:
        sections.append(
            (
                "SST-2 train -> dev, and the same models across domains (accuracy; "
                f"macro-F1 in parentheses; vs {BASELINE}: difference in accuracy)",
                rows,
            )
        )
    rows = intent_rows(results, kinds)
    if len(rows) > 1:
        sections.append(
            (
                "intents: Banking77 test, CLINC150 val (out of scope at the "
                "threshold calibrated on val)",
                rows,
            )
        )
    rows = cost_rows(results, kinds)
    if len(rows) > 1:
        sections.append(
            (
                "cost of the SST-2 models: training (wall s), artifact, through "
                "aiweb serve --workers 1 (one sentence per request; x tfidf: a multiple "
                "of tfidf's; RSS: VmRSS of the server's process tree after the runs, "
                "MB = 10^6 bytes)",
                rows,
            )
        )
    head = machine() + (
        f"\nquick run: --max-train-rows {args.max_train_rows} (the bars are not the issue's)"
        if args.max_train_rows
        else ""
    )
    text = head + "\n\n" + "\n".join(table(title, rows) for title, rows in sections)
    md = head + "\n\n" + "\n".join(markdown_table(title, rows) for title, rows in sections)
    loaded = [f"{s.kind}: {', '.join(s.loaded) or 'nothing'}" for s in results.served]
    if loaded:
        text += "\nloaded by each server: " + "; ".join(loaded) + "\n"
    if results.notes:
        text += "\n" + "\n".join(results.notes) + "\n"
        md += "\n" + "\n".join(f"- {n}" for n in results.notes) + "\n"
    passed = True
    lines = []
    for line, ok in verdicts(results, kinds):
        if ok is None:
            lines.append(line)
        else:
            lines.append(f"{line}: {'PASS' if ok else 'FAIL'}")
            passed &= ok
    errors = sum(len(x.errors) for s in results.served for x in s.samples.values())
    if errors:
        lines.append(f"{errors} requests failed: FAIL")
        passed = False
    text += "\n" + "\n".join(lines) + "\n"
    md += "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    return text, md, passed


# --------------------------------------------------------------------------- main


def names_of(value: str, known: tuple[str, ...], option: str, *, open_: bool = False) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in known]
    if not names or (unknown and not open_):
        raise SystemExit(f"{option}: unknown {unknown}; choose from {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--features",
        default=",".join(KINDS),
        help="feature kinds, comma-separated, each passed through as TrainParams.features "
        f"({','.join(KINDS)})",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"({','.join(DATASETS)})")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KIND.KEY=VALUE",
        help="a training parameter of one kind, e.g. finetune.max_train_minutes=25 (repeatable)",
    )
    parser.add_argument(
        "--max-train-rows", type=int, default=None, help="train on a sample of N rows (quick runs)"
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests per concurrency (2000)"
    )
    parser.add_argument("--data-home", default=None, help="AIWEB_DATA_HOME")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--home", default=None, help="AIWEB_HOME with minilm installed")
    where.add_argument("--export-dir", default=None, help="register this embedding export")
    parser.add_argument("--no-http", action="store_true", help="skip the serving part")
    parser.add_argument("--keep", action="store_true", help="keep the servers' work directory")
    parser.add_argument("--markdown", default=None, help="also write the tables here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    args = parser.parse_args(argv)
    if args.requests < 1 or (args.max_train_rows is not None and args.max_train_rows < 2):
        parser.error("--requests >= 1, --max-train-rows >= 2")
    kinds = names_of(args.features, KINDS, "--features", open_=True)
    names = names_of(args.datasets, DATASETS, "--datasets")
    extra = parse_param_options(args.param, kinds)
    data_home = Path(
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    ).resolve()
    for kind in kinds:  # every kind's parameters are checked before anything runs
        for dataset in names:
            params_for(kind, dataset, extra)
    with bench_home(args, data_home, bool(EMBEDDING_KINDS & set(kinds))) as home:
        results = train_all(kinds, names, extra, home, data_home, args.max_train_rows)
        if "sst2" in names and not args.no_http:
            serve_all(results, kinds, home, data_home, args.requests, args.keep)
    text, md, passed = report(results, kinds, args)
    print()
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(md, encoding="utf-8")
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
