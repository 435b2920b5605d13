"""Safe rollout of a model's new version: shadow, canary steps and A/B tests with sticky
users, judged on live quality (errors, latency, accuracy from feedback, agreement) with
statistics, promoted or rolled back by the scheduler tick (docs/rollout.md).

- :mod:`aiweb.rollout.schemas`: the API shapes;
- :mod:`aiweb.rollout.stats`: intervals and gates;
- :mod:`aiweb.rollout.service`: rollouts in the database, the judgement of the tick;
- :mod:`aiweb.rollout.router`: where a request goes, in each serving process.
"""

__all__ = ["router", "schemas", "service", "stats"]
