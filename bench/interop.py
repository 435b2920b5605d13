"""The same classifier through ``/v1`` REST, ``/v2`` REST (Open Inference Protocol) and gRPC
(``inference.GRPCInferenceService/ModelInfer``): requests/s, p50 and p99 at concurrency 1
and 64, from one server process.

Run from the project root (``make bench-interop``; needs Debian's ``wrk``)::

    .venv/bin/python -m bench.interop [--duration 10] [--rounds 3] [--channels 1]
                                      [--grpc-client auto|h2load|python]
                                      [--home DIR] [--markdown PATH]

In a fresh temporary ``AIWEB_HOME`` (or ``--home DIR``, kept, trained once)
``aiweb demo --no-serve`` trains ``sentiment`` (SST-2) and ``aiweb keys create`` makes a
predict key. One ``aiweb serve --workers 1 --grpc-port G`` (the predict rate limit lifted,
the prediction cache off, so every request runs the model) serves all three; every request
carries the same one sentence (:data:`SENTENCE`) and the key:

* ``/v1 REST``: ``POST /v1/models/sentiment/predict`` ``{"inputs": [SENTENCE]}``;
* ``/v2 REST``: ``POST /v2/models/sentiment/infer`` with one ``BYTES`` ``[1]`` input
  ``text`` (every output: label, probabilities, id);
* ``gRPC``: ``ModelInfer`` as ``tritonclient.grpc`` sends it (``raw_input_contents``, the
  key as ``authorization`` metadata, every output), one HTTP/2 channel (``--channels``).

REST is driven by wrk (one thread, ``bench/wrk/requests.lua``, as :mod:`bench.serving`);
gRPC, by default (``--grpc-client auto``), by nghttp2's ``h2load`` (Debian's
``nghttp2-client``: a load generator in C, as wrk is: one thread, ``--channels`` HTTP/2
connections carrying ``C`` streams in all, the gRPC request framed once), else (or with
``--grpc-client python``) by a Python load loop in its own process (``python -m
bench.interop grpc-load``: ``grpc.aio``, ``C`` tasks sending back to back over
``--channels`` channels, the request serialized once as wrk's are). The Python loop
spends 0.2-0.8 ms of CPU per call against wrk's 0.02-0.1 ms, which at c=1 is in every
call's latency, and at c=64 takes a core's share from the server on a small machine.
h2load sees HTTP statuses, not gRPC's: a call counts as an error when its HTTP status is
not 200 or when fewer response bytes came back than the calls' answers hold (an error is
answered with trailers only).

After one discarded warm-up per protocol, each round runs the six scenarios
(3 protocols x concurrency 1 and 64) for ``--duration`` seconds, the protocols in a
rotated order per round; the table gives the median over ``--rounds`` rounds of
requests/s, p50 and p99, the range of requests/s, errors, and the CPU time the server
process (and the load client) spent per request.

Bar (the issue's): gRPC is not slower than ``/v1`` REST — at each concurrency gRPC's
requests/s >= (1 - ``MARGIN``) x ``/v1``'s and its p50 <= (1 + ``MARGIN``) x ``/v1``'s,
``MARGIN`` = 10% (run-to-run noise on a shared machine). Exit status 1 when it fails (0
with ``--no-check``), 2 when wrk (or, with ``--grpc-client h2load``, h2load) is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.rounds import LoadSample, Rounds, parse_rounds_args, rounds_parser
from bench.serving import (
    Bars,
    Results,
    Server,
    Setup,
    bench_main,
    create_key,
    free_port,
    machine_line,
    report,
    run_wrk,
    serve_aiweb,
    stop_server,
    train_demo,
    under_load,
)

REPO = Path(__file__).resolve().parent.parent
MODEL = "sentiment"
SENTENCE = "a gripping, beautifully acted film that stays with you long after the credits roll"
CONCURRENCIES = (1, 64)
PROTOCOLS = ("/v1 REST", "/v2 REST", "gRPC")
MARGIN = 0.10
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
RPC_TIMEOUT_S = 5.0

out = Console(width=None if sys.stdout.isatty() else 130)
err = Console(stderr=True)


# --------------------------------------------------------------------------- requests


def rest_line(protocol: str) -> str:
    """The ``PATH<TAB>JSON`` line of ``requests.lua`` for a REST protocol."""
    body: dict[str, Any]
    if protocol == "/v1 REST":
        path, body = f"/v1/models/{MODEL}/predict", {"inputs": [SENTENCE]}
    else:
        path = f"/v2/models/{MODEL}/infer"
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [SENTENCE]}]}
    return f"{path}\t{json.dumps(body, separators=(',', ':'))}\n"


def infer_request(model: str, text: str) -> bytes:
    """A serialized ``ModelInferRequest`` as ``tritonclient.grpc`` builds it: one ``BYTES``
    ``[1]`` input in ``raw_input_contents`` (4-byte little-endian length, then the bytes)."""
    from aiweb.serving.oip_grpc import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="text", datatype="BYTES", shape=[1])
    raw = text.encode()
    request.raw_input_contents.append(struct.pack("<I", len(raw)) + raw)
    return request.SerializeToString()


# --------------------------------------------------------------------------- gRPC load loop


async def grpc_load(
    target: str, key: str, concurrency: int, seconds: float, channels: int
) -> dict[str, Any]:
    """``concurrency`` tasks calling ``ModelInfer`` back to back for ``seconds`` over
    ``channels`` channels (each its own connection); a summary shaped like
    ``requests.lua``'s (requests completed within ``seconds``, latency percentiles in
    microseconds over every completed call, errors and the first one)."""
    import grpc

    from aiweb.serving.oip_grpc import grpc_predict_v2_pb2 as pb

    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    calls = [
        ch.unary_unary(
            INFER_METHOD,
            request_serializer=lambda b: b,  # serialized once, as wrk's requests are
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for ch in opened
    ]
    payload = infer_request(MODEL, SENTENCE)
    metadata = (("authorization", f"Bearer {key}"),)
    for ch in opened:
        await ch.channel_ready()
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0}
    first_error = [""]
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker(i: int) -> None:
        call = calls[i % len(calls)]
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                response = await call(payload, metadata=metadata, timeout=RPC_TIMEOUT_S)
                ok = len(response.outputs) > 0
            except grpc.aio.AioRpcError as exc:
                ok = False
                if not first_error[0]:
                    first_error[0] = f"{exc.code().name} {exc.details()}"[:300]
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            if t1 <= stop_at:
                counts["requests"] += 1
                counts["errors"] += 0 if ok else 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for ch in opened:
        await ch.close()
    latencies.sort()

    def pct(q: float) -> int:
        if not latencies:
            return 0
        return round(latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] * 1e6)

    return {
        "requests": counts["requests"],
        "duration_us": round(seconds * 1e6),
        "errors": counts["errors"],
        "p50_us": pct(50),
        "p99_us": pct(99),
        "max_us": round(latencies[-1] * 1e6) if latencies else 0,
        "first_error": first_error[0],
        "client_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    }


def grpc_load_main(argv: list[str]) -> int:
    """``python -m bench.interop grpc-load TARGET KEY CONCURRENCY SECONDS CHANNELS``: one
    run of :func:`grpc_load`, its summary as one JSON line on stdout."""
    target, key, concurrency, seconds, channels = argv
    summary = asyncio.run(grpc_load(target, key, int(concurrency), float(seconds), int(channels)))
    print(json.dumps(summary))
    return 0


def run_grpc_client(
    target: str, key: str, concurrency: int, seconds: int, channels: int
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.interop", "grpc-load", target, key]
    cmd += [str(concurrency), str(seconds), str(channels)]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            summary: dict[str, Any] = json.loads(line)
            return summary
    raise RuntimeError(f"grpc-load gave no summary (exit {proc.returncode}):\n{proc.stderr}")


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed (0), the length big-endian, the
    bytes."""
    return b"\0" + struct.pack(">I", len(message)) + message


