"""The support assistant through its API (issue #24): CLINC150 intents through the
assistant against the intents model's own answers, a help collection's share of
out-of-scope turns, and turn latency at concurrency 16 over REST and WebSocket.

Run from the project root (``make bench-assistant``)::

    .venv/bin/python -m bench.assistant [--home DIR] [--workers 1] [--check]
        [--markdown FILE]

The home (``--home``; default ``$AIWEB_HOME/bench/assistant``) is an aiweb home of its
own, built once and reused by later runs: ``aiweb embeddings install``; the intents model
``clinc`` (``aiweb train text-classification clinc --dataset clinc150 --features
minilm``: CLINC150's 15,000 in-scope + 100 out-of-scope training queries, the
out-of-scope threshold calibrated on val, as ``bench.features`` trains it); and the help
collection ``banking-help``, built through :class:`~aiweb.search.service.SearchService`
from Banking77's 10,003 training queries. Banking77 (Casanueva et al., 2020) has
questions, not answers: each query is one help document standing for its intent's
answer (title: the intent, ``card_arrival`` → "Card arrival"), so a question is answered
by the closest question asked before (FAQ retrieval by question-to-question similarity).
Its answer threshold is calibrated with aiweb's packaged off-topic questions
(:meth:`~aiweb.search.service.SearchService.calibrate`, quantile 0.95).

Then ``aiweb serve`` (``--workers``; ``--database-url`` for PostgreSQL; the rate limits
lifted, the prediction cache off) with two assistants made over
``PUT /v1/assistants/{name}``: ``clinc`` (FAQ off: a reply for each of the 150 intents,
``min_confidence`` 0, no handoff after fallbacks) and ``clinc-help`` (the same, with
``banking-help`` as its help collection). Every message starts a new conversation
(``conversation_id`` null). Measured:

1. **The model's own answers** (the baseline, same run): each of CLINC150's 3,100
   validation queries (3,000 in scope, 100 out of scope) through
   ``POST /v1/models/clinc/predict``, one text per request: in-scope accuracy (the
   answered label is the query's intent; a rejection counts as wrong) and out-of-scope
   recall (an out-of-scope query rejected: a label that is not a class). The model's
   training report (computed at training on the same split, embedded in batches) is
   shown beside them.
2. **Through the assistant** (``clinc``, over REST, then WebSocket): the same queries as
   turns. In scope: a reply of type ``intent`` naming the query's intent. Out of scope:
   any other reply (``fallback``; a ``handoff`` when the message asks for a person). Both
   passes run at concurrency 1 (each text alone in the embedding model's batch: the
   verdicts must be the model's, query for query) and at 16 (with the predict route
   again: batching noise, see :func:`scoring`).
3. **The help collection** (``clinc-help``, REST): CLINC150's 100 out-of-scope validation
   queries — the share answered from the help collection (type ``faq``; they are off the
   banking topic too, so a low share is right) — and Banking77's 3,080 test queries, which
   are banking questions CLINC150's intents mostly do not cover: of the turns the intents
   model does not take (not type ``intent``), the share the help collection answers, and
   of those answers the share whose cited document has the query's intent (precision).
4. **Turn latency** (client-side, send to reply) of every pass, at concurrency 1 and 16:
   that many HTTP/1.1 keep-alive connections (httpx) or sockets (websockets), each
   sending its next message when the last is answered.
   The predict route's latency under the same load is the baseline: the turn's cost on
   top of the model is the difference (conversation and message rows written, the
   prediction logged, the reply built).

Bars (PASS/FAIL; exit status 1 on FAIL with ``--check``): at concurrency 1, over REST and
WebSocket, the assistant's verdict is the model's on every query but those where the
visitor asked for a person (so its in-scope accuracy and out-of-scope recall are the
model's own); no failed request. Latency and the help collection's shares are figures to
report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.search import (
    BIN,
    REPO,
    Text,
    _csv,
    base_env,
    build_collection,
    create_key,
    open_service,
)
from bench.serving import (
    Server,
    cpu_model,
    default_data_home,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)

MODEL = "clinc"
COLLECTION = "banking-help"
PLAIN = "clinc"  # the assistant without a help collection
HELPED = "clinc-help"
CONCURRENCY = 16
EMBEDDING = "minilm@production"
TRAIN_ARGS = ("--dataset", "clinc150", "--features", "minilm")
UNLIMITED = {
    "AIWEB_RATE_LIMIT__ENABLED": "false",
    "AIWEB_CACHE__ENABLED": "false",
    "AIWEB_LOG_LEVEL": "warning",
}

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Query:
    text: str
    intent: str  # "oos" for CLINC150's out-of-scope queries
    source: str  # clinc150 or banking77


def clinc_val(data: Path) -> list[Query]:
    clinc = json.loads((data / "clinc150" / "data_full_train_val.json").read_text())
    return [Query(t, i, "clinc150") for t, i in clinc["val"]] + [
        Query(t, "oos", "clinc150") for t, _ in clinc["oos_val"]
    ]


def banking_help(data: Path) -> list[Text]:
    """Banking77's training queries as help documents (see the module docstring)."""
    return [
        Text(
            f"banking77-train-{i}",
            r["text"],
            {"title": r["category"].replace("_", " ").capitalize(), "intent": r["category"]},
        )
        for i, r in enumerate(_csv(data / "banking77" / "train.csv"))
    ]


