"""HTTP layer: dependencies, problem details, health routes, the /v1 router."""
