"""The agent's config file: the scrape part of a Prometheus config plus an `edge:` section.

```yaml
global:
  scrape_interval: 15s            # default for every job (Prometheus's default is 1m)
  scrape_timeout: 10s
  external_labels: {}             # not allowed: the host sets `cluster` from the token
scrape_configs:
  - job_name: node
    scrape_interval: 15s          # optional, overrides global
    scrape_timeout: 10s
    metrics_path: /metrics
    scheme: http
    static_configs:
      - targets: ["127.0.0.1:9100"]
        labels: {team: infra}
  - job_name: pods                # Kubernetes pods annotated prometheus.io/scrape: "true"
    kubernetes_sd_configs:
      - role: pod
        api_server: ""            # default: in-cluster (service account token and CA)
        namespaces: {names: []}   # default: all namespaces
edge:
  window: 15m                     # samples kept in memory for rules and reach-back
  queue_dir: ./edge-queue         # the on-disk queue of what waits to go upstream
  queue_max_bytes: 256MiB         # oldest records are dropped past this
  flush_interval: 15s             # forwarded samples are batched this long at most
  listen: ""                      # HOST:PORT for the agent's own /metrics (off when empty)
  remote_read: ""                 # this cluster's Prometheus: reach-back reads go there too
```

Only these keys are accepted: an unsupported Prometheus feature (relabelling,
other service discoveries, rule files) is refused naming the key, rather
than silently ignored. The rules come from the host, not from this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aggregator.errors import ConfigError
from aggregator.units import parse_bytes, parse_duration_ms


@dataclass(frozen=True, slots=True)
class StaticGroup:
    targets: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class KubernetesSD:
    """`kubernetes_sd_configs` with `role: pod`: pods that ask to be scraped."""

    api_server: str = ""
    namespaces: tuple[str, ...] = ()
    refresh_interval_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class ScrapeConfig:
    job_name: str
    interval_ms: int
    timeout_ms: int
    metrics_path: str = "/metrics"
    scheme: str = "http"
    static: tuple[StaticGroup, ...] = ()
    kubernetes: tuple[KubernetesSD, ...] = ()


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    window_ms: int = 15 * 60_000
    queue_dir: Path = Path("edge-queue")
    queue_max_bytes: int = 256 << 20
    flush_interval_ms: int = 15_000
    listen: str = ""
    remote_read: str = ""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    scrape_configs: tuple[ScrapeConfig, ...] = ()
    evaluation_interval_ms: int = 60_000
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    source: str = ""


_TOP = ("global", "scrape_configs", "edge")
_GLOBAL = ("scrape_interval", "scrape_timeout", "evaluation_interval")
_JOB = (
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "static_configs",
    "kubernetes_sd_configs",
)
_EDGE = ("window", "queue_dir", "queue_max_bytes", "flush_interval", "listen", "remote_read")


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and check the agent's config file; raises ConfigError(file, key, reason)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    return parse_agent_config(raw or {}, file=file, base_dir=Path(path).parent)


def parse_agent_config(raw: Any, *, file: str, base_dir: Path) -> AgentConfig:
    top = _mapping(raw, file, "", _TOP)
    glob = _mapping(top.get("global") or {}, file, "global", _GLOBAL)
    interval = _duration(glob, "scrape_interval", 60_000, file, "global")
    timeout = _duration(glob, "scrape_timeout", min(10_000, interval), file, "global")
    evaluation = _duration(glob, "evaluation_interval", 60_000, file, "global")
    jobs: list[ScrapeConfig] = []
    seen: set[str] = set()
    items = top.get("scrape_configs") or []
    if not isinstance(items, list):
        raise ConfigError(file, "scrape_configs", "must be a list of jobs")
    for i, item in enumerate(items):
        where = f"scrape_configs[{i}]"
        job = _mapping(item, file, where, _JOB)
        name = job.get("job_name")
        if not isinstance(name, str) or not name:
            raise ConfigError(file, f"{where}.job_name", "must be a non-empty string")
        if name in seen:
            raise ConfigError(file, f"{where}.job_name", f"job {name!r} is repeated")
        seen.add(name)
        job_interval = _duration(job, "scrape_interval", interval, file, where)
        job_timeout = _duration(job, "scrape_timeout", min(timeout, job_interval), file, where)
        if job_timeout > job_interval:
            raise ConfigError(
                file, f"{where}.scrape_timeout", "must not be longer than the scrape_interval"
            )
        scheme = job.get("scheme", "http")
        if scheme not in ("http", "https"):
            raise ConfigError(file, f"{where}.scheme", f"must be http or https, got {scheme!r}")
        path = job.get("metrics_path", "/metrics")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(file, f"{where}.metrics_path", "must be a path starting with /")
        jobs.append(
            ScrapeConfig(
                job_name=name,
                interval_ms=job_interval,
                timeout_ms=job_timeout,
                metrics_path=path,
                scheme=scheme,
                static=_static(job.get("static_configs") or [], file, where),
                kubernetes=_kubernetes(job.get("kubernetes_sd_configs") or [], file, where),
            )
        )
    edge = _edge(top.get("edge") or {}, file, base_dir)
    return AgentConfig(
        scrape_configs=tuple(jobs), evaluation_interval_ms=evaluation, edge=edge, source=file
    )


def _static(items: Any, file: str, where: str) -> tuple[StaticGroup, ...]:
    if not isinstance(items, list):
        raise ConfigError(file, f"{where}.static_configs", "must be a list")
    out = []
    for j, item in enumerate(items):
        at = f"{where}.static_configs[{j}]"
        group = _mapping(item, file, at, ("targets", "labels"))
        targets = group.get("targets") or []
        if not isinstance(targets, list) or not all(
            isinstance(t, str) and t and "/" not in t for t in targets
        ):
            raise ConfigError(file, f"{at}.targets", "must be a list of HOST:PORT strings")
        labels = group.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ConfigError(file, f"{at}.labels", "must map label names to strings")
        out.append(StaticGroup(tuple(targets), tuple(sorted(labels.items()))))
    return tuple(out)


def _kubernetes(items: Any, file: str, where: str) -> tuple[KubernetesSD, ...]:
    if not isinstance(items, list):
        raise ConfigError(file, f"{where}.kubernetes_sd_configs", "must be a list")
    out = []
    for j, item in enumerate(items):
        at = f"{where}.kubernetes_sd_configs[{j}]"
        sd = _mapping(item, file, at, ("role", "api_server", "namespaces", "refresh_interval"))
        if sd.get("role") != "pod":
            raise ConfigError(file, f"{at}.role", "only role: pod is supported")
        ns = _mapping(sd.get("namespaces") or {}, file, f"{at}.namespaces", ("names",))
        names = ns.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(file, f"{at}.namespaces.names", "must be a list of names")
        api = sd.get("api_server") or ""
        if not isinstance(api, str):
            raise ConfigError(file, f"{at}.api_server", "must be a URL")
        refresh = _duration(sd, "refresh_interval", 30_000, file, at)
        out.append(KubernetesSD(api.rstrip("/"), tuple(names), refresh))
    return tuple(out)


def _edge(raw: Any, file: str, base_dir: Path) -> EdgeSettings:
    node = _mapping(raw, file, "edge", _EDGE)
    d = EdgeSettings()
    max_bytes = node.get("queue_max_bytes", d.queue_max_bytes)
    try:
        max_bytes = parse_bytes(str(max_bytes))
    except ValueError as exc:
        raise ConfigError(file, "edge.queue_max_bytes", str(exc)) from None
    if max_bytes < 1 << 16:
        raise ConfigError(file, "edge.queue_max_bytes", "must be at least 64KiB")
    listen = node.get("listen", "")
    if not isinstance(listen, str):
        raise ConfigError(file, "edge.listen", "must be HOST:PORT")
    remote_read = node.get("remote_read", "")
    if not isinstance(remote_read, str) or (
        remote_read and not remote_read.startswith(("http://", "https://"))
    ):
        raise ConfigError(file, "edge.remote_read", "must be the http(s) URL of a Prometheus")
    return EdgeSettings(
        remote_read=remote_read,
        window_ms=_duration(node, "window", d.window_ms, file, "edge"),
        queue_dir=base_dir / str(node.get("queue_dir", d.queue_dir)),
        queue_max_bytes=max_bytes,
        flush_interval_ms=_duration(node, "flush_interval", d.flush_interval_ms, file, "edge"),
        listen=listen,
    )


def _mapping(raw: Any, file: str, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(file, where, f"must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            raise ConfigError(
                file, at, f"unknown or unsupported key (allowed here: {', '.join(allowed)})"
            )
    return raw


def _duration(node: dict[str, Any], key: str, default: int, file: str, where: str) -> int:
    value = node.get(key)
    if value is None:
        return default
    try:
        ms = parse_duration_ms(str(value))
    except ValueError as exc:
        raise ConfigError(file, f"{where}.{key}", str(exc)) from None
    if ms <= 0:
        raise ConfigError(file, f"{where}.{key}", "must be positive")
    return ms
