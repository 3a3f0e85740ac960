"""Config loading: the defaults, every section, and errors naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import Config, ListenAddress, load_config, parse_listen
from aggregator.errors import ConfigError
from storage.options import FsyncPolicy


def write(tmp_path: Path, text: str, name: str = "aggregator.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert str(path) in str(err), "the message names the file"
    return err


def test_embedded_default_is_local_open_and_bounded() -> None:
    config = Config()
    assert config.listen == ListenAddress("127.0.0.1", 9095)
    assert config.data_dir == Path("data")
    assert config.clusters == ()
    options = config.storage_options()
    assert options.retention_ms == 24 * 3_600_000
    assert options.wal_fsync is FsyncPolicy.BATCH
    assert config.query.delayed_name_removal, "what the PromQL test data expects"


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.listen == Config().listen
    assert config.limits == Config().limits
    assert config.data_dir == tmp_path / "data", "relative to the config file's folder"


def test_full_file(tmp_path: Path) -> None:
    (tmp_path / "edge.token").write_text("s3cret-edge\n")
    config = load_config(
        write(
            tmp_path,
            """
listen: "[::1]:9999"
data_dir: /var/lib/agg
clusters:
  - name: edge-1
    token_file: edge.token
  - name: dc.2
    token: "  dc-token  "
limits:
  max_request_bytes: 8MiB
  max_decoded_bytes: 64MB
  max_label_names_per_series: 30
  max_label_name_length: 200
  max_label_value_length: 4096
  max_series_per_cluster: 5000
  max_future: 2m
  out_of_order_window: 1h
storage:
  retention: 2d
  wal_fsync: interval
  wal_fsync_interval: 250ms
  wal_segment_size: 1MiB
query:
  lookback_delta: 1m
  timeout: 30s
  max_samples: 1000
  delayed_name_removal: false
