"""Stable ids for the strings of remote write 2.0 requests, so series keys survive requests.

A 2.0 request names its labels by index into its own symbols table, and the
next request numbers them differently. Storage recognizes a series it has
seen by a key that is equal for every request carrying the same label set
(`WriteBatch.series_keys`); for 2.0 that key is the series' label strings as
ids from this table: looking up a request's symbols is one C-level `map`
over them, and a key is one slice of an id array, where spelling the label
strings out would copy every label byte of every request.

Ids are never reused, and every key starts with its table's tag (`tag`), so
a key never changes meaning, nor means something else in another table. Strings unused for a
while drop out (two generations: a lookup moves a string of the previous
generation into the current one, and when the current one is full it becomes
the previous one), which bounds the table near twice `generation_size`. A
string that dropped out and comes back gets a new id, so its series look new
once: storage then finds them by their labels, which is slower but exact.

A sender that sends the same series in the same order again (a shard whose
batches each hold one scrape's worth of the same series, say) sends the same
symbols table again; one whose batches are cut elsewhere each time does not.
The ids of a whole table are kept by its exact content (bounded by
`table_bytes`): such a request costs one hash of its table instead of a
dictionary lookup per string, which at 100k series is most of a 2.0 request's
decoding. Ids are never reused, so a kept table's ids stay right after its
strings dropped out of the generations (a series keyed with an old id is found
by its labels).

A kept table also keeps what its last requests decoded to (`Request`): a
request whose label references and metadata are byte for byte those of one
decoded before under the same table (the same series in the same order, only
their samples new: what a sender repeating its tables sends) gets that
request's series keys and metadata back from one lookup of those bytes,
without decoding a reference or making a key. They are dropped with their
table and counted in `table_bytes`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import SeriesMetadata

REQUESTS_PER_TABLE = 2
"""Decoded requests kept per table (the newest): a sender alternating between two
series orders under one table still hits."""

_TABLES = itertools.count(1)
"""Numbers the tables of a process: keys of two tables never meet (see `SymbolIds.tag`)."""


class Request:
    """What a request decoded to that depends only on its table, its label references
    and its metadata: its series keys and metadata (shared: callers copy the lists)."""

    __slots__ = ("keys", "metadata", "size")

    def __init__(
        self, keys: list[bytes], metadata: list[SeriesMetadata], signature_bytes: int
    ) -> None:
        self.keys = keys
        self.metadata = metadata
        # Keys as bytes objects (33 bytes each besides their content) in a list.
        self.size = signature_bytes + sum(map(len, keys)) + 41 * len(keys) + 200 * len(metadata)


class KeptTable:
    """A kept symbols table: its ids, and its latest decoded requests by signature
    (the bytes of their series' label references and metadata)."""

    __slots__ = ("ids", "key", "requests")

    def __init__(self, key: bytes | tuple[bytes, ...], ids: NDArray[np.uint32]) -> None:
        self.key = key
        self.ids = ids
        self.requests: dict[bytes, Request] = {}


class SymbolIds:
    """Strings -> stable uint32 ids; see the module docstring. Not thread-safe (ingest
    runs on the event loop)."""

    __slots__ = (
        "_current",
        "_next",
        "_previous",
        "_tables",
        "_tables_size",
        "generation_size",
        "metadata",
        "table_bytes",
        "tag",
    )

    def __init__(self, generation_size: int = 1 << 19, table_bytes: int = 32 << 20) -> None:
        self.generation_size = generation_size
        self.table_bytes = table_bytes
        """Bound on the kept tables' content (their keys, ids and requests), oldest
        dropped first; 0 keeps none."""
        self.tag = (next(_TABLES) & 0xFFFFFF) << 8 | 0xFF
        """Starts every key made with this table's ids. Its first byte (0xFF) is never
        a 1.0 key's (0x0A or 0x00), and its number is this table's: the same ids in
        another table name other strings, so such keys must not match (a WAL replay
        with its own table, then live ingest with another, would otherwise map a
        series to another's id)."""
        self.metadata: dict[bytes, SeriesMetadata] = {}
        """Decoded metadata by the ids of its strings (name, type, help, unit), so a
        request repeating known metadata makes no objects; ids are never reused."""
        self._current: dict[bytes, int] = {}
        self._previous: dict[bytes, int] = {}
        self._next = 0
        self._tables: dict[bytes | tuple[bytes, ...], KeptTable] = {}
        self._tables_size = 0

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def ids(self, symbols: Sequence[bytes]) -> NDArray[np.uint32]:
        """The id of every string of `symbols`, in order (read-only: it may be shared)."""
        return self.table(symbols)[0]

    def table(self, symbols: Sequence[bytes]) -> tuple[NDArray[np.uint32], KeptTable | None]:
        """The ids of `symbols` (as `ids`) and the kept table they belong to, None when
        the table is not kept (small, or past `table_bytes`)."""
        if not self.table_bytes or len(symbols) < 64:
            return self._ids(symbols), None
        # Exact: no string holds the separator, so it cuts the key back into the
        # table; else the strings themselves (a tuple never equals bytes).
        key: bytes | tuple[bytes, ...] = b"\x00".join(symbols)
        if key.count(0) != len(symbols) - 1:
            key = tuple(symbols)
        hit = self._tables.get(key)
        if hit is not None:
            return hit.ids, hit
        ids = self._ids(symbols)
        ids.flags.writeable = False
        size = _kept_size(key, ids)
        if size > self.table_bytes:
            return ids, None
        kept = KeptTable(key, ids)
        self._tables[key] = kept
        self._grow(size)
        return ids, kept if self._tables.get(key) is kept else None

    def remember(self, table: KeptTable, signature: bytes, request: Request) -> None:
        """Keep `request` as what `signature` decodes to under `table` (see the module
        docstring); the table's oldest request goes past REQUESTS_PER_TABLE, and the
        oldest tables past `table_bytes`."""
        if request.size > self.table_bytes or self._tables.get(table.key) is not table:
            return
        requests = table.requests
        old = requests.pop(signature, None)
        grown = request.size - (old.size if old is not None else 0)
        requests[signature] = request
        while len(requests) > REQUESTS_PER_TABLE:
            grown -= requests.pop(next(iter(requests))).size
        self._grow(grown)

    def _grow(self, size: int) -> None:
        self._tables_size += size
        while self._tables_size > self.table_bytes and self._tables:
            old = next(iter(self._tables))
            self._tables_size -= _table_size(old, self._tables.pop(old))

    def _ids(self, symbols: Sequence[bytes]) -> NDArray[np.uint32]:
        try:
            return np.fromiter(
                map(self._current.__getitem__, symbols), dtype=np.uint32, count=len(symbols)
            )
        except KeyError:
            return np.fromiter(map(self._lookup, symbols), dtype=np.uint32, count=len(symbols))

    def _lookup(self, symbol: bytes) -> int:
        hit = self._current.get(symbol)
        if hit is not None:
            return hit
        hit = self._previous.pop(symbol, None)
        if hit is None:
            hit = self._next
            self._next += 1
            if self._next >= 0xFFFFFFFF:  # 4 billion distinct strings: no reuse, stop
                raise OverflowError("symbol ids exhausted")
        if len(self._current) >= self.generation_size:
            self._previous = self._current
            self._current = {}
            self.metadata.clear()  # bounded with the strings it refers to
        self._current[symbol] = hit
        return hit


def _table_size(key: bytes | tuple[bytes, ...], table: KeptTable) -> int:
    return _kept_size(key, table.ids) + sum(r.size for r in table.requests.values())


def _kept_size(key: bytes | tuple[bytes, ...], ids: NDArray[np.uint32]) -> int:
    """About the bytes a kept table holds (a tuple's strings: some 64 bytes each)."""
    return 2 * ids.nbytes + (len(key) if isinstance(key, bytes) else 64 * len(key))
