"""Everything the agent says to the host over HTTP: forwarded data, alerts, rule sync, status.

- `QueueOutbox` batches forwarded samples for `flush_interval` and writes
  each batch as one snappy remote-write body to the disk queue; alerts go to
  the queue as they come, after the samples batched before them, so the host
  sees everything in the order the agent produced it.
- `Sender` delivers the queue head first, and removes a record only once the
  host answered 2xx. 5xx, 429 and connection failures are retried with
  backoff (up to 30 s) for ever, and so are 401, 403 and 404 (a wrong token or
  an older host: fixable without losing the data); any other 4xx means the
  host will never take the record, so it is dropped, logged and counted. Every request carries
  `X-Edge-Sequence`: the host ignores a sequence it already has, so a retry
  after a lost acknowledgement doubles nothing.
- `RuleSync` long-polls `GET /api/v1/edge/rules` with the ETag it holds,
  loads what comes, and reports to `POST /api/v1/edge/status` which version
  it runs and what it could not load.

All requests authenticate with the cluster token (`Authorization: Bearer`); the
edge endpoints also get `?cluster=`, which only a host with open writes (no
push clusters, hence no tokens) uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson

from aggregator.edge.diskqueue import DiskQueue
from aggregator.edge.evaluator import EdgeRules
from aggregator.edge.http import Client, HTTPError
from alerting.types import Alert
from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from storage.labels import Labels

log = logging.getLogger(__name__)

SEQUENCE_HEADER = "X-Edge-Sequence"
MAX_BACKOFF_S = 30.0
LONG_POLL_S = 30.0


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at_ms": alert.starts_at_ms,
        "ends_at_ms": alert.ends_at_ms,
        "generator_url": alert.generator_url,
        "resolved": alert.resolved,
    }


class QueueOutbox:
    """Batches forwarded samples; writes them, and alerts, to the disk queue in order."""

    def __init__(self, queue: DiskQueue, flush_interval_ms: int, max_samples: int = 20_000):
        self.queue = queue
        self.flush_interval_ms = flush_interval_ms
        self.max_samples = max_samples
        self._labels: list[Labels] = []
        self._ts: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._pending = 0
        self.samples_enqueued = 0
        self.alerts_enqueued = 0

    def samples(self, labels: Sequence[Labels], ts: np.ndarray, values: np.ndarray) -> None:
        if not len(labels):
            return
        self._labels.extend(labels)
        self._ts.append(np.asarray(ts, np.int64))
        self._values.append(np.asarray(values, np.float64))
        self._pending += len(labels)
        if self._pending >= self.max_samples:
            self.flush()

    def alerts(self, alerts: Sequence[Alert]) -> None:
        self.flush()
        body = orjson.dumps([alert_json(a) for a in alerts])
        self.queue.put("alerts", body)
        self.alerts_enqueued += len(alerts)

    def flush(self) -> None:
        """One remote-write record of everything batched (series grouped, time ordered)."""
        if not self._pending:
            return
        ids: dict[Labels, int] = {}
        idx = np.fromiter(
            (ids.setdefault(lbl, len(ids)) for lbl in self._labels), np.int32, len(self._labels)
        )
        ts = np.concatenate(self._ts)
        vals = np.concatenate(self._values)
        order = np.lexsort((ts, idx))
        batch = WriteBatch(
            series=[tuple(lbl) for lbl in ids],
            series_idx=idx[order],
            timestamps=ts[order],
            values=vals[order],
        )
        self.queue.put("write", encode_write_request(batch))
        self.samples_enqueued += self._pending
        self._labels, self._ts, self._values, self._pending = [], [], [], 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_ms / 1000)
            self.flush()


class Sender:
    """Drains the disk queue to the host, in order (see the module docstring)."""

    def __init__(
        self,
        queue: DiskQueue,
        session: Client,
        host: str,
        token: str,
        cluster: str = "",
    ) -> None:
        self.queue = queue
        self.cluster = cluster
        self.session = session
        self.host = host.rstrip("/")
        self.token = token
        self.sent_bytes = 0
        self.sent_records = 0
        self.rejected_records = 0
        self.failures = 0
        self.connected = False

    async def run(self) -> None:
        backoff = 0.5
        while True:
            await self.queue.wait()
            record = self.queue.peek()
            if record is None:
                continue
            try:
                body = self.queue.read(record)
            except FileNotFoundError:  # dropped by the size bound meanwhile
                self.queue.ack(record)
                continue
            outcome = await self._send(record.seq, record.kind, body)
            if outcome == "retry":
                self.failures += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            if outcome == "rejected":
                self.rejected_records += 1
            else:
                self.sent_records += 1
                self.sent_bytes += len(body)
            self.queue.ack(record)

    async def _send(self, seq: int, kind: str, body: bytes) -> str:
        headers = {"Authorization": f"Bearer {self.token}", SEQUENCE_HEADER: str(seq)}
        if kind == "write":
            url = f"{self.host}/api/v1/write"
            headers.update(
                {
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0",
                }
            )
        else:
            url = f"{self.host}/api/v1/edge/alerts?{urlencode({'cluster': self.cluster})}"
            headers["Content-Type"] = "application/json"
        try:
            resp = await self.session.request("POST", url, body=body, headers=headers, timeout_s=30)
            text, status = resp.text(), resp.status
        except (HTTPError, TimeoutError) as exc:
            if self.connected:
                log.warning(
                    "host unreachable, queueing", extra={"err": str(exc) or type(exc).__name__}
                )
            self.connected = False
            return "retry"
        self.connected = True
        if status < 300:
            return "sent"
        if status == 429 or status >= 500:
            return "retry"
        if status in (401, 403, 404):
            # The token or the host's version is wrong: fixable there, so keep the data
            # (the queue's bound still applies) and say so loudly.
            log.error(
                "host refused the agent, retrying",
                extra={"status": status, "kind": kind, "err": text.splitlines()[:1]},
            )
            return "retry"
        log.error(
            "host rejected a record, dropping it",
            extra={"seq": seq, "kind": kind, "status": status, "err": text.splitlines()[:1]},
        )
        return "rejected"


class RuleSync:
    """Keeps the rule set in step with the host (long poll, ETag) and reports back."""

    def __init__(
        self,
        rules: EdgeRules,
        session: Client,
        host: str,
        token: str,
        cluster: str = "",
    ) -> None:
        self.rules = rules
        self.cluster = cluster
        self.session = session
        self.host = host.rstrip("/")
        self.token = token
        self.etag: str | None = None
        self.loads = 0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self.poll_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("rule sync failed", extra={"err": str(exc) or type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def poll_once(self, wait_s: float = LONG_POLL_S) -> bool:
        """One long poll; returns whether a new rule set was loaded."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        resp = await self.session.request(
            "GET",
            f"{self.host}/api/v1/edge/rules",
            params={"wait": f"{int(wait_s * 1000)}ms", "cluster": self.cluster},
            headers=headers,
            timeout_s=wait_s + 30,
        )
        if resp.status == 304:
            return False
        if resp.status != 200:
            raise RuntimeError(f"GET /api/v1/edge/rules: HTTP {resp.status}: {resp.body[:200]!r}")
        etag = resp.headers.get("etag")
        groups = resp.json()["data"]["groups"]
        problems = self.rules.load(groups)
        self.etag = etag
        self.loads += 1
        log.info("edge rules loaded", extra={"etag": etag, "groups": len(self.rules.groups)})
        await self.report(problems)
        return True

    async def report(self, problems: list[str] | None = None) -> None:
        """Tell the host which rule version runs, what did not load, and rule health."""
        body = {
            "rules_etag": self.etag,
            "errors": self.rules.load_errors if problems is None else problems,
            "groups": len(self.rules.groups),
            "rules": self.rules.status(),
            "time_ms": int(time.time() * 1000),
        }
        await self.session.request(
            "POST",
            f"{self.host}/api/v1/edge/status",
            params={"cluster": self.cluster},
            body=orjson.dumps(body),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout_s=30,
        )

    async def report_loop(self, every_s: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.report()
            except (HTTPError, TimeoutError):
                pass
