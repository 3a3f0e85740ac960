"""The web-config file: Prometheus's format (checked by the real promtool), our extensions,
and errors that name the key."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest

from aggregator.clusterconfig import PushCluster
from aggregator.errors import ConfigError
from aggregator.security import WebSecurity
from aggregator.webconfig import load_web_config
from tests.support.certs import TestCA

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "pki")


def test_a_prometheus_file_reads_the_same_here_and_in_promtool(tmp_path: Path, ca: TestCA) -> None:
    server = ca.issue("server", server=True)
    path = write(
        tmp_path,
        f"""tls_server_config:
  cert_file: pki/server.crt
  key_file: pki/server.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: pki/test-ca.crt
  min_version: TLS12
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  grafana: {HASH}
""",
    )
    assert server.cert.is_file()
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "pki/server.crt"
    assert config.tls.client_auth == ssl.CERT_OPTIONAL
    assert config.tls.min_version == ssl.TLSVersion.TLSv1_2
    assert config.headers == {"X-Frame-Options": "deny"}
    assert set(config.users) == {"grafana"}
    assert config.auth_required
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian prometheus package) is not installed")
    done = subprocess.run([promtool, "check", "web-config", str(path)], capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_extensions_tokens_and_cluster_scopes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""basic_auth_users:
  team-eu: {HASH}
bearer_tokens:
  dashboards: {HASH}
users:
  team-eu: {{clusters: [eu-1, eu-2]}}
""",
    )
    config = load_web_config(path)
    assert set(config.tokens) == {"dashboards"}
    assert config.scopes == {"team-eu": frozenset({"eu-1", "eu-2"})}
    # Prometheus refuses the extension keys: a file with them is this service's only.
    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run([promtool, "check", "web-config", str(path)], capture_output=True)
        assert done.returncode != 0


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("basic_auth_user: {}\n", "basic_auth_user", "unknown key"),
        ("basic_auth_users:\n  a: plaintext\n", "basic_auth_users.a", "must be a bcrypt hash"),
        (f"basic_auth_users:\n  a: {HASH}\nusers:\n  b: {{clusters: [x]}}\n", "users.b", "not a"),
        (f"basic_auth_users:\n  a: {HASH}\nusers:\n  a: {{clusters: []}}\n", "users.a.clusters",
         "non-empty list"),
        (f"basic_auth_users:\n  a: {HASH}\nbearer_tokens:\n  a: {HASH}\n", "bearer_tokens.a",
         "either a basic-auth user or a token"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
         "tls_server_config.cert_file", "does not exist"),
    ],
)  # fmt: skip
def test_bad_files_name_the_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, text))
    assert info.value.key == key
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ("  client_auth_type: RequireAnyClientCert\n", "client_auth_type", "unchecked"),
        ("  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file", "needs a"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "min_version", "above max_version"),
        ("  min_version: SSL3\n", "min_version", "unknown TLS version"),
        ("  cipher_suites: [TLS_MADE_UP]\n", "cipher_suites[0]", "unknown cipher suite"),
        ("  curve_preferences: [X25519]\n", "curve_preferences", "not supported"),
    ],
)
def test_tls_settings_we_cannot_honour_are_refused(
    tmp_path: Path, ca: TestCA, extra: str, key: str, reason: str
) -> None:
    ca.issue("server", server=True)
    text = "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n" + extra
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, text))
    assert info.value.key == f"tls_server_config.{key}"
    assert reason in info.value.reason


def test_a_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path, ca: TestCA) -> None:
    a = ca.issue("a", server=True)
    b = ca.issue("b", server=True)
    text = f"tls_server_config:\n  cert_file: {a.cert}\n  key_file: {b.key}\n"
    with pytest.raises(ConfigError, match="cannot use the certificate"):
        load_web_config(write(tmp_path, text))


def test_a_tokenless_push_cluster_needs_a_client_ca(tmp_path: Path) -> None:
    path = write(tmp_path, f"basic_auth_users:\n  a: {HASH}\n")
    with pytest.raises(ConfigError, match="push cluster 'edge-1' has no token"):
        WebSecurity(path, [PushCluster(name="edge-1", token="")])


def test_reload_applies_a_changed_file_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = write(tmp_path, f"basic_auth_users:\n  a: {HASH}\n")
    security = WebSecurity(path)
    assert set(security.config.users) == {"a"}
    assert not security.reload()  # unchanged
    path.write_text(f"basic_auth_users:\n  a: {HASH}\n  b: {HASH}\n")
    assert security.reload()
    assert set(security.config.users) == {"a", "b"}
    path.write_text("basic_auth_users:\n  a: not-a-hash-at-all\n")
    assert not security.reload()
    assert set(security.config.users) == {"a", "b"}


async def test_a_rotated_certificate_applies_to_the_next_handshake(tmp_path: Path) -> None:
    first, second = TestCA(tmp_path / "one", "one"), TestCA(tmp_path / "two", "two")
    files = first.issue("server", server=True)
    path = write(
        tmp_path, f"tls_server_config:\n  cert_file: {files.cert}\n  key_file: {files.key}\n"
    )
    security = WebSecurity(path)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=security.server_context())
    port = server.sockets[0].getsockname()[1]

    async def greet(ca: TestCA) -> bytes:
        context = ssl.create_default_context(cafile=str(ca.cert_file))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        except ssl.SSLCertVerificationError:
            return b"untrusted"
        line = await reader.readline()
        writer.close()
        return line

    try:
        assert await greet(first) == b"hello\n"
        rotated = second.issue("server", server=True)  # then copied over the configured files
        files.cert.write_bytes(rotated.cert.read_bytes())
        files.key.write_bytes(rotated.key.read_bytes())
        assert security.reload()
        assert await greet(second) == b"hello\n"
        assert await greet(first) == b"untrusted"
    finally:
        server.close()
