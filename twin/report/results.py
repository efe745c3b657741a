"""The allure-pytest results folder as render-report.sh finds it: how many results it holds, and
one repair so every failure is categorised.

Allure matches a category's messageRegex only against a non-null message, so a failed or broken
result without one (a crashed worker, a bare `raise SomeError()` in some versions) would miss every
category of categories.json and land in Allure's built-in "Product defects"/"Test defects" groups
instead. Such results get a placeholder message before generation.
"""
from __future__ import annotations

import json
from pathlib import Path

NO_MESSAGE = "(no failure message was recorded)"


def result_files(results_dir: Path) -> list[Path]:
    """The test results (one *-result.json per test run; containers and attachments excluded)."""
    d = Path(results_dir)
    return sorted(d.glob("*-result.json")) if d.is_dir() else []


def fill_missing_messages(results_dir: Path) -> int:
    """Gives failed/broken results without a message the placeholder; returns how many changed.
    Unreadable files are left alone (Allure skips them too)."""
    changed = 0
    for path in result_files(results_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("status") not in ("failed", "broken"):
            continue
        details = data.get("statusDetails")
        if not isinstance(details, dict):
            details = {}
        if details.get("message"):
            continue
        details["message"] = NO_MESSAGE
        data["statusDetails"] = details
        path.write_text(json.dumps(data), encoding="utf-8")
        changed += 1
    return changed
