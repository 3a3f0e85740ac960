"""A Querier over Parquet blocks: the tier below the head.

Opened per query over a fixed list of blocks (the catalog's snapshot when
the query began). A select picks the blocks overlapping its range (and,
with downsampled blocks present, the resolution `resolution.plan` allows),
matches series in each block's series table, reads only their rows (see
`reader`), and merges the blocks' answers with `combine`: blocks whose
ranges overlap (a late block beside the block of its range) never show a
sample twice; the block written first wins a timestamp held by both.

Every object-store read is charged to the query's `ReadCost`, which fails
the query before a read that would pass its limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from numpy.typing import NDArray

from storage.blocks.cache import ReadCost
from storage.blocks.reader import BlockReader
from storage.blocks.resolution import Resolution, plan_reads
from storage.blocks.synthesize import chain_counters, series_from_aggregates
from storage.combine import combine
from storage.errors import SampleLimitExceeded
from storage.interfaces import LabelResult, SelectHints, SeriesSet
from storage.labels import Labels, Matcher


class BlockQuerier:
    """Reads `readers` (sorted by write order: `origin`, then id) for one query."""

    def __init__(
        self,
        readers: Sequence[BlockReader],
        start_ms: int,
        end_ms: int,
        *,
        cost: ReadCost | None = None,
        resolution: Resolution | None = None,
    ) -> None:
        self.readers = list(readers)
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.cost = cost if cost is not None else ReadCost()
        self.resolution = resolution or Resolution()

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        if start_ms > end_ms:
            return SeriesSet.empty()
        reads = plan_reads(self.readers, start_ms, end_ms, hints, self.resolution)
        if not reads:
            return SeriesSet.empty()
        tables = await asyncio.gather(*(r.reader.series_table(self.cost) for r in reads))
        picked = [
            t.select(matchers, r.start_ms, r.end_ms) for r, t in zip(reads, tables, strict=True)
        ]
        limit = hints.sample_limit if hints is not None else None
        if limit is not None:
            # Blocks read whole hold exactly their series' row counts: count before reading.
            sure = sum(
                int(t.rows[ids].sum())
                for r, t, ids in zip(reads, tables, picked, strict=True)
                if r.whole and not r.reader.meta.resolution_ms
            )
            if sure > limit:
                raise SampleLimitExceeded(sure, limit)
        datas = await asyncio.gather(
            *(
                r.reader.read(ids, r.start_ms, r.end_ms, self.cost, r.columns)
                for r, ids in zip(reads, picked, strict=True)
                if len(ids)
            )
        )
        sets = []
        counters: list[tuple[SeriesSet, dict[Labels, float]]] = []
        used = [(r, t) for r, t, ids in zip(reads, tables, picked, strict=True) if len(ids)]
        for (r, table), data in zip(used, datas, strict=True):
            if r.aggregate is None:
                values = data.columns["value"]
            else:
                values = series_from_aggregates(r.aggregate, table, data)
            ss = data.series_set(table, values)
            sets.append(ss)
            if r.aggregate == "counter":
                loss = table.extra["counter_loss"]
                counters.append((ss, {table.labels[i]: float(loss[i]) for i in data.ids.tolist()}))
        if len(counters) > 1:
            chain_counters(counters)
        out = combine(sets)
        if limit is not None and out.num_samples > limit:
            raise SampleLimitExceeded(out.num_samples, limit)
        return out

    async def _tables_in_range(self, matchers: Sequence[Matcher]) -> list[tuple[object, NDArray]]:
        readers = [
            r
            for r in self.readers
            if r.meta.resolution_ms == 0 and r.meta.overlaps(self.start_ms, self.end_ms)
        ]
        tables = await asyncio.gather(*(r.series_table(self.cost) for r in readers))
        return [(t, t.select(matchers, self.start_ms, self.end_ms)) for t in tables]

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        names: set[str] = set()
        for table, ids in await self._tables_in_range(matchers):
            names |= table.label_names(ids)  # type: ignore[attr-defined]
        out = sorted(names)
        return LabelResult(out[:limit] if limit else out)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        values: set[str] = set()
        for table, ids in await self._tables_in_range(matchers):
            values |= table.label_values(name, ids)  # type: ignore[attr-defined]
        out = sorted(values)
        return LabelResult(out[:limit] if limit else out)
