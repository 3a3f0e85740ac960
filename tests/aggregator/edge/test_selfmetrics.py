"""The agent's own metrics: text format, served on the event loop."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.edge.selfmetrics import Metric, render, serve
from tests.support.realparts import free_port

METRICS = [
    Metric("gauge", "aggregator_edge_queue_records", "Records in the on-disk queue.", 3),
    Metric("counter", "aggregator_edge_sent_bytes", "Bytes the host acknowledged.", 1234.5),
    Metric("gauge", "aggregator_edge_host_up", "Whether the last send reached the host.", 0),
]


def test_render_is_the_text_format_prometheus_client_reads() -> None:
    text = render(METRICS).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["aggregator_edge_sent_bytes"].type == "counter"
    assert [(s.name, s.value) for s in families["aggregator_edge_sent_bytes"].samples] == [
        ("aggregator_edge_sent_bytes_total", 1234.5)
    ]
    assert families["aggregator_edge_queue_records"].samples[0].value == 3
    assert "# HELP aggregator_edge_host_up Whether the last send reached the host." in text


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def test_serves_metrics_read_when_scraped() -> None:
    port = free_port()
    value = {"n": 1.0}
    server = await serve(f"127.0.0.1:{port}", lambda: [Metric("gauge", "x_up", "Doc.", value["n"])])
    try:
        status, ctype, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert (status, ctype) == (200, "text/plain; version=0.0.4; charset=utf-8")
        assert "x_up 1.0" in body.splitlines()
        value["n"] = 7
        _, _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert "x_up 7.0" in body.splitlines()
        status, _, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/other")
        assert status == 404
        assert "/metrics" in body
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("value", "text"), [(float("nan"), "NaN"), (float("inf"), "+Inf"), (0.25, "0.25")]
)
def test_special_values(value: float, text: str) -> None:
    assert render([Metric("gauge", "g", "d", value)]).decode().splitlines()[-1] == f"g {text}"
