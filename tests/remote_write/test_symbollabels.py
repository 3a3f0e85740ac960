"""New series' labels from symbol references: the bulk label keys equal the 1.0 ones."""

from __future__ import annotations

import numpy as np
import pytest

from remote_write.batch import label_columns
from remote_write.symbollabels import SymbolLabels

SERIES = [
    (("__name__", "up"), ("job", "node")),
    (("__name__", "température"), ("ville", "Zürich"), ("empty", "")),
    (),
    (("__name__", "x" * 60), ("a", "b" * 60)),
]


def labels_of(series: list[tuple[tuple[str, str], ...]], extra: bytes | None = None):
    symbols: list[bytes] = [b""]
    index: dict[bytes, int] = {b"": 0}
    refs: list[int] = []
    counts = []
    for pairs in series:
        for name, value in pairs:
            for text in (name.encode(), value.encode()):
                if text not in index:
                    index[text] = len(symbols)
                    symbols.append(text)
                refs.append(index[text])
        counts.append(2 * len(pairs))
    if extra is not None:  # one more series: label "bad" with these raw bytes as value
        symbols += [b"bad", extra]
        refs += [len(symbols) - 2, len(symbols) - 1]
        counts.append(2)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return SymbolLabels(symbols, np.array(refs, dtype=np.int64), offsets)


def test_bulk_keys_are_the_1_0_label_keys() -> None:
    labels = labels_of(SERIES)
    wanted = [3, 0, 1, 2]
    got = labels.columns(wanted)
    expected = label_columns(SERIES, wanted)
    assert got.keys == expected.keys
    assert got.offsets.tolist() == expected.offsets.tolist()
    assert got.decode(got.keys) == expected.decode(expected.keys)
    assert [labels(i) for i in range(len(SERIES))] == SERIES


@pytest.mark.parametrize(
    "value",
    [("v" * 200).encode(), b"\xff\xfe broken utf-8"],
    ids=["long-label", "separator-byte"],
)
def test_labels_the_bulk_path_cannot_cut_go_one_by_one(value: bytes) -> None:
    labels = labels_of(SERIES, extra=value)
    n = len(SERIES) + 1
    got = labels.columns(range(n))
    sets = [labels(i) for i in range(n)]
    expected = label_columns(sets, range(n))
    assert got.keys == expected.keys
    assert sets[-1] == (("bad", value.decode("utf-8", "surrogateescape")),)
