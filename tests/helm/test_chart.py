"""The Helm chart, checked offline: lint, render with the default values and with the
full example (S3, three clusters, rules, alerting, two shards), every manifest through
`kubernetes-validate --strict`, the values schema naming a wrong value's path, and
every rendered config accepted by `aggregator check-config` with the files the pod
would mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.helmtool import (
    HelmFailed,
    full_example,
    kubernetes_validate,
    lint,
    objects,
    render,
    validate_schema,
)
from tests.helm.podfiles import lay_out, workload

EXAMPLES = {"default": {}, "full": None, "options": None}
OPTIONS = {
    # what neither the defaults nor the full example use
    "clusters": [
        {"name": "edge-1", "tokenSecret": {"name": "tokens", "key": "edge-1"}},
        {
            "name": "eu-1",
            "url": "https://prometheus.eu-1.example:9090",
            "basicAuth": {"username": "agg", "passwordSecret": {"name": "eu-1", "key": "pw"}},
            "tls": {"caSecret": {"name": "eu-1", "key": "ca.crt"}, "insecureSkipVerify": False},
            "keepClusterLabel": True,
            "healthCheckInterval": "30s",
        },
    ],
    "rules": {"existingConfigMaps": ["team-rules", "slo-rules"]},
    "limits": {"maxSeriesPerCluster": 200000, "ingestRate": 10000},
    "server": {"shutdownTimeout": "20s"},
    "persistence": {"enabled": False},
    "flushOnShutdown": False,
    "serviceAccount": {"create": False, "name": "existing"},
    "grafana": {"dashboards": {"enabled": False}},
}


def _values(example: str) -> dict[str, Any]:
    if example == "options":
        return OPTIONS
    return full_example() if example == "full" else {}


@pytest.mark.parametrize("example", EXAMPLES)
def test_lint_finds_nothing_worse_than_info(example: str) -> None:
    report = lint(_values(example))
    assert report["errors"] == []
    worse = [m for m in report["messages"] if m["severity"] >= 2]
    assert worse == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_rendered_manifest_passes_kubernetes_validate_strict(
    example: str, tmp_path: Path
) -> None:
    objs = objects(render(_values(example)))
    files = []
    for i, obj in enumerate(objs):
        path = tmp_path / f"{i:02d}-{obj['kind']}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj))
        files.append(path)
    result = kubernetes_validate(files)
    assert result.returncode == 0, result.stdout + result.stderr
    # a CRD (ServiceMonitor) is only warned about; everything else must be checked
    for line in (result.stdout + result.stderr).splitlines():
        if "WARN" in line:
            assert "ServiceMonitor" in line, line


def test_default_render_is_one_instance_without_secrets_inline() -> None:
    objs = objects(render())
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == [
        "ConfigMap",  # config
        "ConfigMap",  # grafana datasource
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",  # four dashboards
        "Service",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    sts = workload(objs, "StatefulSet", "fleet-aggregator")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "/api/v1/admin/flush" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert pod["terminationGracePeriodSeconds"] >= 90
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "20Gi"
    }


def test_options_reach_the_config_and_the_pod() -> None:
    objs = objects(render(OPTIONS))
    sts = workload(objs, "StatefulSet", "fleet-aggregator")
    config = yaml.safe_load(
        next(o for o in objs if o["metadata"]["name"] == "fleet-aggregator-config")["data"][
            "aggregator.yaml"
        ]
    )
    pull = config["clusters"][1]
    assert pull["basic_auth"] == {"username": "agg", "password_file": "../secrets/pull-0-password"}
    assert pull["tls"] == {"ca_file": "../secrets/pull-0-ca.crt", "insecure_skip_verify": False}
    assert pull["keep_cluster_label"] is True
    assert config["limits"] == {"max_series_per_cluster": 200000, "ingest_rate": 10000}
    assert config["server"] == {"shutdown_timeout": "20s"}
    assert config["rules"]["files"] == ["../rules/*/*"]
    pod = sts["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/etc/aggregator/rules/team-rules", "/etc/aggregator/rules/slo-rules"} <= mounts
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert "lifecycle" not in pod["containers"][0]
    assert pod["serviceAccountName"] == "existing"
    assert not [o for o in objs if o["kind"] == "ServiceAccount"]
    assert not [o for o in objs if "dashboard" in o["metadata"]["name"]]


def test_full_example_renders_two_shards_and_a_query_tier() -> None:
    rendered = render(full_example())
    objs = objects(rendered)
    shards = workload(objs, "StatefulSet", "fleet-aggregator-shard")
    assert shards["spec"]["replicas"] == 2
    query = workload(objs, "Deployment", "fleet-aggregator-query")
    assert query["spec"]["replicas"] == 1
    config = next(o for o in objs if o["metadata"]["name"] == "fleet-aggregator-config")["data"]
    assert sorted(config) == [
        "fleet-aggregator-shard-0.yaml",
        "fleet-aggregator-shard-1.yaml",
        "query.yaml",
    ]
    shard0 = yaml.safe_load(config["fleet-aggregator-shard-0.yaml"])
    shard1 = yaml.safe_load(config["fleet-aggregator-shard-1.yaml"])
    q = yaml.safe_load(config["query.yaml"])
    # each shard owns its clusters; one bucket, a prefix per writer
    assert [c["name"] for c in shard0["clusters"]] == ["edge-1"]
    assert [c["name"] for c in shard1["clusters"]] == ["edge-2"]
    stores = [c["storage"]["object_store"] for c in (shard0, shard1, q)]
    assert {s["bucket"] for s in stores} == {"fleet-metrics"}
    assert [s["prefix"] for s in stores] == ["prod/shard-0", "prod/shard-1", "prod/query"]
    # the workspace label, rules and alerting only on the query tier, which pulls the
    # member and every shard
    assert "workspace_label" not in shard0["query"]
    assert q["query"]["workspace_label"] == "workspace"
    assert "rules" not in shard0
    assert "alerting" not in shard0
    assert q["rules"]["files"] == ["../rules/*/*"]
    assert q["alerting"]["alertmanagers"][0]["url"] == "http://alertmanager.monitoring.svc:9093"
    pulls = {c["name"]: c for c in q["clusters"]}
    assert pulls["eu-1"]["bearer_token_file"] == "../secrets/pull-0-bearer-token"
    for i in (0, 1):
        shard = pulls[f"fleet-aggregator-shard-{i}"]
        assert shard["keep_cluster_label"] is True
        assert shard["url"] == f"http://fleet-aggregator-shard-{i}.monitoring.svc:9095"
        # its blocks are read from the bucket directly; it is asked only for newer samples
        assert shard["object_store_prefix"] == f"prod/shard-{i}"
    assert q["storage"]["object_store"]["read_prefixes"] == ["prod/shard-0", "prod/shard-1"]
    assert q["storage"]["object_store"]["read_relist_interval"] == "1m"
    assert "read_prefixes" not in shard0["storage"]["object_store"]
    # members' remote_write URLs name their shard, in NOTES.txt and as Services
    notes = next(t for p, t in rendered.items() if p.endswith("NOTES.txt"))
    assert "http://fleet-aggregator-shard-0.monitoring.svc:9095/api/v1/write" in notes
    assert "http://fleet-aggregator-shard-1.monitoring.svc:9095/api/v1/write" in notes
    services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    assert {"fleet-aggregator", "fleet-aggregator-shard-0", "fleet-aggregator-shard-1"} <= services
    # secrets by reference only
    assert not [o for o in objs if o["kind"] == "Secret"]
    env = query["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {
        "AWS_ACCESS_KEY_ID": "fleet-s3",
        "AWS_SECRET_ACCESS_KEY": "fleet-s3",
    }


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"storage": {"retention": 5}}, "/storage/retention", "want string"),
        ({"storage": {"retention": "5 days"}}, "/storage/retention", "does not match"),
        ({"shards": 0}, "/shards", "minimum"),
        ({"queryTier": {"relistInterval": "often"}}, "/queryTier/relistInterval", "does not match"),
        (
            {"clusters": [{"name": "a", "token": "inline-secret"}]},
            "/clusters/0",
            "tokenSecret",
        ),
        (
            {"clusters": [{"name": "a", "tokenSecret": {"name": "s"}}]},
            "/clusters/0/tokenSecret",
            "key",
        ),
        (
            {"clusters": [{"name": "b", "url": "prometheus:9090"}]},
            "/clusters/0/url",
            "does not match",
        ),
        ({"storage": {"objectStore": {"type": "gcs"}}}, "/storage/objectStore/type", ""),
        ({"query": {"lookbackDelta": "5m", "lookback": "5m"}}, "/query", "lookback"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy", ""),
    ],
)
def test_a_wrong_value_fails_with_its_path(change: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(HelmFailed) as info:
        validate_schema(change)
    message = str(info.value)
    assert f"at '{path}'" in message, message
    assert reason in message
    # and install (render) refuses it the same way
    with pytest.raises(HelmFailed, match=path.replace("/", "\\/")):
        render(change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"shards": 2},
            "storage.objectStore.type: shards: 2 needs one shared object store (type s3)",
        ),
        (
            {"clusters": [{"name": "edge-1", "tokenSecret": {"name": "t", "key": "k"}}]},
            'push cluster "edge-1" needs `shard`',
        ),
        (
            {
                "clusters": [
                    {"name": "edge-1", "shard": 0, "tokenSecret": {"name": "t", "key": "k"}}
                ]
            },
            "shard 1 owns no push cluster",
        ),
        (
            {
                "clusters": [
                    {"name": "edge-1", "shard": 5, "tokenSecret": {"name": "t", "key": "k"}}
                ]
            },
            'push cluster "edge-1" has shard 5, but shards is 2',
        ),
    ],
)
def test_scale_out_mistakes_fail_at_install(change: dict[str, Any], message: str) -> None:
    values = {"shards": 2, "storage": {"objectStore": {"type": "s3", "bucket": "b-1"}}}
    values.update(change)
    if change.get("shards") == 2:
        values = change
    with pytest.raises(HelmFailed) as info:
        render(values)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("example", "owner"),
    [
        ("default", ("StatefulSet", "fleet-aggregator")),
        ("options", ("StatefulSet", "fleet-aggregator")),
        ("full", ("StatefulSet", "fleet-aggregator-shard")),
        ("full", ("Deployment", "fleet-aggregator-query")),
    ],
)
def test_rendered_config_passes_check_config_with_the_pods_files(
    example: str, owner: tuple[str, str], tmp_path: Path
) -> None:
    objs = objects(render(_values(example)))
    pod_owner = workload(objs, *owner)
    config_dir, args = lay_out(pod_owner, objs, tmp_path / "etc")
    configs = sorted(config_dir.iterdir())
    if owner[1].endswith("-shard"):
        wanted = [config_dir / f"fleet-aggregator-shard-{i}.yaml" for i in (0, 1)]
    else:
        (wanted,) = [Path(a) for a in args if a.endswith(".yaml")]
        wanted = [wanted]
    for config in wanted:
        assert config in configs
        result = subprocess.run(
            [sys.executable, "-m", "aggregator", "check-config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
