"""The rollout's decisions (judge), the sticky assignment (bucket), the shadow queue's
bound and scoring budget, and the tasks' answer comparison, without a server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiweb.classification.task import TASK as TEXT
from aiweb.config import RolloutSettings
from aiweb.contract import agreement_of
from aiweb.monitoring.metrics import ROLLOUT_SHADOW_DROPPED
from aiweb.rollout.router import RolloutRouter, Route, ScoringBudget, bucket
from aiweb.rollout.schemas import RolloutRequest
from aiweb.rollout.service import ActiveRollout, judge
from aiweb.rollout.stats import GateResult
from aiweb.tabular.task import TASK as TABULAR

CANARY = RolloutRequest(candidate=2, steps=[0.1, 0.5, 1.0], step_every="15m").resolved()


def gate(result: str, name: str = "max_error_rate") -> GateResult:
    return GateResult(
        gate=name, result=result, bound=0.01, value=None, interval=None, n=0, reason=result
    )


PASS, FAIL, WAIT = gate("pass"), gate("fail", "min_accuracy_delta"), gate("inconclusive")


def test_steps_are_sorted_and_end_at_one_and_only_a_canary_has_them() -> None:
    assert RolloutRequest(candidate=2, steps=[0.5, 0.2]).resolved()["steps"] == [0.2, 0.5, 1.0]
    assert RolloutRequest(candidate=2, steps=[1.0, 0.3, 0.3]).resolved()["steps"] == [0.3, 1.0]
    resolved = RolloutRequest(candidate=2, mode="ab", steps=[0.5]).resolved()
    assert (resolved["steps"], resolved["traffic"]) == ([], 0.5)
    assert RolloutRequest(candidate=2).resolved()["steps"] == [0.1, 0.25, 0.5, 1.0]


def test_a_failing_gate_rolls_back_at_once_or_holds_without_auto() -> None:
    move = judge(CANARY, "running", 0.5, 1.0, [PASS, FAIL])
    assert (move.state, move.traffic, move.event) == ("rolled_back", 0.0, "rolled_back")
    assert move.decision["gate"] == "min_accuracy_delta"
    manual = {**CANARY, "auto": False}
    move = judge(manual, "running", 0.5, 1.0, [FAIL])
    assert (move.state, move.traffic, move.event) == ("held", 0.5, "held")
    assert judge(manual, "held", 0.5, 1.0, [FAIL]).event is None  # held once, not again


def test_a_canary_steps_only_when_due_and_passing_and_promotes_at_the_last_step() -> None:
    assert judge(CANARY, "running", 0.1, 899.0, [PASS]).event is None  # not due yet
    move = judge(CANARY, "running", 0.1, 900.0, [PASS])
    assert (move.state, move.traffic, move.event) == ("running", 0.5, "step")
    move = judge(CANARY, "running", 0.5, 900.0, [PASS])
    assert (move.state, move.traffic, move.event) == ("promoted", 1.0, "promoted")
    # a traffic between steps (an admin's start value) goes to the next larger step
    assert judge(CANARY, "running", 0.3, 900.0, [PASS]).traffic == 0.5


def test_inconclusive_evidence_holds_a_due_step_and_never_promotes() -> None:
    move = judge(CANARY, "running", 0.5, 10_000.0, [PASS, WAIT])
    assert (move.state, move.traffic, move.event) == ("held", 0.5, "held")
    assert move.decision["result"] == "inconclusive"
    assert judge(CANARY, "running", 0.5, 1.0, [WAIT]).event is None  # not due: no hold
    # held, then passing: the step is taken
    assert judge(CANARY, "held", 0.5, 10_000.0, [PASS]).event == "promoted"


@pytest.mark.parametrize("mode", ["ab", "shadow"])
def test_ab_and_shadow_never_move_by_themselves_but_roll_back(mode: str) -> None:
    config = RolloutRequest(candidate=2, mode=mode).resolved()  # type: ignore[arg-type]
    assert judge(config, "running", config["traffic"], 1e9, [PASS]).event is None
    assert judge(config, "running", config["traffic"], 1e9, [WAIT]).event is None
    assert judge(config, "running", config["traffic"], 1e9, [FAIL]).event == "rolled_back"


@given(st.text(max_size=40), st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_a_larger_traffic_only_adds_users(user: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    place = bucket("rollout-1", user)
    assert 0.0 <= place < 1.0
    assert place == bucket("rollout-1", user)  # the same user, the same place
    if place < low:
        assert place < high


def test_buckets_are_uniform_and_differ_between_rollouts() -> None:
    places = [bucket("r1", f"user-{i}") for i in range(20_000)]
    for edge in (0.1, 0.2, 0.5, 0.9):
        share = sum(p < edge for p in places) / len(places)
        assert abs(share - edge) < 0.015, (edge, share)
    other = [bucket("r2", f"user-{i}") for i in range(20_000)]
    together = sum((p < 0.2) and (q < 0.2) for p, q in zip(places, other, strict=True))
    assert abs(together / 20_000 - 0.04) < 0.01  # independent: 0.2 x 0.2


#: a running 100% shadow of m:2
SHADOW = ActiveRollout(
    id="r1",
    model="m",
    mode="shadow",
    state="running",
    baseline=1,
    candidate=2,
    traffic=1.0,
    sticky=True,
    doubly_scored=False,
)


def test_a_full_shadow_queue_drops_and_counts() -> None:
    rollout = SHADOW
    router = RolloutRouter(None, RolloutSettings(shadow_queue=2), workers=1)  # type: ignore[arg-type]
    scored: list[str] = []

    async def predict(ref: str, body: Any) -> Mapping[str, Any]:
        scored.append(ref)
        return {"version": 2, "predictions": [{"label": "b"}, {"label": "a"}]}

    served = {"version": 1, "predictions": [{"label": "a"}, {"label": "a"}]}
    before = ROLLOUT_SHADOW_DROPPED.labels("m")._value.get()

    async def main() -> None:
        route = router.route("m", None)
        assert route is None  # no rollout known yet
        router._by_model["m"] = rollout
        route = router.route("m", "someone")
        assert route == Route(rollout, "m", "baseline", "m:2")
        for _ in range(5):  # one loop turn: the worker has not taken any yet
            router.also_score(route, predict, {"inputs": ["x", "y"]}, served, agreement_of("label"))
        await router.drain()
        await router.close_workers()

    asyncio.run(main())
    assert scored == ["m:2", "m:2"]  # the two the queue held; three dropped
    counts = router._tally.take()["r1"]
    assert (counts.shadow_dropped, counts.requests_candidate) == (3, 2)
    assert (counts.compared, counts.agreed) == (4, 2)
    assert ROLLOUT_SHADOW_DROPPED.labels("m")._value.get() - before == 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_admits_until_spent_and_refills_at_its_rate() -> None:
    clock = Clock()
    budget = ScoringBudget(0.1, clock)
    assert budget.admit()
    budget.spend(0.3)  # a copy took 0.3 s: 0.2 s in debt
    assert not budget.admit()
    clock.now += 1.9  # 0.19 s back: still in debt
    assert not budget.admit()
    clock.now += 0.2  # 0.21 s back
    assert budget.admit()
    clock.now += 1000  # the bucket holds one second's worth, no more
    budget.spend(0.1)
    assert not budget.admit()


def test_a_canary_scores_a_sample_of_candidate_answers_twice_at_the_agreement_rate() -> None:
    canary = dataclasses.replace(SHADOW, mode="canary", doubly_scored=True)
    clock = Clock()
    router = RolloutRouter(None, RolloutSettings(agreement_rate=5), workers=1)  # type: ignore[arg-type]
    router._agreement = ScoringBudget(5, clock)
    router._by_model["m"] = canary
    routes = [router.route("m", f"user-{i}") for i in range(50)]
    assert {r.variant for r in routes if r is not None} == {"candidate"}  # traffic 1.0
    # a burst takes the bucket's one second's worth, 5; the other 45 are answered once
    assert [r.other for r in routes if r is not None].count("m") == 5
    clock.now += 0.4  # two tokens back
    again = [router.route("m", f"later-{i}") for i in range(10)]
    assert [r.other for r in again if r is not None] == ["m", "m"] + [None] * 8
    off = RolloutRouter(None, RolloutSettings(agreement_rate=0), workers=1)  # type: ignore[arg-type]
    off._by_model["m"] = canary
    assert all(r is not None and r.other is None for r in (off.route("m", "u") for _ in range(20)))


def test_agreement_compares_outputs_by_the_first_key_both_have() -> None:
    compare = agreement_of("label", "anomaly")
    served = {"predictions": [{"label": "a"}, {"label": "b"}, {"anomaly": True}, {"value": 1.0}]}
    other = {"predictions": [{"label": "a"}, {"label": "a"}, {"anomaly": True}, {"value": 1.0}]}
    assert compare(served, other) == (3, 2)  # the regression's value is not compared
    assert compare(served, {"predictions": "oops"}) == (0, 0)
    assert compare({}, other) == (0, 0)
    assert compare(served, {"predictions": [None, {"label": "a"}]}) == (1, 0)


def test_the_tasks_say_how_their_answers_are_compared() -> None:
    assert TEXT.predict is not None
    assert TEXT.predict.compare is not None
    assert TABULAR.predict is not None
    assert TABULAR.predict.compare is not None
    answer = {"predictions": [{"id": "p1", "label": "pos", "scores": {"pos": 0.9}}]}
    assert TEXT.predict.compare(answer, answer) == (1, 1)
    values = {"predictions": [{"id": "p1", "value": 3.5}]}
    assert TABULAR.predict.compare(values, values) == (0, 0)


def test_a_spent_budget_drops_and_counts_copies_and_no_compare_counts_no_agreement() -> None:
    # a budget of 1 ms a second: the first copy (which takes 20 ms) spends it
    router = RolloutRouter(None, RolloutSettings(shadow_budget=0.001), workers=1)  # type: ignore[arg-type]
    router._by_model["m"] = SHADOW
    scored: list[str] = []

    async def predict(ref: str, body: Any) -> Mapping[str, Any]:
        scored.append(ref)
        await asyncio.sleep(0.02)
        return {"version": 2, "predictions": [{"label": "b"}]}

    served = {"version": 1, "predictions": [{"label": "a"}]}

    async def main() -> None:
        route = router.route("m", "someone")
        assert route is not None
        router.also_score(route, predict, {"inputs": ["x"]}, served)
        await router.drain()
        for _ in range(4):  # in debt for about 19 s: each is dropped
            router.also_score(route, predict, {"inputs": ["x"]}, served)
        await router.drain()
        await router.close_workers()

    asyncio.run(main())
    assert scored == ["m:2"]
    counts = router._tally.take()["r1"]
    assert (counts.requests_candidate, counts.shadow_dropped) == (1, 4)
    assert (counts.compared, counts.agreed) == (0, 0)  # no compare given


class Running:
    """The rollout service as the router reads it: the running rollouts."""

    def __init__(self, *rollouts: ActiveRollout) -> None:
        self.rollouts = list(rollouts)

    def active(self) -> list[ActiveRollout]:
        return self.rollouts

    def add_counts(self, counts: object) -> None:
        pass

    def states(self, names: list[str]) -> dict[str, str]:
        return {}


def test_a_new_rollouts_candidate_is_preloaded_once_and_a_failure_is_only_logged() -> None:
    service = Running(SHADOW)
    router = RolloutRouter(service, RolloutSettings(), workers=1)  # type: ignore[arg-type]
    loaded: list[str] = []

    async def preload(ref: str) -> None:
        loaded.append(ref)
        raise RuntimeError("the artifact is gone")

    async def main() -> None:
        for _ in range(3):
            await router.follow(preload=preload)
            await asyncio.sleep(0)  # the preload runs in the background
        service.rollouts = [dataclasses.replace(SHADOW, id="r2", candidate=3)]
        await router.follow(preload=preload)
        await asyncio.sleep(0)
        await router.close_workers()

    asyncio.run(main())
    assert loaded == ["m:2", "m:3"]
