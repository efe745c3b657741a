"""Wall time of the full test suite serially (`-n 0`) and in parallel (`-n 2`), in the same run.

Target (issue 4): `-n 2` at least 1.7x faster than `-n 0` on 2 cores. The serial run is the baseline.
Prints one JSON line and writes bench/results/suite_speedup.md.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from results_out import publish  # noqa: E402


def run_suite(workers: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(workers), *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary)}
    return {"workers": workers, "wall_s": round(wall, 2), "exit": proc.returncode, "summary": summary,
            "passed": counts.get("passed", 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", type=int, default=2, help="workers of the parallel run (default 2)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. a path or -m unit")
    args = ap.parse_args()
    serial = run_suite(0, args.pytest_args)
    parallel = run_suite(args.parallel, args.pytest_args)
    speedup = serial["wall_s"] / parallel["wall_s"]
    out = {"bench": "suite_speedup", "serial": serial, "parallel": parallel, "speedup": round(speedup, 2),
           "target": 1.7, "met": speedup >= 1.7 and serial["exit"] == parallel["exit"] == 0}
    md = ["# Full suite: serial vs parallel", "",
          "| run | wall (s) | passed | exit |", "|---|---|---|---|",
          f"| -n 0 (baseline) | {serial['wall_s']:.1f} | {serial['passed']} | {serial['exit']} |",
          f"| -n {args.parallel} | {parallel['wall_s']:.1f} | {parallel['passed']} | {parallel['exit']} |", "",
          f"Speed-up: **{speedup:.2f}x** (target 1.7x on 2 cores).", ""]
    publish("suite_speedup", out, md)
    return 0 if out["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
