"""API shapes of rollouts: the body of ``PUT /v1/models/{name}/rollout`` and the report
``GET /v1/models/{name}/rollout`` answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiweb.names import INT32_MAX
from aiweb.security.keys import parse_duration

#: ``15m``, ``2h``, ``1d``: how long a canary step lasts at least
STEP_EVERY_PATTERN = r"^[1-9][0-9]{0,5}[smhdw]$"

#: the states of a rollout; the first two are those of a running one
STATES = ("running", "held", "promoted", "rolled_back", "aborted")
ACTIVE_STATES = ("running", "held")
MODES = ("shadow", "canary", "ab")

DEFAULT_STEPS = (0.1, 0.25, 0.5, 1.0)


def step_seconds(text: str) -> float:
    """Seconds of a ``step_every`` duration (``15m`` → 900.0); the pattern is checked by
    the schema."""
    return parse_duration(text).total_seconds()


class Gates(BaseModel):
    """What a candidate must show before it gets more traffic. Each bound is judged with
    statistics (:mod:`aiweb.rollout.stats`); ``null`` turns a gate off."""

    model_config = ConfigDict(extra="forbid")

    min_samples: int = Field(
        200,
        ge=1,
        le=1_000_000_000,
        description="Samples a gate needs before it can pass: requests (error rate), "
        "logged predictions (latency), feedback on each variant (accuracy), compared "
        "answers (agreement). A gate can fail earlier, on clear evidence.",
    )
    max_error_rate: float | None = Field(
        0.01, ge=0, le=1, description="Largest error rate (5xx answers) of the candidate."
    )
    max_latency_p95_ms: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description="Largest 95th percentile of the candidate's model latency, ms.",
    )
    min_accuracy_delta: float | None = Field(
        -0.02,
        ge=-1,
        le=1,
        description="Least live accuracy of the candidate minus the baseline's (from "
        "feedback): -0.02 lets it be at most 2 points worse.",
    )
    min_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Least share of inputs both versions label alike (shadow copies and "
        "doubly-scored canary requests). Set it to have canary requests scored by both.",
    )


class RolloutRequest(BaseModel):
    """``PUT /v1/models/{name}/rollout``: start a rollout of ``candidate`` against the
    version ``production`` points at now (the baseline)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "candidate": 2,
                    "mode": "canary",
                    "traffic": 0.1,
                    "steps": [0.1, 0.25, 0.5, 1.0],
                    "step_every": "15m",
                    "sticky": True,
                    "gates": {
                        "min_samples": 200,
                        "max_error_rate": 0.01,
                        "max_latency_p95_ms": 100,
                        "min_accuracy_delta": -0.02,
                        "min_agreement": None,
                    },
                    "auto": True,
                }
            ]
        },
    )

    candidate: int = Field(..., ge=1, le=INT32_MAX, description="The version to roll out.")
    mode: Literal["shadow", "canary", "ab"] = Field(
        "canary",
        description="`shadow`: the candidate scores a copy of `traffic` of the requests, "
        "never answers; `canary`: the candidate answers a share of users that grows "
        "through `steps` while every gate passes, then becomes `production`; `ab`: a "
        "fixed split until someone promotes or aborts.",
    )
    traffic: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Share of users (or requests) sent to the candidate at the start "
        "(default: the first step; ab 0.5; shadow 1.0).",
    )
    steps: list[Annotated[float, Field(gt=0, le=1)]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="Canary: the shares traffic moves through, each in (0, 1]; taken in "
        "increasing order, 1.0 added when missing (reaching it promotes); not used by "
        "shadow and ab. Default [0.1, 0.25, 0.5, 1.0].",
    )
    step_every: str = Field(
        "15m",
        pattern=STEP_EVERY_PATTERN,
        description="Least time at one step before the next (`30s`, `15m`, `2h`, `1d`, `1w`).",
    )
    sticky: bool = Field(
        True,
        description="Assign users (`user_id` of a predict body, or `X-User-ID`) by hash, "
        "so a user meets one version for the whole rollout.",
    )
    gates: Gates = Field(default_factory=Gates)
    auto: bool = Field(
        True,
        description="Step, promote (canary) and roll back on a failing gate by itself; "
        "`false`: only judge and record, a person promotes or aborts.",
    )

    def resolved(self) -> dict[str, Any]:
        """The stored configuration: every default filled in."""
        steps = sorted({*(self.steps or DEFAULT_STEPS), 1.0}) if self.mode == "canary" else []
        if self.traffic is not None:
            traffic = self.traffic
        else:
            traffic = {"canary": steps[0] if steps else 0.1, "ab": 0.5, "shadow": 1.0}[self.mode]
        return {
            "candidate": self.candidate,
            "mode": self.mode,
            "traffic": traffic,
            "steps": steps,
            "step_every": self.step_every,
            "sticky": self.sticky,
            "gates": self.gates.model_dump(),
            "auto": self.auto,
        }


