"""A timestamped record of everything sent to and received from a device, for test reports.

Received text comes straight from pexpect (`logfile_read`), so nothing the device said is missed,
including output no command waited for. Sent text is recorded by the channel, which knows which
writes are secrets and masks them.
"""
from __future__ import annotations

import time
from pathlib import Path

MASK = "********"


class Transcript:
    def __init__(self, title: str = "") -> None:
        self.title = title
        self.started = time.time()
        self.entries: list[tuple[float, str, str]] = []  # (time, "<" received | ">" sent | "#" note, text)
        self._tail = ""

    def received(self, text: str) -> None:
        if text:
            self.entries.append((time.time(), "<", text))
            self._tail = (self._tail + text)[-2000:]

    def sent(self, text: str, secret: bool = False) -> None:
        self.entries.append((time.time(), ">", MASK if secret else text))

    def note(self, text: str) -> None:
        self.entries.append((time.time(), "#", text))

    def tail(self, n: int = 300) -> str:
        """The last `n` characters received: what a timeout message shows."""
        return self._tail[-n:]

    def reader(self) -> "_Reader":
        """A file-like object for pexpect's `logfile_read`."""
        return _Reader(self)

    def render(self) -> str:
        head = f"# transcript: {self.title} (started {_clock(self.started, date=True)})\n"
        lines = [head]
        for t, d, text in _coalesce(self.entries):
            stamp = _clock(t)
            for piece in _visible(text).split("\n"):
                lines.append(f"{stamp} {d} {piece}\n")
        return "".join(lines)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render())
        return path

    def __str__(self) -> str:
        return self.render()


class _Reader:
    def __init__(self, transcript: Transcript) -> None:
        self._t = transcript

    def write(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self._t.received(data)

    def flush(self) -> None:
        pass


def _coalesce(entries: list[tuple[float, str, str]]) -> list[tuple[float, str, str]]:
    """Merge runs of same-direction chunks (a device's echo arrives a byte or two at a time)."""
    out: list[tuple[float, str, str]] = []
    for t, d, text in entries:
        if out and out[-1][1] == d and d != "#":
            out[-1] = (out[-1][0], d, out[-1][2] + text)
        else:
            out.append((t, d, text))
    return out


def _clock(t: float, date: bool = False) -> str:
    lt = time.localtime(t)
    ms = int((t % 1) * 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", lt) + f".{ms:03d}"


def _visible(text: str) -> str:
    """Printable text: CRLF/CR line ends become one newline, other control bytes become \\xNN."""
    text = text.replace("\r\n", "\n")
    if text.endswith("\r"):
        text = text[:-1] + "\n" if len(text) > 1 else "\\r"
    out = []
    for ch in text:
        o = ord(ch)
        if ch in "\n\t" or 0x20 <= o < 0x7F or o > 0x9F:
            out.append(ch)
        else:
            out.append(f"\\x{o:02x}")
    return "".join(out).rstrip("\n") if text.endswith("\n") else "".join(out)
