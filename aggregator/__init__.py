"""The service: config, CLI, the Prometheus HTTP API, federation and wiring."""
