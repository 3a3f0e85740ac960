"""The `clusters:` section: who pushes to us (a token each) and whom we query (a url).

A push entry is `{name, token | token_file, ingest_rate?, ingest_burst?}`; its
token decides the `cluster` label of what it writes. A pull entry has `url:`
(the member's Prometheus, or anything serving remote read) and optionally
`timeout`, `health_check_interval`, `bearer_token[_file]`,
`basic_auth: {username, password | password_file}`,
`tls: {ca_file, cert_file, key_file, insecure_skip_verify}`,
`external_labels_drop`, `keep_cluster_label` and `object_store_prefix`.
Secrets in files are read once, at load, and must not be empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.confignode import ConfigNode, kind_of

CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
"""A cluster name: letters, digits, '.', '_' or '-', starting with a letter or digit."""


@dataclass(frozen=True, slots=True)
class PushCluster:
    """A member cluster that remote-writes to us; its token decides its `cluster` label."""

    name: str
    token: str = field(repr=False)
    """Empty when the cluster writes with a TLS client certificate only."""
    token_file: Path | None = None
    ingest_rate: float | None = None
    """Samples/s this cluster may write (None: `limits.ingest_rate`)."""
    ingest_burst: int | None = None


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Credentials a pull cluster's Prometheus wants (password read from a file at start)."""

    username: str
    password: str = field(repr=False)
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """How to reach a pull cluster over HTTPS (Prometheus `tls_config` names)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class PullCluster:
    """A member cluster queried live by remote read at `url` (its Prometheus)."""

    name: str
    url: str
    timeout_ms: int = 30_000
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    tls: TLSConfig | None = None
    external_labels_drop: tuple[str, ...] = ()
    health_check_interval_ms: int = 15_000
    keep_cluster_label: bool = False
    """Series keep the `cluster` label they carry (another instance of this service, e.g.
    a shard of a scale-out; or a Prometheus that already labels by cluster); only series
    without one get `name`. Such an endpoint takes no pushdown."""
    object_store_prefix: str | None = None
    """The prefix of our object store this endpoint (a shard) uploads its blocks to; one
    of `storage.object_store.read_prefixes`. Its blocks are read from the store directly
    and the endpoint answers from its own blocks only samples newer than the newest of
    them (from its head, all)."""


def cluster_index(raw: Any, name: str) -> int:
    """Position of the first `clusters:` entry named `name` in the raw YAML."""
    for i, item in enumerate(raw.get("clusters") or []):
        if isinstance(item, dict) and item.get("name") == name:
            return i
    return 0


def parse_clusters(
    top: ConfigNode, base_dir: Path
) -> tuple[tuple[PushCluster, ...], tuple[PullCluster, ...]]:
    """The `clusters:` list: push entries (a token) and pull entries (a url).

    Names are unique except among pull entries, which share one as replicas of a
    cluster; no two push clusters share a token."""
    items = top.pop("clusters", None)
    if items is None:
        return (), ()
    if not isinstance(items, list):
        raise top.error("clusters", f"must be a list of clusters, got {kind_of(items)}")
    clusters: list[PushCluster] = []
    pulls: list[PullCluster] = []
    names: dict[str, tuple[str, bool]] = {}
    tokens: dict[str, tuple[str, str]] = {}
    for i, item in enumerate(items):
        node = ConfigNode(top.file, f"clusters[{i}]", item)
        name = node.string("name", None)
        if not CLUSTER_NAME.fullmatch(name):
            raise node.error(
                "name",
                f"invalid cluster name {name!r}: use letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, at most 63 characters",
            )
        is_pull = "url" in node.mapping
        if name in names:
            other_path, other_pull = names[name]
            if not (is_pull and other_pull):  # pull entries sharing a name are replicas
                raise node.error("name", f"duplicate cluster name {name!r} (also {other_path})")
        names.setdefault(name, (node.path, is_pull))
        if is_pull:
            pulls.append(_parse_pull_cluster(node, name, base_dir))
            continue
        token_key, token, token_file = _cluster_token(node, base_dir)
        rate, burst = _ingest_overrides(node)
        if token and token in tokens:
            other_path, other_name = tokens[token]
            raise node.error(
                token_key,
                f"same token as {other_path} ({other_name!r}); each cluster needs its own token",
            )
        if token:
            tokens[token] = (node.path, name)
        node.finish()
        clusters.append(
            PushCluster(
                name=name,
                token=token,
                token_file=token_file,
                ingest_rate=rate,
                ingest_burst=burst,
            )
        )
    return tuple(clusters), tuple(pulls)


def _parse_pull_cluster(node: ConfigNode, name: str, base_dir: Path) -> PullCluster:
    """A pull cluster: url, timeout, bearer_token[_file], basic_auth, tls, external_labels_drop,
    health_check_interval, keep_cluster_label."""
    url = node.string("url", None).rstrip("/")
    if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
        raise node.error(
            "url",
            f"must be an http:// or https:// URL of the member's Prometheus "
            f"(e.g. http://prometheus.eu-1:9090), got {url!r}",
        )
    if "token" in node.mapping or "token_file" in node.mapping:
        key = "token" if "token" in node.mapping else "token_file"
        raise node.error(
            key, "a pull cluster (with url) has no push token; use bearer_token to reach it"
        )
    timeout_ms = node.duration("timeout", 30_000, minimum=1)
    interval_ms = node.duration("health_check_interval", 15_000, minimum=1)
    bearer = None
    bearer_file = None
    if "bearer_token" in node.mapping and "bearer_token_file" in node.mapping:
        raise node.error("bearer_token_file", "set either bearer_token or bearer_token_file")
    if "bearer_token" in node.mapping:
        bearer = node.string("bearer_token", None).strip()
        if not bearer:
            raise node.error("bearer_token", "must not be empty")
    elif "bearer_token_file" in node.mapping:
        bearer_file = base_dir / node.string("bearer_token_file", None)
        bearer = read_secret(node, "bearer_token_file", bearer_file)
    basic = None
    if "basic_auth" in node.mapping:
        auth = node.section("basic_auth")
        username = auth.string("username", None)
        has_pw, has_file = "password" in auth.mapping, "password_file" in auth.mapping
        if has_pw == has_file:
            raise auth.error("password", "set exactly one of password or password_file")
        if has_pw:
            basic = BasicAuth(username, auth.string("password", None))
        else:
            pw_file = base_dir / auth.string("password_file", None)
            basic = BasicAuth(username, read_secret(auth, "password_file", pw_file), pw_file)
        auth.finish()
        if bearer is not None:
            raise node.error("basic_auth", "set either bearer_token[_file] or basic_auth")
    tls = None
    if "tls" in node.mapping:
        tnode = node.section("tls")
        files = {}
        for key in ("ca_file", "cert_file", "key_file"):
            if key in tnode.mapping:
                path = base_dir / tnode.string(key, None)
                if not path.is_file():
                    raise tnode.error(key, f"file {str(path)!r} does not exist")
                files[key] = path
            else:
                tnode.pop(key, None)
        if ("cert_file" in files) != ("key_file" in files):
            raise tnode.error("key_file", "cert_file and key_file go together")
        tls = TLSConfig(
            ca_file=files.get("ca_file"),
            cert_file=files.get("cert_file"),
            key_file=files.get("key_file"),
            insecure_skip_verify=tnode.boolean("insecure_skip_verify", False),
        )
        tnode.finish()
    drop = node.label_names("external_labels_drop")
    keep_cluster = node.boolean("keep_cluster_label", False)
    prefix = node.string("object_store_prefix", "").strip("/") or None
    if prefix is not None and not keep_cluster:
        raise node.error(
            "object_store_prefix",
            "needs keep_cluster_label: true (the endpoint is a shard of this service, whose "
            "blocks keep each series' own cluster label)",
        )
    if "cluster" in drop:
        raise node.error(
            "external_labels_drop",
            "cluster is always replaced by the cluster's name; it cannot be dropped",
        )
    node.finish()
    return PullCluster(
        name=name,
        url=url,
        timeout_ms=timeout_ms,
        bearer_token=bearer,
        bearer_token_file=bearer_file,
        basic_auth=basic,
        tls=tls,
        external_labels_drop=drop,
        health_check_interval_ms=interval_ms,
        keep_cluster_label=keep_cluster,
        object_store_prefix=prefix,
    )


def read_secret(node: ConfigNode, key: str, path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise node.error(key, f"file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise node.error(key, f"cannot read file {str(path)!r}: {exc}") from None
    if not secret:
        raise node.error(key, f"file {str(path)!r} is empty")
    return secret


def _cluster_token(node: ConfigNode, base_dir: Path) -> tuple[str, str, Path | None]:
    """(key that set it, token, token file) of a push cluster."""
    has_token = "token" in node.mapping
    has_file = "token_file" in node.mapping
    if has_token and has_file:
        raise node.error("token_file", "set either token or token_file, not both")
    if has_token:
        token = node.string("token", None)
        if not token.strip():
            raise node.error("token", "must not be empty")
        return "token", token.strip(), None
    if not has_file:
        return "token", "", None  # writes with a TLS client certificate (checked at start)
    token_file = base_dir / node.string("token_file", None)
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise node.error("token_file", f"token file {str(token_file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise node.error(
            "token_file", f"cannot read token file {str(token_file)!r}: {exc}"
        ) from None
    if not token:
        raise node.error("token_file", f"token file {str(token_file)!r} is empty")
    return "token_file", token, token_file


def _ingest_overrides(node: ConfigNode) -> tuple[float | None, int | None]:
    """A push cluster's own `ingest_rate` / `ingest_burst`, None where it sets none."""
    rate = burst = None
    if "ingest_rate" in node.mapping:
        rate = node.number("ingest_rate", 0.0)
    if "ingest_burst" in node.mapping:
        burst = node.integer("ingest_burst", 0)
    return rate, burst
