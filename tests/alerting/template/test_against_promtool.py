"""Templates render exactly as Prometheus 2.42 renders them: promtool is the judge.

Every template below is an annotation of one alerting rule. This service
evaluates the rule (storage, engine, template executor: the whole path) and
its output becomes the expected annotations of a `promtool test rules` file;
promtool then evaluates the same rule with Prometheus's own code and must
agree, byte for byte, error messages (with their line:column) included.

Parse errors are compared the same way with `promtool check rules`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from alerting.rulefile import RuleFileError, parse_groups
from tests.alerting.conftest import Promtool
from tests.support.ruletest import Observed, run_rule_tests

RENDERED = [
    # values, variables and printing
    "{{ $value }} {{ .Value }} {{ $labels }} {{ $externalLabels }} [{{ $externalURL }}]",
    "{{ $labels.job }}/{{ $labels.nope }}/{{ .Labels.instance }}",
    "{{ 1.0 }} {{ 1e6 }} {{ 0x10 }} {{ -1.5e3 }} {{ 'a' }} {{ 1_000 }} {{ 077 }} {{ .5 }}",
    "{{ $x := 5 }}{{ $x }} {{ $x = 6 }}{{ $x }}",
    '{{- " trimmed " -}}   x  {{- 1 }}',
    "{{/* comment */}}c{{- /* c2 */ -}} d",
    # humanize family
    "{{ humanize 1234567 }} {{ humanize $value }} {{ humanize 0.000001234 }} {{ humanize 0 }}",
    "{{ humanize -1500 }} {{ humanize 999999 }} {{ humanize 1e30 }} {{ humanize 1e-30 }}",
    '{{ humanize "NaN" }} {{ humanize "+Inf" }} {{ humanize "2.5e3" }}',
    "{{ humanize1024 1048576 }} {{ humanize1024 0.5 }}"
    " {{ humanize1024 1023 }} {{ humanize1024 -2048 }}",
    '{{ humanizePercentage 0.1234 }} {{ humanizePercentage 1 }} {{ humanizePercentage "0.5" }}',
    "{{ humanizeDuration 0.0012 }} {{ humanizeDuration 86400 }} {{ humanizeDuration -90 }}",
    "{{ humanizeDuration 0 }} {{ humanizeDuration 59.9 }} {{ humanizeDuration 3661.5 }}",
    "{{ humanizeTimestamp 1.5 }} {{ humanizeTimestamp 1679000000.123456 }}"
    " {{ humanizeTimestamp 0 }}",
    '{{ humanize "abc" }}',
    "{{ humanize true }}",
    # printf and Go's fmt
    '{{ printf "%d" $value }}|{{ printf "%5.2f|%s|%v" $value "x" $labels }}',
    '{{ printf "%s" }}{{ printf "%d" 1 2 }}',
    '{{ printf "%.2f%%" 12.345 }} {{ printf "%6.1f|%-6.1f|%06.1f" 3.14159 3.14159 -3.14159 }}',
    '{{ printf "%q %v %x %X" "a\\"b" true "hi" 255 }}',
    '{{ printf "%d %5d %-5d| %05d %+d" 42 42 42 42 42 }}',
    '{{ printf "%e %E %g %G" 123456.789 0.000123 1e21 1e-7 }}',
    '{{ printf "%s" $value }} {{ printf "%v" nil }} {{ printf "%t" 1 }}',
    '{{ printf "%x %o %b %c %U" 255 8 5 65 65 }}',
    '{{ printf "%08.3f|% d|%+.2e|%x" -3.5 5 12345.678 1.5 }}',
    '{{ printf "%5s|%-5s|%.2s|%5.1s|" "abc" "abc" "abc" "abc" }}',
    '{{ printf "%v %v %v %v" 1e-5 123456.0 1234567.0 0.0001 }}',
    '{{ printf "%.3g %.10g %g %.0f %.1f" 1234.5678 1.0 100000.0 2.5 0.05 }}',
    '{{ printf "%v" (first (query `up{job="a"}`)) }} {{ printf "%T %T" $value $labels }}',
    '{{ print 1 2 "a" "b" 3 }} {{ println "x" 1 }}|',
    # control flow
    "{{ if gt $value 1000.0 }}big{{ else if gt $value 10.0 }}mid{{ else }}small{{ end }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
    "{{ range $labels }}{{ . }}{{ break }}{{ end }}",
    '{{ with query "nothing" }}x{{ else }}none{{ end }}',
    '{{ range query "nothing" }}x{{ else }}empty{{ end }}',
    # query results (Prometheus returns a selector's series in no defined order, this
    # service sorted by labels: templates that care sort them, as these do)
    '{{ range sortByLabel "job" (query "up") }}{{ .Labels.job }}={{ .Value }};{{ end }}',
    '{{ range $i, $s := query "up" | sortByLabel "job" }}{{ $i }}:{{ $s.Labels.instance }} '
    "{{ end }}",
    '{{ range $i, $e := sortByLabel "job" (query "up") }}{{ if eq $i 0 }}{{ continue }}{{ end }}'
    "{{ $e.Value }}{{ end }}",
    '{{ query "up" | sortByLabel "job" | len }} {{ range sortByLabel "instance" (query "up") }}'
    '{{ label "instance" . }} {{ value . }}|{{ end }}',
    '{{ (first (sortByLabel "job" (query "up"))).Labels.job }} '
    '{{ query "up" | sortByLabel "job" | first | value }}',
    '{{ first (query `up{job="a"}`) }}',
    '{{ first (query "nothing") }}',
    '{{ query "sum(up)" | first | value | humanize }}',
    # strings and regular expressions
    '{{ toUpper "ß" }} {{ title "hello wORLD-x" }} {{ toLower "ABC Déf" }} {{ toUpper "abc déf" }}',
    '{{ title "a_b c.d é" }}',
    '{{ reReplaceAll "(.*):(.*)" "$2-$1" $labels.instance }} {{ reReplaceAll "a*" "x" "baaac" }}',
    '{{ reReplaceAll ":\\\\d+" "" "host:9100" }}',
    '{{ reReplaceAll "(?P<h>[a-z]+)" "${h}!" "ab cd" }}',
    '{{ match "^x" $labels.instance }} {{ match "y" "x" }}',
    '{{ safeHtml "<b>" }} {{ graphLink "up > 0" }} {{ tableLink "rate(x[5m])" }}',
    '{{ html "<a href=\'x\'>&" }} {{ urlquery "a b&c" }}',
    '{{ parseDuration "1h30m" }} {{ parseDuration "x" }}',
    '{{ args 1 "x" }} {{ (args 1 "x").arg1 }} {{ (args 1).missing }}',
    # builtins
    '{{ len $labels }} {{ index $labels "job" }} {{ index $labels "none" }}|',
    '{{ and 1 0 }} {{ or 0 "" "x" }} {{ not 0 }} {{ and 1 2 }}',
    '{{ eq "a" "a" }} {{ eq 1 2 3 1 }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ ge "b" "a" }}',
    '{{ $labels.job | printf "%s!" }} {{ "abc" | printf "%s-%s" "x" }}',
    # runtime errors, rendered as Prometheus renders them
    "{{ gt $value 0 }}",
    "{{ eq $value 1 }}",
    "{{ .Foo }}",
    '{{ label "job" 1 }}',
    "{{ toUpper 1 }}",
    "{{ humanize }}",
    "{{ $labels.job.x }}",
    "{{ 1 2 }}",
    "{{ range 3 }}x{{ end }}",
    "{{ index $labels 1 }}",
    # parse, then fail (or not) when run
    "{{ 1 | printf }}",
    "{{ .Labels | }}",
    "{{ nil }}",
]

PARSE_ERRORS = [
    "{{ foo }}",
    "{{ $x }}",
    "{{ }}",
    "{{ end }}",
    "{{ if 1 }}",
    "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
    "{{ range }}{{ end }}",
    '{{ "a" | 1 }}',
    "{{ $labels. }}",
    "{{ (1 }}",
    "{{ 1) }}",
    '{{ "abc }}',
    "{{ 12a }}",
    "{{ break }}",
    "{{ $x, $y := 1 }}",
    "{{ range $a, $b, $c := 1 }}{{ end }}",
    "{{ 1.x }}",
    '{{ "a".b }}',
    "{{ else }}",
    "{{ if 1 }}{{ end }}{{ end }}",
    "{{/* unclosed }}",
    '{{ printf "%d" 1 ',
    "{{ # }}",
    "{{ 'ab' }}",
    "{{ 99999999999999999999 }}",
    "{{ with $x := 1 }}{{ $x }}{{ end }}{{ $x }}",
    "{{ if 1 }}{{ else if }}{{ end }}",
    "{{ range 1 }}{{ continue 1 }}{{ end }}",
]

# Left out on purpose: a rule using these fails to load here, though Prometheus
# accepts it (see alerting/template/funcs.py and parser.py).
UNSUPPORTED = [
    '{{ define "x" }}{{ end }}',
    '{{ template "x" }}',
    "{{ call 1 }}",
    '{{ js "a" }}',
    '{{ slice "a" }}',
    "{{ toTime 1 }}",
]


def _rule_file(annotations: dict[str, str]) -> dict[str, object]:
    return {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"alert": "A", "expr": 'up{job="a"} * 1234.5678', "annotations": annotations}
                ],
            }
        ]
    }


def _test_file(expected: list[dict[str, object]]) -> dict[str, object]:
    return {
        "rule_files": ["t.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "external_url": "https://agg.example/prefix",
                "external_labels": {"region": "eu"},
                "input_series": [
                    {"series": 'up{job="a", instance="x:9"}', "values": "1 1 1"},
                    {"series": 'up{job="b", instance="y:9"}', "values": "0 0 0"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "A", "exp_alerts": expected},
                ],
            }
        ],
    }


async def test_rendering_matches_promtool(tmp_path: Path, promtool: Promtool) -> None:
    annotations = {f"a{i:02d}": text for i, text in enumerate(RENDERED)}
    (tmp_path / "t.rules.yml").write_text(yaml.safe_dump(_rule_file(annotations)))
    (tmp_path / "t.test.yml").write_text(yaml.safe_dump(_test_file([])))
    observed: Observed = {}
    await run_rule_tests(tmp_path / "t.test.yml", observed)
    [(labels, ours)] = observed[("A", "1m")]
    assert dict(labels) == {"alertname": "A", "instance": "x:9", "job": "a"}
    rendered = dict(ours)
    assert rendered["a00"].startswith("1234.5678 1234.5678 map[instance:x:9 job:a]")
    assert "error expanding template" in rendered[f"a{RENDERED.index('{{ gt $value 0 }}'):02d}"]

    expected = [{"exp_labels": {"job": "a", "instance": "x:9"}, "exp_annotations": rendered}]
    (tmp_path / "t.test.yml").write_text(yaml.safe_dump(_test_file(expected)))
    proc = promtool("test", "rules", "t.test.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def test_parse_errors_match_promtool(tmp_path: Path, promtool: Promtool) -> None:
    rules = [
        {"alert": f"A{i}", "expr": "up", "annotations": {"d": text}}
        for i, text in enumerate(PARSE_ERRORS)
    ]
    text = yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]})
    (tmp_path / "e.yml").write_text(text)
    proc = promtool("check", "rules", "e.yml", cwd=tmp_path)
    theirs = {}
    for line in proc.stdout.splitlines():
        m = re.match(r'.*group "g", rule (\d+), "A\d+": annotation "d": (.*)$', line)
        if m:
            theirs[int(m.group(1))] = m.group(2)
    assert len(theirs) == len(PARSE_ERRORS), proc.stdout
    try:
        parse_groups(text, file="e.yml")
    except RuleFileError as exc:
        ours = {}
        for problem in exc.problems:
            m = re.match(r'.*group "g", rule (\d+), "A\d+": annotation "d": (.*)$', problem)
            assert m is not None, problem
            ours[int(m.group(1))] = m.group(2)
    assert ours == theirs


@pytest.mark.parametrize("text", UNSUPPORTED)
def test_left_out_constructs_fail_at_load_and_say_so(text: str) -> None:
    doc = _rule_file({"d": text})
    with pytest.raises(RuleFileError, match="not supported in alert templates"):
        parse_groups(yaml.safe_dump(doc), file="u.yml")
