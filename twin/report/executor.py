"""executor.json: who produced a run (a developer's machine or CI) and its build number.

Allure orders the history trend by buildOrder and names each point by buildName, so a run's place
in the trend is readable; buildOrder continues from the history kept between runs.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

FILE_NAME = "executor.json"


def is_ci(environ: dict[str, str] | None = None) -> bool:
    """CI runs .ci/run with CI=true."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() == "true"


def executor(build_order: int, report_name: str, now: datetime | None = None,
             commit: str | None = None, ci: bool | None = None) -> dict[str, object]:
    """The content of executor.json."""
    now = now or datetime.now(timezone.utc)
    kind = "ci" if (is_ci() if ci is None else ci) else "local"
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    build_name = f"twin {kind} #{build_order} {stamp}" + (f" ({commit})" if commit else "")
    return {"name": "twin", "type": kind, "buildOrder": build_order, "buildName": build_name,
            "reportName": report_name}


def write(results_dir: Path, data: dict[str, object]) -> Path:
    """Writes executor.json into the results directory, replacing any earlier one."""
    path = Path(results_dir) / FILE_NAME
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
