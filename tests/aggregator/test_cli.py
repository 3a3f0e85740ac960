"""The command line: argument handling, config errors without tracebacks, check-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import EXIT_CONFIG, build_parser, main, resolve_config
from aggregator.config import ListenAddress

ROOT = Path(__file__).resolve().parents[2]


def test_serve_defaults_to_the_embedded_config() -> None:
    config = resolve_config(build_parser().parse_args(["serve"]))
    assert config.listen == ListenAddress("127.0.0.1", 9095)
    assert config.data_dir == Path("data")
    assert config.clusters == ()
    assert config.source == "<embedded default>"


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("listen: 0.0.0.0:1000\ndata_dir: from-file\nstorage:\n  retention: 1h\n")
    args = build_parser().parse_args(
        ["serve", "--config", str(path), "--listen", "127.0.0.1:2000", "--data-dir", "/d"]
    )
    config = resolve_config(args)
    assert config.listen == ListenAddress("127.0.0.1", 2000)
    assert config.data_dir == Path("/d")
    assert config.storage.retention_ms == 3_600_000, "the rest of the file still applies"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--listen-address", "x"])
    assert "unrecognized arguments: --listen-address" in capsys.readouterr().err


def test_bad_config_prints_file_key_reason_and_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("clusters:\n  - name: a\n    token_file: missing.token\n")
    assert main(["serve", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: clusters[0].token_file: token file ")
    assert "does not exist" in err
    assert "Traceback" not in err


def test_bad_listen_flag_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "nowhere"]) == EXIT_CONFIG
    assert capsys.readouterr().err.startswith("error: command line: --listen: expected HOST:PORT")


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yml"
    good.write_text("clusters:\n  - name: a\n    token: t\n")
    assert main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok (1 push clusters, 0 rule groups)\n"
    bad = tmp_path / "bad.yml"
    bad.write_text("limits:\n  max_future: soon\n")
    assert main(["check-config", str(bad)]) == EXIT_CONFIG
    assert capsys.readouterr().err.startswith(f"error: {bad}: limits.max_future: ")


def test_check_config_checks_the_rule_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ok.yml").write_text("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n")
    config = tmp_path / "aggregator.yml"
    config.write_text("rules:\n  files: [rules/*.yml]\n")
    assert main(["check-config", str(config)]) == 0
    assert capsys.readouterr().out == f"{config}: ok (0 push clusters, 1 rule groups)\n"
    (rules / "broken.yml").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n"
    )
    assert main(["check-config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: rules.files: {rules / 'broken.yml'}: 5:11: ")
    assert 'group "g", rule 1, "A": could not parse expression' in err


def test_python_dash_m_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("listen: [1, 2]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "serve", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_CONFIG
    assert proc.stderr == f"error: {path}: listen: must be a string, got a list\n"


def test_python_dash_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("aggregator ")


SERVER_MODULES = ("aiohttp", "aggregator.app", "storage.db", "promql.engine")
_PROBE = """
import contextlib, io, sys
from aggregator.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(",".join(m for m in {modules!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["check-config", "CONFIG"]])
def test_cli_answers_without_loading_the_server(tmp_path: Path, argv: list[str]) -> None:
    """`--help`, `--version` and `check-config` need only the config code; loading the
    HTTP server, storage and the engine for them made each take over three times longer."""
    config = tmp_path / "c.yml"
    config.write_text("clusters:\n  - name: a\n    token: t\n")
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(modules=SERVER_MODULES), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded for {argv}: {proc.stdout.strip()}"


def test_serve_path_still_loads_the_app() -> None:
    import aggregator

    assert aggregator.build_app.__module__ == "aggregator.app"


def test_a_bad_web_config_file_stops_serve_and_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  grafana: not-a-bcrypt-hash\n")
    assert main(["serve", "--web.config.file", str(web)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"error: {web}: basic_auth_users.grafana: must be a bcrypt hash")
    config = tmp_path / "aggregator.yml"
    config.write_text("web_config_file: web.yml\n")
    assert main(["check-config", str(config)]) == EXIT_CONFIG
    assert "basic_auth_users.grafana" in capsys.readouterr().err


def test_serving_process_keeps_pandas_out_and_pyarrow_still_writes_blocks() -> None:
    # pyarrow imports pandas (about 50 MiB resident) on its first pa.array() unless
    # the import fails; the block codecs must work on without it.
    script = """
import sys
from aggregator.cli import keep_pandas_out
keep_pandas_out()
from storage.blocks.rowgroups import warm_decoders
warm_decoders()
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
