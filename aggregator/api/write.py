"""`POST /api/v1/write`: the remote-write 1.0 and 2.0 receiver.

The Content-Type picks the message: `application/x-protobuf` (or with
`proto=prometheus.WriteRequest`) is 1.0, `proto=io.prometheus.write.v2.Request`
is 2.0 (`remote_write.codec_v2`); any other proto is a 415. A 2.0 answer
carries `X-Prometheus-Remote-Write-Samples-Written`, `-Histograms-Written` and
`-Exemplars-Written` (what was stored), as the 2.0 specification requires,
whatever its status. Both versions go through the same checks, storage and
partial-write answers; a 2.0 series that cannot be read (a bad symbol
reference) is one more rejected series in the report.

Order of checks, cheapest first, nothing written until all pass:
credential (401) -> storage ready (503) -> headers (415) -> size (413, before
reading past the limit; the body must arrive within `server.body_timeout`:
408) -> snappy + protobuf (400 / 413) -> the cluster's ingest rate (429 with
`Retry-After`) -> append + commit.

Answers follow the remote-write contract: 2xx only once the WAL holds the
data; 4xx for data that will never be accepted (the sender drops it) with a
plain-text body naming the series and reasons, the request's good samples
still written; 429 / 5xx for what a retry can fix. Senders log only the
first line of a body, so the first line always says the essential thing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiohttp import web

from aggregator.api.context import AUTH, BACKEND, CONFIG, INGEST_LIMITS, METRICS
from aggregator.api.edge import EDGE, edge_sequence
from aggregator.api.federation import CLUSTERS
from aggregator.api.params import within_body_timeout
from aggregator.api.responses import RETRY_AFTER_S, WRITE_INTERNAL, classify_write
from aggregator.auth import CHALLENGES
from aggregator.errors import UnsupportedMediaType
from remote_write.batch import Rejection, WriteBatch
from remote_write.codec import decode_write_request
from remote_write.codec_v2 import RW2_PROTO, decode_write_request_v2
from remote_write.errors import PayloadTooLarge
from remote_write.symbols import SymbolIds

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
RW1_PROTO = "prometheus.WriteRequest"
MAX_LISTED_REJECTIONS = 20
SAMPLES_WRITTEN = "X-Prometheus-Remote-Write-Samples-Written"
HISTOGRAMS_WRITTEN = "X-Prometheus-Remote-Write-Histograms-Written"
EXEMPLARS_WRITTEN = "X-Prometheus-Remote-Write-Exemplars-Written"

SYMBOL_IDS = web.AppKey("rw2_symbol_ids", SymbolIds)
"""Stable ids of 2.0 requests' strings, so their series keys match across requests."""

_DROPPED_NAMES = {
    "histograms": "native histogram samples",
    "exemplars": "exemplars",
    "exemplar_out_of_order": "out-of-order exemplars",
    "exemplar_labels_too_long": "exemplars with labels over 128 characters",
}
_EXEMPLAR_REFUSALS = ("exemplar_out_of_order", "exemplar_labels_too_long")


async def handle_write(request: web.Request) -> web.Response:
    """Receive one remote-write request; see the module docstring for the answers."""
    try:
        response = await _receive(request)
    except Exception as exc:
        response = _refusal(request, exc)
        if _is_v2(request):
            _written(response, 0, 0, 0)
    if not request.content.at_eof():
        # Refused before reading the body: close the connection rather than drain an
        # unbounded (or undecodable) body; the sender opens a new one.
        response.force_close()
    return response