def answer_bytes(target: str, key: str) -> int:
    """The framed size of the ``ModelInfer`` answer to :func:`infer_request` (every answer
    of the bench has this size: same sentence, no id)."""
    import grpc

    with grpc.insecure_channel(target) as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            INFER_METHOD, request_serializer=lambda b: b
        )
        answer = call(
            infer_request(MODEL, SENTENCE), metadata=(("authorization", f"Bearer {key}"),)
        )
    assert isinstance(answer, bytes)
    return len(grpc_frame(answer))


H2_DATA_RE = re.compile(r"^traffic: .*?, ([0-9.]+)([KMG]?B) \(([0-9]+)\) data", re.MULTILINE)


def run_h2load(
    h2load: str,
    target: str,
    key: str,
    concurrency: int,
    seconds: int,
    channels: int,
    work: Path,
    answer_size: int,
) -> dict[str, Any]:
    """One h2load run: ``channels`` connections, ``concurrency`` streams in all, each
    sending the framed :func:`infer_request` back to back for ``seconds``; a summary
    shaped like :func:`grpc_load`'s (latencies from h2load's per-request log)."""
    body = work / "grpc-infer.bin"
    body.write_bytes(grpc_frame(infer_request(MODEL, SENTENCE)))
    log = work / "h2load-requests.tsv"
    log.unlink(missing_ok=True)
    cmd = [h2load, "-t1", f"-c{channels}", f"-m{max(1, concurrency // channels)}"]
    cmd += [f"-D{seconds}", "--log-file", str(log), "-d", str(body)]
    cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    cmd += ["-H", f"authorization: Bearer {key}", f"http://{target}{INFER_METHOD}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    data = H2_DATA_RE.search(proc.stdout)
    if proc.returncode != 0 or not rows or data is None:
        raise RuntimeError(f"h2load failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    latencies = sorted(int(row[2]) for row in rows)
    bad_status = sum(1 for row in rows if row[1] != "200")
    short = max(0, len(rows) - bad_status - int(data.group(3)) // answer_size)

    def pct(q: float) -> int:
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))]

    return {
        "requests": len(rows),
        "duration_us": seconds * 1_000_000,
        "errors": bad_status + short,
        "p50_us": pct(50),
        "p99_us": pct(99),
        "max_us": latencies[-1],
        "first_error": f"{bad_status} non-200, {short} answers short" if bad_status + short else "",
        "client_cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample(LoadSample):
    """One run of one scenario."""

    client_cpu_s: float


class Result(Rounds[Sample]):
    """A protocol's samples over the rounds (its ``scenario``), at one concurrency."""

    @property
    def requests_per_s(self) -> float:
        return self.median("requests_per_s")

    @property
    def p50_ms(self) -> float:
        return self.median("p50_ms")

    @property
    def p99_ms(self) -> float:
        return self.median("p99_ms")


def measure(
    server: Server,
    protocol: str,
    concurrency: int,
    seconds: int,
    *,
    wrk: str,
    key: str,
    grpc_target: str,
    channels: int,
    bodies: dict[str, Path],
    h2load: str | None = None,
    answer_size: int = 0,
) -> Sample:
    def load() -> tuple[Any, float]:
        """The client's summary and its CPU seconds."""
        if protocol == "gRPC" and h2load is not None:
            work = bodies["/v1 REST"].parent
            s = run_h2load(
                h2load, grpc_target, key, concurrency, seconds, channels, work, answer_size
            )
            return s, float(s["client_cpu_s"])
        if protocol == "gRPC":
            s = run_grpc_client(grpc_target, key, concurrency, seconds, channels)
            return s, float(s["client_cpu_s"])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = run_wrk(wrk, server.url, bodies[protocol], key, concurrency, seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    label = f"{protocol}, c={concurrency}"
    (s, client_cpu), server_cpu = under_load(server, label, load)
    sample = Sample.from_summary(s, server_cpu, client_cpu_s=client_cpu)
    err.print(f"  {label}: {sample.line()}", highlight=False)
    return sample


def _flat(data: Any) -> list[Any]:
    """Row-major values of a flat or nested ``data`` list."""
    if not isinstance(data, list):
        return [data]
    return [v for item in data for v in _flat(item)]


def check_answers(url: str, grpc_target: str, key: str) -> str:
    """One request per protocol: the same label and probabilities (else RuntimeError);
    the label."""
    import grpc

    from aiweb.serving.oip_grpc import grpc_predict_v2_pb2 as pb

    headers = {"Authorization": f"Bearer {key}"}
    v1 = httpx.post(
        f"{url}/v1/models/{MODEL}/predict", json={"inputs": [SENTENCE]}, headers=headers
    )
    v1.raise_for_status()
    prediction = v1.json()["predictions"][0]
    v2 = httpx.post(
        f"{url}/v2/models/{MODEL}/infer",
        content=rest_line("/v2 REST").split("\t", 1)[1],
        headers=headers | {"Content-Type": "application/json"},
    )
    v2.raise_for_status()
    v2_out = {o["name"]: o for o in v2.json()["outputs"]}
    with grpc.insecure_channel(grpc_target) as channel:
        call = channel.unary_unary(
            INFER_METHOD,
            request_serializer=lambda b: b,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        response = call(
            infer_request(MODEL, SENTENCE),
            metadata=(("authorization", f"Bearer {key}"),),
            timeout=30,
        )
    names = [o.name for o in response.outputs]
    raw = dict(zip(names, response.raw_output_contents, strict=True))
    grpc_label = raw["label"][4:].decode()
    classes = list(v2_out["probabilities"]["parameters"]["classes"])
    grpc_proba = struct.unpack(f"<{len(classes)}f", raw["probabilities"])
    labels = {prediction["label"], v2_out["label"]["data"][0], grpc_label}
    v1_proba = [prediction["scores"][c] for c in classes]
    v2_proba = [float(x) for x in _flat(v2_out["probabilities"]["data"])]
    probas = [v1_proba, v2_proba, list(grpc_proba)]
    if len(labels) != 1 or any(
        len(p) != len(v1_proba) or any(abs(a - b) > 1e-5 for a, b in zip(p, v1_proba, strict=True))
        for p in probas
    ):
        raise RuntimeError(f"the protocols disagree: labels {labels}, probabilities {probas}")
    return str(labels.pop())


# --------------------------------------------------------------------------- report


HEADERS = [
    "protocol",
    "concurrency",
    "requests/s",
    "req/s range",
    "p50 ms",
    "p99 ms",
    "errors",
    "server CPU ms/req",
    "client CPU ms/req",
]


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        rates = [s.requests_per_s for s in r.samples]
        rows.append(
            [
                r.scenario,
                str(r.concurrency),
                f"{r.requests_per_s:,.0f}",
                f"{min(rates):,.0f} to {max(rates):,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.errors:,}",
                f"{r.cpu_ms_per_request('server_cpu_s'):.3f}",
                f"{r.cpu_ms_per_request('client_cpu_s'):.3f}",
            ]
        )
    return rows


BAR_HEADERS = ["bar", "gRPC", "/v1 REST", "gRPC / v1", "target", "result"]


def bars(results: list[Result], concurrencies: list[int]) -> list[tuple[list[str], bool]]:
    by = {(r.scenario, r.concurrency): r for r in results}
    rows: list[tuple[list[str], bool]] = []
    for c in concurrencies:
        g, v1 = by["gRPC", c], by["/v1 REST", c]
        ratio = g.requests_per_s / max(v1.requests_per_s, 1e-9)
        ok = ratio >= 1 - MARGIN
        rows.append(
            (
                [
                    f"c={c}: requests/s",
                    f"{g.requests_per_s:,.0f}",
                    f"{v1.requests_per_s:,.0f}",
                    f"{ratio:.2f}x",
                    f">= {1 - MARGIN:.2f}x",
                ],
                ok,
            )
        )
        ratio = g.p50_ms / max(v1.p50_ms, 1e-9)
        ok = ratio <= 1 + MARGIN
        rows.append(
            (
                [
                    f"c={c}: p50",
                    f"{g.p50_ms:.2f} ms",
                    f"{v1.p50_ms:.2f} ms",
                    f"{ratio:.2f}x",
                    f"<= {1 + MARGIN:.2f}x",
                ],
                ok,
            )
        )
    for r in results:
        if r.errors:
            rows.append(([f"{r.scenario}, c={r.concurrency}: errors", "", "", "", "0"], False))
    return rows


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rounds_parser("bench.interop", __doc__, CONCURRENCIES, rounds=3, warmup=2)
    parser.add_argument("--channels", type=int, default=1, help="gRPC channels at c=64 (1)")
    parser.add_argument(
        "--grpc-client",
        choices=("auto", "h2load", "python"),
        default="auto",
        help="gRPC load generator: h2load (C, as wrk), the Python grpc.aio loop, or "
        "auto: h2load when installed (default)",
    )
    args = parse_rounds_args(parser, argv)
    if args.channels < 1:
        parser.error("--channels >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grpc-load"]:
        return grpc_load_main(argv[1:])
    args = parse_args(argv)
    return bench_main("bench.interop", args, run, home=args.home)


def run(args: argparse.Namespace, setup: Setup) -> int:
    wrk, home = setup.wrk, setup.home
    if not (home / "bench-interop.trained").exists():
        train_demo(setup.aiweb, setup.env, home)
        (home / "bench-interop.trained").touch()
    stamp = time.time_ns()  # --home may be reused
    key = create_key(setup.aiweb, setup.env, f"bench-interop-{stamp}")

    bodies: dict[str, Path] = {}
    for protocol in PROTOCOLS[:2]:
        bodies[protocol] = home / f"bodies-{protocol[1:3]}.txt"
        bodies[protocol].write_text(rest_line(protocol), encoding="utf-8")

    port, grpc_port = free_port(), free_port()
    while grpc_port == port:
        grpc_port = free_port()
    grpc_target = f"127.0.0.1:{grpc_port}"
    extra = ("--grpc-port", str(grpc_port))
    server = serve_aiweb(setup, workers="1", port=port, extra=extra, in_a_row=2)
    label = check_answers(server.url, grpc_target, key)
    err.print(f"aiweb ready on {server.url} and {grpc_target}; all three say {label!r}")
    h2load = shutil.which("h2load") if args.grpc_client != "python" else None
    if args.grpc_client == "h2load" and h2load is None:
        err.print("--grpc-client h2load: install Debian's nghttp2-client")
        return 2
    answer_size = answer_bytes(grpc_target, key) if h2load else 0
    grpc_client = "h2load -t1" if h2load else "grpc.aio loop"

    def one(protocol: str, concurrency: int, seconds: int) -> Sample:
        return measure(
            server,
            protocol,
            concurrency,
            seconds,
            wrk=wrk,
            key=key,
            grpc_target=grpc_target,
            channels=min(concurrency, args.channels),
            bodies=bodies,
            h2load=h2load,
            answer_size=answer_size,
        )

    if args.warmup:
        err.print("warm-up (discarded):")
        for protocol in PROTOCOLS:
            one(protocol, min(8, max(args.concurrency)), args.warmup)
    results = {(p, c): Result(p, c) for c in args.concurrency for p in PROTOCOLS}
    loads: list[str] = []
    for i in range(args.rounds):
        err.print(f"round {i + 1} of {args.rounds} (load average {os.getloadavg()[0]:.2f}):")
        loads.append(f"{os.getloadavg()[0]:.2f}")
        order = PROTOCOLS[i % 3 :] + PROTOCOLS[: i % 3]
        for c in args.concurrency:
            for protocol in order:
                results[protocol, c].samples.append(one(protocol, c, args.duration))
    loads.append(f"{os.getloadavg()[0]:.2f}")
    stop_server(server)

    ordered = list(results.values())
    checked = bars(ordered, args.concurrency)
    machine = machine_line(wrk, "1")
    title = (
        f"{MODEL}, one sentence per request: /v1 REST, /v2 REST (wrk -t1) and gRPC "
        f"({grpc_client}, {args.channels} channel(s) at c=64); median of {args.rounds} "
        f"rounds of {args.duration} s"
    )
    rows = table_rows(ordered)
    notes = [
        f"load average (1 min) at the start of each round and at the end: {', '.join(loads)}",
        *(
            f"errors: {r.scenario}, c={r.concurrency}: {r.errors}; first: {r.first_error}"
            for r in ordered
            if r.errors
        ),
    ]
    margin = f"gRPC not slower than /v1 REST (margin {MARGIN:.0%})"
    bars_table = Bars(margin, BAR_HEADERS, checked)
    passed = report(out, machine, Results(title, HEADERS, rows), notes, bars_table, args.markdown)
    return 1 if not passed and not args.no_check else 0


if __name__ == "__main__":
    sys.exit(main())
