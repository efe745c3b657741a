"""History between runs, so the report's trend charts (status, duration, categories, retries) grow.

Allure 2 reads the previous run's history from `<results>/history/` and writes the updated one into
the report. A single-file report has no history/ folder: its history files are embedded in
index.html (see `embedded`), so they are harvested from there; render-report.sh falls back to a
normal (multi-file) report in a temp dir when that finds none. The kept copy lives in
reports/history/ (git-ignored), outside the results folder that every test run wipes.

    python -m twin.report.history restore HISTORY RESULTS   # before allure generate
    python -m twin.report.history harvest INDEX_HTML HISTORY  # after, from a single-file report
    python -m twin.report.history save-dir REPORT_HISTORY HISTORY  # after, from a report's history/
    python -m twin.report.history trend HISTORY               # entries in history-trend.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from twin.report.embedded import embedded_files

TREND = "history-trend.json"


def restore(history_dir: Path, results_dir: Path) -> int:
    """Replaces <results>/history with the kept history; returns how many files were copied
    (0 on a first run). The old copy is removed first so rendering the same results twice still
    starts from the kept history, not from a stale one."""
    target = Path(results_dir) / "history"
    shutil.rmtree(target, ignore_errors=True)
    src = Path(history_dir)
    files = sorted(p for p in src.glob("*.json") if p.is_file()) if src.is_dir() else []
    if not files:
        return 0
    target.mkdir(parents=True)
    for p in files:
        shutil.copy2(p, target / p.name)
    return len(files)


def save(files: dict[str, bytes], history_dir: Path) -> int:
    """Replaces the kept history with `files` (name -> content) in one rename, so an interrupted
    render never leaves half a history behind. Returns the number of files."""
    history_dir = Path(history_dir)
    history_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".history-", dir=history_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it 0700; the kept history is an ordinary folder
    try:
        for name, data in files.items():
            (staging / Path(name).name).write_bytes(data)
        old = None
        if history_dir.exists():
            old = history_dir.with_name(staging.name + "-old")
            history_dir.rename(old)
        staging.rename(history_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(files)


def harvest(html: str) -> dict[str, bytes]:
    """The history files embedded in a single-file report (empty when there are none)."""
    return {path.split("/", 1)[1]: data for path, data in embedded_files(html).items()
            if path.startswith("history/") and path.endswith(".json")}


def from_dir(report_history: Path) -> dict[str, bytes]:
    """The history files of a normal report's history/ folder."""
    d = Path(report_history)
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


def trend(history_dir: Path) -> list[dict]:
    """Entries of the kept history-trend.json, newest first (as Allure writes them)."""
    path = Path(history_dir) / TREND
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def next_build_order(history_dir: Path) -> int:
    """One past the highest buildOrder in the kept trend (1 on a first run)."""
    orders = [e.get("buildOrder") for e in trend(history_dir) if isinstance(e, dict)]
    numbers = [o for o in orders if isinstance(o, int)]
    return max(numbers, default=len(orders)) + 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.report.history", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("restore")
    p.add_argument("history", type=Path)
    p.add_argument("results", type=Path)
    p = sub.add_parser("harvest")
    p.add_argument("index_html", type=Path)
    p.add_argument("history", type=Path)
    p = sub.add_parser("save-dir")
    p.add_argument("report_history", type=Path)
    p.add_argument("history", type=Path)
    p = sub.add_parser("trend")
    p.add_argument("history", type=Path)
    a = ap.parse_args(argv)

    if a.cmd == "restore":
        n = restore(a.history, a.results)
        print(f"history: {n} file(s) from {a.history}" if n else f"history: none yet in {a.history}")
        return 0
    if a.cmd == "trend":
        print(len(trend(a.history)))
        return 0
    files = harvest(a.index_html.read_text(encoding="utf-8")) if a.cmd == "harvest" \
        else from_dir(a.report_history)
    if TREND not in files:
        print(f"history: no {TREND} found ({a.cmd})", file=sys.stderr)
        return 3
    save(files, a.history)
    print(f"history: kept {len(files)} file(s) in {a.history}, "
          f"{len(trend(a.history))} run(s) in the trend")
    return 0


if __name__ == "__main__":
    sys.exit(main())
