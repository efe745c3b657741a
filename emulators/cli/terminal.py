"""The line discipline of an IOS terminal line: raw bytes in, key events out, plus the editable
input line and the echo it produces.

Clients end lines with CR, LF, CRLF or CR NUL (telnet's NVT), and transports chop input anywhere,
so the decoder keeps its state between feeds: a CR followed by LF or NUL - even in the next feed -
is one Enter. Escape sequences (arrow keys) are consumed whole; other non-printable bytes become
control events or are dropped, so binary garbage can never reach the parser as text.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 4096


@dataclass(frozen=True)
class Key:
    kind: str          # "char" | "enter" | "backspace" | "tab" | "ctrl" | "up" | "down"
    value: str = ""    # the character for "char", the letter for "ctrl" ("C", "U", "Z", ...)


ENTER = Key("enter")
BACKSPACE = Key("backspace")
TAB = Key("tab")


class Decoder:
    """Bytes -> keys, with CR/LF/NUL and escape-sequence state carried across calls."""

    def __init__(self) -> None:
        self._after_cr = False
        self._esc: bytearray | None = None

    def feed(self, data: bytes) -> list[Key]:
        keys: list[Key] = []
        for b in data:
            if self._esc is not None:
                self._esc.append(b)
                key = self._escape()
                if key is not None:
                    if key.kind != "none":
                        keys.append(key)
                    self._esc = None
                continue
            if self._after_cr:
                self._after_cr = False
                if b in (0x0A, 0x00):
                    continue
            if b == 0x0D:
                self._after_cr = True
                keys.append(ENTER)
            elif b == 0x0A:
                keys.append(ENTER)
            elif b in (0x08, 0x7F):
                keys.append(BACKSPACE)
            elif b == 0x09:
                keys.append(TAB)
            elif b == 0x1B:
                self._esc = bytearray()
            elif 0x20 <= b < 0x7F:
                keys.append(Key("char", chr(b)))
            elif 0x01 <= b <= 0x1A:
                keys.append(Key("ctrl", chr(b + 0x40)))
            # NUL, 0x1C-0x1F and bytes >= 0x80 are ignored
        return keys

    def _escape(self) -> Key | None:
        """Returns a key (or Key("none")) once the sequence is complete, None while it is not."""
        seq = bytes(self._esc or b"")
        if len(seq) == 1:
            if seq in (b"[", b"O"):
                return None
            return Key("none")                  # ESC + anything else: dropped
        final = seq[-1]
        if seq[:1] == b"O" or 0x40 <= final <= 0x7E or len(seq) > 16:
            code = chr(final)
            return {"A": Key("up"), "B": Key("down")}.get(code, Key("none"))
        return None


class LineEditor:
    """The input line being typed; each method returns the text to echo (empty when echo is off)."""

    def __init__(self, echo: bool = True) -> None:
        self.text = ""
        self.echo = echo

    def _out(self, s: str) -> str:
        return s if self.echo else ""

    def insert(self, ch: str) -> str:
        if len(self.text) >= MAX_LINE:
            return ""
        self.text += ch
        return self._out(ch)

    def append(self, s: str) -> str:
        s = s[: max(0, MAX_LINE - len(self.text))]
        self.text += s
        return self._out(s)

    def backspace(self) -> str:
        if not self.text:
            return ""
        self.text = self.text[:-1]
        return self._out("\b \b")

    def erase(self, n: int) -> str:
        n = min(n, len(self.text))
        if n <= 0:
            return ""
        self.text = self.text[:-n]
        return self._out("\b" * n + " " * n + "\b" * n)

    def clear(self) -> str:
        return self.erase(len(self.text))

    def erase_word(self) -> str:
        stripped = self.text.rstrip(" ")
        cut = len(stripped) - len(stripped.split(" ")[-1]) if stripped else 0
        return self.erase(len(self.text) - cut)

    def replace(self, text: str) -> str:
        return self.clear() + self.append(text)

    def take(self) -> str:
        text, self.text = self.text, ""
        return text
