"""The Prometheus API envelope and the tables mapping exceptions to HTTP.

Success: `{"status":"success","data":...}` plus `warnings` / `infos` when
there are any. Error: `{"status":"error","errorType":...,"error":...}` with
the status code of the error type. Every exception a query-API handler lets
out is translated here, once, by `error_response` (`ERROR_TABLE`); anything not
in the table is an `internal` error (500) and is logged with its traceback,
because it is a bug.

Remote write answers senders in plain text, and its status codes carry the
protocol's contract (4xx: drop the data; 429 / 5xx: retry), so its exceptions
have their own table beside the first, `WRITE_ERROR_TABLE`, read by
`classify_write`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aggregator.api.promjson import go_json
from aggregator.errors import (
    BadData,
    Forbidden,
    NotReady,
    Overloaded,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from promql import errors as qerr
from remote_write import errors as rwerr
from storage import errors as serr
from storage.annotations import Annotations
from storage.labels import InvalidRegex

log = logging.getLogger(__name__)

JSON = "application/json"

ERROR_TABLE: dict[type[BaseException], tuple[str, int]] = {
    BadData: ("bad_data", 400),
    qerr.ParseError: ("bad_data", 400),
    InvalidRegex: ("bad_data", 400),
    qerr.QueryTimeout: ("timeout", 503),
    qerr.QueryCanceled: ("canceled", 499),
    qerr.TooManySamples: ("execution", 422),
    qerr.ExecutionError: ("execution", 422),
    qerr.StorageUnavailable: ("unavailable", 503),
    serr.StorageUnavailable: ("unavailable", 503),
    NotReady: ("unavailable", 503),
    Overloaded: ("unavailable", 503),
    serr.MemoryLimitExceeded: ("execution", 422),
    serr.MemoryBusy: ("unavailable", 503),
    Unauthorized: ("unauthorized", 401),
    Forbidden: ("forbidden", 403),
    RequestTimeout: ("bad_data", 408),
}
"""Exception class -> (errorType, HTTP status); subclasses inherit their base's entry.

An exception with a `retry_after_s` attribute also sets `Retry-After`."""

INTERNAL = ("internal", 500)

RETRY_AFTER_S = 10
"""Seconds a remote-write sender is asked to wait before retrying."""


@dataclass(frozen=True, slots=True)
class WriteRefusal:
    """How remote write answers an exception: status, metric reason, `Retry-After`."""

    status: int
    reason: str
    """The `reason` label of the write-errors self-metric."""
    retry_after_s: int | None = None
    prefix: str = ""
    """Put before the exception's message in the body (the sender logs its first line)."""


WRITE_ERROR_TABLE: dict[type[BaseException], WriteRefusal] = {
    Unauthorized: WriteRefusal(401, "unauthorized", prefix="unauthorized: "),
    UnsupportedMediaType: WriteRefusal(415, "unsupported_media_type"),
    rwerr.PayloadTooLarge: WriteRefusal(413, "too_large"),
    rwerr.DecodeError: WriteRefusal(400, "decode"),
    NotReady: WriteRefusal(503, "not_ready", retry_after_s=5),
    RateLimited: WriteRefusal(429, "rate_limited"),
    RequestTimeout: WriteRefusal(408, "body_timeout"),
    serr.StorageUnavailable: WriteRefusal(
        503, "storage_unavailable", RETRY_AFTER_S, prefix="storage unavailable: "
    ),
}
"""Exception class -> remote-write answer; subclasses inherit their base's entry.

Per-series refusals are not exceptions (see `storage.errors`): a request with
rejected series is answered 429 if any refusal is retryable, else 400."""

WRITE_INTERNAL = WriteRefusal(500, "internal", prefix="internal error: ")
"""Anything else: a bug or an unforeseen failure, logged with its traceback."""

_SUCCESS_HEAD = b'{"status":"success","data":'
STREAM_FROM_BYTES = 1 << 16
"""Bodies from this size on are written piece by piece (`send_success`)."""


def classify(exc: BaseException) -> tuple[str, int]:
    """(errorType, status) of an exception, by the nearest class in ERROR_TABLE."""
    for cls in type(exc).__mro__:
        hit = ERROR_TABLE.get(cls)
        if hit is not None:
            return hit
    return INTERNAL


def classify_write(exc: BaseException) -> WriteRefusal:
    """The remote-write answer to an exception, by the nearest class in WRITE_ERROR_TABLE."""
    for cls in type(exc).__mro__:
        hit = WRITE_ERROR_TABLE.get(cls)
        if hit is not None:
            return hit
    return WRITE_INTERNAL


def success(data: Any, warnings: Annotations | Iterable[str] | None = None) -> web.Response:
    """A success envelope around `data` (anything orjson can encode)."""
    return success_raw(go_json(data), warnings)


def success_raw(
    data_json: bytes | memoryview, warnings: Annotations | Iterable[str] | None = None
) -> web.Response:
    """A success envelope around `data` that is already JSON."""
    tail = _annotations_json(warnings)
    body = b"".join((_SUCCESS_HEAD, data_json, tail, b"}"))
    return web.Response(body=body, content_type=JSON)


async def send_success(
    request: web.Request,
    data_json: bytes | memoryview,
    warnings: Annotations | Iterable[str] | None = None,
) -> web.StreamResponse:
    """Send a success envelope around `data` that is already JSON (the query hot path).

    A big body (a range query answer runs to megabytes) goes out as written,
    without gluing envelope and data into one more copy: aiohttp would join
    headers and body into yet another, and asyncio copies whatever the socket
    does not take at once. Here the headers leave with the envelope's head,
    and the data is handed to the transport as is.
    """
    tail = _annotations_json(warnings) + b"}"
    size = len(_SUCCESS_HEAD) + len(data_json) + len(tail)
    if size < STREAM_FROM_BYTES:
        return success_raw(data_json, warnings)
    response = web.StreamResponse()
    response.content_type = JSON
    response.content_length = size
    await response.prepare(request)
    try:
        await response.write(_SUCCESS_HEAD)
        await response.write(data_json)
        await response.write(tail)
        await response.write_eof()
    except ConnectionError:  # the client went away mid-answer: nobody left to tell
        log.debug("client gone while sending", extra={"bytes": size})
    return response


def error(error_type: str, status: int, message: str) -> web.Response:
    """An error envelope."""
    body = go_json({"status": "error", "errorType": error_type, "error": message})
    return web.Response(body=body, status=status, content_type=JSON)


def error_response(exc: BaseException, *, handler: str = "") -> web.Response:
    """The error envelope for an exception a handler raised (logs internal ones)."""
    error_type, status = classify(exc)
    if (error_type, status) == INTERNAL:
        log.error("internal error", exc_info=exc, extra={"handler": handler})
        message = f"internal error: {type(exc).__name__}: {exc}"
    else:
        message = str(exc)
    response = error(error_type, status, message)
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


def _annotations_json(warnings: Annotations | Iterable[str] | None) -> bytes:
    if not warnings:
        return b""
    if isinstance(warnings, Annotations):
        out = b""
        if warnings.warnings:
            out += b',"warnings":' + go_json(warnings.warning_list())
        if warnings.infos:
            out += b',"infos":' + go_json(warnings.info_list())
        return out
    listed = list(warnings)
    return b',"warnings":' + go_json(listed) if listed else b""
