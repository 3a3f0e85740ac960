"""Who reads: basic-auth users and bearer tokens from the web-config file.

Every read, rules and admin endpoint needs a credential once the web-config
file names any user or token (`aggregator.webconfig`); `/-/healthy`,
`/-/ready` and remote write (which has its own per-cluster tokens,
`aggregator.auth`) never do, and `/metrics` only while `server.metrics_auth`
is on.

Passwords and tokens are checked against bcrypt hashes, as Prometheus's
exporter-toolkit does, including a check against a fixed hash for an unknown
user, so that the time taken does not tell which users exist. A check costs
tens of milliseconds of CPU at cost 10, so it runs in a worker thread (bcrypt
releases the interpreter lock), at most `CHECKS_AT_ONCE` at a time, and its
outcome, good or bad, is remembered by a digest of the credential: a
dashboard's repeated requests cost one check, and neither does a client
retrying a wrong password. The memory is dropped when the file changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import bcrypt

from aggregator.errors import Unauthorized
from aggregator.webconfig import WebConfig

REALM = "aggregator"
CHALLENGES = (f'Basic realm="{REALM}", charset="UTF-8"', f'Bearer realm="{REALM}"')
CHECKS_AT_ONCE = 2
REMEMBERED = 4096
_DECOY = b"$2b$10$G/0rbxMush9oFKlFkcM7UurrjG9iptDE9w1octYQft/QnyQ2GOsrq"
"""A hash of nothing anyone sends: checked for unknown users so they take as long."""


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is reading: a user or token name (None while reads are open) and its clusters."""

    name: str | None
    clusters: frozenset[str] | None = None
    """The only clusters this reader may see; None: all of them."""


OPEN_READER = Reader(None)


class ReadAuthenticator:
    """Checks the `Authorization` header of a read against the web config's users and tokens."""

    def __init__(self, config: WebConfig | None = None) -> None:
        self._config = config or WebConfig()
        self._known: collections.OrderedDict[bytes, Reader | None] = collections.OrderedDict()
        self._checks: asyncio.Semaphore | None = None

    def update(self, config: WebConfig) -> None:
        """Use a new web config (after the file changed); forgets remembered outcomes."""
        self._config = config
        self._known.clear()

    @property
    def required(self) -> bool:
        """Whether reads need a credential."""
        return self._config.auth_required

    async def authenticate(self, headers: Mapping[str, str]) -> Reader:
        """The reader; raises Unauthorized (HTTP 401) for a missing or wrong credential."""
        config = self._config
        if not config.auth_required:
            return OPEN_READER
        header = headers.get("Authorization", "")
        if not header:
            raise Unauthorized("missing credentials")
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        if digest in self._known:
            self._known.move_to_end(digest)
            known = self._known[digest]
            if known is None:
                raise Unauthorized("wrong credentials")
            return known
        if self._checks is None:
            self._checks = asyncio.Semaphore(CHECKS_AT_ONCE)
        async with self._checks:
            name = await asyncio.to_thread(_check, config, header)
        reader = None if name is None else Reader(name, config.scopes.get(name))
        if config is self._config:  # not replaced meanwhile
            self._known[digest] = reader
            if len(self._known) > REMEMBERED:
                self._known.popitem(last=False)
        if reader is None:
            raise Unauthorized("wrong credentials")
        return reader


def _check(config: WebConfig, header: str) -> str | None:
    """The user or token name the header proves, or None (runs in a worker thread)."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        user_bytes, sep, password = decoded.partition(b":")
        if not sep:
            return None
        user = user_bytes.decode("utf-8", "replace")
        hashed = config.users.get(user)
        ok = bcrypt.checkpw(password, hashed or _DECOY)
        return user if ok and hashed is not None else None
    if scheme.lower() == "bearer" and value:
        token = value.encode("utf-8", "surrogateescape")
        found = None
        for name, hashed in config.tokens.items():  # every one: no early exit
            if bcrypt.checkpw(token, hashed) and found is None:
                found = name
        if not config.tokens:
            bcrypt.checkpw(token, _DECOY)
        return found
    return None
