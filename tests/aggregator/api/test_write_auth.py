"""Writes with push clusters configured: the token decides the cluster label."""

from __future__ import annotations

import base64

import pytest

from aggregator.config import Config
from tests.aggregator.conftest import MakeService, Service, clusters, encode

T0 = 1_700_000_000_000
SENT = (("__name__", "up"), ("cluster", "spoofed"), ("job", "node"))


def basic(password: str, user: str = "prometheus") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stored_series(service: Service) -> list[dict[str, str]]:
    status, body = await service.get_json("/api/v1/series", params={"match[]": "up"})
    assert status == 200
    return body["data"]


@pytest.fixture
async def fleet(make_service: MakeService) -> Service:
    return await make_service(Config(clusters=clusters("edge-1", "dc-2")))


@pytest.mark.parametrize(
    ("headers", "cluster"),
    [(bearer("token-edge-1"), "edge-1"), (basic("token-dc-2"), "dc-2")],
)
async def test_token_sets_the_cluster_label_over_the_senders(
    fleet: Service, headers: dict[str, str], cluster: str
) -> None:
    status, _ = await fleet.write(encode([(SENT, [T0], [1.0])]), headers=headers)
    assert status == 204
    assert await stored_series(fleet) == [{"__name__": "up", "cluster": cluster, "job": "node"}]


async def test_two_clusters_writing_the_same_series_stay_apart(fleet: Service) -> None:
    for headers in (bearer("token-edge-1"), basic("token-dc-2")):
        assert (await fleet.write(encode([(SENT, [T0], [1.0])]), headers=headers))[0] == 204
    assert [s["cluster"] for s in await stored_series(fleet)] == ["dc-2", "edge-1"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing credentials"),
        (bearer("token-nobody"), "invalid token"),
        (basic("token-edge-1x"), "invalid token"),
        ({"Authorization": "Token token-edge-1"}, "unsupported authorization scheme"),
    ],
)
async def test_wrong_or_missing_token_is_401_and_writes_nothing(
    fleet: Service, headers: dict[str, str], reason: str
) -> None:
    resp = await fleet.client.post(
        "/api/v1/write", data=encode([(SENT, [T0], [1.0])]), headers=headers
    )
    assert resp.status == 401
    assert reason in await resp.text()
    challenges = resp.headers.getall("WWW-Authenticate")
    assert any(c.startswith("Bearer ") for c in challenges)
    assert any(c.startswith("Basic ") for c in challenges)
    assert await stored_series(fleet) == []


async def test_open_writes_keep_the_senders_cluster_label(make_service: MakeService) -> None:
    service = await make_service()
    status, _ = await service.write(encode([(SENT, [T0], [1.0])]), headers=bearer("ignored"))
    assert status == 204
    assert await stored_series(service) == [{"__name__": "up", "cluster": "spoofed", "job": "node"}]


async def test_reads_need_no_token(fleet: Service) -> None:
    assert (await fleet.client.get("/api/v1/labels")).status == 200