""",
        )
    )
    assert config.listen == ListenAddress("::1", 9999)
    assert str(config.listen) == "[::1]:9999"
    assert config.data_dir == Path("/var/lib/agg")
    assert [(c.name, c.token) for c in config.clusters] == [
        ("edge-1", "s3cret-edge"),
        ("dc.2", "dc-token"),
    ]
    assert config.clusters[0].token_file == tmp_path / "edge.token"
    assert "s3cret" not in repr(config), "tokens stay out of reprs and logs"

    options = config.storage_options()
    assert config.limits.max_request_bytes == 8 << 20
    assert config.limits.max_decoded_bytes == 64 << 20
    assert options.series_limits.max_label_names == 30
    assert options.series_limits.max_label_name_length == 200
    assert options.series_limits.max_label_value_length == 4096
    assert options.max_series_per_cluster == 5000
    assert options.max_future_ms == 120_000
    assert options.out_of_order_window_ms == 3_600_000
    assert options.retention_ms == 2 * 86_400_000
    assert options.wal_fsync is FsyncPolicy.INTERVAL
    assert options.wal_fsync_interval_ms == 250
    assert options.wal_segment_bytes == 1 << 20
    assert (config.query.lookback_delta_ms, config.query.timeout_ms) == (60_000, 30_000)
    assert config.query.max_samples == 1000
    assert config.query.delayed_name_removal is False


def test_fsync_callback_reaches_storage_options() -> None:
    seen: list[float] = []
    options = Config().storage_options(on_wal_fsync=seen.append)
    assert options.on_wal_fsync is not None
    options.on_wal_fsync(0.5)
    assert seen == [0.5]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("listen: 9095\n", "listen", "must be a string, got a number (9095)"),
        ("listen: localhost\n", "listen", "expected HOST:PORT"),
        ("listen: 'host:70000'\n", "listen", "port 70000 is out of range"),
        ("lisen: ':1'\n", "lisen", "unknown key (allowed here: "),
        ("limits:\n  max_future: 10\n", "limits.max_future", "durations need a unit"),
        ("limits:\n  max_future: 10 min\n", "limits.max_future", "not a valid duration"),
        (
            "limits:\n  max_series_per_cluster: lots\n",
            "limits.max_series_per_cluster",
            "must be an integer, got a string ('lots')",
        ),
        (
            "limits:\n  max_series_per_cluster: -1\n",
            "limits.max_series_per_cluster",
            "must be at least 0",
        ),
        (
            "limits:\n  max_request_bytes: 3 parsecs\n",
            "limits.max_request_bytes",
            "not a valid size",
        ),
        (
            "limits:\n  max_label_names_per_series: true\n",
            "limits.max_label_names_per_series",
            "must be an integer, got a boolean",
        ),
        ("limits: [1]\n", "limits", "must be a mapping, got a list"),
        (
            "storage:\n  wal_fsync: sometimes\n",
            "storage.wal_fsync",
            "unknown policy 'sometimes' (one of: batch, always, interval, never)",
        ),
        ("storage:\n  retention: 0\n", "storage.retention", "must be greater than zero"),
        ("storage:\n  retension: 1d\n", "storage.retension", "unknown key"),
        ("query:\n  timeout: 1x\n", "query.timeout", "not a valid duration"),
        (
            "query:\n  delayed_name_removal: 'no'\n",
            "query.delayed_name_removal",
            "must be true or false, got a string ('no')",
        ),
        ("clusters: {name: a}\n", "clusters", "must be a list of clusters"),
        ("clusters:\n  - name: a\n", "clusters[0].token", "needs a token or a token_file"),
        ("clusters:\n  - token: t\n", "clusters[0].name", "is required"),
        (
            "clusters:\n  - name: 'a b'\n    token: t\n",
            "clusters[0].name",
            "invalid cluster name 'a b'",
        ),
        ("clusters:\n  - name: a\n    token: ''\n", "clusters[0].token", "must not be empty"),
        (
            "clusters:\n  - name: a\n    token: t\n    extra: 1\n",
            "clusters[0].extra",
            "unknown key",
        ),
        (
            "clusters:\n  - name: a\n    token: t\n    token_file: f\n",
            "clusters[0].token_file",
            "either token or token_file, not both",
        ),
        (
            "clusters:\n  - name: a\n    token: t1\n  - name: a\n    token: t2\n",
            "clusters[1].name",
            "duplicate cluster name 'a' (also clusters[0])",
        ),
        (
            "clusters:\n  - name: a\n    token: same\n  - name: b\n    token: same\n",
            "clusters[1].token",
            "same token as clusters[0] ('a')",
        ),
        (
            "clusters:\n  - name: remote\n    url: ftp://prom:9090\n",
            "clusters[0].url",
            "must be an http:// or https:// URL of the member's Prometheus",
        ),
        (
            "clusters:\n  - name: remote\n    url: http://prom:9090\n    token: x\n",
            "clusters[0].token",
            "a pull cluster (with url) has no push token",
        ),
        (
            "clusters:\n  - name: a\n    token: x\n  - name: a\n    url: http://p:1\n",
            "clusters[1].name",
            "duplicate cluster name 'a' (also clusters[0])",
        ),
        (
            "clusters:\n  - {name: a, url: 'http://p:1', basic_auth: {username: u}}\n",
            "clusters[0].basic_auth.password",
            "set exactly one of password or password_file",
        ),
        (
            "clusters:\n  - {name: a, url: 'http://p:1', external_labels_drop: [cluster]}\n",
            "clusters[0].external_labels_drop",
            "cluster is always replaced",
        ),
        (
            "clusters:\n  - {name: a, url: 'http://p:1', keep_cluster_label: yes please}\n",
            "clusters[0].keep_cluster_label",
            "must be true or false",
        ),
        (
            "clusters:\n  - {name: a, url: 'http://p:1', tls: {cert_file: /nope}}\n",
            "clusters[0].tls.cert_file",
            "does not exist",
        ),
        ("query:\n  partial_response: maybe\n", "query.partial_response", "must be true or false"),
        ("query:\n  replica_labels: [replica, 1x]\n", "query.replica_labels[1]", "invalid label"),
        ("query:\n  stale_after: 5\n", "query.stale_after", "must be a duration string"),
        ("data_dir: [a]\n", "data_dir", "must be a string, got a list"),
        (
            "storage:\n  block_duration: 7h\n",
            "storage.block_duration",
            "must divide a day evenly",
        ),
        (
            "storage:\n  object_store: {type: gcs}\n",
            "storage.object_store.type",
            "unknown object store type 'gcs' (local or s3)",
        ),
        (
            "storage:\n  object_store: {type: s3}\n",
            "storage.object_store.bucket",
            "an s3 object store needs a bucket",
        ),
        (
            "storage:\n  object_store: {type: s3, bucket: b, access_key_id: k}\n",
            "storage.object_store.secret_access_key",
            "set access_key_id and secret_access_key together",
        ),
        (
            "storage:\n  object_store: {type: s3, bucket: b, path: /x}\n",
            "storage.object_store.path",
            "only a local object store has a path",
        ),
        (
            "storage:\n  object_store: {type: s3, bucket: b, buckit: c}\n",
            "storage.object_store.buckit",
            "unknown key",
        ),
        (
            "query:\n  max_object_store_bytes: lots\n",
            "query.max_object_store_bytes",
            "not a valid size",
        ),
    ],
)
def test_bad_values_name_the_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    err = config_error(tmp_path, text)
    assert err.key == key
    assert reason in err.reason
    assert f": {key}: " in str(err)


def test_token_file_missing(tmp_path: Path) -> None:
    err = config_error(tmp_path, "clusters:\n  - name: a\n    token_file: nope.token\n")
    assert err.key == "clusters[0].token_file"
    assert str(tmp_path / "nope.token") in err.reason
    assert "does not exist" in err.reason


def test_token_file_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.token").write_text("  \n")
    err = config_error(
        tmp_path,
        "clusters:\n  - name: a\n    token: x\n  - name: b\n    token_file: empty.token\n",
    )
    assert err.key == "clusters[1].token_file"
    assert "is empty" in err.reason


def test_token_file_shared_with_inline_token(tmp_path: Path) -> None:
    (tmp_path / "b.token").write_text("same\n")
    err = config_error(
        tmp_path,
        "clusters:\n  - name: a\n    token: same\n  - name: b\n    token_file: b.token\n",
    )
    assert err.key == "clusters[1].token_file"
    assert "same token as clusters[0]" in err.reason
    assert "same" not in err.reason.replace("same token", ""), "the token is not printed"


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    err = config_error(tmp_path, "listen: ':1'\nlimits:\n  max_future: [\n")
    assert err.key == ""
    assert "invalid YAML" in err.reason
    assert "line" in err.reason


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    err = config_error(tmp_path, "listen: ':1'\nlisten: ':2'\n")
    assert err.key.startswith("listen")
    assert err.reason == "duplicate key"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = config_error(tmp_path, "- a\n- b\n")
    assert "must be a mapping" in err.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(tmp_path / "absent.yml")
    assert info.value.file == str(tmp_path / "absent.yml")


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "listen: '0.0.0.0:1'\ndata_dir: /x\n"))
    overridden = config.with_overrides(listen=":9000", data_dir="rel/dir")
    assert overridden.listen == ListenAddress("", 9000)
    assert overridden.data_dir == Path("rel/dir")
    assert config.with_overrides() == config


def test_bad_listen_flag_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Config().with_overrides(listen="nonsense")
    assert (info.value.file, info.value.key) == ("command line", "--listen")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9095", ListenAddress("127.0.0.1", 9095)),
        (":80", ListenAddress("", 80)),
        ("[::]:0", ListenAddress("::", 0)),
        ("example.com:443", ListenAddress("example.com", 443)),
    ],
)
def test_parse_listen(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9095", "::1:9095", "host:", "host:port"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|brackets"):
        parse_listen(text)


def test_pull_clusters_with_their_options(tmp_path):
    (tmp_path / "pw").write_text("secret\n")
    path = tmp_path / "a.yml"
    path.write_text(
        "clusters:\n"
        "  - {name: edge, token: t1}\n"
        "  - name: eu-1\n"
        "    url: https://prom.eu-1:9090/\n"
        "    timeout: 10s\n"
        "    basic_auth: {username: agg, password_file: pw}\n"
        "    tls: {insecure_skip_verify: true}\n"
        "    external_labels_drop: [prometheus_replica]\n"
        "  - {name: eu-1, url: 'http://prom-b.eu-1:9090'}\n"
        "  - {name: shard-0, url: 'http://shard-0:9095', keep_cluster_label: true}\n"
        "query:\n"
        "  partial_response: false\n"
        "  replica_labels: [replica]\n"
        "  pushdown: false\n"
        "  stale_after: 1m\n"
        "  workspace_label: workspace\n"
    )
    config = load_config(path)
    assert [c.name for c in config.clusters] == ["edge"]
    first, second, shard = config.pull_clusters
    assert not first.keep_cluster_label
    assert shard.keep_cluster_label
    assert (first.name, first.url, first.timeout_ms) == ("eu-1", "https://prom.eu-1:9090", 10_000)
    assert first.basic_auth is not None
    assert first.basic_auth.password == "secret"
    assert first.tls is not None
    assert first.tls.insecure_skip_verify
    assert first.external_labels_drop == ("prometheus_replica",)
    assert (second.name, second.timeout_ms, second.basic_auth) == ("eu-1", 30_000, None)
    q = config.query
    assert (q.partial_response, q.replica_labels, q.pushdown) == (False, ("replica",), False)
    assert (q.stale_after_ms, q.workspace_label) == (60_000, "workspace")


def test_tiering_settings_reach_storage_options(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
storage:
  block_duration: 30m
  late_window: 1d
  object_store_retention: 1y
  block_cache_size: 64MiB
  object_store:
    type: s3
    bucket: metrics
    prefix: /fleet/eu/
    endpoint: http://127.0.0.1:9000
    region: eu-west-1
    access_key_id: AK
    secret_access_key: SK
query:
  max_object_store_bytes: 1GiB
  max_object_store_requests: 500
""",
        )
    )
    options = config.storage_options()
    assert options.late_window_ms == 86_400_000
    t = options.tiering
    assert t.block_duration_ms == 1_800_000
    assert t.object_store_retention_ms == 365 * 86_400_000
    assert t.block_cache_bytes == 64 << 20
    store = t.object_store
    assert (store.type, store.bucket, store.prefix) == ("s3", "metrics", "fleet/eu")
    assert (store.endpoint, store.region) == ("http://127.0.0.1:9000", "eu-west-1")
    assert "SK" not in repr(store)
    assert config.query.max_object_store_bytes == 1 << 30
    assert config.query.max_object_store_requests == 500


