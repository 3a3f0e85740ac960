"""The labels of a decoded 2.0 request's series, from symbol references, for new series.

Storage asks for labels only of series it has not seen (by key): one series
as sent (`SymbolLabels.__call__`), or many at once as label keys
(`SymbolLabels.columns`, see `remote_write.labelkeys`). The bulk form writes
every selected label in the 1.0 wire layout into one buffer with numpy (two
ragged copies of symbol bytes and six header bytes per label), and one
latin-1 decode and one split cut the keys apart, so creating thousands of
series costs no Python work per label. Labels of 128 bytes or more, or text
holding the separator byte, take the one-by-one path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import LabelColumns, LabelPairs, label_columns
from remote_write.labelkeys import decode_label_keys
from remote_write.pbscan import ragged_index

_SEP = 0xFF
"""Replaces each label's field tag: UTF-8 never holds this byte."""
_NONE = np.zeros(0, dtype=np.int64)


class SymbolLabels:
    """Label pairs of series given as (name, value) references into `symbols`:
    series i's references are `refs[offsets[i]:offsets[i + 1]]`."""

    __slots__ = ("_load", "_offsets", "_refs", "_symbols", "_text")

    def __init__(
        self, symbols: Sequence[bytes], refs: NDArray[np.int64], offsets: NDArray[np.int64]
    ) -> None:
        self._symbols = symbols
        self._refs = refs
        self._offsets = offsets
        self._text: dict[int, str] = {}
        self._load: Callable[[], tuple[NDArray[np.int64], NDArray[np.int64]]] | None = None

    @classmethod
    def deferred(
        cls,
        symbols: Sequence[bytes],
        load: Callable[[], tuple[NDArray[np.int64], NDArray[np.int64]]],
    ) -> SymbolLabels:
        """Labels whose references (refs, offsets) `load` decodes on first use: a request
        whose series storage knows by key needs none."""
        out = cls(symbols, _NONE, _NONE)
        out._load = load
        return out

    def _loaded(self) -> None:
        if self._load is not None:
            self._refs, self._offsets = self._load()
            self._load = None

    def __call__(self, i: int) -> LabelPairs:
        self._loaded()
        o = self._offsets
        strings = [self._string(r) for r in self._refs[o[i] : o[i + 1]].tolist()]
        return tuple(zip(strings[0::2], strings[1::2], strict=True))

    def _string(self, ref: int) -> str:
        hit = self._text.get(ref)
        if hit is None:
            hit = self._text[ref] = self._symbols[ref].decode("utf-8", "surrogateescape")
        return hit

    def columns(self, indices: Sequence[int]) -> LabelColumns:
        """The labels of series `indices` as label-key columns (see the module docstring)."""
        self._loaded()
        bulk = self._bulk(np.asarray(indices, dtype=np.int64))
        if bulk is not None:
            return bulk
        return label_columns([self(i) for i in indices], range(len(indices)))

    def _bulk(self, rows: NDArray[np.int64]) -> LabelColumns | None:
        o = self._offsets
        counts = o[rows + 1] - o[rows]
        refs = self._refs[ragged_index(o[rows], counts)]
        names, values = refs[0::2], refs[1::2]
        lengths = np.fromiter(map(len, self._symbols), dtype=np.int64, count=len(self._symbols))
        ln, lv = lengths[names], lengths[values]
        if len(names) and int((ln + lv).max()) + 4 >= 0x80:
            return None  # a long label: multi-byte lengths
        sizes = ln + lv + 6  # tag, size, 0x0A, name length, name, 0x12, value length, value
        at = np.cumsum(sizes) - sizes
        total = int(sizes.sum())
        out = np.empty(total, dtype=np.uint8)
        out[at] = _SEP
        out[at + 1] = ln + lv + 4
        out[at + 2] = 0x0A
        out[at + 3] = ln
        out[at + 4 + ln] = 0x12
        out[at + 5 + ln] = lv
        data = np.frombuffer(b"".join(self._symbols), dtype=np.uint8)
        first = np.cumsum(lengths) - lengths
        out[ragged_index(at + 4, ln)] = data[ragged_index(first[names], ln)]
        out[ragged_index(at + 6 + ln, lv)] = data[ragged_index(first[values], lv)]
        if np.count_nonzero(out == _SEP) != len(names):
            return None  # the separator inside some text (invalid UTF-8)
        keys = out.tobytes().decode("latin-1").split(chr(_SEP))[1:]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts // 2, out=offsets[1:])
        return LabelColumns(keys, offsets, decode_label_keys)
