"""Remote-write 2.0 bodies: snappy block + `io.prometheus.write.v2.Request` -> WriteBatch.

The same shape as the 1.0 decoder (`remote_write.codec`): upb parses the
request once into the symbols (bytes) and one bytes object per TimeSeries
(`fast_v2.proto`); the series are joined and their fields found with numpy
for all series at once, one step per field position (`remote_write.rw2walk`
for the usual layout, `remote_write.pbscan` for any other);
samples are decoded where they lie (a 2.0 Sample is a 1.0 Sample on the
wire), and so are native histograms (a 2.0 Histogram has 1.0's field numbers:
`remote_write.histdecode`, into the same `HistogramBatch`), label references
of all series in one pass. Per series, Python makes
one bytes object, its key: the ids of its label strings (`SymbolIds`), equal
in every request that carries the same labels, whatever the symbols' order.
Labels are decoded only for series storage has not seen. A request repeating
the table, references and metadata of one decoded before gets that request's
keys and metadata back (`remote_write.symbols`): no reference is decoded.

A series that cannot be read (a reference past the symbols table, an odd
number of label references, malformed references) is refused on its own as
a `Rejection` (`bad_symbol_reference`, `malformed_labels_refs`), and the
request's other series are written; a request without a symbols table, or
whose table does not start with the empty string as the specification
requires, is refused whole (DecodeError, 400).

Created timestamps are read and counted (`DecodedWriteV2.created`), not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.batch import LabelPairs, LazyLabelSets, Rejection, SeriesMetadata, WriteBatch
from remote_write.codec import decompress
from remote_write.errors import DecodeError
from remote_write.exemplardecode import decode_exemplars_v2
from remote_write.exemplars import ExemplarBatch
from remote_write.histdecode import decode_histogram_spans
from remote_write.pbscan import (
    WIRE_LEN,
    WIRE_VARINT,
    Fields,
    packed_varints,
    scan_fields,
)
from remote_write.prompb import fast_v2_pb2
from remote_write.rw2walk import signature_usual, walk_usual
from remote_write.samples import decode_sample_spans
from remote_write.serieswalk import JoinedSeries, join_series
from remote_write.symbollabels import SymbolLabels
from remote_write.symbols import Request, SymbolIds

RW2_PROTO = "io.prometheus.write.v2.Request"

METRIC_TYPES = (
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
)
"""`Metadata.MetricType` numbers -> the lowercase names metadata is kept under."""

_SERIES_FIELDS = {1: WIRE_LEN, 2: WIRE_LEN, 3: WIRE_LEN, 4: WIRE_LEN, 5: WIRE_LEN, 6: WIRE_VARINT}
_METADATA_FIELDS = {1: WIRE_VARINT, 3: WIRE_VARINT, 4: WIRE_VARINT}
_FAMILY_SUFFIXES = ("_bucket", "_count", "_sum")
_NO_I64 = np.zeros(0, dtype=np.int64)

BAD_SYMBOL_REFERENCE = "bad_symbol_reference"
MALFORMED_LABELS_REFS = "malformed_labels_refs"


@dataclass(slots=True)
class DecodedWriteV2:
    """A decoded 2.0 request: the batch of its readable series, the series refused
    while decoding (with reasons), and counts for the response headers."""

    batch: WriteBatch
    rejected: list[Rejection] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    decoded_bytes: int = 0
    created: int = 0
    """Series that carried a created timestamp."""


def decode_write_request_v2(
    body: bytes, *, symbol_ids: SymbolIds, max_decoded_bytes: int = 0
) -> DecodedWriteV2:
    """Decode a snappy-compressed 2.0 Request (see the module docstring).

    Raises DecodeError (bad snappy, bad protobuf, no usable symbols table) and
    PayloadTooLarge (decoded size past `max_decoded_bytes`, 0: no limit). The
    batch keeps `body` as `encoded` (format 2) for the WAL.
    """
    raw = decompress(body, max_decoded_bytes=max_decoded_bytes)
    try:
        request = fast_v2_pb2.RawRequest.FromString(raw)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse {RW2_PROTO} ({exc})") from None
    symbols = list(request.symbols)
    series = list(request.timeseries)
    if raw and not series and not symbols:
        # Numbers 1-3 are reserved in 2.0: a 1.0 WriteRequest parses as an empty 2.0
        # Request. Acknowledging it would lose its samples without a word.
        raise DecodeError(
            f"remote write 2.0 request of {len(raw)} bytes has no symbols and no series "
            "(a 1.0 WriteRequest sent with the 2.0 Content-Type?)"
        )
    if series and not symbols:
        raise DecodeError(
            f"remote write 2.0 request with {len(series)} series has no symbols table "
            "(every label is a reference into it)"
        )
    if symbols and symbols[0] != b"":
        raise DecodeError(
            "remote write 2.0 symbols table must start with the empty string, "
            f"starts with {symbols[0][:40]!r}"
        )
    decoded = _Decoder(symbols, join_series(series), symbol_ids).run(body)
    decoded.decoded_bytes = len(raw)
    return decoded


class _Decoder:
    """One request's decoding, step by step; `run` gives the result."""

    def __init__(self, symbols: list[bytes], joined: JoinedSeries, symbol_ids: SymbolIds) -> None:
        self.symbols = symbols
        self.joined = joined
        self.symbol_ids = symbol_ids
        self.n = len(joined.starts)
        self.bad = np.zeros(self.n, dtype=np.int8)  # 0 ok, else an index into _PROBLEMS
        self.detail: dict[int, str] = {}
        self._text: list[str] | None = None
        self._ids: NDArray[np.uint32] | None = None

    def run(self, body: bytes) -> DecodedWriteV2:
        buf = self.joined.buf
        f = walk_usual(buf, self.joined.starts, self.joined.ends)
        signature = kept = None
        if f is None:  # another layout: the general scan
            f = scan_fields(buf, self.joined.starts, self.joined.ends, what="TimeSeries")
            assert f is not None
            _check_wire_types(f, _SERIES_FIELDS, "TimeSeries")
        else:  # the usual layout: labels, samples, metadata, created; nothing else
            self._ids, kept = self.symbol_ids.table(self.symbols)
            if kept is not None:
                signature = signature_usual(buf, f, self.joined.starts)
                seen = kept.requests.get(signature)
                if seen is not None:
                    return self._repeat(f, body, seen)
        refs, ref_counts = self._label_refs(f)
        ref_offsets = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(ref_counts, out=ref_offsets[1:])
        samples = f.pick(2, WIRE_LEN)
        histograms = f.pick(3, WIRE_LEN)
        exemplars = self._exemplars(f, f.pick(4, WIRE_LEN))
        metadata = self._metadata(
            f, _last_per_message(f, f.pick(5, WIRE_LEN), self.n), refs, ref_offsets
        )
        created = _last_per_message(f, f.pick(6, WIRE_VARINT), self.n)
        good = self.bad == 0
        everything = bool(good.all())
        new_index = np.cumsum(good) - 1
        hist = None
        if len(histograms):
            keep = histograms if everything else histograms[good[f.msg[histograms]]]
            owner = f.msg[keep]
            hist = decode_histogram_spans(
                buf, f.start[keep], f.end[keep], new_index[owner].astype(np.int32)
            )
        keep_samples = samples if everything else samples[good[f.msg[samples]]]
        sample_series = f.msg[keep_samples]
        starts = f.start[keep_samples]
        timestamps, values = decode_sample_spans(buf, starts, f.end[keep_samples] - starts)
        keys, good_refs, good_offsets = self._keys(refs, ref_offsets, good)
        labels = SymbolLabels(self.symbols, good_refs, good_offsets)
        if exemplars is not None:
            rows = np.flatnonzero(good[exemplars.series_idx])
            exemplars = exemplars.take(rows)
            exemplars = ExemplarBatch(
                new_index[exemplars.series_idx].astype(np.int32),
                exemplars.timestamps,
                exemplars.values,
                exemplars.labels,
            )
        batch = WriteBatch(
            series=LazyLabelSets(len(keys), labels, labels.columns),
            series_idx=(sample_series if everything else new_index[sample_series]).astype(np.int32),
            timestamps=timestamps,
            values=values,
            metadata=metadata,
            series_keys=keys,
            encoded=body,
            encoded_format=2,
            exemplars=exemplars,
            histograms=hist,
        )
        if kept is not None and signature is not None and everything:
            self.symbol_ids.remember(
                kept, signature, Request(list(keys), list(metadata), len(signature))
            )
        rejected: list[Rejection] = []
        if not everything:
            per_series = np.bincount(f.msg[samples], minlength=self.n)
            per_series += np.bincount(f.msg[histograms], minlength=self.n)
            rejected = self._rejections(refs, ref_offsets, per_series)
        return DecodedWriteV2(batch, rejected, {}, created=int((created[good] >= 0).sum()))

    def _repeat(self, f: Fields, body: bytes, seen: Request) -> DecodedWriteV2:
        """A request whose table, label references and metadata are those of `seen`
        (see `remote_write.symbols`): its keys and metadata are `seen`'s, every series
        is readable (`seen` was), and references are decoded only if storage asks
        for labels."""
        buf = self.joined.buf
        samples = f.pick(2, WIRE_LEN)
        starts = f.start[samples]
        timestamps, values = decode_sample_spans(buf, starts, f.end[samples] - starts)
        created = _last_per_message(f, f.pick(6, WIRE_VARINT), self.n)

        def refs() -> tuple[NDArray[np.int64], NDArray[np.int64]]:
            refs, counts = self._label_refs(f)
            offsets = np.zeros(self.n + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            return refs, offsets

        labels = SymbolLabels.deferred(self.symbols, refs)
        batch = WriteBatch(
            series=LazyLabelSets(self.n, labels, labels.columns),
            series_idx=f.msg[samples].astype(np.int32),
            timestamps=timestamps,
            values=values,
            metadata=list(seen.metadata),
            series_keys=list(seen.keys),
            encoded=body,
            encoded_format=2,
        )
        return DecodedWriteV2(batch, created=int((created >= 0).sum()))

    # -- labels ----------------------------------------------------------------

    def _label_refs(self, f: Fields) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """All label references, series after series, and how many each series has."""
        rows = f.pick(1, WIRE_LEN)
        owner = f.msg[rows]
        values, counts, ok = packed_varints(self.joined.buf, f.start[rows], f.end[rows])
        if len(rows) == self.n and (owner == np.arange(self.n)).all():
            ref_counts = counts  # the usual: one packed field per series
        else:  # several fields in a series are read span after span, counts summed
            ref_counts = np.bincount(owner, weights=counts, minlength=self.n).astype(np.int64)
            self._mark(np.bincount(owner, minlength=self.n) == 0, 2, "no labels_refs")
        if not ok.all():
            malformed = np.zeros(self.n, dtype=np.bool_)
            malformed[owner[~ok]] = True
            self._mark(malformed, 2, "malformed packed varints")
        odd = (ref_counts & 1).astype(np.bool_)
        if odd.any():
            self._mark(odd, 2, "an odd number of references")
        if not len(values):
            return _NO_I64, ref_counts
        top = int(values.max())
        refs = (
            values.view(np.int64) if top < 1 << 62 else np.minimum(values, 1 << 40).view(np.int64)
        )
        if top >= len(self.symbols):
            out_of_range = refs >= len(self.symbols)
            owner_of_ref = np.repeat(np.arange(self.n), ref_counts)[out_of_range]
            series, first = np.unique(owner_of_ref, return_index=True)
            first_ref = refs[out_of_range][first]
            for i, ref in zip(series.tolist(), first_ref.tolist(), strict=True):
                if self.bad[i] == 0:
                    self.bad[i] = 1
                    self.detail[i] = (
                        f"label reference {ref} is past the symbols table "
                        f"({len(self.symbols)} symbols)"
                    )
            refs = np.where(out_of_range, 0, refs)
        return refs, ref_counts

    def _mark(self, which: NDArray[np.bool_], problem: int, detail: str) -> None:
        rows = np.flatnonzero(which & (self.bad == 0))
        self.bad[rows] = problem
        for i in rows.tolist():
            self.detail[i] = detail

    def _keys(
        self, refs: NDArray[np.int64], offsets: NDArray[np.int64], good: NDArray[np.bool_]
    ) -> tuple[list[bytes], NDArray[np.int64], NDArray[np.int64]]:
        """Series keys of the good series (see `remote_write.symbols`), and their refs."""
        counts = np.diff(offsets)
        if not good.all():
            refs = refs[np.repeat(good, counts)]
            counts = counts[good]
        n = len(counts)
        good_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=good_offsets[1:])
        ids = self.ids()
        if n and (counts == counts[0]).all():  # the usual: every series as many labels
            width = int(counts[0]) + 1
            table = np.empty((n, width), dtype="<u4")
            table[:, 0] = self.symbol_ids.tag
            table[:, 1:] = ids[refs].reshape(n, width - 1)
            # A row as one void scalar: tolist() makes each row's bytes in C.
            keys = table.view(f"V{4 * width}").ravel().tolist()
            return keys, refs, good_offsets
        out = np.empty(n + len(refs), dtype="<u4")
        marks = good_offsets[:-1] + np.arange(n)
        out[marks] = self.symbol_ids.tag
        # Reference j of series i lands after i + 1 marks.
        out[np.arange(len(refs)) + np.repeat(np.arange(1, n + 1), counts)] = ids[refs]
        data = out.tobytes()
        bounds = (np.append(marks, len(out)) * 4).tolist()
        keys = [data[a:b] for a, b in pairwise(bounds)]
        return keys, refs, good_offsets

    def ids(self) -> NDArray[np.uint32]:
        """The stable id of every symbol (`SymbolIds`), looked up once per request."""
        if self._ids is None:
            self._ids = self.symbol_ids.ids(self.symbols)
        return self._ids

    def text(self) -> list[str]:
        """The symbols as text (invalid UTF-8 as surrogate escapes: validation names it)."""
        if self._text is None:
            self._text = [s.decode("utf-8", "surrogateescape") for s in self.symbols]
        return self._text

    # -- metadata --------------------------------------------------------------

    def _metadata(
        self,
        f: Fields,
        meta: NDArray[np.int64],
        refs: NDArray[np.int64],
        offsets: NDArray[np.int64],
    ) -> list[SeriesMetadata]:
        """One SeriesMetadata per metric name of the request, from the Metadata message
        of the first readable series with that name (Prometheus keeps metadata per
        metric family, and a sender repeats it with every series of the family).

        Only those messages are read: a request repeats the same metadata for
        thousands of series, and this keeps the cost per name, not per series.
        """
        if not (meta >= 0).any():
            return []
        try:
            name_sym = self.symbols.index(b"__name__")
        except ValueError:
            return []
        counts = np.diff(offsets)
        name_ref = np.full(self.n, -1, dtype=np.int64)
        # Labels are sorted, so the name is nearly always the first pair: look there.
        first = np.flatnonzero(counts >= 2)
        at = offsets[first]
        found = refs[at] == name_sym
        name_ref[first[found]] = refs[at[found] + 1]
        if not found.all():  # the others: every pair of theirs
            owner = np.repeat(np.arange(self.n), counts)
            pos = np.arange(len(refs)) - np.repeat(offsets[:-1], counts)
            name_at = np.flatnonzero((pos % 2 == 0) & (refs == name_sym))
            name_at = name_at[name_ref[owner[name_at]] < 0]
            name_ref[owner[name_at]] = refs[name_at + 1]
        usable = np.flatnonzero((meta >= 0) & (name_ref >= 0) & (self.bad == 0))
        if not len(usable):
            return []
        chosen = usable[np.unique(name_ref[usable], return_index=True)[1]]
        rows = meta[chosen]
        mf = scan_fields(self.joined.buf, f.start[rows], f.end[rows], what="Metadata")
        assert mf is not None
        _check_wire_types(mf, _METADATA_FIELDS, "Metadata")
        cols = []
        for number in (1, 3, 4):
            col = np.zeros(len(chosen), dtype=np.int64)
            picked = mf.pick(number, WIRE_VARINT)
            col[mf.msg[picked]] = np.minimum(mf.value[picked], 1 << 40).astype(np.int64)
            cols.append(col)
        kind, help_ref, unit_ref = cols
        symbols = self.symbols
        past = (help_ref >= len(symbols)) | (unit_ref >= len(symbols))
        for i, h, u in zip(
            chosen[past].tolist(), help_ref[past].tolist(), unit_ref[past].tolist(), strict=True
        ):
            self.bad[i] = 1
            self.detail[i] = (
                f"metadata reference {h if h >= len(symbols) else u} is past the "
                f"symbols table ({len(symbols)} symbols)"
            )
        keep = ~past & ((kind > 0) | (help_ref > 0) | (unit_ref > 0))
        if not keep.any():
            return []
        chosen, kind, help_ref, unit_ref = chosen[keep], kind[keep], help_ref[keep], unit_ref[keep]
        # Known metadata by the stable ids of its strings: one C-level lookup per name.
        ids = self.ids()
        table = np.stack(
            [
                ids[name_ref[chosen]],
                np.minimum(kind, 1 << 31).astype("<u4"),
                ids[help_ref],
                ids[unit_ref],
            ],
            axis=1,
        ).astype("<u4")
        cache = self.symbol_ids.metadata
        found = table.view("V16").ravel().tolist()
        hits: list[SeriesMetadata | None] = [cache.get(key) for key in found]
        for j in [j for j, hit in enumerate(hits) if hit is None]:
            k = int(kind[j])
            type_name = METRIC_TYPES[k] if k < len(METRIC_TYPES) else "unknown"
            name = _text(symbols[int(name_ref[chosen[j]])])
            hits[j] = cache[found[j]] = SeriesMetadata(
                _family(name, type_name),
                type_name,
                _text(symbols[int(help_ref[j])]),
                _text(symbols[int(unit_ref[j])]),
            )
        return [hit for hit in hits if hit is not None]

    # -- exemplars -------------------------------------------------------------

    def _exemplars(self, f: Fields, rows: NDArray[np.int64]) -> ExemplarBatch | None:
        """The exemplars of all series (series indexes before refused series are left out);
        a series with an unreadable exemplar is refused (`bad_symbol_reference`)."""
        if not len(rows):
            return None
        owner = f.msg[rows]
        batch, broken = decode_exemplars_v2(
            self.joined.buf, f.start[rows], f.end[rows], owner, self.symbols
        )
        for e in np.flatnonzero(broken).tolist():
            i = int(owner[e])
            if self.bad[i] == 0:
                self.bad[i] = 1
                self.detail[i] = f"exemplar #{e} has a malformed or out-of-range label reference"
        return batch

    # -- refusals --------------------------------------------------------------

    def _rejections(
        self, refs: NDArray[np.int64], offsets: NDArray[np.int64], samples: NDArray[np.int64]
    ) -> list[Rejection]:
        out = []
        for i in np.flatnonzero(self.bad).tolist():
            problem = int(self.bad[i])
            reason = _PROBLEMS[problem]
            name = f"series #{i} of the request"
            if problem == 2:
                message = f"labels_refs of {name} are malformed: {self.detail.get(i, '')}"
            else:
                message = f"{self.detail.get(i, 'bad symbol reference')} in {name}"
            out.append(Rejection(name, reason, message, int(samples[i])))
        return out

    def pairs(self, refs: NDArray[np.int64]) -> LabelPairs:
        text = self.text()
        strings = [text[r] for r in refs.tolist()]
        return tuple(zip(strings[0::2], strings[1::2], strict=True))


_PROBLEMS = {1: BAD_SYMBOL_REFERENCE, 2: MALFORMED_LABELS_REFS}


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _family(name: str, type_name: str) -> str:
    """The metric family a series' name belongs to (histogram and summary series carry
    suffixes; metadata is kept per family, as remote write 1.0 sends it)."""
    if type_name in ("histogram", "gaugehistogram", "summary"):
        for suffix in _FAMILY_SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
    return name


def _last_per_message(f: Fields, rows: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    """Per message the position (in `f`) of its last field among `rows`, -1 if none;
    for a varint field (created timestamp) the caller reads `f.value` there."""
    out = np.full(n, -1, dtype=np.int64)
    out[f.msg[rows]] = rows  # later rows overwrite earlier ones: the last one wins
    return out


def _check_wire_types(f: Fields, known: dict[int, int], what: str) -> None:
    """Known field numbers must come with their wire type (unknown fields are skipped)."""
    wrong = f.other(known)
    if len(wrong):
        k = int(wrong[0])
        raise DecodeError(
            f"protobuf: field {int(f.number[k])} of {what} #{int(f.msg[k])} has wire type "
            f"{int(f.wire[k])}, the schema says {known[int(f.number[k])]}"
        )
