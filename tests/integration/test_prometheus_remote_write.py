"""A real Prometheus 2.42 scrapes itself and remote-writes to the service.

The series it scraped must show up in /api/v1/series with the `cluster` label
of the token it used, whatever `cluster` label the sender attached itself.
"""

import json
import time
import urllib.parse

from tests.support.realparts import free_port, http_get, start_aggregator, start_prometheus

TOKEN = "s3cret-edge-token"


def _series(url: str, selector: str) -> list[dict[str, str]]:
    query = urllib.parse.urlencode({"match[]": selector})
    status, body = http_get(f"{url}/api/v1/series?{query}")
    assert status == 200, body
    return json.loads(body)["data"]


def _wait_for(fetch, *, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_prometheus_remote_write_reaches_series_api(tmp_path, prometheus_binary):
    token_file = tmp_path / "edge.token"
    token_file.write_text(TOKEN + "\n")
    service, url = start_aggregator(
        tmp_path / "agg",
        config=f"clusters:\n  - name: edge-1\n    token_file: {token_file}\n",
    )
    prom = None
    prom_port = free_port()
    try:
        prom, _ = start_prometheus(
            tmp_path / "prom",
            f"""
global:
  scrape_interval: 1s
  external_labels:
    cluster: spoofed-name
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
remote_write:
  - url: {url}/api/v1/write
    basic_auth:
      username: edge-1
      password: {TOKEN}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 2s
""",
            port=prom_port,
        )
        found = _wait_for(lambda: _series(url, 'up{job="prometheus"}'), timeout=60)
        assert found, f"no series arrived; service log:\n{service.log_text()[-3000:]}"
        assert found == [
            {
                "__name__": "up",
                "cluster": "edge-1",
                "instance": f"127.0.0.1:{prom_port}",
                "job": "prometheus",
            }
        ]
        # Everything it sent carries the token's cluster, none the sender's own.
        everything = _series(url, '{job="prometheus"}')
        assert len(everything) > 100
        assert {s["cluster"] for s in everything} == {"edge-1"}
        assert any(s["__name__"] == "prometheus_build_info" for s in everything)

        # Metadata arrives in requests of its own and is served as Prometheus serves it.
        def metadata():
            _, body = http_get(f"{url}/api/v1/metadata?metric=prometheus_build_info")
            return json.loads(body)["data"]

        meta = _wait_for(metadata, timeout=30)
        assert meta["prometheus_build_info"][0]["type"] == "gauge"
    finally:
        if prom is not None:
            prom.stop(timeout=60)
        service.stop()
