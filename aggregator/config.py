"""The service configuration: YAML file -> frozen dataclasses, every value checked.

With no file the embedded default applies (listen on 127.0.0.1:9095, data
under ./data, writes open without auth, no member clusters). A file is a
mapping with these sections (all optional; defaults shown):

```yaml
listen: 127.0.0.1:9095          # HOST:PORT, [v6]:PORT or :PORT (all interfaces)
data_dir: ./data                # relative paths are relative to this file's folder
clusters:                       # push clusters; with none, writes are open
  - name: edge-1                # becomes the `cluster` label of everything it writes
    token_file: edge-1.token    # or `token: <secret>`; bearer token or basic-auth password
limits:
  max_request_bytes: 32MiB      # compressed remote-write body (413 past it)
  max_decoded_bytes: 100MiB     # decompressed body (413 past it; Mimir's default)
  max_label_names_per_series: 40
  max_label_name_length: 1024
  max_label_value_length: 2048
  max_series_per_cluster: 1000000   # active series per cluster (429 past it; 0: none)
  max_future: 10m               # samples further ahead of the clock are rejected
  out_of_order_window: 10m      # samples this much older than a series' newest are accepted
  ingest_rate: 0                # samples/s per push cluster (429 past it; 0: no limit)
  ingest_burst: 0               # samples a cluster may send at once (0: one second's worth)
storage:
  retention: 24h                # how far back the head accepts samples when late_window is 0
  wal_fsync: batch              # batch | always | interval | never (see storage.options)
  wal_fsync_interval: 1s        # for `interval`
  wal_segment_size: 64MiB
  block_duration: 2h            # closed head ranges of this length become blocks (divides 1d)
  late_window: 7d               # samples this far behind the newest are still accepted
  object_store_retention: 2y    # blocks older than this are deleted
  block_cache_size: 1GiB        # block data kept in memory for queries (fetched and decoded)
  exemplars:
    max_exemplars: 100000       # exemplars kept over all series, newest first (0: none)
  object_store:
    type: local                 # local (a folder) | s3
    path: <data_dir>/objects    # local: the folder (relative paths: to this file)
    bucket: ""                  # s3: bucket (required), and optionally:
    prefix: ""                  #   a folder in the store for this service's blocks
    endpoint: ""                #   e.g. http://minio:9000 (default: AWS)
    region: ""
    access_key_id: ""           #   default: the standard AWS environment and files
    secret_access_key: ""
    read_prefixes: []           # other services' prefixes in this store, read never written
                                #   (a scale-out's query tier: its shards' prefixes)
    read_relist_interval: 1m    # how often those are listed again (new/compacted/deleted blocks)
query:
  lookback_delta: 5m
  timeout: 2m
  max_samples: 50000000
  partial_response: true        # a failing pull cluster is left out with a warning (false: 503)
  replica_labels: []            # e.g. [replica, prometheus_replica]: HA pairs answered as one
  pushdown: true                # aggregations a pull cluster can compute are sent to it
  stale_after: 5m               # freshness warning past this without a sample / health check
  workspace_label: ""           # e.g. workspace: KubeSphere workspace label at query time
  delayed_name_removal: true    # Prometheus 3 `promql-delayed-name-removal` (README)
  max_object_store_bytes: 4GiB  # per query, read from the object store (0: no limit)
  max_object_store_requests: 20000
  max_concurrency: 0            # reads at once (0: min(20, CPUs)); more wait in a queue
  max_queued: 100               # reads waiting for a slot; past it 503 with Retry-After
  max_memory: 0                 # memory of the process with its reads (0: 4/5 of the machine's)
  max_query_memory: 0           # one read's memory (0: a quarter of max_memory)
rules:
  files: []                     # globs of Prometheus rule files, relative to this file
  evaluation_interval: 1m       # for groups without their own `interval`
  query_offset: 0s              # for groups without their own `query_offset`
edge:                           # rules for edge agents (`aggregator edge`)
  rule_files: []                # globs of edge rule files; each group has `cluster: NAME`
  tunnel_timeout: 30s           # a read through an agent's reach-back tunnel
alerting:
  external_url: ""              # where alerts link back; default http://<listen address>
  external_labels: {}           # added to alerts that lack them; templates' $externalLabels
  resend_delay: 1m              # a firing alert is sent again this often
  queue_capacity: 10000         # alerts (webhook: notifications) queued per target
  alertmanagers:                # every Alertmanager gets every alert (API v2)
    - url: http://alertmanager:9093
      timeout: 10s
      basic_auth: {username: u, password_file: am.pass}  # or bearer_token[_file]
  webhooks:                     # Alertmanager webhook payloads, grouped per cluster
    - url: http://notification-manager-svc:19093/api/v2/alerts
      timeout: 10s
      name: aggregator          # the payload's `receiver`
      group_by: [cluster]
      repeat_interval: 4h
      send_resolved: true
      max_alerts: 0             # 0: all alerts in one notification
web_config_file: ""             # Prometheus web-config file: TLS, read users (aggregator.webconfig)
server:
  header_timeout: 30s           # a request's headers must arrive within this
  body_timeout: 2m              # and its body within this
  idle_timeout: 2m              # keep-alive connections idle longer are closed
  max_connections: 512          # open connections past this are refused (503)
  shutdown_timeout: 25s         # SIGTERM: in-flight writes get this long to finish
  metrics_auth: true            # /metrics needs a read credential when users are configured
```

A pull cluster (queried live, not copied) is an entry with `url:` instead
of a token (see `aggregator.clusterconfig` for its keys). Several pull entries
may share a name: they are replicas of one cluster (an HA pair), told
apart by a replica label.

Durations are Prometheus durations (`30s`, `24h`, `1d`); sizes are bytes or
`KiB/MiB/GiB` (`KB/MB/GB` mean the same powers of 1024, as in Prometheus).
A push cluster may set `ingest_rate` / `ingest_burst` (overriding
`limits.ingest_*` for it), and may leave out its token when it writes with a
TLS client certificate instead (see `aggregator.webconfig`).

Unknown keys, wrong types, missing or empty token files, duplicate cluster
names and shared tokens are errors: `load_config` raises `ConfigError(file,
key, reason)` naming the key path, e.g. `clusters[1].token_file`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aggregator.clusterconfig import (
    PullCluster,
    PushCluster,
    cluster_index,
    parse_clusters,
)
from aggregator.confignode import (
    LABEL_NAME,
    ConfigNode,
    DuplicateKey,
    StrictLoader,
    kind_of,
)
from aggregator.errors import ConfigError
from aggregator.machine import default_max_concurrency, default_max_memory
from alerting.settings import AlertingSettings, HTTPTarget, RulesSettings, WebhookTarget
from remote_write.validate import SeriesLimits
from storage.objstore.config import ObjectStoreConfig
from storage.options import DAY_MS, HOUR_MS, YEAR_MS, FsyncPolicy, StorageOptions, TieringOptions

DEFAULT_LISTEN = "127.0.0.1:9095"
DEFAULT_DATA_DIR = Path("data")
EMBEDDED_DEFAULT = "<embedded default>"
COMMAND_LINE = "command line"

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where the HTTP server binds; host "" means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Ingest limits (Mimir-like names and defaults)."""

    max_request_bytes: int = 32 * MiB
    max_decoded_bytes: int = 100 * MiB
    series: SeriesLimits = field(default_factory=SeriesLimits)
    max_series_per_cluster: int = 1_000_000
    max_future_ms: int = 10 * 60_000
    out_of_order_window_ms: int = 10 * 60_000
    ingest_rate: float = 0.0
    """Samples/s each push cluster may write (0: no limit); 429 with Retry-After past it."""
    ingest_burst: int = 0
    """Samples a cluster may send at once above its rate (0: one second's worth)."""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Head, WAL durability (see `storage.options.FsyncPolicy`) and tiering."""

    retention_ms: int = 24 * 3_600_000
    wal_fsync: FsyncPolicy = FsyncPolicy.BATCH
    wal_fsync_interval_ms: int = 1_000
    wal_segment_bytes: int = 64 * MiB
    block_duration_ms: int = 2 * HOUR_MS
    late_window_ms: int = 7 * DAY_MS
    object_store_retention_ms: int = 2 * YEAR_MS
    block_cache_bytes: int = 1024 * MiB
    object_store: ObjectStoreConfig = field(default_factory=ObjectStoreConfig)
    max_exemplars: int = 100_000
    """`storage.exemplars.max_exemplars`: exemplars kept over all series (0: none)."""


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """PromQL engine defaults (Prometheus's flag defaults)."""

    lookback_delta_ms: int = 5 * 60_000
    timeout_ms: int = 2 * 60_000
    max_samples: int = 50_000_000
    partial_response: bool = True
    replica_labels: tuple[str, ...] = ()
    pushdown: bool = True
    stale_after_ms: int = 5 * 60_000
    workspace_label: str = ""
    delayed_name_removal: bool = True
    """Keep `__name__` until evaluation ends (Prometheus 3's feature flag, off there by
    default); on here because the PromQL test data it is checked against expects it."""
    max_object_store_bytes: int = 4 << 30
    """Bytes one query may read from the object store (0: no limit)."""
    max_object_store_requests: int = 20_000
    """Object-store requests one query may make (0: no limit)."""
    max_concurrency: int = field(default_factory=default_max_concurrency)
    """Reads (queries, series, labels, remote read) running at once; the rest queue."""
    max_queued: int = 100
    """Reads waiting for a slot; past this they are refused (503 + Retry-After)."""
    max_memory: int = field(default_factory=default_max_memory)
    """Memory of the whole process with its reads running; reads past it get 503."""
    max_query_memory: int = 0
    """One read's memory bound (0: a quarter of `max_memory`); past it 422."""

    @property
    def query_memory_bound(self) -> int:
        return self.max_query_memory or self.max_memory // 4


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP server's guards against slow, stuck and too many clients."""

    header_timeout_ms: int = 30_000
    body_timeout_ms: int = 120_000
    idle_timeout_ms: int = 120_000
    max_connections: int = 512
    shutdown_timeout_ms: int = 25_000
    metrics_auth: bool = True
    """Whether `/metrics` needs a read credential when the web config has users."""


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """`edge:`: the rules the host assigns to edge agents (`aggregator edge`).

    `rule_files` are globs of edge rule files (`aggregator.edge.ruleset`): rule
    groups whose `cluster:` names the edge cluster that runs them. They are
    re-read when they change; agents long-poll `GET /api/v1/edge/rules` for
    their cluster's groups.
    """

    rule_files: tuple[str, ...] = ()
    base_dir: Path = Path(".")
    tunnel_timeout_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the service runs with; `source` names the file (for messages)."""

    listen: ListenAddress = field(default_factory=lambda: parse_listen(DEFAULT_LISTEN))
    data_dir: Path = DEFAULT_DATA_DIR
    clusters: tuple[PushCluster, ...] = ()
    pull_clusters: tuple[PullCluster, ...] = ()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
    rules: RulesSettings = field(default_factory=RulesSettings)
    alerting: AlertingSettings = field(default_factory=AlertingSettings)
    source: str = EMBEDDED_DEFAULT
    web_config_file: Path | None = None
    """Prometheus web-config file: TLS and read users (`aggregator.webconfig`)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    edge: EdgeConfig = field(default_factory=lambda: EdgeConfig())

    def with_overrides(
        self,
        *,
        listen: str | None = None,
        data_dir: str | None = None,
        web_config_file: str | None = None,
    ) -> Config:
        """This config with command-line flags applied (flags win over the file)."""
        out = self
        if web_config_file is not None:
            if not web_config_file:
                raise ConfigError(COMMAND_LINE, "--web.config.file", "must not be empty")
            path = Path(web_config_file)
            if not path.is_file():
                raise ConfigError(
                    COMMAND_LINE, "--web.config.file", f"file {str(path)!r} does not exist"
                )
            out = replace(out, web_config_file=path)
        if listen is not None:
            try:
                out = replace(out, listen=parse_listen(listen))
            except ValueError as exc:
                raise ConfigError(COMMAND_LINE, "--listen", str(exc)) from None
        if data_dir is not None:
            if not data_dir:
                raise ConfigError(COMMAND_LINE, "--data-dir", "must not be empty")
            out = replace(out, data_dir=Path(data_dir))
        return out

    def storage_options(
        self, *, on_wal_fsync: Callable[[float], None] | None = None
    ) -> StorageOptions:
        """The storage settings this config asks for."""
        return StorageOptions(
            retention_ms=self.storage.retention_ms,
            out_of_order_window_ms=self.limits.out_of_order_window_ms,
            max_future_ms=self.limits.max_future_ms,
            series_limits=self.limits.series,
            max_series_per_cluster=self.limits.max_series_per_cluster,
            wal_fsync=self.storage.wal_fsync,
            wal_fsync_interval_ms=self.storage.wal_fsync_interval_ms,
            wal_segment_bytes=self.storage.wal_segment_bytes,
            on_wal_fsync=on_wal_fsync,
            late_window_ms=self.storage.late_window_ms,
            max_exemplars=self.storage.max_exemplars,
            tiering=TieringOptions(
                object_store=self.storage.object_store,
                block_duration_ms=self.storage.block_duration_ms,
                object_store_retention_ms=self.storage.object_store_retention_ms,
                block_cache_bytes=self.storage.block_cache_bytes,
            ),
        )


def parse_listen(text: str) -> ListenAddress:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT`; ValueError with the reason otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9095 or :9095), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets, e.g. [::1]:9095; got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return ListenAddress(host, port)


def load_config(path: str | Path) -> Config:
    """Read and check a config file; raises ConfigError naming the file, key and reason."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "", "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read the file: {exc}") from None
    try:
        raw = yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(file, "", f"invalid YAML: {where}{exc.problem}") from None
    except DuplicateKey as exc:
        raise ConfigError(file, exc.key, "duplicate key") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    return parse_config(raw if raw is not None else {}, file=file, base_dir=path.parent)


def parse_config(raw: Any, *, file: str, base_dir: Path) -> Config:
    """Build a Config from parsed YAML; relative paths resolve against `base_dir`."""
    top = ConfigNode(file, "", raw)
    listen_text = top.string("listen", DEFAULT_LISTEN)
    try:
        listen = parse_listen(listen_text)
    except ValueError as exc:
        raise ConfigError(file, "listen", str(exc)) from None
    data_dir = base_dir / top.string("data_dir", str(DEFAULT_DATA_DIR))
    clusters, pull_clusters = parse_clusters(top, base_dir)
    limits = _parse_limits(top.section("limits"))
    storage = _parse_storage(top.section("storage"), base_dir)
    query = _parse_query(top.section("query"))
    rules = _parse_rules(top.section("rules"), base_dir)
    alerting = _parse_alerting(top.section("alerting"), base_dir)
    server = _parse_server(top.section("server"))
    edge = _parse_edge(top.section("edge"), base_dir)
    web_config_file = None
    web_config_text = top.string("web_config_file", "")
    if web_config_text:
        web_config_file = base_dir / web_config_text
        if not web_config_file.is_file():
            raise top.error("web_config_file", f"file {str(web_config_file)!r} does not exist")
    top.finish()
    _check_object_store_prefixes(raw, file, storage.object_store.read_prefixes)
    for i, c in enumerate(clusters):
        if not c.token and web_config_file is None:
            raise ConfigError(
                file,
                f"clusters[{cluster_index(raw, c.name)}].token" if raw else f"clusters[{i}].token",
                "a push cluster needs a token or a token_file (its remote_write credential), "
                "or a TLS client certificate (web_config_file with a client_ca_file)",
            )
    return Config(
        listen=listen,
        data_dir=data_dir,
        clusters=clusters,
        pull_clusters=pull_clusters,
        limits=limits,
        storage=storage,
        query=query,
        rules=rules,
        alerting=alerting,
        source=file,
        web_config_file=web_config_file,
        server=server,
        edge=edge,
    )


def _parse_server(node: ConfigNode) -> ServerConfig:
    d = ServerConfig()
    out = ServerConfig(
        header_timeout_ms=node.duration("header_timeout", d.header_timeout_ms, minimum=1),
        body_timeout_ms=node.duration("body_timeout", d.body_timeout_ms, minimum=1),
        idle_timeout_ms=node.duration("idle_timeout", d.idle_timeout_ms, minimum=1),
        max_connections=node.integer("max_connections", d.max_connections, minimum=1),
        shutdown_timeout_ms=node.duration("shutdown_timeout", d.shutdown_timeout_ms, minimum=1),
        metrics_auth=node.boolean("metrics_auth", d.metrics_auth),
    )
    node.finish()
    return out


def _parse_limits(node: ConfigNode) -> LimitsConfig:
    d = LimitsConfig()
    out = LimitsConfig(
        max_request_bytes=node.size("max_request_bytes", d.max_request_bytes, minimum=1),
        max_decoded_bytes=node.size("max_decoded_bytes", d.max_decoded_bytes, minimum=1),
        series=SeriesLimits(
            max_label_names=node.integer("max_label_names_per_series", d.series.max_label_names),
            max_label_name_length=node.integer(
                "max_label_name_length", d.series.max_label_name_length
            ),
            max_label_value_length=node.integer(
                "max_label_value_length", d.series.max_label_value_length
            ),
        ),
        max_series_per_cluster=node.integer("max_series_per_cluster", d.max_series_per_cluster),
        max_future_ms=node.duration("max_future", d.max_future_ms),
        out_of_order_window_ms=node.duration("out_of_order_window", d.out_of_order_window_ms),
        ingest_rate=node.number("ingest_rate", d.ingest_rate),
        ingest_burst=node.integer("ingest_burst", d.ingest_burst),
    )
    node.finish()
    return out


def _parse_storage(node: ConfigNode, base_dir: Path) -> StorageConfig:
    d = StorageConfig()
    policy_text = node.string("wal_fsync", d.wal_fsync.value)
    try:
        policy = FsyncPolicy(policy_text)
    except ValueError:
        allowed = ", ".join(p.value for p in FsyncPolicy)
        raise node.error(
            "wal_fsync", f"unknown policy {policy_text!r} (one of: {allowed})"
        ) from None
    out = StorageConfig(
        retention_ms=node.duration("retention", d.retention_ms, minimum=1),
        wal_fsync=policy,
        wal_fsync_interval_ms=node.duration(
            "wal_fsync_interval", d.wal_fsync_interval_ms, minimum=1
        ),
        wal_segment_bytes=node.size("wal_segment_size", d.wal_segment_bytes, minimum=64 * 1024),
        block_duration_ms=node.duration("block_duration", d.block_duration_ms, minimum=1),
        late_window_ms=node.duration("late_window", d.late_window_ms),
        object_store_retention_ms=node.duration(
            "object_store_retention", d.object_store_retention_ms, minimum=1
        ),
        block_cache_bytes=node.size("block_cache_size", d.block_cache_bytes),
        object_store=_parse_object_store(node.section("object_store"), base_dir),
        max_exemplars=_parse_exemplars(node.section("exemplars"), d.max_exemplars),
    )
    if DAY_MS % out.block_duration_ms:
        raise node.error(
            "block_duration",
            "must divide a day evenly (e.g. 1m, 15m, 1h, 2h, 6h), so that blocks "
            "line up with the daily compaction",
        )
    node.finish()
    return out


def _parse_exemplars(node: ConfigNode, default: int) -> int:
    """`storage.exemplars` (Prometheus's key): the exemplar ring's size."""
    value = node.integer("max_exemplars", default)
    node.finish()
    return value


def _parse_object_store(node: ConfigNode, base_dir: Path) -> ObjectStoreConfig:
    kind = node.string("type", "local")
    if kind not in ("local", "s3"):
        raise node.error("type", f"unknown object store type {kind!r} (local or s3)")
    path = node.pop("path", None)
    if path is not None and not isinstance(path, str):
        raise node.error("path", f"must be a string, got {kind_of(path)}")
    if path is not None and kind != "local":
        raise node.error("path", "only a local object store has a path")

    def optional(name: str) -> str | None:
        value = node.string(name, "")
        return value or None

    relist_ms = node.duration(
        "read_relist_interval", ObjectStoreConfig().read_relist_interval_ms, minimum=1
    )
    prefix = node.string("prefix", "").strip("/")
    out = ObjectStoreConfig(
        type=kind,
        path=base_dir / path if path else None,
        bucket=node.string("bucket", ""),
        prefix=prefix,
        endpoint=optional("endpoint"),
        region=optional("region"),
        access_key_id=optional("access_key_id"),
        secret_access_key=optional("secret_access_key"),
        read_prefixes=_read_prefixes(node, prefix),
        read_relist_interval_ms=relist_ms,
    )
    if kind == "s3" and not out.bucket:
        raise node.error("bucket", "an s3 object store needs a bucket")
    if kind == "local" and out.bucket:
        raise node.error("bucket", "a local object store has no bucket (use path)")
    if bool(out.access_key_id) != bool(out.secret_access_key):
        raise node.error(
            "secret_access_key" if out.access_key_id else "access_key_id",
            "set access_key_id and secret_access_key together (or neither, to use the "
            "standard AWS environment variables and files)",
        )
    node.finish()
    return out


def _read_prefixes(node: ConfigNode, own: str) -> tuple[str, ...]:
    """`storage.object_store.read_prefixes`: distinct folders of the store, not our own."""
    raw = node.pop("read_prefixes", [])
    if not isinstance(raw, list):
        raise node.error("read_prefixes", f"must be a list of prefixes, got {kind_of(raw)}")
    out: list[str] = []
    for i, item in enumerate(raw):
        where = f"read_prefixes[{i}]"
        if not isinstance(item, str):
            raise node.error(where, f"must be a string, got {kind_of(item)}")
        prefix = item.strip("/")
        if not prefix:
            raise node.error(where, "must not be empty (the store's root is no other writer's)")
        if any(part in ("", ".", "..") for part in prefix.split("/")):
            raise node.error(where, f"{item!r} is not a plain folder path (a/b/c)")
        if prefix == own:
            raise node.error(
                where, f"{prefix!r} is this service's own prefix (its blocks are read already)"
            )
        if prefix in out:
            raise node.error(where, f"{prefix!r} is listed twice")
        out.append(prefix)
    return tuple(out)


def _check_object_store_prefixes(raw: Any, file: str, read: tuple[str, ...]) -> None:
    """Every pull entry's `object_store_prefix` is one we read; no two clusters share one."""
    owner: dict[str, str] = {}
    items = raw.get("clusters") if isinstance(raw, dict) else None
    for i, item in enumerate(items or []):
        if not (isinstance(item, dict) and "url" in item and item.get("object_store_prefix")):
            continue
        name = str(item.get("name"))
        prefix = str(item["object_store_prefix"]).strip("/")
        key = f"clusters[{i}].object_store_prefix"
        if prefix not in read:
            listed = ", ".join(read) or "none"
            raise ConfigError(
                file,
                key,
                f"{prefix!r} is not one of storage.object_store.read_prefixes ({listed}); "
                "list it there so its blocks are read",
            )
        if owner.setdefault(prefix, name) != name:
            raise ConfigError(
                file, key, f"{prefix!r} is already the prefix of cluster {owner[prefix]!r}"
            )


def _parse_query(node: ConfigNode) -> QueryConfig:
    d = QueryConfig()
    out = QueryConfig(
        lookback_delta_ms=node.duration("lookback_delta", d.lookback_delta_ms, minimum=1),
        timeout_ms=node.duration("timeout", d.timeout_ms, minimum=1),
        max_samples=node.integer("max_samples", d.max_samples, minimum=1),
        partial_response=node.boolean("partial_response", d.partial_response),
        replica_labels=node.label_names("replica_labels"),
        pushdown=node.boolean("pushdown", d.pushdown),
        stale_after_ms=node.duration("stale_after", d.stale_after_ms, minimum=1),
        workspace_label=node.string("workspace_label", d.workspace_label),
        delayed_name_removal=node.boolean("delayed_name_removal", d.delayed_name_removal),
        max_object_store_bytes=node.size("max_object_store_bytes", d.max_object_store_bytes),
        max_object_store_requests=node.integer(
            "max_object_store_requests", d.max_object_store_requests
        ),
        max_concurrency=node.integer("max_concurrency", 0) or d.max_concurrency,
        max_queued=node.integer("max_queued", d.max_queued),
        max_memory=node.size("max_memory", 0) or d.max_memory,
        max_query_memory=node.size("max_query_memory", 0),
    )
    if "cluster" in out.replica_labels:
        raise node.error(
            "replica_labels", "cluster tells clusters apart; it is not a replica label"
        )
    if out.max_query_memory > out.max_memory:
        raise node.error(
            "max_query_memory",
            f"must not exceed query.max_memory ({out.max_query_memory} > {out.max_memory} bytes)",
        )
    if out.workspace_label and not LABEL_NAME.fullmatch(out.workspace_label):
        raise node.error("workspace_label", f"invalid label name {out.workspace_label!r}")
    node.finish()
    return out


def _parse_rules(node: ConfigNode, base_dir: Path) -> RulesSettings:
    d = RulesSettings()
    files = node.pop("files", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise node.error("files", "must be a list of file paths or globs, e.g. [rules/*.yml]")
    out = RulesSettings(
        files=tuple(files),
        base_dir=base_dir,
        evaluation_interval_ms=node.duration(
            "evaluation_interval", d.evaluation_interval_ms, minimum=1
        ),
        query_offset_ms=node.duration("query_offset", d.query_offset_ms),
    )
    node.finish()
    return out


def _parse_edge(node: ConfigNode, base_dir: Path) -> EdgeConfig:
    files = node.pop("rule_files", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise node.error("rule_files", "must be a list of file paths or globs, e.g. [edge/*.yml]")
    out = EdgeConfig(
        rule_files=tuple(files),
        base_dir=base_dir,
        tunnel_timeout_ms=node.duration("tunnel_timeout", 30_000, minimum=1),
    )
    node.finish()
    return out


def _parse_alerting(node: ConfigNode, base_dir: Path) -> AlertingSettings:
    d = AlertingSettings()
    external_url = node.string("external_url", "")
    if external_url:
        _check_url(node, "external_url", external_url)
    labels = node.pop("external_labels", {})
    if not isinstance(labels, dict):
        raise node.error("external_labels", f"must be a mapping, got {kind_of(labels)}")
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_NAME.fullmatch(key):
            raise node.error("external_labels", f"invalid label name {key!r}")
        if not isinstance(value, str):
            raise node.error(f"external_labels.{key}", f"must be a string, got {kind_of(value)}")
    alertmanagers = tuple(_http_target(item, base_dir) for item in _items(node, "alertmanagers"))
    webhooks = tuple(_webhook(item, base_dir) for item in _items(node, "webhooks"))
    out = AlertingSettings(
        alertmanagers=alertmanagers,
        webhooks=webhooks,
        external_url=external_url.rstrip("/"),
        external_labels=tuple(sorted((k, v) for k, v in labels.items() if v)),
        resend_delay_ms=node.duration("resend_delay", d.resend_delay_ms, minimum=1),
        queue_capacity=node.integer("queue_capacity", d.queue_capacity, minimum=1),
    )
    node.finish()
    return out


def _items(node: ConfigNode, name: str) -> list[ConfigNode]:
    items = node.pop(name, [])
    if not isinstance(items, list):
        raise node.error(name, f"must be a list, got {kind_of(items)}")
    return [ConfigNode(node.file, f"{node.key(name)}[{i}]", item) for i, item in enumerate(items)]


def _http_target(node: ConfigNode, base_dir: Path, *, finish: bool = True) -> HTTPTarget:
    url = node.string("url", None)
    _check_url(node, "url", url)
    timeout_ms = node.duration("timeout", 10_000, minimum=1)
    basic_auth = None
    if "basic_auth" in node.mapping:
        auth = node.section("basic_auth")
        username = auth.string("username", "")
        password = _secret(auth, "password", base_dir, required=False)
        auth.finish()
        basic_auth = (username, password or "")
    bearer = _secret(node, "bearer_token", base_dir, required=False)
    if bearer and basic_auth is not None:
        raise node.error("bearer_token", "set either basic_auth or bearer_token, not both")
    if finish:
        node.finish()
    return HTTPTarget(url=url, timeout_ms=timeout_ms, basic_auth=basic_auth, bearer_token=bearer)


def _webhook(node: ConfigNode, base_dir: Path) -> WebhookTarget:
    d = WebhookTarget(HTTPTarget(""))
    http = _http_target(node, base_dir, finish=False)
    group_by = node.pop("group_by", list(d.group_by))
    if not isinstance(group_by, list) or not all(
        isinstance(g, str) and LABEL_NAME.fullmatch(g) for g in group_by
    ):
        raise node.error("group_by", "must be a list of label names, e.g. [cluster]")
    send_resolved = node.pop("send_resolved", d.send_resolved)
    if not isinstance(send_resolved, bool):
        raise node.error("send_resolved", f"must be true or false, got {kind_of(send_resolved)}")
    out = WebhookTarget(
        http=http,
        name=node.string("name", d.name),
        group_by=tuple(group_by),
        repeat_interval_ms=node.duration("repeat_interval", d.repeat_interval_ms, minimum=1),
        send_resolved=send_resolved,
        max_alerts=node.integer("max_alerts", d.max_alerts),
    )
    node.finish()
    return out


def _secret(node: ConfigNode, name: str, base_dir: Path, *, required: bool) -> str | None:
    """`name` or `name_file` (read and stripped), not both."""
    file_key = f"{name}_file"
    if name in node.mapping and file_key in node.mapping:
        raise node.error(file_key, f"set either {name} or {file_key}, not both")
    if file_key in node.mapping:
        path = base_dir / node.string(file_key, None)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise node.error(file_key, f"file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise node.error(file_key, f"cannot read {str(path)!r}: {exc}") from None
        if not value:
            raise node.error(file_key, f"file {str(path)!r} is empty")
        return value
    if name in node.mapping or required:
        return node.string(name, None)
    return None


def _check_url(node: ConfigNode, name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise node.error(name, f"{url!r} is not an http(s) URL (e.g. http://alertmanager:9093)")
