"""Safe rollout of a model's new version: shadow, canary steps and A/B tests with sticky
users, judged on live quality (errors, latency, accuracy from feedback, agreement) with
statistics, promoted or rolled back by the scheduler tick (docs/rollout.md).

- :mod:`aiweb.rollout.schemas`: the API shapes;
- :mod:`aiweb.rollout.stats`: intervals and gates;
- :mod:`aiweb.rollout.service`: rollouts in the database, the judgement of the tick;
- :mod:`aiweb.rollout.router`: where a request goes, in each serving process;
- :mod:`aiweb.rollout.guard`: no deletion of what a running rollout serves.
"""

__all__ = ["guard", "router", "schemas", "service", "stats"]
