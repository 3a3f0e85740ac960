"""Read access: every endpoint but the open ones needs a web-config user or token; a user
limited to one cluster never sees another's series, endpoint by endpoint."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from aggregator.api.access import EDGE_PREFIX, OPEN_PATHS
from aggregator.config import Config, ServerConfig
from alerting.settings import RulesSettings
from remote_write.read import SAMPLES, ReadQuery, decode_read_response, encode_read_request
from tests.aggregator.conftest import MakeService, Service, clusters, encode
from tests.support.waiting import until_async

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "dash": "dash-token-1234"}
STEP = 15_000


def basic(user: str, password: str | None = None) -> dict[str, str]:
    raw = f"{user}:{password if password is not None else PASSWORDS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


BEARER = {"Authorization": f"Bearer {PASSWORDS['dash']}"}


def web_config(tmp_path: Path) -> Path:
    def h(secret: str) -> str:
        return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4)).decode()

    path = tmp_path / "web.yml"
    path.write_text(
        f"""basic_auth_users:
  alice: {h(PASSWORDS["alice"])}
  bob: {h(PASSWORDS["bob"])}
bearer_tokens:
  dash: {h(PASSWORDS["dash"])}
users:
  bob: {{clusters: [a]}}
  dash: {{clusters: [a]}}
http_server_config:
  headers: {{X-Content-Type-Options: nosniff}}
"""
    )
    return path


@pytest.fixture
async def service(make_service: MakeService, tmp_path: Path) -> Service:
    config = Config(clusters=clusters("a", "b"), web_config_file=web_config(tmp_path))
    svc = await make_service(config)
    now = int(time.time() * 1000)
    ts = [now - 120_000 + k * STEP for k in range(8)]
    for cluster, extra in (("a", ("zone", "north")), ("b", ("secret_b", "yes"))):
        body = encode(
            [
                ([("__name__", "up"), ("job", "api"), extra], ts, [1.0] * len(ts)),
                ([("__name__", f"only_in_{cluster}"), ("job", "api")], ts, [2.0] * len(ts)),
            ]
        )
        status, text = await svc.write(body, headers={"Authorization": f"Bearer token-{cluster}"})
        assert status == 204, text
    return svc


async def get(svc: Service, path: str, headers: dict[str, str], **params: Any) -> tuple[int, Any]:
    resp = await svc.client.get(path, params=params, headers=headers)
    if resp.content_type == "application/json":
        return resp.status, await resp.json()
    return resp.status, await resp.text()


def concrete(path: str) -> str:
    return path.replace("{name}", "job").replace("{filename}", "app.js")


async def test_every_endpoint_but_the_open_ones_refuses_a_missing_credential(
    service: Service,
) -> None:
    checked = []
    for route in service.app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = concrete(route.resource.canonical)
        if path in OPEN_PATHS or path.startswith(EDGE_PREFIX):  # cluster tokens, like writes
            continue
        resp = await service.client.request(route.method, path)
        assert resp.status == 401, (route.method, path)
        assert await resp.text() == "Unauthorized\n"
        assert resp.headers.getall("WWW-Authenticate") == [
            'Basic realm="aggregator", charset="UTF-8"',
            'Bearer realm="aggregator"',
        ]
        checked.append(path)
    assert {"/api/v1/query", "/api/v1/read", "/api/v1/clusters", "/metrics", "/"} <= set(checked)


async def test_open_endpoints_need_nothing(service: Service) -> None:
    for path in ("/-/healthy", "/-/ready"):
        assert (await service.client.get(path)).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice", "wrong"),
        basic("mallory", "alice-pw"),
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest x"},
        basic("bob", PASSWORDS["alice"]),
    ],
)
async def test_wrong_credentials_get_the_same_bare_401(
    service: Service, headers: dict[str, str]
) -> None:
    for _ in range(2):  # the second answer comes from the remembered outcome
        resp = await service.client.get("/api/v1/query", params={"query": "up"}, headers=headers)
        assert resp.status == 401
        assert await resp.text() == "Unauthorized\n"


async def test_users_and_tokens_read_and_configured_headers_are_sent(service: Service) -> None:
    for headers in (basic("alice"), basic("bob"), BEARER):
        resp = await service.client.get("/api/v1/query", params={"query": "up"}, headers=headers)
        assert resp.status == 200
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_metrics_needs_a_credential_unless_configured_open(
    make_service: MakeService, tmp_path: Path
) -> None:
    svc = await make_service(Config(web_config_file=web_config(tmp_path)))
    assert (await svc.client.get("/metrics")).status == 401
    assert (await svc.client.get("/metrics", headers=basic("alice"))).status == 200
    await svc.client.close()
    open_metrics = Config(
        web_config_file=web_config(tmp_path), server=ServerConfig(metrics_auth=False)
    )
    svc = await make_service(open_metrics)
    assert (await svc.client.get("/metrics")).status == 200
    assert (await svc.client.get("/api/v1/labels")).status == 401


# -- a reader limited to cluster "a" -------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "dash"])
async def test_limited_reader_queries_see_only_its_cluster(service: Service, who: str) -> None:
    headers = basic("bob") if who == "bob" else BEARER
    now = time.time()
    for q in ("up", '{__name__=~".+"}', 'up{cluster="b"}', "count by (cluster) (up)"):
        _, body = await get(service, "/api/v1/query", headers, query=q, time=f"{now:.3f}")
        assert {r["metric"].get("cluster", "a") for r in body["data"]["result"]} <= {"a"}, q
        assert "secret_b" not in str(body)
        assert "only_in_b" not in str(body)
    _, body = await get(
        service,
        "/api/v1/query_range",
        headers,
        query="sum by (cluster) (up)",
        start=f"{now - 300:.3f}",
        end=f"{now:.3f}",
        step="15",
    )
    assert [r["metric"] for r in body["data"]["result"]] == [{"cluster": "a"}]
    _, full = await get(service, "/api/v1/query", basic("alice"), query="count(up)")
    assert full["data"]["result"][0]["value"][1] == "2"  # alice sees both


async def test_limited_reader_series_labels_values_exemplars_metadata_clusters(
    service: Service,
) -> None:
    bob = basic("bob")
    _, body = await get(service, "/api/v1/series", bob, **{"match[]": '{__name__=~".+"}'})
    assert {s["cluster"] for s in body["data"]} == {"a"}
    _, body = await get(service, "/api/v1/labels", bob)
    assert "secret_b" not in body["data"]
    assert "zone" in body["data"]
    _, body = await get(service, "/api/v1/label/cluster/values", bob)
    assert body["data"] == ["a"]
    _, body = await get(service, "/api/v1/label/__name__/values", bob)
    assert body["data"] == ["only_in_a", "up"]
    _, body = await get(service, "/api/v1/query_exemplars", bob, query="up")
    assert body["data"] == []
    _, body = await get(service, "/api/v1/metadata", bob)
    assert "only_in_b" not in body["data"]
    _, body = await get(service, "/api/v1/clusters", bob)
    assert [c["name"] for c in body["data"]] == ["a"]
    _, body = await get(service, "/api/v1/clusters", basic("alice"))
    assert [c["name"] for c in body["data"]] == ["a", "b"]


async def test_limited_reader_remote_read_sees_only_its_cluster(service: Service) -> None:
    now = int(time.time() * 1000)
    query = ReadQuery(now - 600_000, now, (("=~", "__name__", ".+"),))
    resp = await service.client.post(
        "/api/v1/read",
        data=encode_read_request([query], [SAMPLES]),
        headers={
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            **basic("bob"),
        },
    )
    assert resp.status == 200
    (result,) = decode_read_response(await resp.read())
    assert {dict(s)["cluster"] for s in result.batch.series} == {"a"}
    assert len(result.batch.series) == 2


ACCESS_RULES = """
groups:
- name: fleet
  interval: 1s
  rules:
  - alert: UpSomewhere
    expr: up > 0
