"""Push-cluster identity: the credential on a write decides its `cluster` label.

A member Prometheus sends its token either as `Authorization: Bearer <token>`
or as the password of basic auth (Prometheus 2.42 drops custom headers but
sends both of these); the basic-auth username is ignored. Tokens are compared
in constant time, and every configured token is compared on every request, so
neither the timing nor the order of the configured clusters leaks which one
came close.

A member may instead present a TLS client certificate (the web config's
`client_ca_file` must have signed it): the cluster is the push cluster whose
name equals one of the certificate's DNS subject alternative names or, when
it has none, its subject common name. A certificate naming no cluster, or
several, identifies none. A token, when one is sent, decides over the
certificate.

With no clusters configured (the embedded default) writes are open: the
identity is `None` and series keep the `cluster` label the sender put on them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregator.clusterconfig import PushCluster
from aggregator.errors import Unauthorized

REALM = "aggregator"
CHALLENGES = (f'Bearer realm="{REALM}"', f'Basic realm="{REALM}", charset="UTF-8"')
"""`WWW-Authenticate` values of a 401: both schemes a sender may use."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is writing: a configured push cluster, or `cluster=None` when writes are open."""

    cluster: str | None


OPEN = Identity(cluster=None)


class Authenticator:
    """Maps the `Authorization` header of a write to the cluster it belongs to."""

    def __init__(self, clusters: Iterable[PushCluster]) -> None:
        clusters = list(clusters)
        self._tokens = [(c.token.encode("utf-8"), c.name) for c in clusters if c.token]
        self._names = frozenset(c.name for c in clusters)

    @property
    def open(self) -> bool:
        """Whether writes need no credential (no push clusters configured)."""
        return not self._names

    def authenticate(
        self, headers: Mapping[str, str], peercert: Mapping[str, Any] | None = None
    ) -> Identity:
        """The writer's identity; raises Unauthorized (HTTP 401) when writes need a credential.

        `peercert` is the verified client certificate of the connection, if any
        (`ssl.SSLSocket.getpeercert()`'s dict).
        """
        if not self._names:
            return OPEN
        header = headers.get("Authorization")
        if not header and peercert:
            return Identity(cluster=self.cluster_of_certificate(peercert))
        if not header:
            raise Unauthorized(
                "missing credentials: send the cluster's token as a bearer token "
                "or present its client certificate"
            )
        token = _credential(header)
        matched = None
        for expected, name in self._tokens:
            # No early exit: compare against every token.
            if hmac.compare_digest(token, expected):
                matched = name
        if matched is None:
            raise Unauthorized("invalid token: it belongs to no configured cluster")
        return Identity(cluster=matched)

    def cluster_of_certificate(self, peercert: Mapping[str, Any]) -> str:
        """The push cluster a verified client certificate names (see the module docstring)."""
        dns = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
        if not dns:
            dns = [
                value
                for rdn in peercert.get("subject", ())
                for key, value in rdn
                if key == "commonName"
            ]
        named = sorted({d for d in dns if d in self._names})
        if len(named) != 1:
            reason = "names no" if not named else f"names several ({', '.join(named)})"
            raise Unauthorized(f"the client certificate {reason} push cluster")
        return named[0]


def _credential(header: str) -> bytes:
    """The token in a Bearer or Basic `Authorization` header value."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "bearer":
        if not value:
            raise Unauthorized("empty bearer token")
        return value.encode("utf-8")
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthorized("malformed basic-auth credentials (not base64)") from None
        _, sep, password = decoded.partition(b":")
        if not sep or not password:
            raise Unauthorized("basic-auth credentials carry no password (the token)")
        return password
    shown = scheme[:20] or "(none)"
    raise Unauthorized(f"unsupported authorization scheme {shown!r}: use Bearer or Basic")
