"""Tiering: head -> blocks in the object store -> compacted, downsampled, retained.

`service.Tiering` runs the pipeline; `catalog.BlockCatalog` is what queries
see; `querier.TieredQuerier` answers from head and blocks as one.
"""

from storage.tiering.catalog import BlockCatalog
from storage.tiering.querier import ReadOptions, TieredQuerier
from storage.tiering.service import FlushResult, Tiering
from storage.tiering.status import TieringMetrics

__all__ = [
    "BlockCatalog",
    "FlushResult",
    "ReadOptions",
    "TieredQuerier",
    "Tiering",
    "TieringMetrics",
]
