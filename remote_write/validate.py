"""Per-series checks on label sets as a sender wrote them.

A bad series never fails a request: the check returns the reason and a message
naming the series, and the caller reports it as a `Rejection` while the good
series of the same request are written. Rules follow the remote-write 1.0 spec
(names match `[a-zA-Z_][a-zA-Z0-9_]*`, metric names also allow `:`, every
series has a metric name, label names are unique) plus configurable size
limits in the manner of Mimir.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import LabelPairs

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """Size limits on one series' labels (0 disables a limit)."""

    max_label_names: int = 40
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048


@dataclass(frozen=True, slots=True)
class SeriesProblem:
    """Why a series is refused: a stable `reason` code and a `message` naming it."""

    reason: str
    message: str


def render_pairs(pairs: LabelPairs) -> str:
    """The series as sent, in Prometheus text form, for messages (long values cut)."""
    name = ""
    parts = []
    for n, v in pairs:
        shown = v if len(v) <= 120 else v[:120] + "..."
        shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")
        if n == "__name__" and not name:
            name = shown
        else:
            shown_name = n.encode("utf-8", "backslashreplace").decode("utf-8")
            parts.append(f'{shown_name}="{shown}"'.replace("\n", "\\n"))
    return f"{name}{{{', '.join(parts)}}}"


def _is_utf8(text: str) -> bool:
    # Decoders hand over invalid UTF-8 as surrogate escapes; they do not encode.
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_series(pairs: LabelPairs, limits: SeriesLimits) -> SeriesProblem | None:
    """The first problem with this label set, or None if it may be stored."""

    def problem(reason: str, detail: str) -> SeriesProblem:
        return SeriesProblem(reason, f"{detail} in series {render_pairs(pairs)}")

    if limits.max_label_names and len(pairs) > limits.max_label_names:
        return problem(
            "too_many_labels",
            f"series has {len(pairs)} labels, more than the limit of {limits.max_label_names}",
        )
    seen: set[str] = set()
    metric_name = None
    for name, value in pairs:
        if name == "":
            return problem("empty_label_name", "empty label name")
        if name in seen:
            return problem("duplicate_label_name", f"duplicate label name {name!r}")
        seen.add(name)
        if limits.max_label_name_length and len(name) > limits.max_label_name_length:
            return problem(
                "label_name_too_long",
                f"label name of length {len(name)} exceeds the limit of "
                f"{limits.max_label_name_length}",
            )
        if name == "__name__":
            metric_name = value
            if value and not _METRIC_NAME.fullmatch(value):
                return problem("invalid_metric_name", f"invalid metric name {value!r}")
        elif not _LABEL_NAME.fullmatch(name):
            shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
            return problem("invalid_label_name", f"invalid label name {shown!r}")
        if limits.max_label_value_length and len(value) > limits.max_label_value_length:
            return problem(
                "label_value_too_long",
                f"value of label {name!r} has length {len(value)}, more than the limit of "
                f"{limits.max_label_value_length}",
            )
        if not _is_utf8(value):
            return problem("invalid_label_value", f"value of label {name!r} is not valid UTF-8")
    if not metric_name:
        return problem("missing_metric_name", "no metric name (__name__ label)")
    return None


def good_pairs(names: list[str], values: list[str], limits: SeriesLimits) -> NDArray[np.bool_]:
    """Per label: True where the pair passes every per-label check of `check_series`
    and its value is not empty (so it is stored as sent).

    Bulk, for the labels storage has not seen before: C-level passes over all
    of them, a regex only per distinct name and metric name.
    """
    n = len(names)
    good_names = {name for name in set(names) if _good_name(name, limits)}
    ok = np.fromiter(map(good_names.__contains__, names), dtype=bool, count=n)
    value_len = np.fromiter(map(len, values), dtype=np.int64, count=n)
    ok &= value_len > 0
    if limits.max_label_value_length:
        ok &= value_len <= limits.max_label_value_length
    if not "".join(values).isascii():
        ok &= np.fromiter(map(_is_utf8, values), dtype=bool, count=n)
    metric_rows = np.flatnonzero(
        np.fromiter(map(operator.eq, names, repeat("__name__")), dtype=bool, count=n)
    )
    metric_values = list(map(values.__getitem__, metric_rows.tolist()))
    good_metrics = {v for v in set(metric_values) if _METRIC_NAME.fullmatch(v)}
    ok[metric_rows] &= np.fromiter(
        map(good_metrics.__contains__, metric_values), dtype=bool, count=len(metric_rows)
    )
    return ok


def canonical_sets(
    names: list[str], offsets: NDArray[np.int64], limits: SeriesLimits
) -> NDArray[np.bool_]:
    """Per series (`names[offsets[k]:offsets[k+1]]`, all of them `good_pairs`): True
    where `check_series` finds no problem and the names are strictly ascending,
    i.e. the labels are valid and already canonical.

    False does not mean invalid: such series (rare) take `check_series` and a
    full canonicalization on their own.
    """
    distinct = sorted(set(names))
    rank_of = dict(zip(distinct, range(len(distinct)), strict=True))
    ranks = np.fromiter(map(rank_of.__getitem__, names), dtype=np.int64, count=len(names))
    is_metric = np.fromiter(
        map(operator.eq, names, repeat("__name__")), dtype=bool, count=len(names)
    )
    return canonical_ranks(ranks, is_metric, offsets, limits)


def canonical_ranks(
    ranks: NDArray[np.integer],
    is_metric: NDArray[np.bool_],
    offsets: NDArray[np.int64],
    limits: SeriesLimits,
) -> NDArray[np.bool_]:
    """`canonical_sets` with each name given by its rank among names in string
    order (ranks compare as names do) and whether it is `__name__`: numpy only."""
    n = len(ranks)
    counts = np.diff(offsets)
    ok = counts > 0
    if limits.max_label_names:
        ok &= counts <= limits.max_label_names
    if n == 0:
        return ok
    # Strictly ascending names inside each series (which also rules out duplicates).
    unordered = np.zeros(n, dtype=bool)
    if n > 1:
        unordered[1:] = ranks[1:] <= ranks[:-1]
        unordered[offsets[:-1][counts > 0]] = False  # a series' first label follows another's
    ok &= per_series(unordered, offsets) == 0
    ok &= per_series(is_metric, offsets) == 1
    return ok


def per_series(flags: NDArray[np.bool_], offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many flags are set in each series' slice `offsets[k]:offsets[k+1]`."""
    total = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=total[1:])
    return total[offsets[1:]] - total[offsets[:-1]]


def _good_name(name: str, limits: SeriesLimits) -> bool:
    if limits.max_label_name_length and len(name) > limits.max_label_name_length:
        return False
    return name == "__name__" or _LABEL_NAME.fullmatch(name) is not None
