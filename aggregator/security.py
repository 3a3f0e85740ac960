"""The web-config file at run time: loaded at start, reloaded when it or its files change.

`WebSecurity` holds the current `WebConfig`, the read authenticator built
from it, and the TLS server context. The listening socket keeps one *front*
context for its whole life; its SNI callback (OpenSSL calls it for every
handshake, with or without a server name) switches each new connection to the
newest context. So a rotated certificate, key or client CA applies to the next
handshake, without restarting the listener, and connections already open keep
the one they started with. The TLS versions and whether client certificates
are asked for are set on the front context too, when the file changes.

`watch()` compares the files' sizes and modification times every
`WATCH_INTERVAL_S`; a file that no longer parses, or a certificate that no
longer loads, is logged and the last good config stays in force (as
Prometheus keeps serving when its web config turns bad, refusing only until
fixed). A service started without TLS cannot turn it on by reload.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

from aggregator.clusterconfig import PushCluster
from aggregator.errors import ConfigError
from aggregator.readauth import ReadAuthenticator
from aggregator.webconfig import WebConfig, build_ssl_context, load_web_config

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 2.0

Signature = tuple[tuple[str, int, int], ...]


def check_push_clusters(config: WebConfig, clusters: Sequence[PushCluster], file: str) -> None:
    """A push cluster without a token can only write with a client certificate."""
    tls = config.tls
    for c in clusters:
        if not c.token and (tls is None or tls.client_ca_file is None):
            raise ConfigError(
                file,
                "tls_server_config.client_ca_file",
                f"push cluster {c.name!r} has no token, so it must write with a client "
                "certificate: set a client_ca_file (and client_auth_type)",
            )


class WebSecurity:
    """The live web config: read authentication and TLS (see the module docstring)."""

    def __init__(self, path: Path | None, push_clusters: Sequence[PushCluster] = ()) -> None:
        self.path = path
        self._clusters = tuple(push_clusters)
        self.config = WebConfig()
        if path is not None:
            self.config = load_web_config(path)
            check_push_clusters(self.config, self._clusters, str(path))
        self.read_auth = ReadAuthenticator(self.config)
        self._context: ssl.SSLContext | None = None
        self._front: ssl.SSLContext | None = None
        if self.config.tls is not None:
            self._context = build_ssl_context(self.config.tls)
        self._signature = self._files_signature()
        self.reloads = 0

    @property
    def tls(self) -> bool:
        return self.config.tls is not None

    def server_context(self) -> ssl.SSLContext | None:
        """The context to listen with (None without TLS); it follows reloads."""
        if self._context is None:
            return None
        if self._front is None:
            front = build_ssl_context_for_front(self._context)
            front.sni_callback = self._switch
            self._front = front
        return self._front

    def _switch(self, conn: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        current = self._context
        if current is not None and conn.context is not current:
            conn.context = current

    def _files_signature(self) -> Signature:
        files: list[Path] = [self.path] if self.path is not None else []
        if self.config.tls is not None:
            files += self.config.tls.files
        out = []
        for f in files:
            try:
                st = f.stat()
                out.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(f), -1, -1))
        return tuple(out)

    def reload(self) -> bool:
        """Load the file again if it or its TLS files changed; True if a new config applies."""
        if self.path is None:
            return False
        signature = self._files_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            config = load_web_config(self.path)
            check_push_clusters(config, self._clusters, str(self.path))
            context = build_ssl_context(config.tls) if config.tls is not None else None
        except (ConfigError, ssl.SSLError, OSError) as exc:
            log.error("web config not reloaded, the last good one stays", extra={"err": str(exc)})
            return False
        if (context is None) != (self._context is None):
            log.error(
                "web config not reloaded: turning TLS on or off needs a restart",
                extra={"file": str(self.path)},
            )
            return False
        self.config = config
        self.read_auth.update(config)
        if context is not None and config.tls is not None:
            self._context = context
            if self._front is not None:
                apply_handshake_settings(self._front, config.tls.client_auth, context)
        self.reloads += 1
        log.info("web config reloaded", extra={"file": str(self.path), "tls": self.tls})
        return True

    async def watch(self) -> None:
        """Reload on change until cancelled."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            self.reload()


def build_ssl_context_for_front(current: ssl.SSLContext) -> ssl.SSLContext:
    """The listener's context: the current settings, its certificate swapped per handshake."""
    front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    apply_handshake_settings(front, current.verify_mode, current)
    return front


def apply_handshake_settings(
    front: ssl.SSLContext, verify_mode: ssl.VerifyMode, current: ssl.SSLContext
) -> None:
    """What OpenSSL takes from the listener's context, not from the one switched to."""
    front.minimum_version = current.minimum_version
    front.maximum_version = current.maximum_version
    front.verify_mode = verify_mode
    front.options = current.options