def test_embedded_default_keeps_blocks_under_the_data_dir() -> None:
    config = Config()
    t = config.storage_options().tiering
    assert t.object_store.type == "local"
    assert t.object_store.local_root(config.data_dir) == Path("data") / "objects"
    assert t.block_duration_ms == 2 * 3_600_000
    assert config.storage_options().late_window_ms == 7 * 86_400_000


def test_local_object_store_path_is_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "storage:\n  object_store: {path: blocks}\n"))
    assert config.storage.object_store.path == tmp_path / "blocks"


def test_hardening_keys(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("basic_auth_users: {}\n")
    (tmp_path / "a.token").write_text("secret-a\n")
    path = write(
        tmp_path,
        """web_config_file: web.yml
clusters:
  - name: a
    token_file: a.token
    ingest_rate: 5000
    ingest_burst: 20000
  - name: edge-1
limits:
  ingest_rate: 1000.5
  ingest_burst: 3000
query:
  max_concurrency: 3
  max_queued: 7
  max_memory: 2GiB
  max_query_memory: 512MiB
server:
  header_timeout: 5s
  body_timeout: 1m
  idle_timeout: 90s
  max_connections: 100
  shutdown_timeout: 10s
  metrics_auth: false
""",
    )
    config = load_config(path)
    assert config.web_config_file == tmp_path / "web.yml"
    a, edge = config.clusters
    assert (a.ingest_rate, a.ingest_burst) == (5000.0, 20000)
    assert (edge.token, edge.ingest_rate) == ("", None)  # writes with a client certificate
    assert (config.limits.ingest_rate, config.limits.ingest_burst) == (1000.5, 3000)
    q = config.query
    assert (q.max_concurrency, q.max_queued) == (3, 7)
    assert (q.max_memory, q.query_memory_bound) == (2 << 30, 512 << 20)
    s = config.server
    assert (s.header_timeout_ms, s.body_timeout_ms, s.idle_timeout_ms) == (5000, 60000, 90000)
    assert (s.max_connections, s.shutdown_timeout_ms, s.metrics_auth) == (100, 10000, False)


def test_hardening_defaults_follow_the_machine() -> None:
    q = Config().query
    assert q.max_concurrency in range(1, 21)
    assert q.query_memory_bound == q.max_memory // 4
    assert Config().web_config_file is None


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("web_config_file: nope.yml\n", "web_config_file", "does not exist"),
        ("clusters:\n  - name: a\n", "clusters[0].token", "or a TLS client certificate"),
        ("query:\n  max_memory: 1GiB\n  max_query_memory: 2GiB\n", "query.max_query_memory",
         "must not exceed query.max_memory"),
        ("limits:\n  ingest_rate: fast\n", "limits.ingest_rate", "must be a number"),
        ("server:\n  max_connections: 0\n", "server.max_connections", "at least 1"),
        ("server:\n  header_timeout: 5\n", "server.header_timeout", "duration"),
    ],
)  # fmt: skip
def test_bad_hardening_values_name_the_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    err = config_error(tmp_path, text)
    assert err.key == key
    assert reason in err.reason


def test_web_config_flag_overrides_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "w.yml").write_text("{}\n")
    config = Config().with_overrides(web_config_file=str(tmp_path / "w.yml"))
    assert config.web_config_file == tmp_path / "w.yml"
    with pytest.raises(ConfigError, match=r"--web\.config\.file"):
        Config().with_overrides(web_config_file=str(tmp_path / "missing.yml"))
