"""Parquet blocks: the layout (`schema`), writing, reading and querying them.

A block is `samples.parquet`, `series.parquet` and `meta.json` under
`blocks/<id>/` in an object store; see `schema` for the columns and `meta`
for the life cycle.
"""

from storage.blocks.cache import ChunkCache, ReadCost
from storage.blocks.meta import BlockMeta
from storage.blocks.querier import BlockQuerier
from storage.blocks.reader import BlockReader
from storage.blocks.resolution import Resolution
from storage.blocks.writer import BlockWriter, SeriesBatch

__all__ = [
    "BlockMeta",
    "BlockQuerier",
    "BlockReader",
    "BlockWriter",
    "ChunkCache",
    "ReadCost",
    "Resolution",
    "SeriesBatch",
]
