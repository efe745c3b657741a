"""A scripted terminal for tests and harnesses: drives a CliSession like a client would and
returns what the device wrote back."""
from __future__ import annotations

from typing import Any


class ScriptedTerminal:
    def __init__(self, device: Any, *, transport: str = "console", user: str | None = None,
                 peer: str = "", width: int = 80, height: int = 24, start: bool = True) -> None:
        self.buf = bytearray()
        self.closed_by_device = False
        self.session = device.new_session(transport=transport, write=self.buf.extend, close=self._closed,
                                          peer=peer, authenticated_user=user, width=width, height=height)
        self._mark = 0
        if start:
            self.session.start()

    def _closed(self) -> None:
        self.closed_by_device = True

    def read(self) -> str:
        """Everything written since the last read."""
        out = self.buf[self._mark:].decode("ascii", "replace")
        self._mark = len(self.buf)
        return out

    def feed(self, data: bytes | str) -> str:
        self.session.feed(data.encode() if isinstance(data, str) else data)
        return self.read()

    def cmd(self, line: str, enter: str = "\r") -> str:
        """Type a line and Enter; returns the echo, output and next prompt."""
        return self.feed(line + enter)

    def output(self, line: str) -> str:
        """Just the command's output: without the echoed line and the trailing prompt."""
        raw = self.cmd(line)
        body = raw.split("\r\n", 1)[1] if "\r\n" in raw else ""
        prompt = self.session.prompt
        if body.endswith(prompt):
            body = body[: -len(prompt)]
        return body
