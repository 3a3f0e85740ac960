"""The Dockerfile, read but not built (no container runtime here): its stages, the
runtime stage's user and contents, and its entrypoint checked against the real CLI;
and the image name the README builds is the one the chart deploys by default."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from aggregator.cli import build_parser
from aggregator.config import parse_listen

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "cmake", "clang", "cargo", "rustc")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, stages): instructions with continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, f"unreadable FROM: {rest!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda g: args.get(g.group(1), g.group(0)), m.group(1))
            stages.append(Stage(base, m.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def _exec_form(text: str) -> list[str]:
    value = json.loads(text)  # the exec form: signals reach the service, not a shell
    assert isinstance(value, list)
    assert all(isinstance(v, str) for v in value)
    return value


def test_multi_stage_on_a_slim_python_the_project_supports(dockerfile) -> None:
    args, stages = dockerfile
    assert len(stages) >= 2
    runtime = stages[-1]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", runtime.base), runtime.base
    assert all(s.base == runtime.base for s in stages)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert minimum
    assert int(args["PYTHON_VERSION"].split(".")[1]) >= int(minimum.group(1))


def test_runtime_stage_has_no_build_tools_and_installs_nothing(dockerfile) -> None:
    _, stages = dockerfile
    build, runtime = stages[0], stages[-1]
    assert any("build-essential" in r for r in build.all("RUN"))  # the builder has them ...
    for run in runtime.all("RUN"):  # ... the runtime does not
        assert "apt-get install" not in run
        assert "pip install" not in run
        assert not any(re.search(rf"\b{re.escape(t)}\b", run) for t in BUILD_TOOLS), run
    copies = runtime.all("COPY")
    assert copies
    assert all(c.startswith(f"--from={build.name} ") for c in copies), copies


def test_every_package_is_copied_into_the_build(dockerfile) -> None:
    _, stages = dockerfile
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in find["packages"]["find"]["include"]}
    copied = {shlex.split(c)[0] for c in stages[0].all("COPY")}
    assert packages <= copied


def test_runs_as_a_non_root_user_that_owns_the_data_dir(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit()  # numeric: Kubernetes' runAsNonRoot can check it
    assert int(uid) != 0
    assert any(f"chown {user} /var/lib/aggregator" in r for r in runtime.all("RUN"))
    assert runtime.all("WORKDIR") == ["/var/lib/aggregator"]


def test_entrypoint_is_aggregator_serve_and_its_arguments_parse(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    program, *command = _exec_form(entrypoint)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    # The console script hands everything but `edge` to the service's CLI (aggregator.cli).
    assert scripts[program] == "aggregator.entry:main"
    assert command == ["serve"]
    parsed = build_parser().parse_args([*command, *_exec_form(cmd)])
    assert parsed.command == "serve"
    assert parse_listen(parsed.listen).port == 9095
    assert parsed.data_dir == "/var/lib/aggregator"
    assert "9095" in runtime.all("EXPOSE")
    # the chart replaces CMD with its own arguments: they parse too
    chart_args = ["--config", "/etc/aggregator/config/aggregator.yaml"]
    assert build_parser().parse_args([*command, *chart_args]).config == chart_args[1]


def test_readme_builds_the_image_the_chart_deploys() -> None:
    values = yaml.safe_load((ROOT / "helm/aggregator/values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm/aggregator/Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version
    image = f"{values['image']['repository']}:{chart['appVersion']}"
    assert f"docker build -t {image} ." in (ROOT / "README.md").read_text()
    assert f"docker build -t {image} ." in (ROOT / "Dockerfile").read_text()
