"""Every benchmark ends the same way: one JSON line on stdout (for CI and scripts) and a markdown
table in bench/results/<name>.md (for people)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def publish(name: str, data: dict[str, Any], md: list[str]) -> Path:
    print(json.dumps(data))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(md).rstrip("\n") + "\n")
    return path
