"""Wording of ingest rejections: what a sender's log shows, so it names everything.

Each message names the series, the reason and the offending timestamp (as
RFC 3339 and as the raw milliseconds a sender can grep for).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime

from remote_write.batch import STALE_NAN_BITS


def format_ts(ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision when needed, e.g. 2023-11-14T22:13:20Z."""
    try:
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ms}ms"
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def format_duration(ms: int) -> str:
    """Go's time.Duration form at millisecond precision: 15m0s, 1h0m0s, 1.5s, 250ms."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    sec = f"{seconds}.{millis:03d}".rstrip("0") if millis else str(seconds)
    if hours:
        return f"{sign}{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{sign}{minutes}m{sec}s"
    return f"{sign}{sec}s"


def format_value(bits: int) -> str:
    """A sample value as Prometheus prints it; the stale marker by name."""
    if bits == STALE_NAN_BITS:
        return "stale marker"
    value = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _at(ts: int) -> str:
    return f"{format_ts(ts)} ({ts})"


def too_far_in_future(series: str, ts: int, now_ms: int, max_future_ms: int, count: int) -> str:
    return (
        f"sample too far in the future: timestamp {_at(ts)} is "
        f"{format_duration(ts - now_ms)} ahead of the server clock {format_ts(now_ms)}, "
        f"more than the allowed {format_duration(max_future_ms)}, in series {series}" + _more(count)
    )


def too_old(series: str, ts: int, boundary: int, count: int, late_window_ms: int = 0) -> str:
    if late_window_ms:
        return (
            f"sample too old: timestamp {_at(ts)} is before the late-arrival boundary "
            f"{_at(boundary)} (storage.late_window of {format_duration(late_window_ms)} "
            f"behind the newest sample), in series {series}" + _more(count)
        )
    return (
        f"sample too old: timestamp {_at(ts)} is before the retention boundary "
        f"{_at(boundary)} of the head, in series {series}" + _more(count)
    )


def out_of_order(series: str, ts: int, newest: int, window_ms: int, count: int) -> str:
    return (
        f"out of order sample: timestamp {_at(ts)} is {format_duration(newest - ts)} older "
        f"than the newest sample of series {series} ({format_ts(newest)}), more than the "
        f"out-of-order window of {format_duration(window_ms)}" + _more(count)
    )


def duplicate(series: str, ts: int, new_bits: int, old_bits: int, count: int) -> str:
    return (
        f"duplicate sample for timestamp {_at(ts)}: value {format_value(new_bits)} differs "
        f"from the value {format_value(old_bits)} already stored for series {series}" + _more(count)
    )


def series_limit(series: str, cluster: str, limit: int, refused: int) -> str:
    who = f"cluster {cluster!r}" if cluster else "series without a cluster label"
    return (
        f"series limit reached: {who} has the maximum of {limit} active series; "
        f"{refused} new series in this request were refused, among them {series}; "
        "retry later or raise the limit"
    )


def _more(count: int) -> str:
    return f" ({count} samples of this series rejected for this reason)" if count > 1 else ""
