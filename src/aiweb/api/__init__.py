"""HTTP layer: dependencies, problem details, input limits, middleware, health probes,
the routes of the core resources (:mod:`aiweb.api.routes`) and the one predict route
of every task (:mod:`aiweb.api.predict`)."""

__all__ = [
    "deps",
    "health",
    "hygiene",
    "limits",
    "middleware",
    "predict",
    "problems",
    "router",
    "routes",
]
