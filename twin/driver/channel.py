"""The channel: send a line, wait for its echo, read to the prompt, page through ` --More-- `.

Transport-independent: it sees only the pexpect child of a transport. A prompt counts only at the
very end of what has been received (the device is then waiting for input), on a line of its own,
and once the hostname is known only with that hostname, so an output line that merely looks like a
prompt does not end a command early.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any

import pexpect

from twin.driver.errors import ConnectionClosed, DriverError, DriverTimeout
from twin.driver.transcript import Transcript
from twin.driver.transport import Transport

ENTER = "\r"
PROMPT_TAIL = r"(?P<mode>\(config[\w\-]*\))?[>#])[ \t]*\Z"
GENERIC_PROMPT = r"(?:\A|[\r\n])(?P<prompt>(?P<host>[\w.\-]+)" + PROMPT_TAIL
MORE_RE = r" ?--More-- ?"
PROMPT_LINE = re.compile(r"^[\w.\-]+(\(config[\w\-]*\))?[>#]\s*$")


class Channel:
    def __init__(self, transport: Transport, transcript: Transcript | None = None, timeout: float = 10.0) -> None:
        self.transport = transport
        self.device = transport.target.device
        self.timeout = timeout
        self.transcript = transcript or Transcript(f"{self.device} over {transport.name}")
        self.child: pexpect.spawn | None = None
        self.hostname: str | None = None
        self.prompt = ""
        self._dirty = False  # raw bytes were sent: output may be pending, resync before the next command

    # ---- lifecycle -----------------------------------------------------------------------------
    def open(self, login_timeout: float | None = None) -> str:
        """Spawn the client, log in, learn the hostname from the first prompt; returns that prompt."""
        self.transcript.note(f"open {self.transport.name}: {' '.join(self.transport.argv())}")
        self.child = self.transport.spawn(self.transcript.reader())
        self.transport.login(self, max(login_timeout or self.timeout, 5.0))
        self.take_prompt()
        return self.prompt

    def close(self) -> None:
        if self.child is not None:
            try:
                self.child.close(force=True)
            except Exception:
                pass
            self.transcript.note("closed")

    def wait_closed(self, timeout: float) -> bool:
        """True once the client has ended (the device hung up) within `timeout` seconds."""
        try:
            return self._child().expect([pexpect.EOF, pexpect.TIMEOUT], timeout=timeout) == 0
        except pexpect.ExceptionPexpect:
            return True

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.isalive()

    # ---- primitives ----------------------------------------------------------------------------
    def prompt_re(self, any_host: bool = False) -> str:
        if self.hostname and not any_host:
            return r"(?:\A|[\r\n])(?P<prompt>(?P<host>" + re.escape(self.hostname) + ")" + PROMPT_TAIL
        return GENERIC_PROMPT

    def send(self, text: str, secret: bool = False) -> None:
        self.transcript.sent(text, secret=secret)
        self._child().send(text)

    def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given (garbage tests); the next command first resynchronises on a prompt."""
        self.transcript.sent(data.decode("latin-1"))
        fd = self._child().child_fd
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        self._dirty = True

    def tail(self, n: int = 300) -> str:
        return self.transcript.tail(n)

    def expect(self, patterns: list[Any], timeout: float, what: str, command: str | None = None,
               raise_timeout: bool = True) -> int | None:
        """Index of the first pattern seen; DriverTimeout/ConnectionClosed name device, transport,
        command and the last output. With raise_timeout=False a timeout returns None."""
        child = self._child()
        try:
            return self._expect(child, patterns, timeout, what, command, raise_timeout)
        except pexpect.ExceptionPexpect as exc:  # pragma: no cover - pty errors
            raise DriverError(f"{self._who()}: {exc}") from exc

    def _expect(self, child: pexpect.spawn, patterns: list[Any], timeout: float, what: str,
                command: str | None, raise_timeout: bool) -> int | None:
        extra = [pexpect.TIMEOUT] + ([] if pexpect.EOF in patterns else [pexpect.EOF])
        i = child.expect(patterns + extra, timeout=max(timeout, 0.01))
        if i < len(patterns):
            return i
        if i == len(patterns):  # TIMEOUT
            if not raise_timeout:
                return None
            raise DriverTimeout(f"{self._who()}: no {what} within {timeout:.1f} s"
                                f"{f' after command {command!r}' if command is not None else ''}; "
                                f"last output: {self.tail()!r}")
        raise ConnectionClosed(f"{self._who()}: the connection closed while waiting for {what}"
                               f"{f' after command {command!r}' if command is not None else ''}; "
                               f"last output: {self.tail()!r}")

    # ---- commands ------------------------------------------------------------------------------
    def command(self, cmd: str, timeout: float | None = None, expect_extra: list[str] | None = None) -> tuple[str, int]:
        """Send `cmd`, wait for its echo, press Enter, collect output through ` --More-- ` pages up to
        the prompt (or one of `expect_extra`). Returns (output without echo and prompt, index):
        index 0 is the prompt, 1.. the extra patterns."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self._dirty:
            self.resync(timeout)
        child = self._child()
        if cmd:
            self.send(cmd)
            self.expect([re.escape(cmd)], deadline - time.monotonic(), "echo", cmd)
        self.send(ENTER)
        any_host = cmd.strip().startswith(("hostname", "no hostname"))
        pats = [self.prompt_re(any_host), MORE_RE] + list(expect_extra or [])
        parts: list[str] = []
        while True:
            i = self.expect(pats, deadline - time.monotonic(), "prompt", cmd)
            parts.append(child.before)
            if i == 1:
                self.send(" ")
                continue
            if i == 0:
                self.take_prompt()
                return clean_output("".join(parts)), 0
            parts.append(child.after)
            return clean_output("".join(parts)), i - 1

    def resync(self, timeout: float | None = None) -> str:
        """Press Enter and swallow everything up to the last prompt (after garbage or lost output)."""
        timeout = self.timeout if timeout is None else timeout
        self._dirty = False
        self.send(ENTER)
        self.expect([self.prompt_re(any_host=True)], timeout, "prompt", "<Enter>")
        while self.expect([self.prompt_re(any_host=True)], 0.3, "prompt", raise_timeout=False) is not None:
            pass
        self.take_prompt()
        return self.prompt

    def take_prompt(self) -> None:
        """Record the prompt (and hostname) the last expect matched."""
        m = self._child().match
        if isinstance(m, re.Match) and "prompt" in m.groupdict():
            self.prompt = m.group("prompt")
            self.hostname = m.group("host")

    def _child(self) -> pexpect.spawn:
        if self.child is None:
            raise DriverError(f"{self._who()}: channel is not open")
        return self.child

    def _who(self) -> str:
        return f"{self.device} ({self.transport.name})"


_ERASE = re.compile(r"[\b\r]")


def clean_output(text: str) -> str:
    """Device output as a script wants it: LF line ends, no leading Enter echo, no paging debris
    (the erased ` --More-- ` is rendered away as a terminal would), no trailing blank lines."""
    text = text.replace("\r\n", "\n")
    if text.startswith("\n"):
        text = text[1:]
    lines = []
    for line in text.split("\n"):
        if _ERASE.search(line):
            line = _render(line).rstrip(" ")
        lines.append(line)
    return "\n".join(lines).rstrip("\n")


def _render(line: str) -> str:
    """What a terminal shows for a line with backspaces and carriage returns (overwrite semantics)."""
    buf: list[str] = []
    col = 0
    for ch in line:
        if ch == "\b":
            col = max(0, col - 1)
        elif ch == "\r":
            col = 0
        else:
            if col < len(buf):
                buf[col] = ch
            else:
                buf.extend(" " * (col - len(buf)))
                buf.append(ch)
            col += 1
    return "".join(buf)
