"""`--More--` paging of long output, as an IOS line does with a non-zero terminal length.

The pager holds the lines still to show; the session routes keys to it while it is active. Space
shows the next page, Enter the next line, anything else (q, Ctrl-C, ...) drops the rest. The prompt
is erased with backspaces before more output is written, so a screen scraper sees clean lines.
"""
from __future__ import annotations

MORE = " --More-- "
ERASE_MORE = "\b" * len(MORE) + " " * len(MORE) + "\b" * len(MORE)


class Pager:
    def __init__(self, lines: list[str], length: int, width: int) -> None:
        self.lines = lines
        self.pos = 0
        self.page = max(1, length - 1)        # IOS keeps the last row for the More prompt
        self.width = width

    def _rows(self, line: str) -> int:
        if not self.width or len(line) <= self.width:
            return 1
        return -(-len(line) // self.width)

    def _take(self, rows: int) -> str:
        out: list[str] = []
        used = 0
        while self.pos < len(self.lines):
            r = self._rows(self.lines[self.pos])
            if out and used + r > rows:
                break
            out.append(self.lines[self.pos] + "\r\n")
            used += r
            self.pos += 1
        if self.pos < len(self.lines):
            out.append(MORE)
        return "".join(out)

    @property
    def active(self) -> bool:
        return self.pos < len(self.lines)

    def first(self) -> str:
        return self._take(self.page)

    def key(self, kind: str, value: str = "") -> str:
        """Text to write for one key pressed at the More prompt (the pager is done when not active)."""
        if kind == "char" and value == " ":
            return ERASE_MORE + self._take(self.page)
        if kind == "enter":
            return ERASE_MORE + self._take(1)
        self.pos = len(self.lines)
        return ERASE_MORE
