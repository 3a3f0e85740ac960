"""The Prometheus HTTP API: routes, handlers, parameters and the response envelope."""
