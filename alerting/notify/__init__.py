"""Alert delivery: Alertmanager API v2 and webhooks, each target with its own queue."""
