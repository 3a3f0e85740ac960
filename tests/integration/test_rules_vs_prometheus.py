"""The same rules in a real Prometheus 2.42 and in the service, fed the same data.

Both load tests/alerting/cases/live.rules.yml by the same path. Groups
evaluate on a grid whose offset is a hash of file path and group name, so
both evaluate at the very same timestamps; both get the same remote-written
samples (a 10-minute history, then one sample a second with nodes going down
and coming back), each posted half an interval before the evaluation that
first sees it. Then the services must agree, sample for sample, on what the
rules wrote (ALERTS, ALERTS_FOR_STATE, the recorded series: states, labels,
activeAt, values over time), and on the alerts they list (labels, state,
activeAt, value, rendered annotations).

Where 2.42 differs from the 3.x semantics the service follows, the data
keeps away (see the rule file's header).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

from alerting.group import evaluation_grid_point
from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import (
    REPO,
    http_get,
    post_write,
    start_aggregator,
    start_prometheus,
    wait_for,
)

RULES = REPO / "tests" / "alerting" / "cases" / "live.rules.yml"
GROUP = "live"
EXTERNAL_URL = "http://agg.example:9095"
LIVE_SECONDS = 13
HISTORY = 40  # samples, 15 s apart


def node_down(instance: str, s: int) -> bool:
    """The scenario (s: seconds into the live phase; -1 is the history)."""
    if instance == "eu-1":
        return 1 <= s < 6 or 7 <= s < 9
    if instance == "us-2":
        return 2 <= s < 8
    return False


def batch(ts: int, s: int, base: int) -> WriteBatch:
    """Every series' sample at `ts`; counters grow 10/s (eu) and 2/s (us) since `base`."""
    series = []
    for cluster in ("eu", "us"):
        for n in (1, 2, 3):
            instance = f"{cluster}-{n}"
            value = 0.0 if node_down(instance, s) else 1.0
            labels = (("__name__", "node_up"), ("cluster", cluster), ("instance", instance))
            series.append((labels, [ts], [value]))
        rate = 10 if cluster == "eu" else 2
        labels = (("__name__", "http_requests_total"), ("cluster", cluster))
        series.append((labels, [ts], [float(rate * (ts - base) // 1000)]))
    return WriteBatch.from_series(series)


def get(url: str, path: str, **params: str) -> Any:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    return json.loads(body)["data"]


def raw_samples(url: str, at_s: float) -> dict[str, dict[int, float]]:
    """Every sample the rules wrote in the last minute: series -> {timestamp: value}."""
    query = '{__name__=~"ALERTS|ALERTS_FOR_STATE|cluster:.+"}[1m]'
    out: dict[str, dict[int, float]] = {}
    for item in get(url, "/api/v1/query", query=query, time=f"{at_s:.3f}")["result"]:
        key = json.dumps(item["metric"], sort_keys=True)
        out[key] = {round(t * 1000): float(v) for t, v in item["values"]}
    return out


def eval_times(samples: dict[str, dict[int, float]]) -> set[int]:
    """When a service evaluated: the recorded node count is written every time."""
    key = json.dumps({"__name__": "cluster:node_up:sum", "cluster": "eu"}, sort_keys=True)
    return set(samples.get(key, {}))


def alerts_of(url: str) -> list[dict[str, Any]]:
    out = []
    for a in get(url, "/api/v1/alerts")["alerts"]:
        active = datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00"))
        out.append(
            {
                "labels": a["labels"],
                "annotations": a["annotations"],
                "state": a["state"],
                # Prometheus keeps nanoseconds, samples (and this service) milliseconds.
                "activeAt_ms": int(active.timestamp() * 1000),
                "value": a["value"],
            }
        )
    return sorted(out, key=lambda a: json.dumps(a["labels"], sort_keys=True))


class Feeder(threading.Thread):
    """Posts the history, then the live samples, to both services."""

    def __init__(self, urls: list[str], grid: int) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.grid = grid  # an evaluation time of the group, in the past
        self.live_start = 0
        self.errors: list[BaseException] = []
        self.done = threading.Event()

    def post(self, body: bytes) -> None:
        for url in self.urls:
            assert post_write(url, body) == 204

    def run(self) -> None:
        try:
            now = int(time.time() * 1000)
            grid = evaluation_grid_point(str(RULES), GROUP, 1000, now)
            base = grid + 500 - HISTORY * 15_000
            for k in range(HISTORY):  # all up, counters growing, up to `grid`
                self.post(encode_write_request(batch(base + k * 15_000, -1, base)))
            # The live phase starts once both hold the whole history: no evaluation
            # that is compared may see one with more of it than the other.
            now = int(time.time() * 1000)
            start = evaluation_grid_point(str(RULES), GROUP, 1000, now) + 2000
            self.live_start = start
            for s in range(LIVE_SECONDS + 1):
                ts = start + s * 1000 + 500  # half an interval after an evaluation
                while time.time() * 1000 < ts:
                    time.sleep(0.005)
                self.post(encode_write_request(batch(ts, s, base)))
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.done.set()


def test_same_rules_same_data_same_alerts(tmp_path: Path) -> None:
    prom_config = (
        "global:\n  evaluation_interval: 1s\n  external_labels: {fleet: prod}\n"
        f"rule_files: ['{RULES}']\n"
    )
    prom, prom_url = start_prometheus(
        tmp_path / "prom",
        prom_config,
        extra_args=["--web.enable-remote-write-receiver", f"--web.external-url={EXTERNAL_URL}"],
    )
    try:
        agg_config = (
            f"rules:\n  files: ['{RULES}']\n  evaluation_interval: 1s\n"
            f"alerting:\n  external_url: {EXTERNAL_URL}\n  external_labels: {{fleet: prod}}\n"
        )
        agg, agg_url = start_aggregator(tmp_path / "agg", config=agg_config)
        try:
            _compare(prom_url, agg_url)
        finally:
            agg.stop()
    finally:
        prom.stop()


def iterations(url: str, prefix: str) -> float:
    """How many times the group has been evaluated, from the service's own metrics."""
    status, body = http_get(f"{url}/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(f"{prefix}_rule_group_iterations_total{{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _compare(prom_url: str, agg_url: str) -> None:
    # Both must be evaluating (and past the restore after their second evaluation)
    # before anything happens, or their alerts would start at different times.
    for url, prefix in ((prom_url, "prometheus"), (agg_url, "aggregator")):
        wait_for(lambda u=url, p=prefix: iterations(u, p) >= 3, timeout=30, what=f"{prefix} rules")
    now = int(time.time() * 1000)
    feeder = Feeder([prom_url, agg_url], evaluation_grid_point(str(RULES), GROUP, 1000, now))
    feeder.start()
    wait_for(lambda: feeder.live_start or feeder.errors, timeout=30, what="the history")
    assert not feeder.errors, feeder.errors
    start = feeder.live_start

    # Mid-phase (evaluations 5 and 6 see eu and us with a node down each, every alert
    # firing), both services list the same alerts. Read 250 ms after an evaluation; a
    # late evaluation on a busy machine may need the next second.
    snapshots = []
    for s in (5, 6):
        target = start + s * 1000 + 250
        while time.time() * 1000 < target:
            time.sleep(0.005)
        snapshots.append((alerts_of(prom_url), alerts_of(agg_url)))
        if snapshots[-1][0] == snapshots[-1][1]:
            break
    prom_alerts, agg_alerts = snapshots[-1]
    assert agg_alerts == prom_alerts
    names = {(a["labels"]["alertname"], a["state"]) for a in agg_alerts}
    assert names == {
        ("ClusterLostNodes", "firing"),
        ("FleetNodesDown", "firing"),
        ("HighRequestRate", "firing"),
    }
    eu = next(a for a in agg_alerts if a["labels"].get("team") == "EU")
    assert eu["annotations"] == {
        "summary": "Cluster eu has 2 of 3 nodes up",
        "down": "eu-1 us-2 ",
        "where": f"prod {EXTERNAL_URL}",
    }

    assert feeder.done.wait(timeout=LIVE_SECONDS + 30)
    assert not feeder.errors, feeder.errors
    time.sleep(2.5)  # the last evaluations, and one after them
    end_s = time.time()
    prom_samples = raw_samples(prom_url, end_s)
    agg_samples = raw_samples(agg_url, end_s)

    # Compare from the first change (seen at s = 2, when both have run long enough to
    # write ALERTS) to the last evaluation both finished. The read may land while an
    # evaluation is half done (its recorded series written, its alerts not yet); a
    # group never overlaps itself, so an evaluation is finished once a later one wrote.
    prom_times, agg_times = eval_times(prom_samples), eval_times(agg_samples)
    finished = {t for t in prom_times if t < max(prom_times)} & {
        t for t in agg_times if t < max(agg_times)
    }
    common = {t for t in finished if t >= start + 2000}
    assert len(common) >= LIVE_SECONDS - 3, (sorted(common), start)

    def window(samples: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
        out = {}
        for key, points in samples.items():
            kept = {t: v for t, v in points.items() if t in common}
            if kept:
                out[key] = kept
        return out

    theirs, ours = window(prom_samples), window(agg_samples)
    rel = {k: sorted(t - start for t in v) for k, v in ours.items()}
    context = f"start={start} common={sorted(t - start for t in common)} ours={rel}"
    assert sorted(ours) == sorted(theirs), context
    for key in theirs:
        for t, v in theirs[key].items():
            mine = ours[key].get(t)
            assert mine is not None, (
                key,
                t - start,
                sorted(x - start for x in theirs[key]),
                context,
            )
            assert math.isclose(mine, v, rel_tol=1e-9), (key, t, v, mine)

    # And what they wrote covers every state: pending, firing, kept firing, resolved.
    firing_eu = json.dumps(
        {
            "__name__": "ALERTS",
            "alertname": "ClusterLostNodes",
            "alertstate": "firing",
            "cluster": "eu",
            "severity": "page",
            "team": "EU",
        },
        sort_keys=True,
    )
    fired_at = sorted(ours[firing_eu])
    # A sample posted at s + 0.5 is first seen by the evaluation at s + 1.
    assert fired_at[0] == start + 4000  # down from 2 s on, `for: 2s`
    assert start + 7000 in fired_at  # back up at 7 s, kept firing (keep_firing_for)
    assert fired_at[-1] == start + 11_000  # up for good at 10 s, kept for 2 s
