"""A rendered pod's files, laid out on disk as the kubelet would mount them.

Every volume mounted under /etc/aggregator is written below a temp root: the
chart's ConfigMaps with their rendered keys, Secrets (which the chart only
references) with a made-up value per key, `secret_value(name, key)`. The
service then reads its config from there exactly as in the pod, so relative
paths in the config and the volume wiring are checked together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MOUNT_ROOT = "/etc/aggregator"


def secret_value(name: str, key: str) -> str:
    return f"secret-{name}-{key}"


def workload(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} in the render")


def config_maps(objs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}


def lay_out(
    pod_owner: dict[str, Any], objs: list[dict[str, Any]], root: Path
) -> tuple[Path, list[str]]:
    """Write the owner's mounted files under `root` (as /etc/aggregator); returns the
    root's config folder and the container's args, their paths moved under `root`."""
    spec = pod_owner["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    maps = config_maps(objs)
    for mount in container["volumeMounts"]:
        path = mount["mountPath"]
        if not path.startswith(MOUNT_ROOT):
            continue
        target = root / path.removeprefix(MOUNT_ROOT).lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            data = maps.get(name, {"rules.yaml": "groups: []\n"})  # an existing ConfigMap
            for key, text in data.items():
                (target / key).write_text(text)
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                secret = source["secret"]
                for item in secret["items"]:
                    (target / item["path"]).write_text(secret_value(secret["name"], item["key"]))
        else:
            raise AssertionError(f"volume {mount['name']} of an unexpected kind: {volume}")
    args = [a.replace(MOUNT_ROOT, str(root)) for a in container["args"]]
    return root / "config", args
