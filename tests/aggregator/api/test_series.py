"""`/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`: params, errors, envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from aggregator.app import BACKEND
from storage.annotations import Annotations
from storage.db import Storage
from storage.interfaces import LabelResult, Querier, SeriesSet
from tests.aggregator.conftest import HoldWAL, MakeService, SeriesData, Service, store

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def L(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(("__name__" if k == "name" else k, v) for k, v in kw.items())


DATA: SeriesData = [
    (L(name="up", job="api", cluster="a"), [T0, T0 + 60_000], [1, 1]),
    (L(name="up", job="node", cluster="b"), [T0 + 3_600_000], [0]),
    (L(name="http_requests_total", job="api", code="200"), [T0], [10]),
    (L(name="http_requests_total", job="api", code="500"), [T0], [1]),
]


@pytest.fixture
async def service(make_service: MakeService) -> Service:
    service = await make_service()
    await store(service.storage, DATA)
    return service


async def get(service: Service, path: str, params: Any = None) -> tuple[int, dict[str, Any]]:
    status, body = await service.get_json(path, params=params)
    return status, body


async def test_series_match_and_envelope(service: Service) -> None:
    status, body = await get(service, "/api/v1/series", {"match[]": "up"})
    assert status == 200
    assert body == {
        "status": "success",
        "data": [
            {"__name__": "up", "cluster": "a", "job": "api"},
            {"__name__": "up", "cluster": "b", "job": "node"},
        ],
    }


async def test_series_union_of_selectors_without_duplicates(service: Service) -> None:
    params = [("match[]", 'up{job="api"}'), ("match[]", '{job="api"}'), ("match[]", "up")]
    _, body = await get(service, "/api/v1/series", params)
    assert body["data"] == [
        {"__name__": "http_requests_total", "code": "200", "job": "api"},
        {"__name__": "http_requests_total", "code": "500", "job": "api"},
        {"__name__": "up", "cluster": "a", "job": "api"},
        {"__name__": "up", "cluster": "b", "job": "node"},
    ]


@pytest.mark.parametrize(
    ("start", "end", "jobs"),
    [
        (str(T0 // 1000 + 1800), None, ["node"]),
        (None, "2023-11-14T22:30:00Z", ["api"]),
        ("2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z", ["api"]),
        (str(T0 / 1000 + 7200.5), None, []),
    ],
)
async def test_series_time_range(
    service: Service, start: str | None, end: str | None, jobs: list[str]
) -> None:
    params = {"match[]": "up"}
    if start:
        params["start"] = start
    if end:
        params["end"] = end
    _, body = await get(service, "/api/v1/series", params)
    assert [s["job"] for s in body["data"]] == jobs


async def test_series_post_form(service: Service) -> None:
    resp = await service.client.post(
        "/api/v1/series", data={"match[]": 'up{cluster="b"}', "start": str(T0 // 1000)}
    )
    assert resp.status == 200
    assert (await resp.json())["data"] == [{"__name__": "up", "cluster": "b", "job": "node"}]


async def test_series_post_form_plus_query_string(service: Service) -> None:
    resp = await service.client.post(
        "/api/v1/series?match[]=up%7Bcluster%3D%22a%22%7D", data={"match[]": 'up{cluster="b"}'}
    )
    assert [s["cluster"] for s in (await resp.json())["data"]] == ["a", "b"]


async def test_series_limit_truncates_with_warning(service: Service) -> None:
    _, body = await get(service, "/api/v1/series", {"match[]": '{job=~".+"}', "limit": "3"})
    assert len(body["data"]) == 3
    assert body["warnings"] == ["results truncated due to limit"]
    _, body = await get(service, "/api/v1/series", {"match[]": '{job=~".+"}', "limit": "4"})
    assert len(body["data"]) == 4
    assert "warnings" not in body


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/series", {}, "no match[] parameter provided"),
        (
            "/api/v1/series",
            {"match[]": "up", "start": "abc"},
            "invalid parameter \"start\": Invalid time value for 'start': "
            'cannot parse "abc" to a valid timestamp',
        ),
        (
            "/api/v1/series",
            {"match[]": "up", "end": "2023-11-14T22:13:20"},
            "invalid parameter \"end\": Invalid time value for 'end': "
            'cannot parse "2023-11-14T22:13:20" to a valid timestamp',
        ),
        (
            "/api/v1/series",
            {"match[]": "up", "start": "20", "end": "10"},
            'invalid parameter "end": end timestamp must not be before start time',
        ),
        (
            "/api/v1/series",
            {"match[]": "up", "limit": "ten"},
            'invalid parameter "limit": cannot parse "ten" to a valid limit',
        ),
        (
            "/api/v1/labels",
            {"start": "yesterday"},
            "invalid parameter \"start\": Invalid time value for 'start': "
            'cannot parse "yesterday" to a valid timestamp',
        ),
        ("/api/v1/label/0job/values", {}, 'invalid label name: "0job"'),
        (
            "/api/v1/label/job/values",
            {"end": "x"},
            "invalid parameter \"end\": Invalid time value for 'end': "
            'cannot parse "x" to a valid timestamp',
        ),
        ("/api/v1/label/job/values", {"limit": "-2"}, "limit must be non-negative"),
    ],
)
async def test_bad_parameters_are_400_bad_data(
    service: Service, path: str, params: dict[str, str], message: str
) -> None:
    status, body = await get(service, path, params)
    assert status == 400
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert message in body["error"]


@pytest.mark.parametrize(
    ("path", "selector", "message"),
    [
        # The answers of Prometheus 2.42 to the same requests: the series endpoint
        # names the parameter, the label endpoints do not.
        (
            "/api/v1/series",
            "up{",
            'invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces',
        ),
        (
            "/api/v1/series",
            "rate(up[5m])",
            'invalid parameter "match[]": 1:5: parse error: unexpected "("',
        ),
        (
            "/api/v1/series",
            "1",
            'invalid parameter "match[]": 1:1: parse error: unexpected number "1"',
        ),
        (
            "/api/v1/series",
            "foo bar",
            'invalid parameter "match[]": 1:5: parse error: unexpected identifier "bar"',
        ),
        (
            "/api/v1/series",
            'up{job=~"("}',
            'invalid parameter "match[]": 1:4: parse error: error parsing regexp: '
            "missing closing ): `^(?:()$`",
        ),
        (
            "/api/v1/series",
            '{job=""}',
            'invalid parameter "match[]": match[] must contain at least one non-empty matcher',
        ),
        ("/api/v1/labels", "up{", "1:4: parse error: unexpected end of input inside braces"),
        ("/api/v1/labels", "sum(up)", '1:4: parse error: unexpected "("'),
        ("/api/v1/label/job/values", "up[5m]", '1:3: parse error: unexpected "["'),
        (
            "/api/v1/label/job/values",
            '{a=~".*"}',
            "match[] must contain at least one non-empty matcher",
        ),
    ],
)
async def test_match_parse_errors_are_prometheus_s(
    service: Service, path: str, selector: str, message: str
) -> None:
    status, body = await get(service, path, {"match[]": selector})
    assert (status, body) == (400, {"status": "error", "errorType": "bad_data", "error": message})


async def test_labels(service: Service) -> None:
    _, body = await get(service, "/api/v1/labels")
    assert body == {"status": "success", "data": ["__name__", "cluster", "code", "job"]}
    _, body = await get(service, "/api/v1/labels", [("match[]", "up"), ("match[]", "nope")])
    assert body["data"] == ["__name__", "cluster", "job"]
    _, body = await get(service, "/api/v1/labels", {"limit": "2"})
    assert body["data"] == ["__name__", "cluster"]
    assert body["warnings"] == ["results truncated due to limit"]


async def test_labels_post_form(service: Service) -> None:
    resp = await service.client.post("/api/v1/labels", data={"match[]": "http_requests_total"})
    assert (await resp.json())["data"] == ["__name__", "code", "job"]


async def test_label_values(service: Service) -> None:
    _, body = await get(service, "/api/v1/label/job/values")
    assert body == {"status": "success", "data": ["api", "node"]}
    _, body = await get(service, "/api/v1/label/__name__/values")
    assert body["data"] == ["http_requests_total", "up"]
    _, body = await get(service, "/api/v1/label/code/values", {"match[]": "up"})
    assert body["data"] == []
    _, body = await get(service, "/api/v1/label/cluster/values", [("match[]", 'up{job="node"}')])
    assert body["data"] == ["b"]
    _, body = await get(service, "/api/v1/label/job/values", {"limit": "1"})
    assert (body["data"], body["warnings"]) == (["api"], ["results truncated due to limit"])


class WarningQuerier:
    """The real head querier, with `warnings` added to every answer.

    A stand-in for a federated read in which a member cluster is down: that is
    what will produce read warnings, but federation (`MergeQuerier` over
    `RemoteCluster`s) does not exist yet, and the head alone never warns.
    Replace it with a real member cluster that is down once federation exists.
    """

    def __init__(self, inner: Querier, warnings: Sequence[str]) -> None:
        self.inner = inner
        self.warnings = warnings

    async def select(self, *args: Any, **kwargs: Any) -> SeriesSet:
        result = await self.inner.select(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result

    async def label_names(self, *args: Any, **kwargs: Any) -> LabelResult:
        result = await self.inner.label_names(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result

    async def label_values(self, *args: Any, **kwargs: Any) -> LabelResult:
        result = await self.inner.label_values(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result


def warn_on_reads(
    monkeypatch: pytest.MonkeyPatch, storage: Storage, warnings: Sequence[str]
) -> None:
    """Make the real storage's queriers report `warnings` (see WarningQuerier)."""
    real = storage.querier

    def querier(start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        @asynccontextmanager
        async def opened() -> AsyncIterator[Querier]:
            async with real(start_ms, end_ms) as inner:
                yield WarningQuerier(inner, warnings)

        return opened()

    monkeypatch.setattr(storage, "querier", querier)


async def test_label_values_post_form(service: Service) -> None:
    resp = await service.client.post(
        "/api/v1/label/cluster/values", data={"match[]": 'up{job="node"}', "start": str(T0 // 1000)}
    )
    assert resp.status == 200
    assert await resp.json() == {"status": "success", "data": ["b"]}


async def test_storage_warnings_reach_the_response(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    warn_on_reads(monkeypatch, service.storage, ["cluster dc-2 unreachable: partial response"])
    for path, params in [
        ("/api/v1/series", {"match[]": "up"}),
        ("/api/v1/labels", {}),
        ("/api/v1/label/job/values", {}),
    ]:
        _, body = await get(service, path, params)
        assert body["warnings"] == ["cluster dc-2 unreachable: partial response"], path
        assert body["data"], f"{path}: the real answer comes with the warning"


async def test_not_ready_is_503_unavailable(make_service: MakeService, held_wal: HoldWAL) -> None:
    wal = await held_wal(DATA)
    service = await make_service(wait=False)
    for path, params in [
        ("/api/v1/series", {"match[]": "up"}),
        ("/api/v1/labels", {}),
        ("/api/v1/label/job/values", {}),
    ]:
        status, body = await get(service, path, params)
        assert status == 503, path
        assert body["errorType"] == "unavailable"
        assert "replaying the write-ahead log" in body["error"]
    await wal.release()
    await service.app[BACKEND].wait_open()
    status, body = await get(service, "/api/v1/series", {"match[]": "up"})
    assert status == 200
    assert [s["cluster"] for s in body["data"]] == ["a", "b"], "the replayed WAL is served"


async def test_unexpected_storage_error_is_500_internal(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is not a StorageError is a bug, which the real storage cannot be
    asked for: its querier is replaced by one that raises."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("index corrupted")

    class Broken:
        select = label_names = label_values = staticmethod(broken)

    @asynccontextmanager
    async def querier(start: int, end: int) -> Any:
        yield Broken()

    monkeypatch.setattr(service.storage, "querier", querier)
    status, body = await get(service, "/api/v1/labels")
    assert status == 500
    assert body["errorType"] == "internal"
    assert "index corrupted" in body["error"]
    status, _ = await get(service, "/api/v1/status/buildinfo")
    assert status == 200
