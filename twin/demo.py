"""The main job (`make demo`): boot the embedded default lab, run the failover scenarios against it,
render the report, and print a one-screen summary of what passed and the outage windows measured."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Scenario suites: one per system under test, added as each system lands.
SCENARIOS = ["testsuites/e2e/test_default_lab.py", "testsuites/e2e/test_device_cli.py",
             "testsuites/e2e/test_aaa_failover.py", "testsuites/e2e/test_ems.py",
             "testsuites/e2e/test_configsync.py", "testsuites/e2e/test_cluster.py",
             "testsuites/e2e/test_vlinks.py", "testsuites/e2e/test_fig5.py"]


def run_scenarios(workers: str = "auto") -> int:
    reports = ROOT / "reports"
    results = reports / "allure-results"
    shutil.rmtree(results, ignore_errors=True)
    shutil.rmtree(reports / "timings", ignore_errors=True)
    results.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", workers, "-m", "e2e",
           "--alluredir", str(results), "--junitxml", str(reports / "demo-junit.xml"), *SCENARIOS]
    print("running:", " ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def render_report() -> Path | None:
    """Render the HTML report when an Allure command line is installed (the install step adds it)."""
    script = ROOT / "scripts" / "render-report.sh"
    if not script.exists():
        return None
    res = subprocess.run(["bash", str(script)], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stdout + res.stderr, file=sys.stderr)
        return None
    out = ROOT / "reports" / "html" / "index.html"
    return out if out.exists() else None


def summary() -> str:
    reports = ROOT / "reports"
    lines = []
    try:
        suite = ET.parse(reports / "demo-junit.xml").getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total, fails = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        lines.append(f"scenarios: {total - fails - skipped} passed, {fails} failed, {skipped} skipped "
                     f"in {float(suite.get('time', 0)):.1f} s")
        for case in suite.iter("testcase"):
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            mark = "FAIL" if bad is not None else "ok  "
            lines.append(f"  {mark} {case.get('classname', '').split('.')[-1]}::{case.get('name')}")
    except (OSError, ET.ParseError, AttributeError):
        lines.append("scenarios: no results (did pytest run?)")
    recs = []
    for f in sorted((reports / "timings").glob("*.jsonl")) if (reports / "timings").exists() else []:
        recs += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    if recs:
        lines.append("measured:")
        for r in sorted(recs, key=lambda r: r["time"]):
            lines.append(f"  {r['name']}: {r['value']:g} {r['unit']}")
    return "\n".join(lines)


def main() -> int:
    if os.geteuid() != 0:
        print("twin demo: run as root (Mininet and Open vSwitch need it)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rc = run_scenarios(os.environ.get("WORKERS", "auto"))
    report = render_report()
    text = summary()
    (ROOT / "reports" / "summary.txt").write_text(text + "\n")
    print()
    print(text)
    print(f"report: {report if report else ROOT / 'reports' / 'allure-results'} (finished in {time.monotonic() - t0:.0f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
