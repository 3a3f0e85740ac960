"""The Parquet layout of a block: two files with plain columns any Parquet reader understands.

`series.parquet`, one row per series, in label order (metric name, then
cluster, then the other labels):

| column | type | meaning |
|---|---|---|
| series_id | int32 | row number; `samples.parquet` refers to it |
| metric, cluster | string | the `__name__` and `cluster` labels ("" if absent) |
| labels | map<string, string> | every label of the series |
| min_time, max_time | timestamp[ms, UTC] | first and last sample |
| first_row, rows | int64 | the series' rows in `samples.parquet` |
| first_value, last_value | float64 | first and last sample value (counter chaining) |
| `<v>`_scale | int8, null for float series | decimal scale of value column `<v>` |

`samples.parquet`, one row per sample, sorted by (series_id, timestamp), so
row-group statistics on metric, cluster, series_id and timestamp prune reads:

| column | type | encoding |
|---|---|---|
| metric, cluster | string | dictionary (runs of one value cost next to nothing) |
| series_id | int32 | delta |
| timestamp | timestamp[ms, UTC] | delta |
| value | float64, null where `value_int` holds it | byte-stream split |
| value_int | int64, null where `value` holds it | delta |

The value of a sample is `value` if set, else `value_int / 10**value_scale`
(exact: see `storage.blocks.decimal`). All files are zstd-compressed.

Downsampled blocks (resolution 5m or 1h) have the same series table and,
per series and window, `timestamp` (of the window's last sample), `count`
(int64) and the aggregates `sum`, `min`, `max` and `counter` (the counter
value with resets removed, as in Thanos), each as a `<a>` / `<a>_int` pair
like `value`; their series tables add `counter_loss` (float64).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TIMESTAMP = pa.timestamp("ms", tz="UTC")
RAW_VALUE_COLUMNS = ("value",)
AGGREGATES = ("sum", "min", "max", "counter")
"""Aggregate value columns of a downsampled block (beside the integer `count`)."""
EXTRA_SERIES_COLUMNS = ("counter_loss",)
"""Per-series float64 columns of downsampled blocks' series tables: `counter_loss` is what
the counter's resets removed within the block (see `storage.blocks.synthesize`)."""
ROW_GROUP_ROWS = 1 << 18
"""Rows per row group: small enough to skip what a query does not need, big enough that
per-chunk overheads stay negligible."""
ZSTD_LEVEL = 6


def value_columns(resolution_ms: int) -> tuple[str, ...]:
    """The decimal-coded value columns of a block of this resolution."""
    return RAW_VALUE_COLUMNS if resolution_ms == 0 else AGGREGATES


def samples_schema(resolution_ms: int) -> pa.Schema:
    fields = [
        pa.field("metric", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("cluster", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("series_id", pa.int32(), nullable=False),
        pa.field("timestamp", TIMESTAMP, nullable=False),
    ]
    if resolution_ms:
        fields.append(pa.field("count", pa.int64(), nullable=False))
    for name in value_columns(resolution_ms):
        fields += [pa.field(name, pa.float64()), pa.field(f"{name}_int", pa.int64())]
    return pa.schema(fields)


def series_schema(resolution_ms: int) -> pa.Schema:
    fields = [
        pa.field("series_id", pa.int32(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("labels", pa.map_(pa.string(), pa.string()), nullable=False),
        pa.field("min_time", TIMESTAMP, nullable=False),
        pa.field("max_time", TIMESTAMP, nullable=False),
        pa.field("first_row", pa.int64(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("first_value", pa.float64(), nullable=False),
        pa.field("last_value", pa.float64(), nullable=False),
    ]
    fields += [pa.field(f"{name}_scale", pa.int8()) for name in value_columns(resolution_ms)]
    if resolution_ms:
        fields += [pa.field(name, pa.float64(), nullable=False) for name in EXTRA_SERIES_COLUMNS]
    return pa.schema(fields)


def samples_writer_options(resolution_ms: int) -> dict[str, Any]:
    """`pyarrow.parquet.ParquetWriter` keyword arguments for `samples.parquet`."""
    encoding = {"series_id": "DELTA_BINARY_PACKED", "timestamp": "DELTA_BINARY_PACKED"}
    if resolution_ms:
        encoding["count"] = "DELTA_BINARY_PACKED"
    for name in value_columns(resolution_ms):
        encoding[name] = "BYTE_STREAM_SPLIT"
        encoding[f"{name}_int"] = "DELTA_BINARY_PACKED"
    return {
        "compression": "zstd",
        "compression_level": ZSTD_LEVEL,
        "use_dictionary": ["metric", "cluster"],
        "column_encoding": encoding,
        "write_statistics": ["metric", "cluster", "series_id", "timestamp"],
    }


def series_writer_options() -> dict[str, Any]:
    return {"compression": "zstd", "compression_level": ZSTD_LEVEL}
