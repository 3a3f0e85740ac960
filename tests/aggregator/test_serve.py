"""`python -m aggregator serve` as a real process: start-up log, readiness, clean SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import REPO, http_get, post_write, start_aggregator


def test_serve_logs_listens_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, url = start_aggregator(tmp_path / "run1", data_dir=data_dir)
    try:
        t = int(time.time() * 1000)
        body = encode_write_request(WriteBatch.from_series([((("__name__", "up"),), [t], [1.0])]))
        assert post_write(url, body) == 204
        assert http_get(f"{url}/-/healthy")[0] == 200
    finally:
        code = proc.stop()
    log = proc.log_path.read_text()
    assert code == 0, log
    listening = next(line for line in log.splitlines() if " msg=listening " in line)
    assert f"listen={url.removeprefix('http://')}" in listening
    assert f"data_dir={data_dir}" in listening
    assert 'config="<embedded default>"' in listening
    assert ' msg="signal received" signal=SIGTERM' in log
    assert ' msg="storage closed" ' in log
    assert "Traceback" not in log

    proc, url = start_aggregator(tmp_path / "run2", data_dir=data_dir)
    try:
        status, raw = http_get(f"{url}/api/v1/series?match[]=up")
        assert status == 200
        assert json.loads(raw)["data"] == [{"__name__": "up"}]
    finally:
        assert proc.stop() == 0


def test_unusable_data_dir_fails_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(blocker / "data"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert 'msg="cannot start"' in proc.stderr
    assert "Not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr
