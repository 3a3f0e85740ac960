"""Global alerting and recording rules: rule files -> scheduled evaluation -> notifiers.

The names below are loaded on first use, so that importing a light module of
the package (`alerting.settings` for the config, `alerting.loader` for
`check-config`) does not load the PromQL engine and the HTTP client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Alert": "alerting.types",
    "AlertState": "alerting.types",
    "AlertingRule": "alerting.rules",
    "AlertingSettings": "alerting.settings",
    "Group": "alerting.group",
    "GroupSpec": "alerting.rulefile",
    "NotifierHub": "alerting.notify.hub",
    "RecordingRule": "alerting.rules",
    "RuleFileError": "alerting.rulefile",
    "RuleManager": "alerting.manager",
    "Ruler": "alerting.service",
    "RulesLoadError": "alerting.loader",
    "RulesSettings": "alerting.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alerting' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
