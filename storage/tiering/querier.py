"""The head and the blocks below it as one Querier (what federation merges as its primary).

A select asks both and merges the answers with `combine`: normally the head
holds only what is not in a block yet, so the pieces of a series meet end
to end; where they overlap (a block re-cut after a restart, a retried sample
that reached the head again) each timestamp is kept once, the block's
sample first, as the earlier write.

On a scale-out's query tier a third source joins: other writers' blocks
(`shared.SharedQuerier`, the shards' prefixes), read the same way, between
the own blocks and the head; `horizons` passes on how far they reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.annotations import Annotations
from storage.blocks.cache import ReadCost
from storage.blocks.querier import BlockQuerier
from storage.blocks.resolution import Resolution
from storage.combine import combine
from storage.errors import SampleLimitExceeded
from storage.head.querier import HeadQuerier
from storage.interfaces import LabelResult, SelectHints, SeriesSet
from storage.labels import Matcher

if TYPE_CHECKING:
    from storage.tiering.shared import SharedQuerier


@dataclass(slots=True)
class ReadOptions:
    """Per-query settings of block reads: what may be spent, which resolution may answer."""

    cost: ReadCost = field(default_factory=ReadCost)
    resolution: Resolution = field(default_factory=Resolution)
    blocks_after_ms: int | None = None
    """Leave out block samples at or before this time: the caller (a scale-out's query
    tier) reads this service's blocks itself up to there; the head still answers all."""


class TieredQuerier:
    """Head plus blocks for one query; `warning` is added to every answer (store not loaded)."""

    def __init__(
        self,
        head: HeadQuerier,
        blocks: BlockQuerier,
        *,
        warning: str | None = None,
        shared: SharedQuerier | None = None,
        blocks_after_ms: int | None = None,
    ) -> None:
        self.head = head
        self.blocks = blocks
        self.warning = warning
        self.shared = shared
        self.blocks_after_ms = blocks_after_ms

    @property
    def horizons(self) -> Mapping[str, int]:
        """Per read-only prefix, the newest sample time this query's blocks there hold."""
        return self.shared.horizons if self.shared is not None else {}

    def _warnings(self, parts: Sequence[LabelResult] = ()) -> Annotations:
        out = Annotations()
        if self.warning:
            out.warn(self.warning)
        for p in parts:
            out.merge(p.warnings)
        return out

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        blocks_start = start_ms
        if self.blocks_after_ms is not None:
            blocks_start = max(start_ms, self.blocks_after_ms + 1)
        if self.shared is None:
            from_blocks, from_head = await asyncio.gather(
                self.blocks.select(matchers, blocks_start, end_ms, hints=hints),
                self.head.select(matchers, start_ms, end_ms, hints=hints),
            )
            out = combine([from_blocks, from_head])
        else:
            from_blocks, from_shared, from_head = await asyncio.gather(
                self.blocks.select(matchers, blocks_start, end_ms, hints=hints),
                self.shared.select(matchers, start_ms, end_ms, hints=hints),
                self.head.select(matchers, start_ms, end_ms, hints=hints),
            )
            out = combine([from_blocks, from_shared, from_head])
        limit = hints.sample_limit if hints is not None else None
        if limit is not None and out.num_samples > limit:
            raise SampleLimitExceeded(out.num_samples, limit)
        out.warnings.merge(self._warnings())
        return out

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        parts = await asyncio.gather(
            self.blocks.label_names(matchers),
            self.head.label_names(matchers),
            *([self.shared.label_names(matchers)] if self.shared is not None else []),
        )
        names = sorted(set().union(*(p.values for p in parts)))
        return LabelResult(names[:limit] if limit else names, self._warnings(parts))

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        parts = await asyncio.gather(
            self.blocks.label_values(name, matchers),
            self.head.label_values(name, matchers),
            *([self.shared.label_values(name, matchers)] if self.shared is not None else []),
        )
        values = sorted(set().union(*(p.values for p in parts)))
        return LabelResult(values[:limit] if limit else values, self._warnings(parts))
