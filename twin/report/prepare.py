"""What render-report.sh runs before `allure generate`: checks there are results, writes
environment.properties, categories.json and executor.json into the results folder, puts the kept
history in it, and gives message-less failures a message, so the report shows versions, causes
(every failure categorised) and trends.

    python -m twin.report.prepare --results DIR --history DIR [--allure BIN] [--report-name NAME]

Exits 2 with a message when the results folder holds no test result (nothing to render).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from twin.report import categories, environment, executor, history, results

DEFAULT_REPORT_NAME = "twin test report"


def prepare(results_dir: Path, history_dir: Path, allure_bin: Path | None = None,
            report_name: str = DEFAULT_REPORT_NAME) -> dict[str, object]:
    """Writes the three files and restores history; returns what it did, for the log line."""
    env = environment.collect(allure_bin)
    environment.write(results_dir, env)
    categories.write(results_dir)
    order = history.next_build_order(history_dir)
    commit = env.get("twin commit")
    executor.write(results_dir, executor.executor(
        order, report_name, commit=None if commit == environment.UNKNOWN else commit))
    restored = history.restore(history_dir, results_dir)
    filled = results.fill_missing_messages(results_dir)
    return {"results": len(results.result_files(results_dir)), "build": order,
            "history_files": restored, "filled_messages": filled, "environment": env}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.report.prepare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True, help="allure-pytest results folder")
    ap.add_argument("--history", type=Path, required=True, help="history kept between runs")
    ap.add_argument("--allure", type=Path, default=None, help="allure command (for its version)")
    ap.add_argument("--report-name", default=DEFAULT_REPORT_NAME)
    a = ap.parse_args(argv)

    n = len(results.result_files(a.results))
    if n == 0:
        print(f"render-report: no test results in {a.results} (no *-result.json): run the tests "
              f"first, e.g. `make test`, or pytest --alluredir {a.results}", file=sys.stderr)
        return 2
    done = prepare(a.results, a.history, a.allure, a.report_name)
    env = done["environment"]
    assert isinstance(env, dict)
    print(f"render-report: {n} test result(s), build #{done['build']}, "
          f"{done['history_files']} history file(s) restored, "
          f"{done['filled_messages']} message-less failure(s) given one; "
          + ", ".join(f"{k} {v}" for k, v in env.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
