"""Evidence for reports: steps and attachments, recorded through Allure when it is installed (the
test extra) and silently skipped when it is not, so the lab engine never depends on a reporter.

Running labs also keep what a test produced (device sessions opened, packet captures) so the pytest
plugin can attach transcripts and pcaps to the test that made them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # pragma: no cover - exercised through the plugin's tests
    import allure
    from allure_commons.types import AttachmentType
except ImportError:  # the harness works without the report extra
    allure = None
    AttachmentType = None


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """An Allure step when a report is being recorded: boot, inject fault, wait for recovery, verify."""
    if allure is None:
        yield
        return
    with allure.step(title):
        yield


def attach_text(name: str, text: str, kind: str = "text") -> None:
    if allure is None:
        return
    types = {"text": AttachmentType.TEXT, "json": AttachmentType.JSON, "csv": AttachmentType.CSV,
             "html": AttachmentType.HTML, "tsv": AttachmentType.TSV}
    allure.attach(text, name=name, attachment_type=types.get(kind, AttachmentType.TEXT))


def attach_file(name: str, path: str | Path) -> None:
    if allure is None or not Path(path).exists():
        return
    suffix = Path(path).suffix.lower()
    types = {".png": AttachmentType.PNG, ".svg": AttachmentType.SVG, ".json": AttachmentType.JSON,
             ".txt": AttachmentType.TEXT, ".log": AttachmentType.TEXT}
    if suffix == ".pcap":
        allure.attach.file(str(path), name=name, extension="pcap")
        return
    allure.attach.file(str(path), name=name, attachment_type=types.get(suffix, AttachmentType.TEXT))


class Produced:
    """What a running lab produced since the last look: sessions opened, captures written."""

    def __init__(self) -> None:
        self.sessions: list[Any] = []
        self.captures: list[Path] = []

    def take(self) -> tuple[list[Any], list[Path]]:
        out = (self.sessions, self.captures)
        self.sessions, self.captures = [], []
        return out
