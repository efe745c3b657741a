"""categories.json: sorts failures by cause, so a reader sees at once whether the lab, a device, the
test or the product broke.

Allure 2 puts a result in EVERY category whose statuses and regex match (the regex must match the
whole message, with DOTALL), not only the first. So the regexes here are made mutually exclusive:
each later category excludes what the earlier ones match, and "Product defect" / "Broken
infrastructure" take what is left. `classify` mirrors Allure's rule so tests can prove that every
failure lands in exactly one category.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

FILE_NAME = "categories.json"

# twin's LabError messages for a lab that did not come up (twin/boot.py, twin/running.py).
BOOT = r"failed to boot|never came up|never connected"
# A device (emulator, ssh/telnet driver, pexpect) that did not answer in time.
TIMEOUT = r"DriverTimeout|timed out|pexpect\.exceptions\.TIMEOUT"
ASSERTION = r"AssertionError"


def _containing(alternatives: str) -> str:
    return rf"(?s).*(?:{alternatives}).*"


def _not_containing(alternatives: str) -> str:
    return rf"(?s)(?!.*(?:{alternatives})).*"


CATEGORIES: list[dict[str, object]] = [
    {"name": "Lab failed to boot", "matchedStatuses": ["broken", "failed"],
     "messageRegex": _containing(BOOT)},
    {"name": "Device timeout", "matchedStatuses": ["broken", "failed"],
     "messageRegex": rf"(?s)(?!.*(?:{BOOT})).*(?:{TIMEOUT}).*"},
    {"name": "Assertion (test defect or regression)", "matchedStatuses": ["failed"],
     "messageRegex": rf"(?s)(?!.*(?:{BOOT}|{TIMEOUT})).*{ASSERTION}.*"},
    {"name": "Product defect", "matchedStatuses": ["failed"],
     "messageRegex": _not_containing(f"{BOOT}|{TIMEOUT}|{ASSERTION}")},
    {"name": "Broken infrastructure", "matchedStatuses": ["broken"],
     "messageRegex": _not_containing(f"{BOOT}|{TIMEOUT}")},
]

NAMES = [str(c["name"]) for c in CATEGORIES]


def categories_json() -> list[dict[str, object]]:
    """The file's content. Allure also compares a result's `flaky` flag with the category's (false
    when absent), so each category is listed a second time with flaky=true: a flaky failure is then
    still sorted by cause (both entries share a name, so the report shows one group)."""
    plain = [dict(c, flaky=False) for c in CATEGORIES]
    flaky = [dict(c, flaky=True) for c in CATEGORIES]
    return plain + flaky


def classify(status: str, message: str | None) -> list[str]:
    """Names of the categories Allure 2 would put a (non-flaky) result in, by its own rule."""
    names = []
    for c in CATEGORIES:
        if status not in c["matchedStatuses"]:  # type: ignore[operator]
            continue
        regex = c.get("messageRegex")
        if regex is not None and (message is None or not re.fullmatch(str(regex), message, re.DOTALL)):
            continue
        names.append(str(c["name"]))
    return names


def write(results_dir: Path) -> Path:
    """Writes categories.json into the results directory, replacing any earlier one."""
    path = Path(results_dir) / FILE_NAME
    path.write_text(json.dumps(categories_json(), indent=2) + "\n", encoding="utf-8")
    return path