async def _receive(request: web.Request) -> web.Response:
    """Store the request's samples; raises what WRITE_ERROR_TABLE answers."""
    metrics = request.app[METRICS]
    peercert = request.transport.get_extra_info("peercert") if request.transport else None
    identity = request.app[AUTH].authenticate(request.headers, peercert)
    backend = request.app[BACKEND].get()
    version = _check_headers(request)
    sequence = edge_sequence(request, identity.cluster)
    if sequence is not None and request.app[EDGE].is_duplicate(identity.cluster or "", sequence):
        # An edge agent's retry of a record already stored (its acknowledgement was lost).
        await request.read()
        return web.Response(status=204)
    limits = request.app[CONFIG].limits
    body = await _read_body(request, limits.max_request_bytes)
    cluster_label = identity.cluster or ""
    metrics.bytes_received.labels(cluster_label).inc(len(body))
    refused: list[Rejection] = []
    if version == 2:
        decoded_v2 = decode_write_request_v2(
            body,
            symbol_ids=request.app[SYMBOL_IDS],
            max_decoded_bytes=limits.max_decoded_bytes,
        )
        batch = decoded_v2.batch
        refused = decoded_v2.rejected
        decoded_dropped = decoded_v2.dropped
        decoded_bytes = decoded_v2.decoded_bytes
    else:
        decoded = decode_write_request(body, max_decoded_bytes=limits.max_decoded_bytes)
        batch = decoded.batch
        decoded_dropped = decoded.dropped
        decoded_bytes = decoded.decoded_bytes
    request.app[INGEST_LIMITS].admit(identity.cluster, batch.num_samples)
    metrics.decoded_bytes_received.labels(cluster_label).inc(decoded_bytes)
    metrics.samples_received.labels(cluster_label).inc(batch.num_samples + batch.num_histograms)
    metrics.series_received.labels(cluster_label).inc(len(batch.series))

    appender = backend.appender(cluster=identity.cluster)
    # A DecodeError here comes from a label message decoded only now, for a series
    # storage has not seen: nothing was written or logged.
    result = appender.append(batch)
    await appender.commit()

    registry = request.app.get(CLUSTERS)
    if registry is not None and result.accepted:
        registry.observe_push(identity.cluster, result.accepted, _newest(batch))
    rejected = [*refused, *result.rejected]
    if sequence is not None and not any(r.retryable for r in rejected):
        request.app[EDGE].accepted(cluster_label, sequence)
    metrics.count_rejections(cluster_label, rejected)
    dropped = dict(decoded_dropped)
    for kind, count in result.dropped.items():
        dropped[kind] = dropped.get(kind, 0) + count
    metrics.count_dropped(cluster_label, dropped)
    # Refused exemplars never fail a write (as in Prometheus): counted, not reported.
    not_stored = {k: v for k, v in dropped.items() if k not in _EXEMPLAR_REFUSALS}

    if rejected:
        retryable = any(r.retryable for r in rejected)
        text = rejection_report(rejected, result.accepted, not_stored)
        if retryable:
            response = _text(429, text, retry_after=RETRY_AFTER_S)
        else:
            response = _text(400, text)
    elif not_stored:
        response = _text(
            200, f"wrote {result.accepted} samples; {describe_dropped(not_stored)}: not stored yet"
        )
    else:
        response = web.Response(status=204)
    if version == 2:
        floats = result.accepted - result.histograms_accepted
        _written(response, floats, result.histograms_accepted, result.exemplars)
    return response


def _newest(batch: WriteBatch) -> int:
    """The newest timestamp of the batch's float and histogram samples (it has some)."""
    newest = [int(batch.timestamps.max())] if batch.num_samples else []
    if batch.histograms is not None and len(batch.histograms):
        newest.append(int(batch.histograms.timestamps.max()))
    return max(newest)


def _written(response: web.Response, samples: int, histograms: int, exemplars: int) -> None:
    """The 2.0 answer's counts of what was stored."""
    response.headers[SAMPLES_WRITTEN] = str(samples)
    response.headers[HISTOGRAMS_WRITTEN] = str(histograms)
    response.headers[EXEMPLARS_WRITTEN] = str(exemplars)


def _is_v2(request: web.Request) -> bool:
    try:
        return _check_headers(request) == 2
    except UnsupportedMediaType:
        return False


