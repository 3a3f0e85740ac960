"""Tiering's numbers: totals since start, the snapshot self-metrics read, blocks as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.blocks.meta import BlockMeta
from storage.objstore.instrumented import OperationStats


@dataclass(frozen=True, slots=True)
class TieringMetrics:
    """A snapshot for self-metrics: backlog, blocks, totals, object-store operations."""

    pending_blocks: int
    pending_bytes: int
    pending_samples: int
    oldest_pending_s: float
    blocks: int
    block_bytes: int
    stats: TieringStats
    operations: dict[str, OperationStats]
    cache_bytes: int
    cache_hits: int
    cache_misses: int


@dataclass(slots=True)
class TieringStats:
    """Totals since start, read by self-metrics at scrape time."""

    blocks_cut: int = 0
    blocks_uploaded: int = 0
    bytes_uploaded: int = 0
    upload_failures: int = 0
    compactions: int = 0
    downsamples: int = 0
    blocks_deleted: int = 0
    maintenance_failures: int = 0
    last_error: str | None = None


def block_json(meta: BlockMeta, loaded: bool | None = None) -> dict[str, Any]:
    """A block as `/api/v1/status/blocks` lists it."""
    return {
        "id": meta.id,
        "minTime": meta.min_time,
        "maxTime": meta.max_time,
        "resolution": meta.resolution_ms,
        "kind": meta.kind,
        "series": meta.series,
        "samples": meta.samples,
        "bytes": meta.size,
        "clusters": list(meta.clusters),
        "sources": list(meta.sources),
        **({} if loaded is None else {"metadataLoaded": loaded}),
    }
