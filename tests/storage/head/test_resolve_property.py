"""Bulk series resolution equals a naive reference, for any sequence of batches.

The reference is what `storage.head.resolve` does in bulk, written the obvious
way, one series at a time: check the labels as sent (`check_series`), make
them canonical (`Labels.from_pairs`: sorted, empty values dropped), apply the
writer's identity (its `cluster` label replaces the sent one; "" removes it;
None keeps what was sent), then look the label set up in a dict of live
series. New label sets are created in label order while their cluster has
room under the series limit; the rest are refused for the limit.

Batches mix known and new series, sorted and unsorted labels, duplicate and
invalid names, empty and too-long values, missing metric names, the same
label set under several keys, series sent again exactly as before (found by
their key), identities None / "" / a name, wire-decoded (keyed) and
built-in-code batches, replay mode (limits off, refused series skipped), and
series dropped between batches.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.batch import LabelPairs, WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from remote_write.validate import SeriesLimits, check_series, render_pairs
from storage.head.head import Head
from storage.head.resolve import resolve_series
from storage.labels import CLUSTER_LABEL, Labels, format_labels
from storage.options import StorageOptions

LIMITS = SeriesLimits(max_label_names=5, max_label_name_length=12, max_label_value_length=10)
MAX_SERIES = 4
NOT_UTF8 = "\udcff"  # how decoders hand over an invalid byte; only in batches built in code

valid_pair = st.sampled_from(
    [
        ("job", "api"),
        ("job", "db"),
        ("zone", "eu"),
        ("zone", "us"),
        ("cluster", "eu"),
        ("cluster", "us"),
        ("cluster", "edge"),
        ("a", "1"),
    ]
)
odd_pair = st.sampled_from(
    [
        ("zone", ""),  # an empty value: dropped from the series' identity
        ("job", "x" * 11),  # too long
        ("1bad", "x"),  # invalid name
        ("", "x"),  # empty name
        ("bad-name", "x"),
        ("__name__", "1up"),  # invalid metric name
        ("n" * 13, "x"),  # name too long
        ("zone", NOT_UTF8),
    ]
)


@st.composite
def sent_labels(draw: st.DrawFn) -> LabelPairs:
    """One series' labels as a sender may write them."""
    pairs = [("__name__", draw(st.sampled_from(["up", "m:x", "http_total"])))]
    pairs += draw(st.lists(valid_pair, max_size=3, unique_by=lambda p: p[0]))
    if draw(st.integers(0, 3)) == 0:
        pairs.append(draw(odd_pair))
    if draw(st.integers(0, 7)) == 0:
        pairs.append(pairs[draw(st.integers(0, len(pairs) - 1))])  # a duplicate name
    if draw(st.integers(0, 9)) == 0:
        del pairs[0]  # no metric name
    if draw(st.integers(0, 9)) == 0:
        pairs += [("b", "1"), ("c", "1"), ("d", "1")]  # maybe too many
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    else:
        pairs.sort()
    return tuple(pairs)


@st.composite
def batch_steps(draw: st.DrawFn) -> tuple[str, object]:
    rows = draw(st.lists(sent_labels(), min_size=1, max_size=8))
    keyed = draw(st.booleans())
    if keyed:  # the wire carries UTF-8 only
        rows = [tuple((n, "a" if v == NOT_UTF8 else v) for n, v in row) for row in rows]
    identity = draw(st.sampled_from([None, "", "eu", "us"]))
    replay = draw(st.integers(0, 4)) == 0
    skip = draw(st.sets(st.integers(0, len(rows) - 1))) if replay else set()
    return "batch", (rows, keyed, identity, replay, sorted(skip))


steps = st.lists(
    st.one_of(batch_steps(), batch_steps(), st.just(("drop", None))), min_size=1, max_size=8
)


