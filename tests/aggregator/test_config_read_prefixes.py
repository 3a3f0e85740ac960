"""`storage.object_store.read_prefixes` / `read_relist_interval` and a pull entry's
`object_store_prefix`: what a scale-out's query tier is configured with."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError

SHARD = "  - {name: shard-0, url: 'http://s0:9095', keep_cluster_label: true%s}\n"


def _load(tmp_path: Path, text: str):
    path = tmp_path / "aggregator.yml"
    path.write_text(text)
    return load_config(path)


def test_query_tier_config(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "clusters:\n"
        + SHARD % ", object_store_prefix: /fleet/shard-0/"
        + "  - {name: shard-1, url: 'http://s1:9095', keep_cluster_label: true}\n"
        "storage:\n"
        "  object_store:\n"
        "    type: s3\n    bucket: metrics\n    prefix: fleet/query\n"
        "    read_prefixes: [fleet/shard-0, /fleet/shard-1/]\n"
        "    read_relist_interval: 30s\n",
    )
    store = config.storage.object_store
    assert store.read_prefixes == ("fleet/shard-0", "fleet/shard-1")
    assert store.read_relist_interval_ms == 30_000
    assert [p.object_store_prefix for p in config.pull_clusters] == ["fleet/shard-0", None]
    assert config.storage_options().tiering.object_store.read_prefixes == store.read_prefixes


def test_defaults_read_nothing(tmp_path: Path) -> None:
    store = _load(tmp_path, "").storage.object_store
    assert store.read_prefixes == ()
    assert store.read_relist_interval_ms == 60_000


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            "storage:\n  object_store: {read_prefixes: fleet/shard-0}\n",
            "storage.object_store.read_prefixes",
            "must be a list of prefixes, got a string",
        ),
        (
            "storage:\n  object_store: {read_prefixes: [a, 3]}\n",
            "storage.object_store.read_prefixes[1]",
            "must be a string",
        ),
        (
            "storage:\n  object_store: {read_prefixes: ['/']}\n",
            "storage.object_store.read_prefixes[0]",
            "must not be empty",
        ),
        (
            "storage:\n  object_store: {read_prefixes: ['a/../b']}\n",
            "storage.object_store.read_prefixes[0]",
            "not a plain folder path",
        ),
        (
            "storage:\n  object_store: {prefix: q, read_prefixes: [q/]}\n",
            "storage.object_store.read_prefixes[0]",
            "this service's own prefix",
        ),
        (
            "storage:\n  object_store: {read_prefixes: [a, a/]}\n",
            "storage.object_store.read_prefixes[1]",
            "listed twice",
        ),
        (
            "storage:\n  object_store: {read_relist_interval: 10}\n",
            "storage.object_store.read_relist_interval",
            "duration",
        ),
        (
            "clusters:\n" + SHARD % ", object_store_prefix: fleet/shard-9",
            "clusters[0].object_store_prefix",
            "not one of storage.object_store.read_prefixes (none)",
        ),
        (
            "clusters:\n  - {name: p, url: 'http://p:9090', object_store_prefix: a}\n"
            "storage:\n  object_store: {read_prefixes: [a]}\n",
            "clusters[0].object_store_prefix",
            "needs keep_cluster_label: true",
        ),
        (
            "clusters:\n"
            + SHARD % ", object_store_prefix: a"
            + "  - {name: other, url: 'http://o:9095', keep_cluster_label: true,"
            " object_store_prefix: a}\n"
            "storage:\n  object_store: {read_prefixes: [a]}\n",
            "clusters[1].object_store_prefix",
            "already the prefix of cluster 'shard-0'",
        ),
    ],
)
def test_bad_values_name_the_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.key == key
    assert reason in info.value.reason
