"""The `rules:` and `alerting:` sections of the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.app import alerting_settings
from aggregator.config import Config, load_config, parse_listen
from aggregator.errors import ConfigError
from alerting.settings import AlertingSettings, HTTPTarget, RulesSettings, WebhookTarget


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "aggregator.yml"
    path.write_text(text)
    return load_config(path)


def test_defaults_run_no_rules_and_notify_nobody() -> None:
    config = Config()
    assert config.rules == RulesSettings()
    assert config.rules.files == ()
    assert config.rules.evaluation_interval_ms == 60_000
    assert config.alerting == AlertingSettings()


def test_full_sections(tmp_path: Path) -> None:
    (tmp_path / "am.pass").write_text("pw\n")
    (tmp_path / "nm.token").write_text("tok\n")
    config = load(
        tmp_path,
        """
rules:
  files: [rules/*.yml, /etc/rules/x.yml]
  evaluation_interval: 15s
  query_offset: 30s
alerting:
  external_url: http://agg.example:9095/
  external_labels: {fleet: prod}
  resend_delay: 2m
  queue_capacity: 500
  alertmanagers:
    - url: http://am-0:9093
      timeout: 5s
      basic_auth: {username: u, password_file: am.pass}
    - url: http://am-1:9093
  webhooks:
    - url: http://notification-manager-svc:19093/api/v2/alerts
      bearer_token_file: nm.token
      name: notification-manager
      group_by: [cluster, namespace]
      repeat_interval: 1h
      send_resolved: false
      max_alerts: 20
""",
    )
    assert config.rules == RulesSettings(
        files=("rules/*.yml", "/etc/rules/x.yml"),
        base_dir=tmp_path,
        evaluation_interval_ms=15_000,
        query_offset_ms=30_000,
    )
    assert config.alerting == AlertingSettings(
        alertmanagers=(
            HTTPTarget("http://am-0:9093", timeout_ms=5_000, basic_auth=("u", "pw")),
            HTTPTarget("http://am-1:9093"),
        ),
        webhooks=(
            WebhookTarget(
                HTTPTarget(
                    "http://notification-manager-svc:19093/api/v2/alerts", bearer_token="tok"
                ),
                name="notification-manager",
                group_by=("cluster", "namespace"),
                repeat_interval_ms=3_600_000,
                send_resolved=False,
                max_alerts=20,
            ),
        ),
        external_url="http://agg.example:9095",
        external_labels=(("fleet", "prod"),),
        resend_delay_ms=120_000,
        queue_capacity=500,
    )
    assert config.alerting.alertmanagers[0].headers() == {"Authorization": "Basic dTpwdw=="}


def test_external_url_defaults_to_the_listen_address() -> None:
    config = Config(listen=parse_listen("10.0.0.5:9095"))
    assert alerting_settings(config).external_url == "http://10.0.0.5:9095"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("rules:\n  files: [1]\n", "rules.files", "must be a list of file paths or globs"),
        ("rules:\n  evaluation_interval: 0s\n", "rules.evaluation_interval", "greater than zero"),
        ("rules:\n  fils: []\n", "rules.fils", "unknown key"),
        ("alerting:\n  external_url: agg:9095\n", "alerting.external_url", "not an http(s) URL"),
        ("alerting:\n  external_labels: {1a: x}\n", "alerting.external_labels", "invalid label"),
        ("alerting:\n  alertmanagers: {url: x}\n", "alerting.alertmanagers", "must be a list"),
        (
            "alerting:\n  alertmanagers:\n  - timeout: 1s\n",
            "alerting.alertmanagers[0].url",
            "is required",
        ),
        (
            "alerting:\n  alertmanagers:\n  - url: ftp://am\n",
            "alerting.alertmanagers[0].url",
            "'ftp://am' is not an http(s) URL",
        ),
        (
            "alerting:\n  alertmanagers:\n  - url: http://am\n    bearer_token: t\n"
            "    basic_auth: {username: u, password: p}\n",
            "alerting.alertmanagers[0].bearer_token",
            "either basic_auth or bearer_token, not both",
        ),
        (
            "alerting:\n  alertmanagers:\n  - url: http://am\n    bearer_token_file: nope\n",
            "alerting.alertmanagers[0].bearer_token_file",
            "does not exist",
        ),
        (
            "alerting:\n  webhooks:\n  - url: http://nm\n    group_by: cluster\n",
            "alerting.webhooks[0].group_by",
            "must be a list of label names",
        ),
        (
            "alerting:\n  webhooks:\n  - url: http://nm\n    send_resolved: maybe\n",
            "alerting.webhooks[0].send_resolved",
            "must be true or false",
        ),
        (
            "alerting:\n  webhooks:\n  - url: http://nm\n    group_wait: 1s\n",
            "alerting.webhooks[0].group_wait",
            "unknown key",
        ),
    ],
)
def test_bad_values_name_the_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.key == key
    assert reason in info.value.reason