def _refusal(request: web.Request, exc: Exception) -> web.Response:
    """The answer to an exception, from WRITE_ERROR_TABLE; counted, and logged if unforeseen."""
    refusal = classify_write(exc)
    request.app[METRICS].write_errors.labels(refusal.reason).inc()
    if refusal is WRITE_INTERNAL:
        log.error("remote write not stored", exc_info=exc)
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = str(exc)
        if refusal.status >= 500:
            log.warning("remote write refused", extra={"reason": refusal.reason, "err": message})
    retry_after = getattr(exc, "retry_after_s", None) or refusal.retry_after_s
    response = _text(refusal.status, refusal.prefix + message, retry_after=retry_after)
    if refusal.status == 401:
        for challenge in CHALLENGES:
            response.headers.add("WWW-Authenticate", challenge)
    return response


def rejection_report(
    rejected: Sequence[Rejection], written: int, dropped: Mapping[str, int]
) -> str:
    """The plain-text body of a partly refused write.

    Line 1 is the summary and the first rejection (what a sender's log
    shows); then one line per rejected series, at most MAX_LISTED_REJECTIONS,
    and how many more there were.
    """
    samples = sum(r.samples for r in rejected)
    retryable = [r for r in rejected if r.retryable]
    first = retryable[0] if retryable else rejected[0]
    verb = "refused for now (retry later)" if retryable else "rejected"
    lines = [
        f"{samples} samples of {len(rejected)} series {verb}, {written} samples written; "
        f"{first.message}"
    ]
    for r in rejected[:MAX_LISTED_REJECTIONS]:
        lines.append(f"- {r.reason}: {r.message} ({r.samples} samples)")
    if len(rejected) > MAX_LISTED_REJECTIONS:
        lines.append(f"... and {len(rejected) - MAX_LISTED_REJECTIONS} more rejected series")
    if dropped:
        lines.append(f"{describe_dropped(dropped)}: not stored yet")
    return "\n".join(lines)


def describe_dropped(dropped: Mapping[str, int]) -> str:
    """`dropped 3 native histogram samples and 2 exemplars`."""
    parts = [f"{count} {_DROPPED_NAMES.get(kind, kind)}" for kind, count in sorted(dropped.items())]
    return "dropped " + " and ".join(parts)


def _check_headers(request: web.Request) -> int:
    """The remote-write version the headers announce: 1 or 2 (raises UnsupportedMediaType).

    Lenient like Prometheus: absent headers mean remote write 1.0, and a
    generic `application/octet-stream` (what HTTP libraries send for bytes)
    is taken as protobuf; only a different format or message is refused.
    """
    version = 1
    content_type = request.headers.get("Content-Type", "").strip()
    if content_type:
        media, *params = (p.strip() for p in content_type.split(";"))
        if media.lower() not in (PROTOBUF, "application/octet-stream"):
            raise UnsupportedMediaType(
                f"unsupported Content-Type {content_type!r}: remote write sends {PROTOBUF}"
            )
        for param in params:
            key, sep, value = param.partition("=")
            if not sep or key.strip().lower() != "proto":
                continue
            proto = value.strip('" ')
            if proto == RW2_PROTO:
                version = 2
            elif proto != RW1_PROTO:
                raise UnsupportedMediaType(
                    f"unsupported remote-write message {value.strip()!r}: this server accepts "
                    f"{RW1_PROTO} (remote write 1.0) and {RW2_PROTO} (remote write 2.0)"
                )
    encoding = request.headers.get("Content-Encoding", "").strip()
    if encoding and encoding.lower() != "snappy":
        raise UnsupportedMediaType(
            f"{encoding} encoding (compression) is not accepted; only snappy is"
        )
    return version


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body; PayloadTooLarge as soon as it is known to exceed `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request, limit)
    return await within_body_timeout(request, _read_limited(request, limit))


async def _read_limited(request: web.Request, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(request, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(request: web.Request, limit: int) -> PayloadTooLarge:
    length = request.content_length
    return PayloadTooLarge(
        f"request body exceeds the limit of {limit} bytes"
        + (f" (Content-Length: {length})" if length else "")
    )


def _text(status: int, text: str, *, retry_after: int | None = None) -> web.Response:
    response = web.Response(status=status, text=text + "\n")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
