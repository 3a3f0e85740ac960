"""SIGKILL the service while clients write; after a restart on the same data dir,
every sample that was acknowledged with a 2xx is there, and none is doubled."""

import asyncio
import json
import time
import urllib.parse

import aiohttp

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import free_port, http_get, start_aggregator

WRITERS = 4
SERIES_PER_WRITER = 50
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


def _body(writer: int, step: int, base_ms: int) -> bytes:
    ts = base_ms + step * 1000
    return encode_write_request(
        WriteBatch.from_series(
            [
                (
                    (("__name__", "crash_probe"), ("series", str(s)), ("writer", str(writer))),
                    [ts],
                    [float(step)],
                )
                for s in range(SERIES_PER_WRITER)
            ]
        )
    )


async def _write_until_killed(url: str, writer: int, base_ms: int, acked: dict[int, int]) -> None:
    """Write steps in order; record the last step acknowledged with a 2xx."""
    async with aiohttp.ClientSession() as session:
        step = 0
        while True:
            try:
                async with session.post(
                    f"{url}/api/v1/write", data=_body(writer, step, base_ms), headers=HEADERS
                ) as resp:
                    await resp.read()
                    if resp.status // 100 != 2:
                        raise AssertionError(f"write refused: {resp.status}")
            except aiohttp.ClientError:
                return  # the service is gone
            acked[writer] = step
            step += 1


async def _run_writers_and_kill(service, url: str, base_ms: int) -> dict[int, int]:
    acked: dict[int, int] = {}
    tasks = [
        asyncio.create_task(_write_until_killed(url, w, base_ms, acked)) for w in range(WRITERS)
    ]
    while sum(acked.values()) < 200:  # let a good number of writes land first
        await asyncio.sleep(0.05)
        assert all(not t.done() or t.exception() is None for t in tasks)
    service.kill()
    await asyncio.gather(*tasks)
    return acked


def _stored_steps(url: str, writer: int, at_s: float) -> dict[str, list[float]]:
    query = urllib.parse.urlencode(
        {"query": f'crash_probe{{writer="{writer}"}}[1h]', "time": f"{at_s:.3f}"}
    )
    status, body = http_get(f"{url}/api/v1/query?{query}")
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return {r["metric"]["series"]: [float(v) for _, v in r["values"]] for r in result}


def test_acknowledged_writes_survive_sigkill(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    service, url = start_aggregator(tmp_path / "run1", data_dir=data_dir, port=port)
    base_ms = int(time.time() * 1000) - 30 * 60_000
    try:
        acked = asyncio.run(_run_writers_and_kill(service, url, base_ms))
    finally:
        service.kill()
    assert len(acked) == WRITERS

    service, url = start_aggregator(tmp_path / "run2", data_dir=data_dir, port=port)
    try:
        at_s = time.time()
        for writer, last_step in acked.items():
            stored = _stored_steps(url, writer, at_s)
            assert len(stored) == SERIES_PER_WRITER
            for series, values in stored.items():
                # Every acknowledged step is there, in order, exactly once; a step
                # in flight at the kill may or may not have made it.
                assert values[: last_step + 1] == [float(s) for s in range(last_step + 1)], (
                    f"writer {writer} series {series}: acknowledged up to {last_step}"
                )
                assert len(values) in (last_step + 1, last_step + 2)
    finally:
        service.stop()
