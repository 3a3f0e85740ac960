"""Storage settings, as the config file's `storage:` and `limits:` sections set them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from remote_write.symbols import SymbolIds
from remote_write.validate import SeriesLimits
from storage.objstore.config import ObjectStoreConfig

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
YEAR_MS = 365 * DAY_MS


class FsyncPolicy(enum.Enum):
    """When the WAL is fsynced, and so what an acknowledged write survives.

    - BATCH (default): one fsync per batch of concurrent requests, before any
      of them is acknowledged. Survives a process crash and a power loss.
    - ALWAYS: one fsync per request. Same guarantee, more fsyncs.
    - INTERVAL: written to the OS before the acknowledgement, fsynced every
      `wal_fsync_interval_ms`. Survives a process crash (SIGKILL); a power
      loss or kernel crash can lose the last interval.
    - NEVER: written to the OS, fsynced only at segment rotation and close.
      Survives a process crash only.
    """

    BATCH = "batch"
    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """Everything the storage layer is configured with (defaults = embedded default)."""

    retention_ms: int = 24 * HOUR_MS
    """Head keeps samples this much older than its newest sample, then drops them."""
    out_of_order_window_ms: int = 10 * 60_000
    """Samples up to this much older than a series' newest sample are still accepted."""
    max_future_ms: int = 10 * 60_000
    """Samples more than this ahead of the wall clock are rejected."""
    series_limits: SeriesLimits = field(default_factory=SeriesLimits)
    max_series_per_cluster: int = 1_000_000
    """Active-series limit per cluster label value (0: none); past it, new series get 429."""
    wal_fsync: FsyncPolicy = FsyncPolicy.BATCH
    wal_fsync_interval_ms: int = 1_000
    wal_segment_bytes: int = 64 * 1024 * 1024
    on_wal_fsync: Callable[[float], None] | None = field(default=None, compare=False)
    """Called with the duration in seconds of every WAL fsync (self-metrics)."""
    head_buffer_rows: int = 1 << 16
    """Samples the head collects unsorted before sealing them into a sorted part."""
    partition_ms: int = 0
    """Width of the head's time partitions; 0: derived from retention."""
    late_window_ms: int = 0
    """Samples up to this much older than the newest sample are accepted even when older
    than their series' out-of-order window (late arrivals); 0: no late arrivals."""
    tiering: TieringOptions = field(default_factory=lambda: TieringOptions())
    max_exemplars: int = 100_000
    """Exemplars the head keeps, newest first, over all series (0: none are kept)."""
    symbol_ids: SymbolIds | None = field(default=None, compare=False)
    """Ids of remote write 2.0 strings for WAL replay; the live receiver's, so that
    series keys of replayed 2.0 records are the ones its next requests bring."""


@dataclass(frozen=True, slots=True)
class TieringOptions:
    """Blocks in the object store: when they are cut, compacted, downsampled, deleted."""

    object_store: ObjectStoreConfig = field(default_factory=ObjectStoreConfig)
    block_duration_ms: int = 2 * HOUR_MS
    """The head's closed ranges of this length become blocks (a divisor of a day)."""
    object_store_retention_ms: int = 2 * YEAR_MS
    """Blocks whose newest sample is older than this (behind the newest sample) are deleted."""
    compaction_range_ms: int = DAY_MS
    """Blocks of a complete range of this length (day-aligned) are merged into one."""
    downsample_after_ms: tuple[tuple[int, int], ...] = (
        (5 * 60_000, 40 * HOUR_MS),
        (HOUR_MS, 10 * DAY_MS),
    )
    """(resolution, age): compacted blocks older than `age` get a copy at `resolution`
    (Thanos's defaults: 5m after 40h, 1h after 10 days)."""
    block_cache_bytes: int = 1 << 30
    """Memory for blocks' data queries read: a quarter for column chunks and series tables
    as fetched, the rest for row groups decoded into arrays."""
    upload_retry_ms: tuple[int, int] = (1_000, 60_000)
    """First and longest wait between attempts of a failing upload (doubling)."""
    late_cut_interval_ms: int | None = None
    """Late samples in ranges cut before are cut into late blocks at most this often (or
    with the next regular cut); None: a quarter of the block duration, up to 15 minutes."""
    compaction_interval_ms: int = 5 * 60_000
    """How often compaction, downsampling and retention look for work (also after every
    upload); 0: never by themselves (tests call `Tiering.maintain`)."""
