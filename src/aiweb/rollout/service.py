"""Rollouts in the database: start, read, promote, abort, and judge (the scheduler tick).

A rollout row holds the configuration, the state and the counts every serving process
adds (:class:`aiweb.rollout.router.RolloutRouter`); latency and live accuracy come from
the prediction log and the feedback of each version since the rollout started. Every
change of state or traffic is a conditional update on the row's ``revision``, so several
schedulers (or a scheduler and an admin) never both apply a move: one wins, the other
sees the new state on its next look.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import AlertSettings, RolloutSettings
from aiweb.db.orm import SqlFeedback, SqlPrediction, SqlRollout
from aiweb.errors import ConflictError, RolloutNotFound
from aiweb.monitoring.alerts import AlertPoster
from aiweb.monitoring.feedback import correct_sql
from aiweb.monitoring.metrics import ROLLOUT_STATE, ROLLOUT_TRAFFIC
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.service import RegistryService
from aiweb.rollout.schemas import ACTIVE_STATES, STATES, RolloutRequest, step_seconds
from aiweb.rollout.stats import (
    GateResult,
    accuracy_delta_gate,
    agreement_gate,
    combine,
    error_rate_gate,
    latency_gate,
    quantile_interval,
    wilson_interval,
)
from aiweb.webhooks.service import emit

log = logging.getLogger("aiweb.rollout")

#: ``quality(sessions, model, version, since) -> (successes, trials)``: a task's live
#: quality of one version since a time, as a proportion (recommendations: the lists
#: served with a click within 24 h, of the lists served)
QualityFn = Callable[[sessionmaker[Session], str, int, datetime], tuple[int, int]]


@dataclass(frozen=True)
class RolloutQuality:
    """A task's own live quality, judged by the ``min_accuracy_delta`` gate instead of
    the accuracy from feedback (:attr:`aiweb.contract.Task.rollout_quality`).

    Attributes:
        metric: its name in reports (``ctr``).
        measure: :data:`QualityFn`.
    """

    metric: str
    measure: QualityFn


@dataclass(frozen=True)
class Counts:
    """What one process adds to a rollout's counts."""

    requests_baseline: int = 0
    errors_baseline: int = 0
    requests_candidate: int = 0
    errors_candidate: int = 0
    compared: int = 0
    agreed: int = 0
    shadow_dropped: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class ActiveRollout:
    """What a serving process needs of a running rollout to route a request."""

    id: str
    model: str
    mode: str
    state: str
    baseline: int
    candidate: int
    traffic: float
    sticky: bool
    #: canary and ab requests the candidate answers are also scored by the baseline
    doubly_scored: bool


@dataclass(frozen=True)
class Measures:
    """A rollout's evidence, measured now."""

    variants: dict[str, dict[str, Any]]
    latencies: dict[str, list[float]]
    correct: dict[str, tuple[int, int]]
    gates: list[GateResult]
    verdict: str


@dataclass(frozen=True)
class Move:
    """What :func:`judge` decided: the next state and traffic, and the event to record
    (``None``: nothing changes)."""

    state: str
    traffic: float
    event: str | None
    decision: dict[str, Any]


def _decision(gates: Sequence[GateResult], verdict: str) -> dict[str, Any]:
    """The gate that decided: the first failing one, else the first inconclusive one."""
    for wanted in ("fail", "inconclusive"):
        for gate in gates:
            if gate.result == wanted:
                return {"gate": gate.gate, "result": wanted, "reason": gate.reason}
    return {"gate": None, "result": "pass", "reason": "every gate passes"}


