"""The web-config file: TLS and read users, in Prometheus's `--web.config.file` format.

The same file works for Prometheus 2.42 and for this service, so one file and
one Grafana datasource setting serve both:

```yaml
tls_server_config:
  cert_file: server.crt           # relative paths: relative to this file's folder
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
  client_ca_file: ca.crt
  min_version: TLS12              # TLS10 .. TLS13 (default TLS12)
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ...]   # Go names, TLS <= 1.2
  prefer_server_cipher_suites: true
http_server_config:
  headers: {X-Frame-Options: deny}   # added to every response
basic_auth_users:                 # user: bcrypt hash of the password
  grafana: $2y$10$...
```

Two extensions of this service (Prometheus refuses a file holding them, so
keep them out of a file shared with it):

```yaml
bearer_tokens:                    # name: bcrypt hash of the token, sent as `Bearer <token>`
  dashboards: $2b$12$...
users:                            # a basic-auth user or token name -> what it may read
  team-eu: {clusters: [eu-1, eu-2]}
```

`client_auth_type` values `RequestClientCert` and `RequireAnyClientCert`
(Go's, which accept a certificate without checking it) are refused: they
give no identity, and Python's TLS cannot take unchecked certificates.
`curve_preferences` is refused too (Python sets one curve, not a list).
`http2` is accepted and ignored (this server speaks HTTP/1.1).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aggregator.clusterconfig import CLUSTER_NAME
from aggregator.errors import ConfigError

_BCRYPT = re.compile(rb"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
GO_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
"""Go's cipher-suite names (what the file holds) -> OpenSSL's."""


@dataclass(frozen=True, slots=True)
class TLSServerConfig:
    """`tls_server_config`: the server's certificate and how clients are checked."""

    cert_file: Path
    key_file: Path
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: tuple[str, ...] = ()
    prefer_server_ciphers: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        """Files whose change means a new context (certificate rotation)."""
        extra = (self.client_ca_file,) if self.client_ca_file is not None else ()
        return (self.cert_file, self.key_file, *extra)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the web-config file says; `users` and `tokens` hold bcrypt hashes."""

    tls: TLSServerConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    tokens: dict[str, bytes] = field(default_factory=dict, repr=False)
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)
    """Name (user or token) -> the only clusters it may read; absent: all."""

    @property
    def auth_required(self) -> bool:
        """Whether reads need a credential (some user or token is configured)."""
        return bool(self.users or self.tokens)


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; raises ConfigError naming the file, key and reason."""
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read the file: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    return parse_web_config(raw if raw is not None else {}, file=file, base_dir=path.parent)


def parse_web_config(raw: Any, *, file: str, base_dir: Path) -> WebConfig:
    """Build a WebConfig from parsed YAML (see the module docstring for the keys)."""
    top = _mapping(raw, file, "")
    _only(top, file, "", {"tls_server_config", "http_server_config", "basic_auth_users",
                          "bearer_tokens", "users"})  # fmt: skip
    tls = None
    if top.get("tls_server_config") is not None:
        tls = _parse_tls(
            _mapping(top["tls_server_config"], file, "tls_server_config"), file, base_dir
        )
    headers: dict[str, str] = {}
    if top.get("http_server_config") is not None:
        http = _mapping(top["http_server_config"], file, "http_server_config")
        _only(http, file, "http_server_config", {"http2", "headers"})
        if "http2" in http and not isinstance(http["http2"], bool):
            raise ConfigError(file, "http_server_config.http2", "must be true or false")
        for name, value in _mapping(
            http.get("headers"), file, "http_server_config.headers"
        ).items():
            if not isinstance(value, str):
                raise ConfigError(file, f"http_server_config.headers.{name}", "must be a string")
            if value:
                headers[str(name)] = value
    users = _hashes(top.get("basic_auth_users"), file, "basic_auth_users")
    tokens = _hashes(top.get("bearer_tokens"), file, "bearer_tokens")
    both = sorted(set(users) & set(tokens))
    if both:
        raise ConfigError(
            file, f"bearer_tokens.{both[0]}", "a name is either a basic-auth user or a token"
        )
    scopes: dict[str, frozenset[str]] = {}
    for name, entry in _mapping(top.get("users"), file, "users").items():
        key = f"users.{name}"
        if name not in users and name not in tokens:
            raise ConfigError(file, key, "not a basic_auth_users user nor a bearer_tokens name")
        item = _mapping(entry, file, key)
        _only(item, file, key, {"clusters"})
        clusters = item.get("clusters")
        if not isinstance(clusters, list) or not clusters:
            raise ConfigError(file, f"{key}.clusters", "must be a non-empty list of cluster names")
        for i, c in enumerate(clusters):
            if not isinstance(c, str) or not CLUSTER_NAME.fullmatch(c):
                raise ConfigError(file, f"{key}.clusters[{i}]", f"invalid cluster name {c!r}")
        scopes[str(name)] = frozenset(clusters)
    return WebConfig(tls=tls, headers=headers, users=users, tokens=tokens, scopes=scopes)


