"""The head and the blocks below it as one Querier (what federation merges as its primary).

A select asks both and merges the answers with `combine`: normally the head
holds only what is not in a block yet, so the pieces of a series meet end
to end; where they overlap (a block re-cut after a restart, a retried sample
that reached the head again) each timestamp is kept once, the block's
sample first, as the earlier write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from storage.annotations import Annotations
from storage.blocks.cache import ReadCost
from storage.blocks.querier import BlockQuerier
from storage.blocks.resolution import Resolution
from storage.combine import combine
from storage.errors import SampleLimitExceeded
from storage.head.querier import HeadQuerier
from storage.interfaces import LabelResult, SelectHints, SeriesSet
from storage.labels import Matcher


@dataclass(slots=True)
class ReadOptions:
    """Per-query settings of block reads: what may be spent, which resolution may answer."""

    cost: ReadCost = field(default_factory=ReadCost)
    resolution: Resolution = field(default_factory=Resolution)


class TieredQuerier:
    """Head plus blocks for one query; `warning` is added to every answer (store not loaded)."""

    def __init__(
        self, head: HeadQuerier, blocks: BlockQuerier, *, warning: str | None = None
    ) -> None:
        self.head = head
        self.blocks = blocks
        self.warning = warning

    def _warnings(self) -> Annotations:
        out = Annotations()
        if self.warning:
            out.warn(self.warning)
        return out

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        from_blocks, from_head = await asyncio.gather(
            self.blocks.select(matchers, start_ms, end_ms, hints=hints),
            self.head.select(matchers, start_ms, end_ms, hints=hints),
        )
        out = combine([from_blocks, from_head])
        limit = hints.sample_limit if hints is not None else None
        if limit is not None and out.num_samples > limit:
            raise SampleLimitExceeded(out.num_samples, limit)
        out.warnings.merge(self._warnings())
        return out

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        a, b = await asyncio.gather(
            self.blocks.label_names(matchers), self.head.label_names(matchers)
        )
        names = sorted(set(a.values) | set(b.values))
        return LabelResult(names[:limit] if limit else names, self._warnings())

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        a, b = await asyncio.gather(
            self.blocks.label_values(name, matchers), self.head.label_values(name, matchers)
        )
        values = sorted(set(a.values) | set(b.values))
        return LabelResult(values[:limit] if limit else values, self._warnings())
