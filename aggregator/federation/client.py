"""HTTP sessions to pull clusters: one pooled aiohttp session each, with its auth and TLS."""

from __future__ import annotations

import base64
import ssl

import aiohttp

from aggregator.clusterconfig import PullCluster

MAX_CONNECTIONS = 16
"""Open connections kept per pull cluster (concurrent selects of one query share them)."""


def auth_headers(cluster: PullCluster) -> dict[str, str]:
    """The Authorization header the cluster's config asks for (none without credentials)."""
    if cluster.bearer_token:
        return {"Authorization": f"Bearer {cluster.bearer_token}"}
    if cluster.basic_auth is not None:
        pair = f"{cluster.basic_auth.username}:{cluster.basic_auth.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


def ssl_context(cluster: PullCluster) -> ssl.SSLContext | bool:
    """TLS settings for an https URL (True: system defaults)."""
    tls = cluster.tls
    if tls is None:
        return True
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file and tls.key_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_session(cluster: PullCluster) -> aiohttp.ClientSession:
    """A session for one cluster: pooled keep-alive connections, its credentials on each request."""
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=ssl_context(cluster))
    return aiohttp.ClientSession(
        base_url=cluster.url + "/",
        connector=connector,
        headers=auth_headers(cluster),
        timeout=aiohttp.ClientTimeout(total=cluster.timeout_ms / 1000),
        auto_decompress=False,
    )
