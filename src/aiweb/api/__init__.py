"""HTTP layer: dependencies, problem details, input limits, middleware, health probes,
the routes of the core resources (:mod:`aiweb.api.routes`), the one predict route
of every task (:mod:`aiweb.api.predict`) and the offline API docs (:mod:`aiweb.api.apidocs`)."""

__all__ = [
    "apidocs",
    "deps",
    "health",
    "hygiene",
    "limits",
    "middleware",
    "preauth",
    "predict",
    "problems",
    "router",
    "routes",
]
