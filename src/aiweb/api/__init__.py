"""HTTP layer: dependencies, problem details, input limits, middleware, health probes,
the routes of the core resources (:mod:`aiweb.api.routes`), the one predict route
of every task (:mod:`aiweb.api.predict`), the offline API docs (:mod:`aiweb.api.apidocs`),
the facts the OpenAPI document states besides the routes' models
(:mod:`aiweb.api.openapi_facts`), the one-value rule of query parameters
(:mod:`aiweb.api.queries`) and the Open Inference Protocol's ``/v2`` routes
(:mod:`aiweb.api.oip`)."""

__all__ = [
    "apidocs",
    "deps",
    "health",
    "hygiene",
    "limits",
    "middleware",
    "oip",
    "openapi_facts",
    "preauth",
    "predict",
    "problems",
    "queries",
    "router",
    "routes",
]
