"""Structured logs: lowercase messages, fixed keys, logfmt (default) or JSON lines.

Log with the standard library and put the keys in `extra`:
`log.info("listening", extra={"listen": "127.0.0.1:9095", "data_dir": "data"})`
prints `ts=... level=info logger=aggregator.cli msg=listening listen=127.0.0.1:9095 data_dir=data`.
Keys follow CONVENTIONS.md where they apply (`cluster`, `block`, `series`, `query`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """ts, level, logger, msg, the record's extra keys, then err (exception text)."""
    fields: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        fields["err"] = f"{type(exc).__name__}: {exc}"
        if record.levelno >= logging.ERROR:
            fields["trace"] = "".join(traceback.format_exception(exc)).rstrip()
    return fields


class LogfmtFormatter(logging.Formatter):
    """`key=value` pairs; values with spaces, quotes or `=` are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in record_fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), default=str)


def _logfmt_value(value: Any) -> str:
    text = "" if value is None else str(value)
    if text == "" or any(c in text for c in ' "=\n\t\\'):
        return json.dumps(text)
    return text


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Route the root logger to stderr in the chosen format (replacing other handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp logs every request at info on its access logger; we keep metrics instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