class Reference:
    """Live series as a dict, and what resolving a batch must do, series by series."""

    def __init__(self) -> None:
        self.ids: dict[Labels, int] = {}

    def per_cluster(self) -> Counter[str]:
        return Counter(lbl.get(CLUSTER_LABEL) for lbl in self.ids)

    def expect(
        self,
        rows: list[LabelPairs],
        identity: str | None,
        enforce: bool,
        skip: list[int],
    ) -> tuple[dict[int, Labels], Counter[tuple[str, str]], list[int]]:
        """(row -> labels it resolves to, rejections, rows refused for the limit)."""
        wanted: dict[int, Labels] = {}
        rejected: Counter[tuple[str, str]] = Counter()
        for i, sent in enumerate(rows):
            if i in skip:
                continue
            problem = check_series(sent, LIMITS)
            if problem is not None:
                rejected[(render_pairs(sent), problem.reason)] += 1
                continue
            labels = Labels.from_pairs(sent)
            if identity is not None:
                labels = labels.with_(CLUSTER_LABEL, identity)
            wanted[i] = labels
        new = sorted({lbl for lbl in wanted.values() if lbl not in self.ids})
        room = {c: MAX_SERIES - n for c, n in self.per_cluster().items()}
        refused_sets = set()
        for lbl in new:
            cluster = lbl.get(CLUSTER_LABEL)
            left = room.get(cluster, MAX_SERIES)
            if enforce and left <= 0:
                refused_sets.add(lbl)
            room[cluster] = left - 1
        refused = [i for i, lbl in wanted.items() if lbl in refused_sets]
        for i in refused:
            rejected[(format_labels(wanted.pop(i)), "series_limit")] += 1
        return wanted, rejected, refused


@settings(max_examples=150, deadline=None)
@given(steps=steps, data=st.data())
def test_resolution_equals_the_naive_reference(steps, data):
    head = Head(StorageOptions(series_limits=LIMITS, max_series_per_cluster=MAX_SERIES))
    ref = Reference()
    history: dict[tuple[str | None, bool], list[LabelPairs]] = {}
    for kind, arg in steps:
        if kind == "drop":
            if ref.ids:
                gone = data.draw(st.lists(st.sampled_from(sorted(ref.ids)), unique=True))
                head.drop_series(np.array([ref.ids.pop(lbl) for lbl in gone], dtype=np.int64))
            continue
        rows, keyed, identity, replay, skip = arg
        sent_before = history.setdefault((identity, keyed), [])
        if sent_before and data.draw(st.booleans()):  # series a sender sends again
            again = data.draw(st.lists(st.sampled_from(sent_before), min_size=1, max_size=6))
            rows = again + rows
            skip = [len(again) + i for i in skip]
        sent_before += rows
        batch = WriteBatch.from_series([(row, [1000], [1.0]) for row in rows])
        if keyed:
            batch = decode_write_request(encode_write_request(batch)).batch
        wanted, want_rejected, want_refused = ref.expect(rows, identity, not replay, skip)
        before = head.index.id_limit
        rejected: list = []
        sids, limited = resolve_series(head, batch, identity, not replay, rejected, skip)

        assert Counter((r.series, r.reason) for r in rejected) == want_rejected
        assert list(limited) == want_refused
        resolved = {i for i, sid in enumerate(sids.tolist()) if sid >= 0}
        assert resolved == set(wanted), "rows resolved != valid rows within the limit"
        created: dict[Labels, int] = {}
        for i, labels in wanted.items():
            sid = int(sids[i])
            assert head.index.labels(sid) == labels
            if labels in ref.ids:
                assert sid == ref.ids[labels], "a known series got another id"
            else:
                assert sid >= before, "a new series got an old id"
                assert created.setdefault(labels, sid) == sid, "one label set, two ids"
        assert len(set(created.values())) == len(created), "two label sets, one id"
        in_label_order = [created[lbl] for lbl in sorted(created)]
        assert in_label_order == sorted(in_label_order), "new ids not in label order"
        ref.ids.update(created)
        assert dict(head.active_series_by_cluster()) == {
            c: n for c, n in ref.per_cluster().items() if n
        }
        assert len(head.index) == len(ref.ids)
        head.index.check_invariants()
