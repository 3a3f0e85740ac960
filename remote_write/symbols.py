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
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import SeriesMetadata

_TABLES = itertools.count(1)
"""Numbers the tables of a process: keys of two tables never meet (see `SymbolIds.tag`)."""


class SymbolIds:
    """Strings -> stable uint32 ids; see the module docstring. Not thread-safe (ingest
    runs on the event loop)."""

    __slots__ = ("_current", "_next", "_previous", "generation_size", "metadata", "tag")

    def __init__(self, generation_size: int = 1 << 19) -> None:
        self.generation_size = generation_size
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

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def ids(self, symbols: Sequence[bytes]) -> NDArray[np.uint32]:
        """The id of every string of `symbols`, in order."""
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
