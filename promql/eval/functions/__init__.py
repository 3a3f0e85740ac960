"""PromQL functions; importing this package fills `registry.FUNCTIONS`."""
