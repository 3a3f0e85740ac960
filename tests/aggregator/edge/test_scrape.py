"""Scraping a local metrics endpoint: labels, synthetic series, staleness."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from aggregator.edge.http import Client
from aggregator.edge.scrape import ScrapeLoop, Target
from aggregator.edge.window import Window
from remote_write.batch import is_stale_nan
from storage.labels import Matcher

BODIES = [
    '# TYPE a gauge\na{job="inner",x="1"} 1\na{x="2"} 2\n',
    '# TYPE a gauge\na{job="inner",x="1"} 3\n',
]


async def test_scrapes_store_labels_synthetic_series_and_staleness(aiohttp_server: Any) -> None:
    served = iter(BODIES)
    app = web.Application()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=next(served), content_type="text/plain")

    app.router.add_get("/metrics", metrics)
    server = await aiohttp_server(app)
    window = Window(60_000)
    clock = iter([1000.0, 1015.0]).__next__
    target = Target(
        "node",
        str(server.make_url("/metrics")),
        (("instance", "i"), ("job", "node")),
        15_000,
        5_000,
    )
    async with Client() as session:
        loop = ScrapeLoop(target, window, session, clock=clock)
        assert await loop.scrape_once() == 2
        assert await loop.scrape_once() == 1
    async with window.querier(0, 1 << 62) as q:
        ss = await q.select([Matcher.eq("__name__", "a")], 0, 1 << 62)
        up = await q.select([Matcher.eq("__name__", "up")], 0, 1 << 62)
    by_x = {lbl.get("x"): s for lbl, s in zip(ss.labels, ss.series, strict=True)}
    # The scraped `job` clashes with the target's: kept as exported_job.
    assert dict(ss.labels[0])["exported_job"] == "inner"
    assert ss.labels[0].get("job") == "node"
    assert by_x["1"].values.tolist() == [1.0, 3.0]
    # x="2" went away in the second scrape: a staleness marker at that scrape.
    assert by_x["2"].timestamps.tolist() == [1_000_000, 1_015_000]
    assert is_stale_nan(by_x["2"].values).tolist() == [False, True]
    assert up.values.tolist() == [1.0, 1.0]
    assert not math.isnan(up.values[0])


async def test_openmetrics_bodies_use_the_openmetrics_parser(aiohttp_server: Any) -> None:
    app = web.Application()
    body = "# TYPE c counter\nc_total 7 1700000000.5\n# EOF\n"

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=body.encode(),
            headers={"Content-Type": "application/openmetrics-text; version=1.0.0"},
        )

    app.router.add_get("/metrics", metrics)
    server = await aiohttp_server(app)
    window = Window(10**12)
    target = Target("j", str(server.make_url("/metrics")), (("job", "j"),), 15_000, 5_000)
    async with Client() as session:
        assert await ScrapeLoop(target, window, session).scrape_once() == 1
    async with window.querier(0, 1 << 62) as q:
        ss = await q.select([Matcher.eq("__name__", "c_total")], 0, 1 << 62)
    assert ss.timestamps.tolist() == [1_700_000_000_500]  # the exposed timestamp is kept
    assert ss.values.tolist() == [7.0]
