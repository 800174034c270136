"""checkov (`--framework kubernetes`) on the chart rendered with the default, high-availability
and minimal values: no failed check. The checks the chart does not meet are skipped in the chart
itself (`checkov.io/skipN` annotations), each with its reason, which this prints."""

import json
import os
import subprocess
import sys
import tempfile

import yaml

from test_chart import example, render


def main():
    checkov = os.environ.get("CHECKOV", "checkov")
    failed = 0
    for name, values in [("default", None), ("high-availability", example("high-availability")), ("minimal", example("minimal"))]:
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, f"{name}.yaml"), "w") as manifests:
                yaml.safe_dump_all([resource for _, resource in render(values)], manifests)
            result = subprocess.run(
                [checkov, "-d", directory, "--framework", "kubernetes", "-o", "json", "--compact"],
                capture_output=True,
                text=True,
                check=False,
            )
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            print(result.stdout, result.stderr, file=sys.stderr)
            raise
        if isinstance(report, list):
            report = report[0]
        summary = report.get("summary", {})
        print(f"checkov, {name} values: {summary.get('passed')} passed, {summary.get('failed')} failed, {summary.get('skipped')} skipped")
        for check in report.get("results", {}).get("failed_checks", []):
            failed += 1
            print(f"  FAILED {check['check_id']} {check['check_name']}: {check['resource']}", file=sys.stderr)
        if name == "default":
            reasons = sorted({(c["check_id"], c.get("check_result", {}).get("suppress_comment", "")) for c in report.get("results", {}).get("skipped_checks", [])})
            for check_id, reason in reasons:
                print(f"  skipped {check_id}: {reason}")
        if not summary.get("passed"):
            print("checkov checked nothing", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
