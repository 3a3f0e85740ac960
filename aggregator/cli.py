"""`aggregator serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--web.config.file F]`.

Without `--config` the embedded default runs (127.0.0.1:9095, data under
./data, open writes). Flags override the file. A bad config, web config or
flag prints `error: <file>: <key>: <reason>` and exits 2 without a traceback.

SIGTERM or SIGINT stop the service cleanly, within `server.shutdown_timeout`
plus the time storage takes to close: stop accepting connections; refuse
queued reads and cancel running ones (503 "shutting down"); let in-flight
writes finish (acknowledged writes are in the WAL, unacknowledged ones are
retried by their sender); close idle connections; close storage (the WAL is
written and fsynced). A second signal exits at once.

`aggregator check-config FILE` checks a config file and exits 0 or 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError
from aggregator.logs import setup_logging
from aggregator.malloc import keep_freed_memory
from aggregator.security import WebSecurity
from aggregator.version import version

log = logging.getLogger("aggregator")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
CLOSE_GRACE_S = 15.0
"""Beyond `server.shutdown_timeout`, what closing storage and sessions may take."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Multi-cluster Prometheus aggregator: remote-write in, Prometheus API out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", metavar="FILE", help="YAML config file (default: embedded)")
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="listen address (default 127.0.0.1:9095)"
    )
    serve.add_argument("--data-dir", metavar="DIR", help="data directory (default ./data)")
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="Prometheus web-config file: TLS and read users (overrides web_config_file)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])

    commands.add_parser(
        "edge", help="run the edge agent (see `aggregator edge --help`)", add_help=False
    )
    check = commands.add_parser("check-config", help="check a config file and exit")
    check.add_argument("config", metavar="FILE")
    return parser


def check_rules(config: Config) -> int:
    """Load the rule files the config names and the ruler-API namespaces in its data
    directory; returns the number of groups, raises ConfigError listing the problems."""
    rules_dir = config.data_dir / "rules"
    if not config.rules.files and not rules_dir.is_dir():
        return 0
    # Imported here: the PromQL parser is needed only when there are rules to check.
    from alerting.loader import RulesLoadError, expand_globs, load_rule_files
    from alerting.rulerstore import RulerStore

    sources = expand_globs(config.rules.files, config.rules.base_dir)
    sources += RulerStore(rules_dir).sources()
    try:
        return len(load_rule_files(sources))
    except RulesLoadError as exc:
        raise ConfigError(config.source, "rules.files", "; ".join(exc.problems)) from None


def resolve_config(args: argparse.Namespace) -> Config:
    """The config the flags ask for: file (or embedded default) with flag overrides."""
    config = load_config(args.config) if args.config else Config()
    return config.with_overrides(
        listen=args.listen,
        data_dir=args.data_dir,
        web_config_file=getattr(args, "web_config_file", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aggregator` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["edge"]:  # normally routed by aggregator.entry before this module loads
        from aggregator.edge.main import main as edge_main

        return edge_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        try:
            config = load_config(args.config)
            WebSecurity(config.web_config_file, config.clusters)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            groups = check_rules(config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"{args.config}: ok ({len(config.clusters)} push clusters, {groups} rule groups)")
        return 0

    try:
        config = resolve_config(args)
        security = WebSecurity(config.web_config_file, config.clusters)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(args.log_level, args.log_format)
    keep_freed_memory()
    keep_pandas_out()
    try:
        return asyncio.run(serve(config, security))
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return EXIT_RUNTIME


def keep_pandas_out() -> None:
    """Make `import pandas` fail in the serving process.

    pyarrow imports pandas, when it is installed, on its first `pa.array()` to
    check for pandas inputs; the service never hands it one, and pandas costs
    about 50 MiB of resident memory and half a second. With the import refused,
    pyarrow treats pandas as absent and works on without it."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _RefusePandas())


class _RefusePandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError("pandas is kept out of the service", name=fullname)
        return None


async def serve(config: Config, security: WebSecurity | None = None) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until storage cannot open (exit 1)."""
    # Imported here, not at the top: `--help`, `--version` and `check-config` then
    # skip loading aiohttp, storage and the PromQL engine (0.15 s instead of 0.5 s).
    from aiohttp import web

    from aggregator.app import BACKEND, GATE, RELOAD, SECURITY, build_app
    from aggregator.gctune import freeze_after_replay, tune_collector
    from aggregator.server import GUARD, ConnectionGuard, listen

    tune_collector()
    server = config.server
    app = build_app(config, security=security)
    guard = ConnectionGuard(server.max_connections, server.header_timeout_ms / 1000)
    app[GUARD] = guard
    shutdown_s = server.shutdown_timeout_ms / 1000
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_s,
        handler_cancellation=True,  # a client that hangs up cancels its query
        keepalive_timeout=server.idle_timeout_ms / 1000,
    )
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        await runner.setup()
    except OSError as exc:
        log.error("cannot start", extra={"data_dir": str(config.data_dir), "err": str(exc)})
        await runner.cleanup()
        return EXIT_RUNTIME
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        await runner.cleanup()
        return EXIT_CONFIG
    _install_reload_handler(app[RELOAD])
    code = 0
    listener: asyncio.Server | None = None
    try:
        tls = app[SECURITY].server_context()
        try:
            listener = await listen(
                runner, guard, config.listen.host or None, config.listen.port, ssl_context=tls
            )
        except OSError as exc:
            log.error("cannot listen", extra={"listen": str(config.listen), "err": str(exc)})
            return EXIT_RUNTIME
        log.info(
            "listening",
            extra={
                "listen": " ".join(_address(s.getsockname()) for s in listener.sockets),
                "tls": tls is not None,
                "data_dir": str(config.data_dir.resolve()),
                "config": config.source,
                "push_clusters": len(config.clusters),
                "version": version(),
            },
        )
        opened = asyncio.ensure_future(app[BACKEND].wait_open())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({opened, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if opened.done() and opened.exception() is not None:
            code = EXIT_RUNTIME
        else:
            if opened.done():
                freeze_after_replay()
            await stopping
        opened.cancel()
        stopping.cancel()
        log.info("shutting down")
    finally:
        if listener is not None:
            listener.close()  # accept no more connections
        canceled = app[GATE].close()
        if canceled:
            log.info("queries canceled for shutdown", extra={"queries": canceled})
        try:
            await asyncio.wait_for(runner.cleanup(), shutdown_s + CLOSE_GRACE_S)
        except TimeoutError:
            log.error("shutdown took too long; exiting without a clean close")
            code = EXIT_RUNTIME
    log.info("stopped", extra={"exit_code": code})
    return code


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal, exiting now", extra={"signal": signal.Signals(signum).name})
            os._exit(EXIT_RUNTIME)
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def _install_reload_handler(reload: Callable[[], Awaitable[None]]) -> None:
    """SIGHUP re-reads the rules and alerting config, as it makes Prometheus do."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def run() -> None:
        try:
            await reload()
        except Exception as exc:  # logged by the reload itself; the old rules keep running
            log.debug("reload on SIGHUP failed", extra={"err": str(exc)})

    def on_hup() -> None:
        log.info("signal received", extra={"signal": "SIGHUP"})
        task = asyncio.ensure_future(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)


def _address(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)
