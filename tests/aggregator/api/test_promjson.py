"""Query-result JSON: values, timestamps and shapes exactly as Prometheus writes them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.api.promjson import (
    encode_matrix,
    encode_scalar,
    encode_series_list,
    encode_string,
    encode_value,
    encode_vector,
    format_values,
    go_format_float,
    timestamp_items,
)
from promql.value import Matrix, Scalar, String, Vector
from storage.labels import Labels

# Observed from Prometheus 2.42 (`vector(<v>)` through /api/v1/query).
PROMETHEUS_SAYS = [
    (1e21, "1e+21"),
    (1e-7, "1e-07"),
    (123456789012345678.0, "123456789012345680"),
    (0.1 + 0.2, "0.30000000000000004"),
    (-math.inf, "-Inf"),
    (math.nan, "NaN"),
    (1.0, "1"),
    (-0.0, "-0"),
    (1e-6, "0.000001"),
    (-0.000001, "-0.000001"),
    (999999999999999999999.0, "1e+21"),
    (1.5e300, "1.5e+300"),
    (5e-324, "5e-324"),
]


@pytest.mark.parametrize(("value", "text"), PROMETHEUS_SAYS)
def test_values_as_prometheus_writes_them(value: float, text: str) -> None:
    assert format_values(np.array([value]))[0].decode() == text
    assert go_format_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.5e-6, "0.0000025"),
        (1.0000001e-6, "0.0000010000001"),
        (9.99e-7, "9.99e-07"),
        (1e-10, "1e-10"),
        (1e16, "10000000000000000"),
        (1.5e16, "15000000000000000"),
        (2.0**60, "1152921504606847000"),
        (9.99e20, "999000000000000000000"),
        (1e15 + 0.5, "1000000000000000.5"),
        (math.inf, "+Inf"),
        (100.0, "100"),
        (-12.5, "-12.5"),
    ],
)
def test_value_formats_at_the_edges(value: float, text: str) -> None:
    assert format_values(np.array([value]))[0].decode() == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_bulk_format_matches_the_reference(values: list[float]) -> None:
    got = format_values(np.array(values, dtype=np.float64), b"|")
    assert [g.decode() for g in got] == [go_format_float(v) + "|" for v in values]


def test_bulk_format_over_all_magnitudes() -> None:
    rng = np.random.default_rng(7)
    exps = rng.integers(-320, 308, 20_000).astype(float)
    values = rng.random(20_000) * np.power(10.0, exps)
    values[::5] = np.round(values[::5])
    values[::3] *= -1
    got = [g.decode() for g in format_values(values)]
    assert got == [go_format_float(v) for v in values.tolist()]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1_700_000_000_000, "1700000000"),
        (1_700_000_000_500, "1700000000.500"),
        (1_700_000_000_050, "1700000000.050"),
        (1_700_000_000_001, "1700000000.001"),
        (1_234, "1.234"),
        (0, "0"),
        (-100_250, "-100.250"),
        (-5, "-0.005"),
    ],
)
def test_timestamps_as_prometheus_writes_them(ms: int, text: str) -> None:
    assert timestamp_items(np.array([ms]))[0] == b"[" + text.encode() + b',"'


def test_timestamps_on_a_grid_and_off_it_agree() -> None:
    ts = np.array([1000, 16_000, 31_000, 16_000, 1000, 46_000], dtype=np.int64)
    assert timestamp_items(ts, (1000, 15_000)) == timestamp_items(ts)
    off_grid = np.array([1000, 16_001], dtype=np.int64)
    assert timestamp_items(off_grid, (1000, 15_000)) == [b'[1,"', b'[16.001,"']


def L(**kw: str) -> Labels:
    return Labels.from_dict({"__name__" if k == "name" else k: v for k, v in kw.items()})


def test_matrix_json() -> None:
    m = Matrix(
        labels=[L(name="up", job="a"), L(job="b"), L(job="empty")],
        offsets=np.array([0, 2, 3, 3]),
        timestamps=np.array([1_000, 16_500, 1_000]),
        values=np.array([1.0, math.nan, 0.25]),
    )
    body = encode_matrix(m)
    assert body == (
        b'{"resultType":"matrix","result":['
        b'{"metric":{"__name__":"up","job":"a"},"values":[[1,"1"],[16.500,"NaN"]]},'
        b'{"metric":{"job":"b"},"values":[[1,"0.25"]]}]}'
    )
    assert encode_value(m) == body
    assert (
        encode_matrix(Matrix([], np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)))
        == b'{"resultType":"matrix","result":[]}'
    )


def test_vector_json() -> None:
    v = Vector([L(name="x", a="1"), L(a="2")], np.array([3.0, -math.inf]), 1_700_000_000_123)
    assert encode_vector(v) == (
        b'{"resultType":"vector","result":['
        b'{"metric":{"__name__":"x","a":"1"},"value":[1700000000.123,"3"]},'
        b'{"metric":{"a":"2"},"value":[1700000000.123,"-Inf"]}]}'
    )
    empty = Vector([], np.zeros(0), 0)
    assert encode_vector(empty) == b'{"resultType":"vector","result":[]}'


def test_scalar_and_string_json() -> None:
    # Prometheus writes these timestamps as plain JSON numbers: 100.5, 100, -100.25.
    assert encode_scalar(Scalar(1.0, -100_250)) == b'{"resultType":"scalar","result":[-100.25,"1"]}'
    assert encode_scalar(Scalar(-0.0, 100_000)) == b'{"resultType":"scalar","result":[100,"-0"]}'
    assert encode_string(String('x"y', 100_500)) == (
        b'{"resultType":"string","result":[100.5,"x\\"y"]}'
    )


def test_label_values_are_escaped_like_go() -> None:
    body = encode_series_list([L(name="a", v='<b> & "c"\n')])
    assert body == b'[{"__name__":"a","v":"\\u003cb\\u003e \\u0026 \\"c\\"\\n"}]'
    assert json.loads(body) == [{"__name__": "a", "v": '<b> & "c"\n'}]


def test_big_matrix_is_valid_json() -> None:
    rng = np.random.default_rng(3)
    n_series, points = 50, 100
    ts = np.tile(1_700_000_000_000 + np.arange(points) * 15_000, n_series)
    values = rng.normal(size=n_series * points) * 10.0 ** rng.integers(-9, 22, n_series * points)
    m = Matrix(
        [L(name="m", i=str(i)) for i in range(n_series)],
        np.arange(n_series + 1) * points,
        ts,
        values,
    )
    data = json.loads(bytes(encode_matrix(m, (1_700_000_000_000, 15_000))))
    assert len(data["result"]) == n_series
    flat = [float(v) for s in data["result"] for _, v in s["values"]]
    assert flat == values.tolist()
    assert data["result"][7]["values"][3][0] == 1_700_000_045


def test_go_json_escapes_what_go_escapes() -> None:
    from aggregator.api.promjson import go_json

    assert go_json(["<a>&", "line\u2028sep\u2029", "é☃"]) == (
        '["\\u003ca\\u003e\\u0026","line\\u2028sep\\u2029","é☃"]'.encode()
    )


def _reference_matrix(m: Matrix) -> bytes:
    """The matrix JSON built one sample at a time from the reference formatters."""

    def ts(ms: int) -> str:
        sign, mag = ("-", -ms) if ms < 0 else ("", ms)
        frac = f".{mag % 1000:03d}" if mag % 1000 else ""
        return f"{sign}{mag // 1000}{frac}"

    out = []
    for i, lbl in enumerate(m.labels):
        lo, hi = int(m.offsets[i]), int(m.offsets[i + 1])
        if lo == hi:
            continue
        points = ",".join(
            f'[{ts(int(t))},"{go_format_float(float(v))}"]'
            for t, v in zip(m.timestamps[lo:hi], m.values[lo:hi], strict=True)
        )
        out.append(
            f'{{"metric":{json.dumps(dict(lbl), separators=(",", ":"))},"values":[{points}]}}'
        )
    return ('{"resultType":"matrix","result":[' + ",".join(out) + "]}").encode()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(-2_000_000, 2_000_000_000_000),
                st.floats(allow_nan=True, allow_infinity=True)
                | st.integers(-(10**17), 10**17).map(float)
                | st.sampled_from([0.0, -0.0, 1e-6, 2.5e-6, 1e16, 1e21, 5e-324]),
            ),
            max_size=12,
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_matrix_matches_the_sample_by_sample_reference(
    series: list[list[tuple[int, float]]], on_grid: bool
) -> None:
    labels, ts, values, offsets = [], [], [], [0]
    for i, samples in enumerate(series):
        samples = sorted(dict(samples).items())
        if on_grid:
            samples = [(1_000 + 15_000 * (abs(t) % 50), v) for t, v in samples]
            samples = sorted(dict(samples).items())
        labels.append(L(name="m", i=str(i), v="<&>"))
        ts += [t for t, _ in samples]
        values += [v for _, v in samples]
        offsets.append(len(ts))
    m = Matrix(labels, np.array(offsets), np.array(ts, dtype=np.int64), np.array(values))
    expected = _reference_matrix(m).replace(b"<", b"\\u003c").replace(b">", b"\\u003e")
    expected = expected.replace(b"&", b"\\u0026")
    assert bytes(encode_matrix(m, (1_000, 15_000) if on_grid else None)) == expected


def test_vector_matches_the_reference_for_every_magnitude() -> None:
    rng = np.random.default_rng(11)
    values = rng.random(3000) * np.power(10.0, rng.integers(-330, 308, 3000).astype(float))
    values[::4] = np.round(values[::4])
    values[::7] *= -1
    values[[5, 6, 7]] = [math.nan, math.inf, -math.inf]
    v = Vector([L(i=str(i)) for i in range(3000)], values, 1_700_000_000_250)
    got = json.loads(bytes(encode_vector(v)))["result"]
    assert [s["value"][1] for s in got] == [go_format_float(x) for x in values.tolist()]
    assert {s["value"][0] for s in got} == {1_700_000_000.25}


def test_labels_cache_gives_the_same_text_and_stays_bounded() -> None:
    from aggregator.api.promjson import LabelsJSONCache, label_members

    cache = LabelsJSONCache(max_entries=5)
    sets = [L(name="m", i=str(i), v="<&>") for i in range(4)]
    assert cache.members(sets) == label_members(sets)
    assert len(cache) == 4
    # Hits and misses mixed, in order; past the bound the cache starts over.
    mixed = [sets[2], L(name="m", i="new"), sets[0], L(i="x", j='quote"')]
    assert cache.members(mixed) == label_members(mixed)
    assert len(cache) == 2
    v = Vector(mixed, np.array([1.0, 2.0, 3.0, 4.0]), 1_000)
    assert bytes(encode_value(v, None, cache.members)) == bytes(encode_vector(v))


def test_label_values_holding_object_boundaries_are_encoded_one_by_one() -> None:
    from aggregator.api.promjson import label_members

    tricky = [L(a='x"},{"b":"y'), L(a="},{"), L(a="plain")]
    assert [json.loads(b"{" + m + b"}") for m in label_members(tricky)] == [
        dict(lbl) for lbl in tricky
    ]