def judge(
    config: Mapping[str, Any],
    state: str,
    traffic: float,
    seconds_at_step: float,
    gates: Sequence[GateResult],
) -> Move:
    """The next move of a running rollout from its gates' verdicts.

    - A failing gate rolls back at once when ``auto`` (all traffic to the baseline), and
      holds otherwise.
    - A canary with ``auto`` moves to its next step when every gate passes and it has
      been at the current one for ``step_every``; reaching the last step (1.0) promotes.
      An inconclusive verdict when a step is due holds it: inconclusive never promotes.
    - ``shadow`` and ``ab`` rollouts never move by themselves, except a rollback.

    Args:
        config: the rollout's stored configuration (:meth:`RolloutRequest.resolved`).
        state: ``running`` or ``held``.
        traffic: the candidate's share now.
        seconds_at_step: time since the last step (or the start), seconds.
        gates: the gates judged now.
    """
    verdict = combine(gates)
    decision = _decision(gates, verdict)
    auto = bool(config["auto"])
    if verdict == "fail":
        if auto:
            return Move("rolled_back", 0.0, "rolled_back", decision)
        return Move("held", traffic, None if state == "held" else "held", decision)
    if config["mode"] != "canary" or not auto:
        running = "running" if verdict == "pass" or config["mode"] != "canary" else "held"
        return Move(running, traffic, None, decision)
    due = seconds_at_step >= step_seconds(config["step_every"])
    if verdict == "inconclusive":
        if due and state != "held":
            return Move("held", traffic, "held", decision)
        return Move(state, traffic, None, decision)
    if not due:
        return Move("running", traffic, None, decision)
    later = [s for s in config["steps"] if s > traffic + 1e-12]
    if not later or later[0] >= 1.0:
        return Move("promoted", 1.0, "promoted", decision)
    return Move("running", later[0], "step", decision)


def _now() -> datetime:
    return datetime.now(UTC)


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


