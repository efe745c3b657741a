"""Output modifiers of show commands: `| include`, `| exclude`, `| begin`, `| section`, `| count`."""
from __future__ import annotations

import re


class PipeError(ValueError):
    pass


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error:
        try:
            return re.compile(re.escape(regex))
        except re.error as exc:          # pragma: no cover - escape always compiles
            raise PipeError(str(exc)) from exc


def apply(lines: list[str], modifier: str, regex: str) -> list[str]:
    """Filter output lines the way IOS does for each modifier (regular expressions are searched,
    not anchored; an expression Python cannot compile is matched literally rather than failing)."""
    rx = _compile(regex)
    if modifier == "include":
        return [ln for ln in lines if rx.search(ln)]
    if modifier == "exclude":
        return [ln for ln in lines if not rx.search(ln)]
    if modifier == "begin":
        for i, ln in enumerate(lines):
            if rx.search(ln):
                return lines[i:]
        return []
    if modifier == "count":
        return [f"Number of lines which match regexp = {sum(1 for ln in lines if rx.search(ln))}"]
    if modifier == "section":
        out: list[str] = []
        block: list[str] = []

        def flush() -> None:
            if block and any(rx.search(ln) for ln in block):
                out.extend(block)

        for ln in lines:
            if ln[:1] in (" ", "\t") and block:
                block.append(ln)
            else:
                flush()
                block = [ln]
        flush()
        return out
    raise PipeError(f"unknown output modifier {modifier!r}")