class VariantReport(BaseModel):
    """What one version of a rollout did since it started."""

    version: int
    requests: int = Field(..., description="Predict requests it answered (shadow: scored).")
    errors: int = Field(..., description="Of them, answered with a server error.")
    error_rate: float | None
    latency_p95_ms: float | None = Field(
        None, description="95th percentile of its logged model latency, ms."
    )
    predictions: int = Field(..., description="Logged predictions (inputs) since the start.")
    feedback_n: int = Field(..., description="Of them, with label feedback.")
    live_accuracy: float | None
    live_accuracy_ci: list[float] | None = Field(
        None, description="95% Wilson interval of live_accuracy."
    )
    quality: QualityReport


class QualityReport(BaseModel):
    """The live quality the ``min_accuracy_delta`` gate judges: accuracy from label
    feedback, or a task's own (``ctr`` for recommendations: lists served with a click on
    one of their items within 24 h, of the lists served)."""

    metric: str
    value: float | None
    ci: list[float] | None = Field(None, description="95% Wilson interval of value.")
    n: int


class AgreementReport(BaseModel):
    """How often the two versions labelled the same input alike."""

    compared: int
    agreed: int
    rate: float | None
    ci: list[float] | None = Field(None, description="95% Wilson interval of rate.")


class GateReport(BaseModel):
    """One gate's verdict (:class:`aiweb.rollout.stats.GateResult`)."""

    gate: str
    result: Literal["pass", "fail", "inconclusive", "skipped"]
    bound: float | None
    value: float | None
    interval: list[float | None] | None = Field(
        None, description="95% interval of value; an end the data cannot bound is null."
    )
    n: int
    reason: str


class Decision(BaseModel):
    """The verdict that decided the rollout's last move (or its current hold)."""

    gate: str | None
    result: str
    reason: str
    at: datetime | None = None


class RolloutReport(BaseModel):
    """``GET /v1/models/{name}/rollout``: the model's latest rollout, measured now."""

    id: str
    model: str
    state: Literal["running", "held", "promoted", "rolled_back", "aborted"]
    mode: Literal["shadow", "canary", "ab"]
    baseline: int
    candidate: int
    traffic: float = Field(..., description="Share the candidate gets now (shadow: copies).")
    config: dict[str, Any] = Field(..., description="The accepted body, defaults filled in.")
    variants: dict[str, VariantReport] = Field(..., description="`baseline` and `candidate`.")
    agreement: AgreementReport
    gates: list[GateReport] = Field(..., description="Every gate judged now.")
    verdict: Literal["pass", "fail", "inconclusive"] = Field(
        ..., description="Of the gates together, now."
    )
    decision: Decision | None = None
    history: list[dict[str, Any]] = Field(..., description="Every move, oldest first.")
    shadow_dropped: int
    started_by: str
    started_at: datetime
    stepped_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
