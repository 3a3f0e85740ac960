"""Global alerting and recording rules (not built yet: see the open issues)."""
