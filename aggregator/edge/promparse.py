"""prometheus-client's exposition parsers (text 0.0.4 and OpenMetrics) without its package.

`import prometheus_client.parser` first runs the package's `__init__`, which
loads the whole client: metrics, registry, the exposition module with
`http.server`, `wsgiref`, `urllib.request`, `email`, and the process and
platform collectors -- about 80 modules and 5-7 MB of the agent's RSS
(bench/edge.py), of which the agent needs the two parser modules and the
four small ones they import (`metrics_core`, `samples`, `validation`, `utils`).

So the parsers are loaded here under a bare stand-in for the package (its
real spec and path, its `__init__` not run), kept by reference, and every
module this loaded is taken out of `sys.modules` again: a later
`import prometheus_client` anywhere in the same process (the service, a test)
gets the real, complete package, with its own copies of these modules.
When the client is already loaded, its parsers are used as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

PACKAGE = "prometheus_client"
PARSERS = ("prometheus_client.parser", "prometheus_client.openmetrics.parser")

Parse = Callable[[str], Iterable[Any]]


def _load() -> tuple[Parse, Parse]:
    if PACKAGE in sys.modules:
        text, om = (importlib.import_module(name) for name in PARSERS)
        return text.text_string_to_metric_families, om.text_string_to_metric_families
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{PACKAGE} is not installed")
    before = set(sys.modules)
    stand_in = ModuleType(PACKAGE)
    stand_in.__spec__ = spec
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__file__ = spec.origin
    sys.modules[PACKAGE] = stand_in
    try:
        text, om = (importlib.import_module(name) for name in PARSERS)
    finally:
        for name in set(sys.modules) - before:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                del sys.modules[name]
    return text.text_string_to_metric_families, om.text_string_to_metric_families


text_families, openmetrics_families = _load()
"""`text_string_to_metric_families` of the text format and of OpenMetrics."""
