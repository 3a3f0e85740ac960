"""TLS and read users with real Prometheus 2.42 on both sides, from one web-config file.

A member Prometheus remote-writes over TLS with a client certificate (no token:
the certificate names the push cluster). A second Prometheus, started with the
very same web-config file as the service (so it serves TLS and basic auth
itself), reads the service by `remote_read` with basic auth; its own HTTP API
answers with the service's series, behind the same users. Certificates are
made by the test.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import numpy as np
import pytest

from tests.support.certs import TestCA
from tests.support.fleetload import WRITE_HEADERS, compress, encode_labels, encode_series
from tests.support.realparts import (
    client_tls,
    free_port,
    http_get,
    start_aggregator,
    start_prometheus,
)

pytestmark = pytest.mark.integration

PASSWORD = "reader-secret"


def auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


READER = auth("reader", PASSWORD)


def query(base: str, ca: Path, q: str, headers: dict[str, str]) -> tuple[int, dict]:
    params = urllib.parse.urlencode({"query": q, "time": f"{time.time():.3f}"})
    status, body = http_get(
        f"{base}/api/v1/query?{params}", context=client_tls(ca), headers=headers
    )
    return status, (json.loads(body) if body.startswith(b"{") else {"raw": body.decode()})


def wait_for(predicate: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict[str, object]]:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("server", server=True)
    edge = ca.issue("edge-1", server=False, dns=("edge-1",))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(6)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"""tls_server_config:
  cert_file: {server.cert}
  key_file: {server.key}
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: {ca.cert_file}
basic_auth_users:
  reader: {hashed}
"""
    )
    agg, agg_url = start_aggregator(
        tmp_path / "agg",
        config=(
            "clusters:\n  - name: edge-1\n  - name: edge-2\n    token: token-2\n"
            f"web_config_file: {web}\n"
        ),
        tls_ca=ca.cert_file,
    )
    procs = [agg]
    try:
        member, _ = start_prometheus(
            tmp_path / "member",
            f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs: [{{targets: ["127.0.0.1:{{PORT}}"]}}]
remote_write:
  - url: {agg_url}/api/v1/write
    tls_config: {{ca_file: {ca.cert_file}, cert_file: {edge.cert}, key_file: {edge.key}}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
""".replace("{PORT}", str(port := free_port())),
            port=port,
        )
        procs.append(member)
        reader, reader_url = start_prometheus(
            tmp_path / "reader",
            f"""global: {{}}
remote_read:
  - url: {agg_url}/api/v1/read
    read_recent: true
    basic_auth: {{username: reader, password: {PASSWORD}}}
    tls_config: {{ca_file: {ca.cert_file}}}
""",
            web_config=web,
            tls_ca=ca.cert_file,
            ready_headers=READER,
        )
        procs.append(reader)
        yield {"agg": agg_url, "reader": reader_url, "ca": ca.cert_file}
    finally:
        for p in reversed(procs):
            p.stop(timeout=30)


def test_member_writes_over_tls_with_a_client_certificate_and_reads_need_the_users(
    fleet: dict[str, object],
) -> None:
    agg, reader, ca = str(fleet["agg"]), str(fleet["reader"]), fleet["ca"]
    assert isinstance(ca, Path)
    q = 'prometheus_build_info{cluster="edge-1"}'

    def arrived() -> bool:
        status, body = query(agg, ca, q, READER)
        return status == 200 and bool(body["data"]["result"])

    wait_for(arrived)  # the certificate made the member cluster edge-1

    # The service's API and the reader Prometheus (same web-config file): same users.
    for base in (agg, reader):
        status, body = query(base, ca, "up", {})
        assert status == 401, base
        status, body = query(base, ca, "up", auth("reader", "wrong"))
        assert status == 401, base
        assert "reader" not in str(body)
    # The reader Prometheus answers from the service, through remote_read with basic auth.
    status, body = query(reader, ca, q, READER)
    assert status == 200
    (series,) = body["data"]["result"]
    assert series["metric"]["cluster"] == "edge-1"
    assert series["metric"]["job"] == "self"


def test_writes_without_certificate_or_token_are_refused_and_tokens_still_work(
    fleet: dict[str, object],
) -> None:
    agg, ca = str(fleet["agg"]), fleet["ca"]
    assert isinstance(ca, Path)
    now = int(time.time() * 1000)
    body = compress(
        [
            encode_series(
                encode_labels([("__name__", "probe"), ("job", "t")]),
                np.array([now], dtype=np.int64),
                np.array([1.0]),
            )
        ]
    )

    def post(headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"{agg}/api/v1/write", data=body, headers={**WRITE_HEADERS, **headers}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=client_tls(ca)) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post({}) == 401
    assert post({"Authorization": "Bearer nope"}) == 401
    assert post({"Authorization": "Bearer token-2"}) == 204
    status, body_json = query(agg, ca, 'probe{cluster="edge-2"}', READER)
    assert status == 200
    assert len(body_json["data"]["result"]) == 1
