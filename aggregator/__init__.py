"""The service: config, CLI, the Prometheus HTTP API, federation and wiring."""

from aggregator.app import build_app
from aggregator.config import Config, load_config
from aggregator.errors import ConfigError

__all__ = ["Config", "ConfigError", "build_app", "load_config"]
