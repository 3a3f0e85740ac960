"""The agent's side of the tunnel: reads answered from the window, and nothing else."""

from __future__ import annotations

import pytest

from aggregator.edge.tunnel import answer_read
from aggregator.edge.window import Window
from remote_write.errors import RemoteWriteError
from remote_write.read import ReadQuery, decode_read_response, encode_read_request
from storage.labels import Labels

T0 = 1_700_000_000_000


def test_a_read_is_answered_from_the_window() -> None:
    w = Window(10**12)
    a = Labels.from_pairs([("__name__", "x"), ("i", "1")])
    b = Labels.from_pairs([("__name__", "y"), ("i", "1")])
    w.append([a, b], T0, [1.0, 2.0])
    w.append([a], T0 + 1000, [3.0])
    body = encode_read_request([ReadQuery(T0, T0 + 5000, (("=", "__name__", "x"),))])
    [result] = decode_read_response(answer_read(w, body))
    assert [tuple(s) for s in result.batch.series] == [tuple(a)]
    assert result.batch.values.tolist() == [1.0, 3.0]


def test_anything_but_a_read_request_is_refused() -> None:
    with pytest.raises(RemoteWriteError):
        answer_read(Window(1000), b"\x00not snappy at all")
