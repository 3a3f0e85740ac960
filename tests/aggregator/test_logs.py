"""Structured log lines: fixed keys, the record's extra keys, quoting."""

from __future__ import annotations

import json
import logging

from aggregator.logs import JsonFormatter, LogfmtFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("aggregator.test", logging.INFO, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_logfmt_line() -> None:
    line = LogfmtFormatter().format(
        record("listening", listen="127.0.0.1:9095", data_dir="/var/lib/my data")
    )
    keys = [part.split("=", 1)[0] for part in line.split(" ") if "=" in part]
    assert keys[:4] == ["ts", "level", "logger", "msg"]
    assert " level=info logger=aggregator.test msg=listening listen=127.0.0.1:9095 " in line
    assert line.endswith('data_dir="/var/lib/my data"')


def test_json_line_with_exception() -> None:
    try:
        raise OSError("disk full")
    except OSError as exc:
        rec = record("storage failed to open", data_dir="d")
        rec.exc_info = (type(exc), exc, exc.__traceback__)
        rec.levelno, rec.levelname = logging.ERROR, "ERROR"
    fields = json.loads(JsonFormatter().format(rec))
    assert fields["msg"] == "storage failed to open"
    assert fields["level"] == "error"
    assert fields["data_dir"] == "d"
    assert fields["err"] == "OSError: disk full"
    assert "Traceback" in fields["trace"]