def banking_test(data: Path) -> list[Query]:
    return [
        Query(r["text"], r["category"], "banking77") for r in _csv(data / "banking77" / "test.csv")
    ]


# --------------------------------------------------------------------------- the home


def default_home() -> Path:
    from aiweb.config import Settings

    return Settings().home / "bench" / "assistant"


def home_env(home: Path, data: Path) -> dict[str, str]:
    """The environment of the bench's ``aiweb`` commands: the home, the data, and the
    database when ``--database-url`` gave one (``AIWEB_DATABASE_URL``)."""
    env = base_env(home, data)
    if os.environ.get("AIWEB_DATABASE_URL"):
        env["AIWEB_DATABASE_URL"] = os.environ["AIWEB_DATABASE_URL"]
        # production mode (PostgreSQL) wants a secret key shared by every process
        env["AIWEB_SECRET_KEY"] = (
            os.environ.get("AIWEB_SECRET_KEY") or "bench-assistant-" + "0" * 32
        )
    return env


def ensure_embedder(home: Path, data: Path) -> None:
    """``aiweb embeddings install`` in the home unless its registry has ``minilm``."""
    env = home_env(home, data)
    if has_model(env, "minilm"):
        return
    with err.status("aiweb embeddings install (once per bench home) …"):
        aiweb(env, "embeddings", "install")


def has_model(env: dict[str, str], name: str) -> bool:
    shown = subprocess.run(
        [str(BIN / "aiweb"), "models", "show", name], env=env, capture_output=True, check=False
    )
    return shown.returncode == 0