class RolloutService:
    """Rollouts of the models of one database.

    Args:
        sessions: database sessions.
        registry: moves ``production`` (promotion, rollback) and writes the audit log.
        settings: the rollout settings (latency samples read per version).
        alert_url: ``AIWEB_ALERT_WEBHOOK_URL``: a rollback posts an alert there.
        alerts: attempts, back-off and timeout of that alert.
        on_change: called after this process changed a rollout (the router re-reads).
        quality: ``{registry task: its live quality}`` for the tasks whose models are not
            judged on label feedback (recommendations: click-through rate).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: RegistryService,
        settings: RolloutSettings | None = None,
        *,
        alert_url: str | None = None,
        alerts: AlertSettings | None = None,
        on_change: Callable[[], None] | None = None,
        quality: Mapping[str, RolloutQuality] | None = None,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._settings = settings or RolloutSettings()
        self._alerts = AlertPoster(alert_url, alerts or AlertSettings(), "aiweb-rollout-alerts")
        self._on_change = on_change
        self._quality = dict(quality or {})

    # -- commands ---------------------------------------------------------------------

    def start(
        self,
        name: str,
        body: RolloutRequest,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a rollout of ``body.candidate`` against ``name@production``.

        Returns:
            The report (:meth:`report`).

        Raises:
            ModelNotFound, ModelVersionNotFound: the model or the candidate (404).
            ConflictError: no ``production`` version; the candidate is not ``ready`` or
                is the production version; a rollout of the model is running (409).
        """
        model = self._registry.get_model(name)
        baseline = model.aliases.get(PRODUCTION)
        if baseline is None:
            raise ConflictError(
                f"model {name!r} has no production version: a rollout compares a candidate "
                f"with it (promote one first: PUT /v1/models/{name}/aliases/production)"
            )
        candidate = self._registry.get_version(name, body.candidate)
        if candidate.status != "ready":
            raise ConflictError(
                f"{name}:{body.candidate} is {candidate.status!r}; only a ready version "
                "can be rolled out"
            )
        if body.candidate == baseline:
            raise ConflictError(f"{name}:{baseline} is already the production version")
        config = body.resolved()
        now = _now()
        row = SqlRollout(
            id=secrets.token_hex(16),
            model=name,
            active_model=name,
            mode=config["mode"],
            baseline=baseline,
            candidate=body.candidate,
            traffic=config["traffic"],
            config=config,
            state="running",
            decision=None,
            history=[self._entry(now, "started", config["traffic"], "running", actor=actor)],
            revision=0,
            requests_baseline=0,
            errors_baseline=0,
            requests_candidate=0,
            errors_candidate=0,
            compared=0,
            agreed=0,
            shadow_dropped=0,
            started_by=actor,
            started_at=now,
            stepped_at=now,
            updated_at=now,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(
                f"a rollout of {name!r} is running: promote or abort it first "
                f"(GET /v1/models/{name}/rollout)"
            ) from None
        self._registry.record(
            actor or "api",
            "rollout.started",
            f"model:{name}",
            after={"rollout": row.id, "baseline": baseline, **config},
            request_id=request_id,
        )
        self._emit(row, "started", "running", row.traffic, None, actor or "api", now)
        self._changed()
        return self.report(name)

    def promote(
        self, name: str, *, actor: str = "", request_id: str | None = None
    ) -> dict[str, Any]:
        """Make the running rollout's candidate ``production`` now and end the rollout.

        Raises:
            RolloutNotFound: no rollout of ``name`` ever (404).
            ConflictError: its latest rollout is not running (409).
        """
        row = self._active_row(name)
        self._registry.promote(name, row.candidate, actor=actor or "rollout", request_id=request_id)
        self._move(
            row,
            "promoted",
            1.0,
            "promoted",
            self._manual(actor),
            actor=actor,
            request_id=request_id,
        )
        return self.report(name)

    def abort(self, name: str, *, actor: str = "", request_id: str | None = None) -> dict[str, Any]:
        """End the running rollout: all traffic back on the baseline (which stays
        ``production``).

        Raises:
            RolloutNotFound: no rollout of ``name`` ever (404).
            ConflictError: its latest rollout is not running (409).
        """
        row = self._active_row(name)
        self._move(
            row, "aborted", 0.0, "aborted", self._manual(actor), actor=actor, request_id=request_id
        )
        return self.report(name)

    @staticmethod
    def _manual(actor: str) -> dict[str, Any]:
        return {"gate": None, "result": "manual", "reason": f"by {actor or 'an admin'}"}

    # -- the tick ---------------------------------------------------------------------

    def evaluate(self) -> list[dict[str, Any]]:
        """Judge every running rollout and apply the moves (the scheduler tick).

        Returns:
            ``[{"model", "event", "traffic", "decision"}]`` of the moves made here.
        """
        with self._sessions() as session:
            rows = session.scalars(
                select(SqlRollout).where(SqlRollout.active_model.is_not(None))
            ).all()
            session.expunge_all()
        moves = []
        for row in rows:
            try:
                move = self._evaluate(row)
            except Exception:
                log.exception("rollout of %s not judged", row.model)
                continue
            if move is not None:
                moves.append(move)
        return moves

    def _evaluate(self, row: SqlRollout) -> dict[str, Any] | None:
        measures = self.measure(row)
        seconds = (_now() - row.stepped_at).total_seconds()
        move = judge(row.config, row.state, row.traffic, seconds, measures.gates)
        if move.event is None and move.state == row.state:
            if move.decision != row.decision:
                self._set_decision(row, move.decision)
            return None
        evidence = [g.as_dict() for g in measures.gates]
        if move.event == "promoted":
            self._registry.promote(row.model, row.candidate, actor="rollout")
        elif move.event == "rolled_back":
            model = self._registry.get_model(row.model)
            if model.aliases.get(PRODUCTION) != row.baseline:
                self._registry.promote(row.model, row.baseline, actor="rollout")
        if not self._move(row, move.state, move.traffic, move.event, move.decision, evidence):
            return None
        if move.event == "rolled_back":
            self._alert(row, move, measures)
        return {
            "model": row.model,
            "event": move.event or move.state,
            "traffic": move.traffic,
            "decision": move.decision,
        }

    # -- reading ----------------------------------------------------------------------

    def active(self) -> list[ActiveRollout]:
        """The running rollouts, as the serving processes route by them."""
        with self._sessions() as session:
            rows = session.scalars(
                select(SqlRollout).where(SqlRollout.active_model.is_not(None))
            ).all()
            return [
                ActiveRollout(
                    id=r.id,
                    model=r.model,
                    mode=r.mode,
                    state=r.state,
                    baseline=r.baseline,
                    candidate=r.candidate,
                    traffic=r.traffic,
                    sticky=bool(r.config.get("sticky", True)),
                    doubly_scored=r.mode != "shadow"
                    and r.config.get("gates", {}).get("min_agreement") is not None,
                )
                for r in rows
            ]

    def add_counts(self, counts: Mapping[str, Counts]) -> None:
        """Add one process's counts to their rollouts (``{rollout id: counts}``)."""
        with self._sessions.begin() as session:
            for rollout_id, c in counts.items():
                if not c:
                    continue
                t = SqlRollout
                session.execute(
                    update(t)
                    .where(t.id == rollout_id)
                    .values(
                        requests_baseline=t.requests_baseline + c.requests_baseline,
                        errors_baseline=t.errors_baseline + c.errors_baseline,
                        requests_candidate=t.requests_candidate + c.requests_candidate,
                        errors_candidate=t.errors_candidate + c.errors_candidate,
                        compared=t.compared + c.compared,
                        agreed=t.agreed + c.agreed,
                        shadow_dropped=t.shadow_dropped + c.shadow_dropped,
                    )
                )

    def states(self, names: Sequence[str]) -> dict[str, str]:
        """The state of the latest rollout of each of ``names`` that had one."""
        out: dict[str, str] = {}
        for name in names:
            try:
                out[name] = self._latest(name).state
            except RolloutNotFound:
                continue
        return out

    def _latest(self, name: str) -> SqlRollout:
        with self._sessions() as session:
            row = session.scalars(
                select(SqlRollout)
                .where(SqlRollout.model == name)
                .order_by(SqlRollout.started_at.desc())
                .limit(1)
            ).first()
            if row is None:
                raise RolloutNotFound(
                    f"model {name!r} has no rollout (start one: PUT /v1/models/{name}/rollout)"
                )
            session.expunge(row)
            return row

    def _active_row(self, name: str) -> SqlRollout:
        row = self._latest(name)
        if row.state not in ACTIVE_STATES:
            raise ConflictError(
                f"the latest rollout of {name!r} is {row.state}, not running "
                f"(started {row.started_at.isoformat()})"
            )
        return row

    def measure(self, row: SqlRollout) -> Measures:
        """The evidence of ``row`` now: per-variant counts, latency and live accuracy
        (from the prediction log and feedback since it started), and every gate."""
        gates_config = row.config["gates"]
        variants: dict[str, dict[str, Any]] = {}
        latencies: dict[str, list[float]] = {}
        correct: dict[str, tuple[int, int]] = {}
        started = row.started_at
        quality = self._quality.get(self._registry.get_model(row.model).task)
        with self._sessions() as session:
            for variant, version in (("baseline", row.baseline), ("candidate", row.candidate)):
                lat = list(
                    session.scalars(
                        select(SqlPrediction.latency_ms)
                        .where(
                            SqlPrediction.model == row.model,
                            SqlPrediction.version == version,
                            SqlPrediction.created_at >= started,
                        )
                        .order_by(SqlPrediction.created_at.desc())
                        .limit(self._settings.latency_samples)
                    ).all()
                )
                predictions = session.scalar(
                    select(func.count())
                    .select_from(SqlPrediction)
                    .where(
                        SqlPrediction.model == row.model,
                        SqlPrediction.version == version,
                        SqlPrediction.created_at >= started,
                    )
                )
                n, right = session.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(correct_sql()), 0),
                    ).where(
                        SqlFeedback.model == row.model,
                        SqlFeedback.version == version,
                        SqlFeedback.predicted_at >= started,
                        SqlFeedback.value.is_(None),
                    )
                ).one()
                requests = getattr(row, f"requests_{variant}")
                errors = getattr(row, f"errors_{variant}")
                p95 = quantile_interval(lat, 0.95)[0] if lat else None
                variants[variant] = {
                    "version": version,
                    "requests": requests,
                    "errors": errors,
                    "error_rate": _rounded(errors / requests) if requests else None,
                    "latency_p95_ms": _rounded(p95, 3),
                    "predictions": int(predictions or 0),
                    "feedback_n": int(n),
                    "live_accuracy": _rounded(int(right) / int(n)) if n else None,
                    "live_accuracy_ci": (
                        [_rounded(v) for v in wilson_interval(int(right), int(n))] if n else None
                    ),
                }
                latencies[variant] = lat
                correct[variant] = (int(right), int(n))
                if quality is not None:
                    correct[variant] = quality.measure(self._sessions, row.model, version, started)
                hits, trials = correct[variant]
                variants[variant]["quality"] = {
                    "metric": quality.metric if quality is not None else "accuracy",
                    "value": _rounded(hits / trials) if trials else None,
                    "ci": [_rounded(v) for v in wilson_interval(hits, trials)] if trials else None,
                    "n": trials,
                }
        min_samples = int(gates_config["min_samples"])
        candidate = variants["candidate"]
        gates = [
            error_rate_gate(
                candidate["errors"],
                candidate["requests"],
                gates_config.get("max_error_rate"),
                min_samples,
            ),
            latency_gate(
                latencies["candidate"], gates_config.get("max_latency_p95_ms"), min_samples
            ),
            accuracy_delta_gate(
                *correct["candidate"],
                *correct["baseline"],
                gates_config.get("min_accuracy_delta"),
                min_samples,
            )
            if row.mode != "shadow"
            else _no_feedback_in_shadow(gates_config.get("min_accuracy_delta")),
            agreement_gate(
                row.agreed, row.compared, gates_config.get("min_agreement"), min_samples
            ),
        ]
        if quality is not None:  # the same gate, on the task's metric: say which
            gates = [
                replace(g, reason=g.reason.replace("accuracy", quality.metric))
                if g.gate == "min_accuracy_delta"
                else g
                for g in gates
            ]
        return Measures(variants, latencies, correct, gates, combine(gates))

    def report(self, name: str) -> dict[str, Any]:
        """``GET /v1/models/{name}/rollout``: the latest rollout of ``name``, measured now
        (:class:`aiweb.rollout.schemas.RolloutReport`).

        Raises:
            RolloutNotFound: the model has never had a rollout (404).
        """
        row = self._latest(name)
        measures = self.measure(row)
        rate = row.agreed / row.compared if row.compared else None
        return {
            "id": row.id,
            "model": row.model,
            "state": row.state,
            "mode": row.mode,
            "baseline": row.baseline,
            "candidate": row.candidate,
            "traffic": row.traffic,
            "config": row.config,
            "variants": measures.variants,
            "agreement": {
                "compared": row.compared,
                "agreed": row.agreed,
                "rate": _rounded(rate),
                "ci": [_rounded(v) for v in wilson_interval(row.agreed, row.compared)]
                if row.compared
                else None,
            },
            "gates": [g.as_dict() for g in measures.gates],
            "verdict": measures.verdict,
            "decision": row.decision,
            "history": row.history,
            "shadow_dropped": row.shadow_dropped,
            "started_by": row.started_by,
            "started_at": row.started_at,
            "stepped_at": row.stepped_at,
            "updated_at": row.updated_at,
            "ended_at": row.ended_at,
        }

    # -- writing ----------------------------------------------------------------------

    @staticmethod
    def _entry(
        now: datetime,
        event: str,
        traffic: float,
        state: str,
        *,
        actor: str = "",
        decision: Mapping[str, Any] | None = None,
        gates: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "at": now.isoformat(),
            "event": event,
            "state": state,
            "traffic": traffic,
        }
        if actor:
            entry["actor"] = actor
        if decision is not None:
            entry["decision"] = dict(decision)
        if gates is not None:
            entry["gates"] = gates
        return entry

    def _move(
        self,
        row: SqlRollout,
        state: str,
        traffic: float,
        event: str | None,
        decision: dict[str, Any],
        gates: list[dict[str, Any]] | None = None,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> bool:
        """Apply a move to ``row`` if nobody moved it since it was read.

        Raises:
            ConflictError: a manual move (``actor`` given) lost the race (409).
        """
        assert state in STATES
        now = _now()
        ended = state not in ACTIVE_STATES
        entry = self._entry(
            now, event or state, traffic, state, actor=actor, decision=decision, gates=gates
        )
        decision = {**decision, "at": now.isoformat()}
        values: dict[str, Any] = {
            "state": state,
            "traffic": traffic,
            "decision": decision,
            "history": [*row.history, entry],
            "revision": row.revision + 1,
            "updated_at": now,
        }
        if event == "step":
            values["stepped_at"] = now
        if ended:
            values["active_model"] = None
            values["ended_at"] = now
        with self._sessions.begin() as session:
            done = session.execute(
                update(SqlRollout)
                .where(SqlRollout.id == row.id, SqlRollout.revision == row.revision)
                .values(**values)
            ).rowcount  # type: ignore[attr-defined]
        if not done:
            if actor:
                raise ConflictError(f"the rollout of {row.model!r} changed meanwhile: try again")
            return False
        if event is not None:
            self._registry.record(
                actor or "rollout",
                f"rollout.{event}",
                f"model:{row.model}",
                before={"state": row.state, "traffic": row.traffic},
                after={
                    "rollout": row.id,
                    "state": state,
                    "traffic": traffic,
                    "baseline": row.baseline,
                    "candidate": row.candidate,
                    "decision": decision,
                    **({"gates": gates} if gates is not None else {}),
                },
                request_id=request_id,
            )
            self._emit(row, event, state, traffic, decision, actor or "rollout", now)
        log.info("rollout of %s: %s (traffic %.2f): %s", row.model, event, traffic, decision)
        self._changed()
        return True

    def _emit(
        self,
        row: SqlRollout,
        event: str,
        state: str,
        traffic: float,
        decision: dict[str, Any] | None,
        actor: str,
        at: datetime,
    ) -> None:
        """The webhooks' ``rollout.<event>`` (docs/webhooks.md); never fails the move."""
        data = {
            "model": row.model,
            "rollout": row.id,
            "state": state,
            "traffic": traffic,
            "baseline": row.baseline,
            "candidate": row.candidate,
            "actor": actor,
            "decision": decision,
            "at": at.isoformat(),
        }
        try:
            emit(self._sessions, f"rollout.{event}", data)
        except Exception:
            log.warning("rollout.%s event not queued", event, exc_info=True)

    def _set_decision(self, row: SqlRollout, decision: dict[str, Any]) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(SqlRollout)
                .where(SqlRollout.id == row.id, SqlRollout.revision == row.revision)
                .values(decision={**decision, "at": _now().isoformat()})
            )

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- alerts -----------------------------------------------------------------------

    def _alert(self, row: SqlRollout, move: Move, measures: Measures) -> Future[bool] | None:
        """Post the rollback to ``AIWEB_ALERT_WEBHOOK_URL`` (retried as the drift alerts
        are) in a background thread."""
        if not self._alerts.url:
            return None
        payload = {
            "type": "aiweb.rollout",
            "event": "rollout.rolled_back",
            "model": row.model,
            "rollout": row.id,
            "baseline": row.baseline,
            "candidate": row.candidate,
            "traffic_before": row.traffic,
            "decision": move.decision,
            "gates": [g.as_dict() for g in measures.gates],
            "detected_at": _now().isoformat(),
        }
        return self._alerts.post(payload, f"rollback alert for {row.model}")

    def close(self) -> None:
        """Wait for the alerts being sent."""
        self._alerts.close()


def _no_feedback_in_shadow(bound: float | None) -> GateResult:
    """A shadow candidate's answers are never returned, so they get no feedback."""
    return GateResult(
        gate="min_accuracy_delta",
        result="skipped",
        bound=bound,
        value=None,
        interval=None,
        n=0,
        reason="a shadow candidate's answers are never returned, so they get no feedback",
    )


def publish_metrics(rollouts: Sequence[ActiveRollout], ended: Mapping[str, str]) -> None:
    """Set ``aiweb_rollout_traffic`` and ``aiweb_rollout_state`` for the running
    rollouts and for ``ended`` (``{model: its rollout's final state}``)."""
    now = [(r.model, r.state, r.traffic) for r in rollouts]
    now += [(model, state, 0.0) for model, state in ended.items()]
    for model, current, traffic in now:
        ROLLOUT_TRAFFIC.labels(model).set(traffic)
        for state in STATES:
            ROLLOUT_STATE.labels(model, state).set(1.0 if state == current else 0.0)
