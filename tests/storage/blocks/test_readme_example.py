"""The README's pandas example runs against a real block and gives back what was written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from remote_write.batch import STALE_NAN
from storage.labels import Labels
from tests.storage.blocks.helpers import batch_of, write_block

README = Path(__file__).resolve().parents[3] / "README.md"
T0 = 1_700_000_000_000


def example() -> str:
    text = README.read_text()
    match = re.search(r"Reading a block with pandas.*?```python\n(.*?)```", text, re.S)
    assert match, "the README has the pandas example"
    return match.group(1)


def test_readme_pandas_example_reads_a_block(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(240, dtype=np.int64) * 15_000
    series = []
    loads = {}
    for i, cluster in enumerate(["eu-west", "eu-west", "us-east"]):
        values = np.round(rng.uniform(0, 4, len(ts)), 2)
        if i == 1:
            values[-1] = STALE_NAN  # the target went away
        labels = Labels.from_dict(
            {"__name__": "node_load1", "cluster": cluster, "instance": f"n{i}:9100"}
        )
        series.append((labels, ts, values))
        loads[f"n{i}:9100"] = values
    series.append((Labels.from_dict({"__name__": "up", "cluster": "eu-west"}), ts, np.ones(240)))
    meta = write_block(tmp_path, [batch_of(series)])
    scope = {"block": str(tmp_path / meta.id)}
    exec(example(), scope)  # the README's code, as a user would run it
    samples = scope["samples"]
    assert set(samples.instance) == {"n0:9100", "n1:9100"}  # eu-west only
    for instance, values in loads.items():
        if instance == "n2:9100":
            continue
        got = samples[samples.instance == instance].value.to_numpy()
        np.testing.assert_array_equal(got.view(np.uint64), values.view(np.uint64))
    printed = capsys.readouterr().out
    assert "n0:9100" in printed
    assert str(np.nanmax(loads["n0:9100"])) in printed