def aiweb(env: dict[str, str], *args: str) -> None:
    """Run ``aiweb ARGS``; exit with its output when it fails."""
    proc = subprocess.run(
        [str(BIN / "aiweb"), *args], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"aiweb {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )


def ensure_model(home: Path, data: Path) -> None:
    """Train ``clinc`` unless the home's registry has it."""
    env = home_env(home, data)
    if has_model(env, MODEL):
        return
    started = time.perf_counter()
    with err.status(f"aiweb train text-classification {MODEL} {' '.join(TRAIN_ARGS)}"):
        aiweb(env, "train", "text-classification", MODEL, *TRAIN_ARGS)
    err.print(f"trained {MODEL} in {time.perf_counter() - started:.0f} s")


def ensure_collection(home: Path, data: Path) -> dict[str, Any]:
    """Build and calibrate ``banking-help``; its calibration."""
    with open_service(home) as service:
        seconds = build_collection(service, COLLECTION, banking_help(data), EMBEDDING)
        collection = service.get_collection(COLLECTION)
        if seconds or collection.answer_threshold is None:
            with err.status(f"calibrating {COLLECTION}'s answer threshold …"):
                collection = service.calibrate(COLLECTION)
        return {"threshold": collection.answer_threshold, **(collection.calibration or {})}


def assistant_config(intents: Sequence[str], collection: str | None) -> dict[str, Any]:
    return {
        "intents_model": MODEL,
        "faq_collection": collection,
        "fallback": "Sorry, I did not get that.",
        "responses": {i: f"Intent {i}." for i in intents},
        "handoff": {"intents": [], "after_fallbacks": None},
        "min_confidence": 0.0,
    }


# --------------------------------------------------------------------------- driving


@dataclass
class Pass:
    """One pass of queries through one route: answers in query order, latencies (ms)."""

    name: str
    transport: str
    concurrency: int
    answers: list[dict[str, Any] | None]
    latencies_ms: list[float]
    seconds: float
    errors: list[str] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def _drive(
    name: str,
    transport: str,
    queries: Sequence[Query],
    call: Callable[[Any, str], Awaitable[dict[str, Any]]],
    open_conn: Callable[[], Any],
    concurrency: int,
) -> Pass:
    """``concurrency`` connections, each sending its next query when the last is answered."""
    answers: list[dict[str, Any] | None] = [None] * len(queries)
    latencies: list[float] = []
    errors: list[str] = []
    todo = iter(range(len(queries)))
    progress = Progress(
        TextColumn(f"{name} ({transport}, c={concurrency})"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )

    async def one_connection(task: Any) -> None:
        async with open_conn() as conn:
            for i in todo:
                started = time.perf_counter()
                try:
                    answers[i] = await call(conn, queries[i].text)
                except Exception as exc:  # counted and shown, never hidden
                    errors.append(f"{queries[i].text[:60]!r}: {exc}")
                else:
                    latencies.append(1000 * (time.perf_counter() - started))
                progress.update(task, advance=1)

    with progress:
        task = progress.add_task(name, total=len(queries))
        started = time.perf_counter()
        await asyncio.gather(*(one_connection(task) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Pass(name, transport, concurrency, answers, latencies, seconds, errors)


def rest_pass(
    server: Server,
    key: str,
    name: str,
    path: str,
    body: Callable[[str], Any],
    qs: list[Query],
    concurrency: int = CONCURRENCY,
) -> Pass:
    headers = {"Authorization": f"Bearer {key}"}

    def open_conn() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60.0)

    async def call(client: httpx.AsyncClient, text: str) -> dict[str, Any]:
        resp = await client.post(path, json=body(text))
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code} {resp.text[:200]}")
        answer: dict[str, Any] = resp.json()
        return answer

    return asyncio.run(_drive(name, "REST", qs, call, open_conn, concurrency))


def ws_pass(
    server: Server, key: str, assistant: str, qs: list[Query], concurrency: int = CONCURRENCY
) -> Pass:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{server.port}/v1/assistants/{assistant}/ws?key={key}"

    def open_conn() -> Any:
        return connect(url, max_size=2**22)

    async def call(ws: Any, text: str) -> dict[str, Any]:
        await ws.send(json.dumps({"type": "message", "conversation_id": None, "text": text}))
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "turn":
                turn: dict[str, Any] = frame["turn"]
                return turn
            if frame["type"] == "error":
                raise RuntimeError(f"error frame {frame}")

    return asyncio.run(_drive(f"turn ({assistant})", "WebSocket", qs, call, open_conn, concurrency))


# --------------------------------------------------------------------------- scoring


def own_verdicts(p: Pass) -> list[str | None]:
    """The predict route's label per query; ``None`` when it rejected it (out of scope)."""
    labels: list[str | None] = []
    for answer in p.answers:
        found = (answer or {}).get("predictions", [{}])[0]
        label = found.get("label")
        labels.append(label if label in (found.get("scores") or {}) and label != "oos" else None)
    return labels


def turn_verdicts(p: Pass) -> list[str | None]:
    """The turn's intent when the reply is an intent's; ``None`` otherwise."""
    return [a["intent"] if a is not None and a.get("type") == "intent" else None for a in p.answers]


def scope_figures(verdicts: list[str | None], qs: list[Query]) -> dict[str, float]:
    inside = [(v, q) for v, q in zip(verdicts, qs, strict=True) if q.intent != "oos"]
    outside = [v for v, q in zip(verdicts, qs, strict=True) if q.intent == "oos"]
    return {
        "in_scope_accuracy": sum(v == q.intent for v, q in inside) / len(inside),
        "oos_recall": sum(v is None for v in outside) / len(outside),
    }


def help_figures(p: Pass, qs: list[Query], intent_of: dict[str, str]) -> dict[str, Any]:
    """Per source: queries, turns the intents did not take, answers from the help
    collection, and answers whose cited document (``intent_of``: document id -> intent)
    has the query's intent."""
    rows: dict[str, Any] = {}
    for source in ("clinc150", "banking77"):
        pairs = [
            (a or {}, q)
            for a, q in zip(p.answers, qs, strict=True)
            if q.source == source and (source == "banking77" or q.intent == "oos")
        ]
        not_taken = [(a, q) for a, q in pairs if a.get("type") != "intent"]
        answered = [(a, q) for a, q in not_taken if a.get("type") == "faq"]
        right = [
            (a, q)
            for a, q in answered
            if a["sources"] and intent_of.get(a["sources"][0]["document_id"]) == q.intent
        ]
        rows[source] = {
            "queries": len(pairs),
            "not_taken": len(not_taken),
            "answered": len(answered),
            "right": len(right),
        }
    return rows


# --------------------------------------------------------------------------- report


def machine_line(workers: int) -> str:
    import platform

    from sqlalchemy.engine import make_url

    url = os.environ.get("AIWEB_DATABASE_URL")
    database = (
        "PostgreSQL" if url and make_url(url).get_backend_name() == "postgresql" else "SQLite"
    )

    cpu = cpu_model()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"aiweb serve --workers {workers}, {database}; load average at the end {load}"
    )


@dataclass
class Scored:
    """One quality pass's figures against the baseline (the predict route at c=1)."""

    name: str
    transport: str
    concurrency: int
    in_scope_accuracy: float
    oos_recall: float
    differing: int  # queries whose verdict differs from the baseline's
    asked: int  # of those, turns handed to a person because the message asked for one
    bar: bool | None  # None: no bar on this row


def scoring(passes: list[Pass], qs: list[Query]) -> list[Scored]:
    """Every quality pass scored against the baseline, the first pass (the predict route
    at concurrency 1).

    The bar, at concurrency 1 only: the assistant's verdict equals the model's on every
    query, except where the visitor asked for a person (``"i need to talk to someone
    about …"``: a ``handoff`` reply, by design). Each text is then alone in its batch, so
    the int8 embedding model computes the same numbers for the predict route and the
    turn. At 16 the micro-batcher groups concurrent texts, and the int8 model's
    dynamically quantized activations (one scale per batch tensor) move a little with
    the batch: a few verdicts near a boundary change — the second predict pass shows
    that noise on its own, so those rows are reported without a bar."""
    baseline = own_verdicts(passes[0])
    scored = []
    for p in passes:
        is_turn = p.name != "predict"
        verdicts = turn_verdicts(p) if is_turn else own_verdicts(p)
        figures = scope_figures(verdicts, qs)
        differing = [
            (q, o, v, a)
            for v, o, q, a in zip(verdicts, baseline, qs, p.answers, strict=True)
            if v != o
        ]
        asked = [d for d in differing if is_turn and (d[3] or {}).get("type") == "handoff"]
        for q, o, v, a in differing[:20]:
            kind = f" ({a.get('type')})" if is_turn and a else ""
            err.print(
                f"{p.name} {p.transport} c={p.concurrency}: {q.text!r} ({q.intent}): "
                f"model {o}, here {v}{kind}"
            )
        bar: bool | None = None
        if p is not passes[0] and p.concurrency == 1:
            bar = len(differing) == len(asked)
        scored.append(
            Scored(
                p.name,
                p.transport,
                p.concurrency,
                figures["in_scope_accuracy"],
                figures["oos_recall"],
                len(differing),
                len(asked),
                bar,
            )
        )
    return scored


def report(
    trained: dict[str, Any],
    scored: list[Scored],
    helped: dict[str, Any],
    calibration: dict[str, Any],
    passes: list[Pass],
    machine: str,
) -> tuple[str, bool]:
    """Print the tables; return the Markdown and whether every bar passed."""
    ok = True
    lines = [
        "**Intents through the assistant** (CLINC150 val: 3,000 in scope, 100 out of scope; "
        "baseline: the predict route at concurrency 1)",
        "",
        "| answers of | concurrency | in-scope accuracy | out-of-scope recall "
        "| verdicts differing from the baseline | bar |",
        "|---|---:|---:|---:|---:|---|",
        f"| the model's training report (val, embedded in batches) | | "
        f"{trained.get('in_scope_accuracy', float('nan')):.4f} "
        f"| {trained.get('oos_recall', float('nan')):.4f} | | |",
    ]
    for row in scored:
        what = (
            f"`POST /v1/models/{MODEL}/predict`"
            if row.name == "predict"
            else f"the assistant over {row.transport}"
        )
        if row.bar is None:
            verdict = "baseline" if row is scored[0] else "— (batching noise)"
        else:
            ok &= row.bar
            verdict = f"{'PASS' if row.bar else 'FAIL'} (equal but for asked handoffs)"
        differing = f"{row.differing}" + (f" ({row.asked} asked for a person)" if row.asked else "")
        lines.append(
            f"| {what} | {row.concurrency} | {row.in_scope_accuracy:.4f} | {row.oos_recall:.4f} "
            f"| {differing} | {verdict} |"
        )
    lines += [
        "",
        f"**The help collection** `{COLLECTION}` (Banking77's 10,003 training queries; answer "
        f"threshold {calibration.get('threshold', float('nan')):.4f}, calibrated on "
        f"{calibration.get('questions', '?')} packaged off-topic questions at quantile "
        f"{calibration.get('quantile', '?')}), through `{HELPED}` over REST at concurrency "
        f"{CONCURRENCY}",
        "",
        "| queries | turns the intents model did not take | answered from the help collection "
        "| answers citing the query's intent |",
        "|---|---:|---:|---:|",
    ]
    for source, label in (
        ("clinc150", "CLINC150 val, out of scope (100)"),
        ("banking77", "Banking77 test (3,080)"),
    ):
        row_ = helped[source]
        share = row_["answered"] / row_["not_taken"] if row_["not_taken"] else float("nan")
        precision = (
            f"{row_['right'] / row_['answered']:.3f} ({row_['right']:,})"
            if row_["answered"] and source == "banking77"
            else "— (no intent)"
        )
        lines.append(
            f"| {label} | {row_['not_taken']:,} | {share:.3f} ({row_['answered']:,}) "
            f"| {precision} |"
        )
    lines += [
        "",
        "**Turn latency** (client-side, ms: send to reply)",
        "",
        "| route | transport | concurrency | requests | failed | p50 | p99 | max | per second |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in passes:
        ok &= not p.errors
        lines.append(
            f"| {p.name} | {p.transport} | {p.concurrency} | {len(p.latencies_ms):,} "
            f"| {len(p.errors)} | {p.quantile(0.50):.1f} | {p.quantile(0.99):.1f} "
            f"| {max(p.latencies_ms, default=float('nan')):.1f} | {p.rate:.1f} |"
        )
    lines += ["", f"Machine: {machine}."]
    markdown = "\n".join(lines)
    table = Table(title="bench.assistant: turn latency")
    for column in ("route", "c", "p50 ms", "p99 ms", "failed"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for p in passes:
        table.add_row(
            f"{p.name} ({p.transport})",
            str(p.concurrency),
            f"{p.quantile(0.5):.1f}",
            f"{p.quantile(0.99):.1f}",
            str(len(p.errors)),
        )
    out.print(table)
    out.print(markdown)
    for p in passes:
        for e in p.errors[:5]:
            err.print(f"[red]{p.name} {p.transport}: {e}")
    return markdown, ok


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, help="bench home (default $AIWEB_HOME/bench/assistant)"
    )
    parser.add_argument("--data-home", type=Path, help="AIWEB_DATA_HOME")
    parser.add_argument("--workers", type=int, default=1, help="aiweb serve --workers")
    parser.add_argument(
        "--database-url",
        help="the home's database (AIWEB_DATABASE_URL; default: the home's SQLite file); "
        "give each home its own database",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown")
    args = parser.parse_args(argv)
    data = default_data_home(args.data_home)
    if data is None or not (data / "clinc150" / "data_full_train_val.json").is_file():
        raise SystemExit("bench.assistant needs the shared data (--data-home or AIWEB_DATA_HOME)")
    if args.database_url:
        os.environ["AIWEB_DATABASE_URL"] = args.database_url  # this process's Settings too
    home = (args.home or default_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    err.print(f"bench home: {home}")
    ensure_embedder(home, data)
    ensure_model(home, data)
    calibration = ensure_collection(home, data)
    val = clinc_val(data)
    intents = sorted({q.intent for q in val if q.intent != "oos"})
    key = create_key(home, ("admin",))
    work = home / "runs"
    work.mkdir(exist_ok=True)
    port = free_port()
    server = start_server(
        "aiweb-assistant",
        [str(BIN / "aiweb"), "serve", "--port", str(port), "--workers", str(args.workers)],
        home_env(home, data) | UNLIMITED,
        port,
        work,
    )
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with err.status("aiweb serve: starting …"):
            wait_ready(
                server,
                lambda c: c.get("/v1/models", headers=headers).status_code == 200,
                2 * args.workers,
            )
        with httpx.Client(base_url=server.url, headers=headers, timeout=120.0) as client:
            for name, collection in ((PLAIN, None), (HELPED, COLLECTION)):
                resp = client.put(
                    f"/v1/assistants/{name}", json=assistant_config(intents, collection)
                )
                if resp.status_code not in (200, 201):
                    raise SystemExit(f"PUT /v1/assistants/{name}: {resp.status_code} {resp.text}")
            version = client.get(f"/v1/models/{MODEL}").json()
        trained = trained_report(version)
        predict_path, turn_path = f"/v1/models/{MODEL}/predict", f"/v1/assistants/{PLAIN}/messages"
        warm = [Query("warm up", "oos", "clinc150")] * CONCURRENCY
        rest_pass(server, key, "warm-up", turn_path, turn_body, warm)
        quality: list[Pass] = []
        for concurrency in (1, CONCURRENCY):
            quality += [
                rest_pass(server, key, "predict", predict_path, predict_body, val, concurrency),
                rest_pass(server, key, f"turn ({PLAIN})", turn_path, turn_body, val, concurrency),
                ws_pass(server, key, PLAIN, val, concurrency),
            ]
        mixed = [q for q in val if q.intent == "oos"] + banking_test(data)
        helped_rest = rest_pass(
            server, key, f"turn ({HELPED})", f"/v1/assistants/{HELPED}/messages", turn_body, mixed
        )
        helped_ws = ws_pass(server, key, HELPED, mixed)
    finally:
        stop_server(server)
    markdown, ok = report(
        trained,
        scoring(quality, val),
        help_figures(helped_rest, mixed, {t.id: t.metadata["intent"] for t in banking_help(data)}),
        calibration,
        [*quality, helped_rest, helped_ws],
        machine_line(args.workers),
    )
    if args.markdown:
        args.markdown.write_text(markdown + "\n")
    err.print("[green]PASS" if ok else "[red]FAIL")
    return 0 if ok or not args.check else 1


def predict_body(text: str) -> dict[str, Any]:
    return {"inputs": [text]}


def turn_body(text: str) -> dict[str, Any]:
    return {"conversation_id": None, "text": text}


def trained_report(model: dict[str, Any]) -> dict[str, Any]:
    """The production version's out-of-scope figures from its training report."""
    for version in model.get("versions", []):
        oos = (version.get("evaluation") or {}).get("out_of_scope") or {}
        if oos and "production" in version.get("aliases", []):
            return dict(oos)
    return {}


if __name__ == "__main__":
    sys.exit(main())
