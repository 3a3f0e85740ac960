"""A firing alert survives a restart of the service, and a SIGHUP reload.

The alert's `for` is 2 s, far below Prometheus's 10-minute grace period, under
which Prometheus would not restore it (it would fire again with a new
activeAt); here it keeps the activeAt it had, to the second (ALERTS_FOR_STATE
holds whole seconds), and fires again by the third evaluation.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
from datetime import datetime
from pathlib import Path
from typing import Any

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import http_get, post_write, start_aggregator, wait_for

RULES = """
groups:
- name: nodes
  interval: 1s
  rules:
  - alert: NodeDown
    expr: node_up == 0
    for: 2s
    annotations:
      summary: '{{ $labels.instance }} is down'
"""


class Writer(threading.Thread):
    """Keeps node_up{instance="a"} at 0, riding out the restart."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.url = ""
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.url:
                now = int(time.time() * 1000)
                body = encode_write_request(
                    WriteBatch.from_series(
                        [((("__name__", "node_up"), ("instance", "a")), [now], [0.0])]
                    )
                )
                try:
                    post_write(self.url, body, timeout=2)
                except (OSError, urllib.error.URLError):
                    pass  # down for the restart
            self.stop.wait(0.3)


def firing_alert(url: str) -> dict[str, Any] | None:
    try:
        status, body = http_get(f"{url}/api/v1/alerts", timeout=2)
    except OSError:
        return None
    if status != 200:
        return None
    for alert in json.loads(body)["data"]["alerts"]:
        if alert["state"] == "firing":
            return dict(alert)
    return None


def iterations(url: str) -> float:
    _, body = http_get(f"{url}/metrics")
    for line in body.decode().splitlines():
        if line.startswith("aggregator_rule_group_iterations_total{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_firing_alert_keeps_its_activeat_over_a_restart_and_a_reload(tmp_path: Path) -> None:
    workdir = tmp_path / "agg"
    workdir.mkdir()
    (workdir / "rules.yml").write_text(RULES)
    config = "rules:\n  files: [rules.yml]\n"
    writer = Writer()
    writer.start()
    proc, url = start_aggregator(workdir, config=config)
    try:
        writer.url = url
        before = wait_for(lambda: firing_alert(url), timeout=20, what="the alert to fire")
        active_at = ms(before["activeAt"])
        assert proc.stop() == 0
        time.sleep(1.0)  # down for a moment; the writer keeps trying

        proc, url = start_aggregator(workdir, config=config, port=int(url.rsplit(":", 1)[1]))
        after = wait_for(lambda: firing_alert(url), timeout=20, what="the alert to fire again")
        assert iterations(url) <= 3, "not firing by the third evaluation"
        assert ms(after["activeAt"]) == active_at // 1000 * 1000
        assert after["labels"] == before["labels"]

        # SIGHUP applies a changed rule file; the alert keeps its (restored) activeAt.
        (workdir / "rules.yml").write_text(RULES.replace("is down", "is down!"))
        proc.popen.send_signal(signal.SIGHUP)
        reloaded = wait_for(
            lambda: (lambda a: a if a and a["annotations"]["summary"] == "a is down!" else None)(
                firing_alert(url)
            ),
            timeout=10,
            what="the reloaded rule's annotation",
        )
        assert reloaded["activeAt"] == after["activeAt"]
    finally:
        writer.stop.set()
        writer.join(timeout=5)
        proc.stop()
