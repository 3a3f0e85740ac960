"""`aggregator edge --host URL --cluster NAME --token-file F --config FILE`: the edge agent.

Its own light entry point: `aggregator.entry` sends `edge` here before the
service's CLI is imported, so the agent loads only what it runs (the PromQL
engine, the wire codec, its own HTTP client, prometheus-client's parsers) and never
aiohttp, pyarrow, boto3, the object stores, tiering, the HTTP API or the notifiers.
tests/aggregator/edge/test_imports.py checks this.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.errors import ConfigError

if TYPE_CHECKING:
    from aggregator.edge.config import AgentConfig

log = logging.getLogger("aggregator.edge")

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aggregator edge",
        description="Edge agent: scrape locally, run the host's rules, forward what matters.",
    )
    p.add_argument("--host", required=True, metavar="URL", help="the aggregator's base URL")
    p.add_argument("--cluster", required=True, metavar="NAME", help="this cluster's name")
    p.add_argument(
        "--token-file", required=True, metavar="FILE", help="the cluster's token (as on the host)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="scrape config (see README)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from aggregator.edge.config import load_agent_config

    try:
        config = load_agent_config(args.config)
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"error: {args.token_file}: cannot read the token: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    if not token:
        print(f"error: {args.token_file}: the token file is empty", file=sys.stderr)
        return EXIT_CONFIG
    if not args.host.startswith(("http://", "https://")):
        print(f"error: --host: {args.host!r} is not an http(s) URL", file=sys.stderr)
        return EXIT_CONFIG
    from aggregator.logs import setup_logging

    setup_logging(args.log_level, "logfmt")
    if not needs_tls(config, args.host):
        leave_out_tls()
    import asyncio

    from aggregator.malloc import keep_freed_memory

    # One malloc arena for all threads, glibc's default thresholds: small and steady.
    keep_freed_memory(mmap_bytes=128 << 10, trim_bytes=128 << 10)
    return asyncio.run(_run(config, args.host, args.cluster, token))


def needs_tls(config: AgentConfig, host: str) -> bool:
    """Whether the agent may talk TLS: an https host or local Prometheus, an https
    scrape scheme, or Kubernetes discovery (the API server, and pods that ask for https)."""
    urls = (host, config.edge.remote_read or "")
    return any(u.startswith("https://") for u in urls) or any(
        job.scheme == "https" or job.kubernetes for job in config.scrape_configs
    )


def leave_out_tls() -> None:
    """Keep `ssl` (and OpenSSL's libssl and libcrypto) out of the process: 4-5 MB resident.

    asyncio imports `ssl` when it is imported, whether a TLS connection is ever
    made or not, so the only way not to load it is to mark it missing before
    asyncio is imported; asyncio (and `aggregator.edge.http`) then run without
    TLS, as on a Python built without it. Call before anything imports asyncio;
    does nothing when `ssl` is already loaded.
    """
    if "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]


async def _run(config: AgentConfig, host: str, cluster: str, token: str) -> int:
    """Run the agent until SIGTERM/SIGINT; what was batched goes to the disk queue."""
    import asyncio
    import signal

    from aggregator.edge.agent import Agent

    agent = Agent(config, host=host, cluster=cluster, token=token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    await stop.wait()
    log.info("edge agent stopping")
    await agent.stop()
    return 0
