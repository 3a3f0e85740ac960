"""Runs in the helm venv (Python 3.12, helm-python-sdk): one request on stdin (JSON),
the answer on stdout (JSON). Exit 3 with helm's message when helm refuses."""

import json
import sys

import helm_python as helm


def main() -> int:
    req = json.load(sys.stdin)
    try:
        if req["op"] == "render":
            chart = helm.Chart.load(req["chart"])
            out = chart.render(req["values"], name="fleet", namespace=req["ns"], is_install=True)
        elif req["op"] == "lint":
            out = helm.lint(req["chart"], req["values"], strict=True, kube_version="v1.30.0")
        elif req["op"] == "schema":
            helm.Chart.load(req["chart"]).validate_schema(req["values"])
            out = None
        else:
            raise SystemExit(f"unknown op {req['op']!r}")
    except helm.HelmError as exc:
        print(str(exc))
        return 3
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
