"""What a query spends on the object store, and the cache that spares it.

`ReadCost` is opened per query: every read a block reader makes for it is
counted (requests, bytes fetched, bytes served from cache), and checked
against the query's limits before the request is sent, so a query that
would cost too much fails before the bill, naming the limit.

`ChunkCache` keeps what queries fetched, up to a byte budget, least recently
used out first: Parquet column chunks and series tables as fetched
(compressed), and, in a second instance, row groups decoded into numpy (so
a query that hits them again only gathers rows). Both are shared by every
query; all access is on the event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from storage.errors import ReadLimitExceeded

BYTES_LIMIT = "query.max_object_store_bytes"
REQUESTS_LIMIT = "query.max_object_store_requests"


@dataclass(slots=True)
class ReadCost:
    """Object-store reads of one query (0 as a limit: none)."""

    max_bytes: int = 0
    max_requests: int = 0
    requests: int = 0
    bytes: int = 0
    cached_bytes: int = 0
    blocks: int = 0
    """Blocks the query read samples from."""

    def reserve(self, requests: int, nbytes: int) -> None:
        """Count reads about to be made; ReadLimitExceeded (and nothing counted) past a limit."""
        if self.max_requests and self.requests + requests > self.max_requests:
            raise ReadLimitExceeded(
                REQUESTS_LIMIT, self.max_requests, self.requests + requests, "requests"
            )
        if self.max_bytes and self.bytes + nbytes > self.max_bytes:
            raise ReadLimitExceeded(BYTES_LIMIT, self.max_bytes, self.bytes + nbytes, "bytes")
        self.requests += requests
        self.bytes += nbytes


class ChunkCache:
    """Values by key, at most `max_bytes` in total, least recently used evicted.

    Values are bytes (their length is their size) or anything else with the
    size given to `put`. Keys are tuples starting with the block id.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.size = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: Hashable, data: Any, nbytes: int | None = None) -> None:
        size = len(data) if nbytes is None else nbytes
        if size > self.max_bytes // 4:  # one huge item must not flush everything else
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old[1]
        self._items[key] = (data, size)
        self.size += size
        while self.size > self.max_bytes and self._items:
            _, (_, dropped) = self._items.popitem(last=False)
            self.size -= dropped

    def drop_prefix(self, block_id: str) -> None:
        """Forget everything of a block (it was deleted)."""
        for key in [k for k in self._items if isinstance(k, tuple) and k[0] == block_id]:
            self.size -= self._items.pop(key)[1]

    def __len__(self) -> int:
        return len(self._items)
