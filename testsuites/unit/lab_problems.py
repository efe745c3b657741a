"""What a broken lab file reports, for the lab-check tests: every problem as `file:line: path: message`."""
from __future__ import annotations

import pytest

from twin.errors import LabFileError
from twin.lab.loader import parse_lab


def problems(text: str) -> list[str]:
    with pytest.raises(LabFileError) as exc:
        parse_lab(text, "lab.yaml")
    return [str(p) for p in exc.value.problems]


def with_path(found: list[str], path: str) -> list[str]:
    """The problems reported at `path` (the `file:line: path: message` form)."""
    hits = [p for p in found if f": {path}: " in p]
    assert hits, f"no problem at {path}: {found}"
    assert all(p.startswith("lab.yaml:") for p in hits), hits
    return hits


def lab_variant(text: str, *edits: tuple[str, str]) -> str:
    """A shipped lab file with each (old, new) edit applied; each old text must occur exactly once."""
    for old, new in edits:
        assert text.count(old) == 1, f"edit target not found once: {old!r}"
        text = text.replace(old, new)
    return text
