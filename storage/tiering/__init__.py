"""Tiering: head -> blocks in the object store -> compacted, downsampled, retained.

`service.Tiering` runs the pipeline; `catalog.BlockCatalog` is what queries
see; `querier.TieredQuerier` answers from head and blocks as one.
`shared.SharedBlocks` (a `readonly.ReadOnlyCatalog` per prefix) is other
writers' blocks, read but never written (a scale-out's query tier).
"""

from storage.tiering.catalog import BlockCatalog
from storage.tiering.querier import ReadOptions, TieredQuerier
from storage.tiering.readonly import ReadOnlyCatalog
from storage.tiering.service import FlushResult, Tiering
from storage.tiering.shared import SharedBlocks
from storage.tiering.status import TieringMetrics

__all__ = [
    "BlockCatalog",
    "FlushResult",
    "ReadOnlyCatalog",
    "ReadOptions",
    "SharedBlocks",
    "TieredQuerier",
    "Tiering",
    "TieringMetrics",
]
