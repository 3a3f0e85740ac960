"""Scraping: one loop per target, parsed with prometheus-client, stored in the window.

Each scrape adds its samples plus Prometheus's synthetic series (`up`,
`scrape_duration_seconds`, `scrape_samples_scraped`) with the target's
`job` and `instance` labels. A series a target stopped exposing, or every
series of a target that went down, gets a staleness marker, as in
Prometheus, so rules stop seeing it at once instead of after the lookback.
Scraped labels that clash with target labels are kept as `exported_<name>`
(`honor_labels: false`); timestamps in the exposition are honoured.

Parsing goes through prometheus-client's parsers (text format 0.0.4 and
OpenMetrics, chosen by the Content-Type the target answers with; loaded
without the rest of the client by `aggregator.edge.promparse`): pure
Python, one object per sample, which is what an edge target's few thousand
series cost at a 15 s interval (see bench/edge.py for the CPU it takes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from aggregator.edge.http import Client, HTTPError
from aggregator.edge.promparse import openmetrics_families, text_families
from aggregator.edge.window import Window
from remote_write.batch import STALE_NAN
from storage.labels import METRIC_NAME, Labels

log = logging.getLogger(__name__)

ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to scrape and the labels its series get."""

    job: str
    url: str
    labels: tuple[tuple[str, str], ...]  # job, instance and the configured/discovered labels
    interval_ms: int
    timeout_ms: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.job, self.url)


def parse_exposition(
    text: str, content_type: str
) -> Iterable[tuple[str, dict[str, str], float, float | None]]:
    """(name, labels, value, timestamp seconds or None) of every sample in a scrape body."""
    if content_type.startswith("application/openmetrics-text"):
        for family in openmetrics_families(text):
            for s in family.samples:
                ts = s.timestamp
                yield s.name, s.labels, s.value, (_seconds(ts) if ts is not None else None)
        return
    for family in text_families(text):
        for s in family.samples:
            yield (
                s.name,
                s.labels,
                s.value,
                (_seconds(s.timestamp) if s.timestamp is not None else None),
            )


def _seconds(ts: object) -> float:
    """An OpenMetrics timestamp (prometheus-client's Timestamp, or a float) in seconds."""
    if hasattr(ts, "sec") and hasattr(ts, "nsec"):
        return float(ts.sec) + float(ts.nsec) / 1e9
    return float(ts)  # type: ignore[arg-type]


class ScrapeLoop:
    """Scrapes one target every interval until stopped."""

    def __init__(
        self,
        target: Target,
        window: Window,
        session: Client,
        on_scrape: Callable[[Target, int, int], None] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.target = target
        self.window = window
        self.session = session
        self.clock = clock
        self.on_scrape = on_scrape
        self._previous: set[Labels] = set()
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], Labels] = {}
        self._target_names = {k for k, _ in target.labels}
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"scrape-{self.target.url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # The target is gone: its series end now.
        self._mark_stale(self._previous, int(self.clock() * 1000))
        self._previous = set()

    async def _run(self) -> None:
        interval = self.target.interval_ms / 1000
        # Spread targets over the interval, as Prometheus does (by a hash of the URL).
        offset = (hash(self.target.url) % 1000) / 1000 * interval
        await asyncio.sleep(offset)
        while True:
            started = time.monotonic()
            try:
                await self.scrape_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the loop
                log.exception("scrape crashed", extra={"target": self.target.url})
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def scrape_once(self) -> int:
        """One scrape: returns the number of samples stored (0 when the target is down)."""
        now_ms = int(self.clock() * 1000)
        started = time.monotonic()
        try:
            resp = await self.session.request(
                "GET",
                self.target.url,
                headers={"Accept": ACCEPT},
                timeout_s=self.target.timeout_ms / 1000,
            )
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            content_type = resp.headers.get("content-type", "text/plain")
            labels, values, stamps = self._samples(resp.text(), content_type, now_ms)
        except (HTTPError, TimeoutError, ValueError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            self._store([], np.zeros(0), np.zeros(0, np.int64), now_ms, started, up=False)
            return 0
        self.last_error = None
        self._store(labels, values, stamps, now_ms, started, up=True)
        return len(labels)

    def _samples(
        self, body: str, content_type: str, now_ms: int
    ) -> tuple[list[Labels], np.ndarray, np.ndarray]:
        labels: list[Labels] = []
        values: list[float] = []
        stamps: list[int] = []
        cache = self._cache
        for name, raw, value, ts in parse_exposition(body, content_type):
            key = (name, tuple(raw.items()))
            lbl = cache.get(key)
            if lbl is None:
                lbl = cache[key] = self._labels_of(name, raw)
            labels.append(lbl)
            values.append(value)
            stamps.append(now_ms if ts is None else int(ts * 1000))
        if len(cache) > 4 * max(len(labels), 1000):
            cache.clear()
        return labels, np.asarray(values, np.float64), np.asarray(stamps, np.int64)

    def _labels_of(self, name: str, raw: dict[str, str]) -> Labels:
        pairs = {METRIC_NAME: name}
        for k, v in raw.items():
            if not v:
                continue
            pairs[f"exported_{k}" if k in self._target_names else k] = v
        pairs.update(self.target.labels)
        return Labels.from_dict(pairs)

    def _store(
        self,
        labels: list[Labels],
        values: np.ndarray,
        stamps: np.ndarray,
        now_ms: int,
        started: float,
        *,
        up: bool,
    ) -> None:
        current = set(labels)
        gone = self._previous - current
        self._previous = current
        base = self.target.labels
        synthetic = [
            Labels.from_pairs([(METRIC_NAME, "up"), *base]),
            Labels.from_pairs([(METRIC_NAME, "scrape_duration_seconds"), *base]),
            Labels.from_pairs([(METRIC_NAME, "scrape_samples_scraped"), *base]),
        ]
        self.window.append(
            labels + synthetic,
            np.concatenate([stamps, np.full(3, now_ms, np.int64)]),
            np.concatenate(
                [values, [1.0 if up else 0.0, time.monotonic() - started, float(len(labels))]]
            ),
        )
        self._mark_stale(gone, now_ms)
        self.window.truncate(now_ms)
        if self.on_scrape is not None:
            self.on_scrape(self.target, len(labels), now_ms)

    def _mark_stale(self, series: Iterable[Labels], now_ms: int) -> None:
        gone = list(series)
        if gone:
            self.window.append(gone, now_ms, np.full(len(gone), STALE_NAN))


class ScrapeManager:
    """The running scrape loops: adds and stops loops as the target set changes."""

    def __init__(
        self,
        window: Window,
        session: Client,
        on_scrape: Callable[[Target, int, int], None] | None = None,
    ) -> None:
        self.window = window
        self.session = session
        self.on_scrape = on_scrape
        self.loops: dict[tuple[str, str], ScrapeLoop] = {}
        self._sources: dict[str, list[Target]] = {}

    async def set_targets(self, source: str, targets: list[Target]) -> None:
        """Replace the targets one source (a job's static or discovered set) provides."""
        self._sources[source] = targets
        wanted = {t.key: t for ts in self._sources.values() for t in ts}
        for key in [k for k in self.loops if k not in wanted or wanted[k] != self.loops[k].target]:
            await self.loops.pop(key).stop()
        for key, target in wanted.items():
            if key not in self.loops:
                loop = ScrapeLoop(target, self.window, self.session, self.on_scrape)
                self.loops[key] = loop
                loop.start()

    async def stop(self) -> None:
        for loop in self.loops.values():
            await loop.stop()
        self.loops.clear()
