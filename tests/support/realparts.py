"""Start and stop the real programs tests and benchmarks run against.

Each process binds 127.0.0.1 on a port chosen free at run time, keeps its data
in a directory the caller owns, and is stopped (SIGTERM, then SIGKILL) by
`stop()`. Only processes started here are ever signalled, by their own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    url: str,
    *,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Status and body of a GET, HTTP errors included (no exception for 4xx/5xx).

    `context` verifies an https server (e.g. against a test CA); `headers` go along
    (e.g. basic auth)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def client_tls(ca_file: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context trusting `ca_file` (and presenting `cert` = (cert, key) if given)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


class Process:
    """A child process with its log file; `stop()` ends it and only it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cpu: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu), *argv]
        self._log = open(log_path, "wb")  # closed in stop() / kill()
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything the process wrote so far (also after it stopped)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident set size from /proc (the process itself, not taskset)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{self.name}: no VmRSS for pid {self.pid}")

    def wait_ready(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Poll `url` until it answers 200; fail with the process log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                self._log.close()
                raise RuntimeError(f"{self.name} exited early:\n{self.log_text()[-4000:]}")
            try:
                status, _ = http_get(url, timeout=1.0, context=context, headers=headers)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()  # the caller never gets this process to stop it
        raise RuntimeError(
            f"{self.name} not ready at {url} after {timeout}s:\n{self.log_text()[-4000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()
        self._log.close()

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def start_prometheus(
    workdir: Path,
    config: str,
    *,
    extra_args: Sequence[str] = (),
    cpu: int | None = None,
    port: int | None = None,
    web_config: Path | None = None,
    tls_ca: Path | None = None,
    ready_headers: dict[str, str] | None = None,
) -> tuple[Process, str]:
    """A real Prometheus (Debian package) with `config` as its YAML; returns it and its URL.

    `web_config` is its `--web.config.file`; with TLS in it, pass the CA that signed
    its certificate as `tls_ca` (the URL is then https), and basic-auth headers as
    `ready_headers` when it has users.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (scripts/system-deps installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(config)
    port = port or free_port()
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    if web_config is not None:
        extra_args = [*extra_args, f"--web.config.file={web_config}"]
    proc = Process(
        "prometheus",
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *extra_args,
        ],
        workdir / "prometheus.log",
        cpu=cpu,
    )
    context = client_tls(tls_ca) if tls_ca else None
    proc.wait_ready(f"{url}/-/ready", context=context, headers=ready_headers)
    return proc, url


def start_aggregator(
    workdir: Path,
    *,
    config: str | None = None,
    data_dir: Path | None = None,
    cpu: int | None = None,
    port: int | None = None,
    tls_ca: Path | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[Process, str]:
    """The service as a child process (`python -m aggregator serve`); returns it and its URL.

    With TLS in its web config, pass the CA that signed its certificate as `tls_ca`
    (the URL is then https)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "aggregator",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir or workdir / "data"),
    ]
    if config is not None:
        (workdir / "aggregator.yml").write_text(config)
        argv += ["--config", str(workdir / "aggregator.yml")]
    argv += list(extra_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = Process("aggregator", argv, workdir / "aggregator.log", cpu=cpu, env=env)
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    proc.wait_ready(f"{url}/-/ready", context=client_tls(tls_ca) if tls_ca else None)
    return proc, url


def start_moto(workdir: Path, *, port: int | None = None) -> tuple[Process, str]:
    """A moto S3 server (`moto_server`, from the dev dependencies): the process and its URL.

    Objects live in the server's memory: stopping it loses them. To take the
    endpoint away and bring it back with its objects, put a `TcpProxy` in
    front of it and stop that instead.
    """
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable} (install moto[server])")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    argv = [str(binary), "-H", "127.0.0.1", "-p", str(port)]
    proc = Process("moto", argv, workdir / "moto.log", env=env)
    proc.wait_ready(f"{url}/moto-api/")
    return proc, url


def post_write(url: str, body: bytes, *, timeout: float = 30.0) -> int:
    """POST a snappy-compressed WriteRequest to `url`/api/v1/write; returns the status."""
    request = urllib.request.Request(
        f"{url}/api/v1/write",
        data=body,
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return int(resp.status)


@contextmanager
def prometheus_beside_aggregator(
    workdir: Path, *, aggregator_config: str | None = None
) -> Iterator[tuple[str, str]]:
    """A Prometheus remote-write receiver and the service, both running: their URLs.

    `aggregator_config` is the service's YAML config (None: the embedded default).
    """
    prom, prom_url = start_prometheus(
        workdir / "prom",
        "global:\n  scrape_interval: 1m\n",
        extra_args=["--web.enable-remote-write-receiver"],
    )
    try:
        agg, agg_url = start_aggregator(workdir / "agg", config=aggregator_config)
    except BaseException:
        prom.stop()
        raise
    try:
        yield prom_url, agg_url
    finally:
        agg.stop()
        prom.stop()


def start_alertmanager(
    workdir: Path, config: str, *, port: int | None = None
) -> tuple[Process, str]:
    """A real Alertmanager 0.25 (Debian package) with `config` as its YAML; returns it
    and its URL. No gossip port (`--cluster.listen-address=`)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        raise RuntimeError("alertmanager is not installed (scripts/system-deps installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        "alertmanager",
        [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir / "alertmanager.log",
    )
    proc.wait_ready(f"{url}/-/ready")
    return proc, url


class Sink:
    """An HTTP server on loopback that records every POST body (JSON) by path."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[tuple[str, object]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._lock = lock
        self._received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, path: str) -> list[object]:
        """The JSON bodies POSTed to `path` so far, in arrival order."""
        with self._lock:
            return [body for p, body in self._received if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def post_write_as(url: str, body: bytes, token: str | None, *, timeout: float = 10.0) -> int:
    """POST a WriteRequest to `url`/api/v1/write as a cluster (its bearer token)."""
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/api/v1/write", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return int(resp.status)


def wait_for(condition: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy; fail saying `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