- name: only-b
  cluster: b
  interval: 1s
  rules:
  - alert: BSecret
    expr: only_in_b > 0
"""


async def test_limited_reader_rules_and_alerts_show_only_its_clusters(
    make_service: MakeService, tmp_path: Path
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(ACCESS_RULES)
    config = Config(
        clusters=clusters("a", "b"),
        web_config_file=web_config(tmp_path),
        rules=RulesSettings(files=("rules/*.yml",), base_dir=tmp_path, evaluation_interval_ms=1000),
    )
    svc = await make_service(config)
    now = int(time.time() * 1000)
    ts = [now - 60_000 + k * STEP for k in range(5)]
    for cluster in ("a", "b"):
        series = [([("__name__", "up"), ("job", "api")], ts, [1.0] * 5)]
        series.append(([("__name__", f"only_in_{cluster}")], ts, [1.0] * 5))
        status, _ = await svc.write(
            encode(series), headers={"Authorization": f"Bearer token-{cluster}"}
        )
        assert status == 204

    async def everything_fires() -> bool:
        _, body = await get(svc, "/api/v1/alerts", basic("alice"))
        return len(body["data"]["alerts"]) == 3

    await until_async(everything_fires)
    _, body = await get(svc, "/api/v1/alerts", basic("bob"))
    assert [a["labels"]["cluster"] for a in body["data"]["alerts"]] == ["a"]
    _, body = await get(svc, "/api/v1/rules", basic("bob"))
    assert [g["name"] for g in body["data"]["groups"]] == ["fleet"]
    (rule,) = body["data"]["groups"][0]["rules"]
    assert rule["state"] == "firing"
    assert [a["labels"]["cluster"] for a in rule["alerts"]] == ["a"]
    assert "only_in_b" not in str(body)
    _, body = await get(svc, "/api/v1/rules", basic("alice"))
    assert [g["name"] for g in body["data"]["groups"]] == ["fleet", "only-b"]
    # What concerns the whole fleet or the service is not for a limited reader.
    for path in ("/metrics", "/api/v1/status/blocks", "/config/v1/rules"):
        status, text = await get(svc, path, basic("bob"))
        assert status == 403, path
        assert "may read only clusters a" in text
        status, _ = await get(svc, path, basic("alice"))
        assert status in (200, 404), path  # 404: no ruler namespace yet, as Mimir answers
    resp = await svc.client.post("/-/reload", headers=basic("bob"))
    assert resp.status == 403
