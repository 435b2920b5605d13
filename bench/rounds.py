"""What the load tests that run their scenarios in rounds against one ``aiweb serve``
(:mod:`bench.interop`, :mod:`bench.rollout`) share: their command line, one load run's
sample and a scenario's samples over the rounds.

The standard library only, so that ``--help`` imports none of the heavy modules
:mod:`bench.serving` needs (httpx, numpy, rich).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Self, TypeVar


def arg_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``, described by the first paragraph of ``doc``."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=(doc or "").split("\n\n")[0]
    )


def rounds_parser(
    module: str, doc: str | None, concurrencies: Sequence[int], *, rounds: int, warmup: int
) -> argparse.ArgumentParser:
    """:func:`arg_parser` with the options every rounds bench takes (the defaults given);
    :func:`parse_rounds_args` checks them."""
    parser = arg_parser(module, doc)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds of every scenario ({rounds})"
    )
    parser.add_argument(
        "--warmup", type=int, default=warmup, help=f"discarded seconds per scenario ({warmup})"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=list(concurrencies),
        help=f"concurrencies to run (default {' '.join(map(str, concurrencies))}; "
        "the bars compare each)",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="AIWEB_HOME to reuse (trained when empty; kept)"
    )
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--no-check", action="store_true", help="exit 0 when a bar fails")
    return parser


def parse_rounds_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    """Parse ``argv`` with a :func:`rounds_parser`; exits on an invalid common option."""
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or args.warmup < 0 or min(args.concurrency) < 1:
        parser.error("--duration, --rounds, --concurrency >= 1; --warmup >= 0")
    return args


@dataclass
class LoadSample:
    """One load client run (its JSON summary, as ``bench/wrk/requests.lua`` prints it) and
    the CPU the server's process tree spent over it."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    first_error: str

    @classmethod
    def from_summary(cls, summary: Any, server_cpu_s: float, **extra: Any) -> Self:
        """A sample from a load client's summary (``requests``, ``duration_us``, ``errors``,
        ``p50_us``, ``p99_us``, ``first_error``); ``extra``: a subclass's own fields."""
        return cls(
            requests=int(summary["requests"]),
            seconds=summary["duration_us"] / 1e6,
            errors=int(summary["errors"]),
            p50_ms=summary["p50_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            server_cpu_s=server_cpu_s,
            first_error=str(summary.get("first_error") or ""),
            **extra,
        )

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        """Requests/s, p50, p99, errors and the server's CPU per request, for the log."""
        return (
            f"{self.requests_per_s:,.0f} req/s, p50 {self.p50_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, {self.errors} errors, "
            f"server CPU {1000 * self.server_cpu_s / max(self.requests, 1):.3f} ms/req"
        )


S = TypeVar("S", bound=LoadSample)


@dataclass
class Rounds(Generic[S]):
    """A scenario's samples over the rounds, at one concurrency."""

    scenario: str
    concurrency: int
    samples: list[S] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(s, attr)) for s in self.samples))

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.samples)

    @property
    def first_error(self) -> str:
        """The first error any sample saw (``-`` when none did)."""
        return next((s.first_error for s in self.samples if s.first_error), "-")

    def cpu_ms_per_request(self, attr: str = "server_cpu_s") -> float:
        """CPU milliseconds per request of the ``attr`` seconds (the server's by default)."""
        requests = sum(s.requests for s in self.samples)
        return 1000 * sum(float(getattr(s, attr)) for s in self.samples) / max(requests, 1)
