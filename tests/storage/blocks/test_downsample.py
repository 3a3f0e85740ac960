"""Downsampling against a plain per-window computation, counter resets included."""

from __future__ import annotations

import numpy as np

from remote_write.batch import STALE_NAN
from storage.blocks.downsample import downsample
from storage.labels import Labels

RES = 300_000


def naive(ts, values):
    """Per window: (last ts, count, sum, min, max, counter), counter with resets undone."""
    out = []
    total = None
    last = None
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        if v != v:
            continue
        if total is None:
            total = v
        else:
            total += v if v < last else v - last
        last = v
        w = t // RES
        if out and out[-1][0] == w:
            _, _, c, s, lo, hi, _ = out[-1]
            out[-1] = (w, t, c + 1, s + v, min(lo, v), max(hi, v), total)
        else:
            out.append((w, t, 1, v, v, v, total))
    loss = (total or 0.0) - (last or 0.0)
    return [(t, c, s, lo, hi, cnt - loss) for _, t, c, s, lo, hi, cnt in out], loss


def test_windows_match_a_plain_computation():
    rng = np.random.default_rng(5)
    ts = np.arange(0, 3_600_000, 15_000, dtype=np.int64) + 7_000
    counter = np.cumsum(rng.poisson(10, len(ts))).astype(float)
    counter[100:] -= counter[99]  # a restart
    counter[50] = STALE_NAN  # skipped, as Thanos skips it
    gauge = np.round(rng.uniform(0, 5, len(ts)), 2)
    offsets = np.array([0, len(ts), 2 * len(ts)])
    batch = downsample(
        [Labels.from_dict({"s": "c"}), Labels.from_dict({"s": "g"})],
        offsets,
        np.concatenate([ts, ts]),
        np.concatenate([counter, gauge]),
        RES,
    )
    for k, values in enumerate((counter, gauge)):
        want, loss = naive(ts, values)
        lo, hi = batch.offsets[k], batch.offsets[k + 1]
        got = list(
            zip(
                batch.timestamps[lo:hi].tolist(),
                batch.columns["count"][lo:hi].tolist(),
                batch.columns["sum"][lo:hi].tolist(),
                batch.columns["min"][lo:hi].tolist(),
                batch.columns["max"][lo:hi].tolist(),
                batch.columns["counter"][lo:hi].tolist(),
                strict=True,
            )
        )
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g[:2] == w[:2]
            np.testing.assert_allclose(g[2:], w[2:], rtol=1e-12)
        np.testing.assert_allclose(batch.extra["counter_loss"][k], loss, rtol=1e-12)
        # The counter ends on the series' last raw value: raw samples continue it.
        assert batch.columns["counter"][hi - 1] == batch.last_value[k]
    assert batch.extra["counter_loss"][0] > 0  # the restart was undone
