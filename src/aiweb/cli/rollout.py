"""``aiweb rollout start|show|promote|abort NAME``: the rollouts of
``/v1/models/{name}/rollout``, on the database of the environment (docs/rollout.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import JSON_HELP, err, friendly_errors, open_database, out, print_json

if TYPE_CHECKING:
    from aiweb.rollout.service import RolloutService

app = typer.Typer(
    help="Shadow, canary and A/B rollouts of a model's new version.", no_args_is_help=True
)


@contextmanager
def _service() -> Iterator[RolloutService]:
    from aiweb.cli._common import load_settings
    from aiweb.db.session import make_session_factory
    from aiweb.rollout.service import RolloutService

    settings = load_settings()
    with open_database() as (registry, engine):
        service = RolloutService(
            make_session_factory(engine),
            registry,
            settings.rollout,
            alert_url=settings.alert_webhook_url,
            alerts=settings.alerts,
        )
        try:
            yield service
        finally:
            service.close()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _show(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    out.print(
        f"[bold]{escape(report['model'])}[/] rollout {report['id'][:8]}: "
        f"[bold]{report['state']}[/], {report['mode']} of version {report['candidate']} "
        f"against {report['baseline']}, candidate traffic {_pct(report['traffic'])}",
        highlight=False,
    )
    variants = Table("variant", "version", "requests", "errors", "p95 ms", "feedback", "accuracy")
    for name, v in report["variants"].items():
        accuracy = _pct(v["live_accuracy"])
        if v["live_accuracy_ci"]:
            low, high = v["live_accuracy_ci"]
            accuracy += f" ({_pct(low)} to {_pct(high)})"
        variants.add_row(
            name,
            str(v["version"]),
            str(v["requests"]),
            str(v["errors"]),
            "-" if v["latency_p95_ms"] is None else f"{v['latency_p95_ms']:.2f}",
            str(v["feedback_n"]),
            accuracy,
        )
    out.print(variants)
    gates = Table("gate", "result", "why", title=f"gates: {report['verdict']}")
    for gate in report["gates"]:
        gates.add_row(gate["gate"], gate["result"], escape(gate["reason"]))
    out.print(gates)
    if report["decision"]:
        decision = report["decision"]
        out.print(
            f"last decision: {decision['result']}"
            + (f" ({decision['gate']})" if decision.get("gate") else "")
            + f": {escape(decision['reason'])}",
            highlight=False,
        )


@app.command("start")
@friendly_errors
def start_cmd(
    name: str,
    candidate: int = typer.Option(..., "--candidate", min=1, help="The version to roll out."),
    mode: str = typer.Option("canary", help="shadow, canary or ab."),
    traffic: float | None = typer.Option(
        None, help="Candidate share at the start (default: first step; ab 0.5; shadow 1.0)."
    ),
    steps: str | None = typer.Option(
        None, help="Canary steps, comma-separated, the last 1.0 (default 0.1,0.25,0.5,1.0)."
    ),
    step_every: str = typer.Option("15m", help="Least time at a step: 30s, 15m, 2h, 1d."),
    sticky: bool = typer.Option(True, help="Assign users by a hash of their id."),
    min_samples: int = typer.Option(200, min=1, help="Samples a gate needs to pass."),
    max_error_rate: float | None = typer.Option(0.01, help="Gate: largest error rate."),
    max_latency_p95_ms: float | None = typer.Option(None, help="Gate: largest p95 latency, ms."),
    min_accuracy_delta: float | None = typer.Option(
        -0.02, help="Gate: least live accuracy of the candidate minus the baseline's."
    ),
    min_agreement: float | None = typer.Option(None, help="Gate: least agreement share."),
    auto: bool = typer.Option(True, help="Step, promote and roll back by itself."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Start a rollout of version CANDIDATE of NAME against its production version
    (as PUT /v1/models/NAME/rollout)."""
    from pydantic import ValidationError

    from aiweb.cli._common import parameter_problems
    from aiweb.rollout.schemas import RolloutRequest

    body: dict[str, Any] = {
        "candidate": candidate,
        "mode": mode,
        "traffic": traffic,
        "step_every": step_every,
        "sticky": sticky,
        "auto": auto,
        "gates": {
            "min_samples": min_samples,
            "max_error_rate": max_error_rate,
            "max_latency_p95_ms": max_latency_p95_ms,
            "min_accuracy_delta": min_accuracy_delta,
            "min_agreement": min_agreement,
        },
    }
    if steps is not None:
        try:
            body["steps"] = [float(s) for s in steps.split(",")]
        except ValueError:
            err.print(f"[bold red]error:[/] --steps {escape(steps)!r}: numbers, comma-separated")
            raise typer.Exit(2) from None
    try:
        request = RolloutRequest.model_validate(body)
    except ValidationError as exc:
        err.print(f"[bold red]error:[/] {escape(parameter_problems(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    with _service() as service:
        report = service.start(name, request, actor="cli")
    _show(report, as_json)


@app.command("show")
@friendly_errors
def show_cmd(name: str, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The latest rollout of NAME, measured now: variants, gates, last decision."""
    with _service() as service:
        report = service.report(name)
    _show(report, as_json)


@app.command("promote")
@friendly_errors
def promote_cmd(name: str, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Make the running rollout's candidate production now and end the rollout."""
    with _service() as service:
        report = service.promote(name, actor="cli")
    _show(report, as_json)


@app.command("abort")
@friendly_errors
def abort_cmd(name: str, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """End the running rollout: all traffic back on the baseline (still production)."""
    with _service() as service:
        report = service.abort(name, actor="cli")
    _show(report, as_json)