def _parse_tls(node: dict[str, Any], file: str, base_dir: Path) -> TLSServerConfig:
    path = "tls_server_config"
    allowed = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
               "max_version", "cipher_suites", "prefer_server_cipher_suites",
               "curve_preferences"}  # fmt: skip
    _only(node, file, path, allowed)
    if node.get("curve_preferences"):
        raise ConfigError(file, f"{path}.curve_preferences", "not supported by this service")
    files: dict[str, Path] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = node.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ConfigError(file, f"{path}.{key}", "must be a file name")
        p = base_dir / value
        if not p.is_file():
            raise ConfigError(file, f"{path}.{key}", f"file {str(p)!r} does not exist")
        files[key] = p
    for key in ("cert_file", "key_file"):
        if key not in files:
            raise ConfigError(file, f"{path}.{key}", "is required for TLS")
    auth_name = node.get("client_auth_type", "NoClientCert") or "NoClientCert"
    if auth_name not in CLIENT_AUTH:
        hint = (
            "it accepts unchecked certificates; use RequireAndVerifyClientCert"
            if auth_name in ("RequestClientCert", "RequireAnyClientCert")
            else f"one of {', '.join(CLIENT_AUTH)}"
        )
        raise ConfigError(
            file, f"{path}.client_auth_type", f"{auth_name!r} is not supported: {hint}"
        )
    client_auth = CLIENT_AUTH[auth_name]
    if client_auth != ssl.CERT_NONE and "client_ca_file" not in files:
        raise ConfigError(
            file, f"{path}.client_ca_file", f"client_auth_type {auth_name} needs a client_ca_file"
        )
    versions = []
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = node.get(key) or default
        if name not in TLS_VERSIONS:
            raise ConfigError(
                file,
                f"{path}.{key}",
                f"unknown TLS version {name!r} (one of {', '.join(TLS_VERSIONS)})",
            )
        versions.append(TLS_VERSIONS[name])
    if versions[0] > versions[1]:
        raise ConfigError(file, f"{path}.min_version", "must not be above max_version")
    ciphers = []
    for i, name in enumerate(node.get("cipher_suites") or []):
        if name not in GO_CIPHERS:
            raise ConfigError(file, f"{path}.cipher_suites[{i}]", f"unknown cipher suite {name!r}")
        ciphers.append(GO_CIPHERS[name])
    prefer = node.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(file, f"{path}.prefer_server_cipher_suites", "must be true or false")
    tls = TLSServerConfig(
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        client_auth=client_auth,
        client_ca_file=files.get("client_ca_file"),
        min_version=versions[0],
        max_version=versions[1],
        ciphers=tuple(ciphers),
        prefer_server_ciphers=prefer,
    )
    try:
        build_ssl_context(tls)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(file, path, f"cannot use the certificate, key or CA: {exc}") from None
    return tls


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context for `tls` (files are read now: call again after they change)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = tls.min_version
    ctx.maximum_version = tls.max_version
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.verify_mode = tls.client_auth
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
    if tls.ciphers:
        ctx.set_ciphers(":".join(tls.ciphers))
    if tls.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _hashes(raw: Any, file: str, key: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in _mapping(raw, file, key).items():
        if not isinstance(value, str) or not _BCRYPT.fullmatch(value.encode()):
            raise ConfigError(
                file,
                f"{key}.{name}",
                "must be a bcrypt hash (e.g. htpasswd -nBC 10 \"\" | tr -d ':\\n')",
            )
        out[str(name)] = value.encode()
    return out


def _mapping(raw: Any, file: str, key: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(file, key or "(top level)", "must be a mapping")
    return raw


def _only(node: dict[str, Any], file: str, path: str, allowed: set[str]) -> None:
    for key in node:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(
                file, where, f"unknown key (allowed here: {', '.join(sorted(allowed))})"
            )
