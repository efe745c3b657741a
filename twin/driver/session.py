"""`DeviceSession`: what a test talks to: run, enable, configure, with modes and a transcript.

Built on a `Channel` (echo, prompt, paging, timeouts), which is built on a `Transport` (which client,
from which namespace, which login dialog): the same layering as scrapli's transport/channel/driver,
so a new access method (say, a terminal server) is only a new transport.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType

from twin.driver.channel import Channel
from twin.driver.errors import CommandError, DriverError
from twin.driver.transport import PASS_RE

ERROR_RE = re.compile(r"^\s*% ?(Invalid input|Incomplete command|Ambiguous command)", re.M)
DENIED_RE = r"% *(?:Access denied|Bad secrets?|No password set)"
SETUP_COMMANDS = ("terminal length 0", "terminal width 511")


class DeviceSession:
    """A logged-in CLI session on one device over one transport."""

    def __init__(self, channel: Channel, *, enable_secret: str | None = None, timeout: float = 10.0) -> None:
        self.channel = channel
        self.enable_secret = enable_secret
        self.timeout = timeout

    @classmethod
    def open(cls, channel: Channel, *, enable_secret: str | None = None, timeout: float = 10.0,
             disable_paging: bool = True) -> "DeviceSession":
        """Log in and, unless told not to, turn paging off and widen the line as automation tools do."""
        channel.open(login_timeout=max(timeout, 15.0))
        session = cls(channel, enable_secret=enable_secret, timeout=timeout)
        try:
            if disable_paging:
                for cmd in SETUP_COMMANDS:
                    session.run(cmd)
        except BaseException:
            session.close()
            raise
        return session

    # ---- state -----------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.channel.device

    @property
    def transport(self) -> str:
        return self.channel.transport.name

    @property
    def prompt(self) -> str:
        """The current prompt, e.g. `r1(config-if)#`."""
        return self.channel.prompt

    @property
    def hostname(self) -> str | None:
        return self.channel.hostname

    @property
    def mode(self) -> str:
        """`user`, `privileged`, or the config mode's name (`config`, `config-if`, ...)."""
        p = self.prompt
        m = re.search(r"\((config[\w\-]*)\)#$", p)
        if m:
            return m.group(1)
        if p.endswith("#"):
            return "privileged"
        return "user" if p.endswith(">") else "unknown"

    @property
    def transcript(self) -> str:
        return self.channel.transcript.render()

    def save_transcript(self, path: str | Path) -> Path:
        return self.channel.transcript.save(path)

    # ---- commands ------------------------------------------------------------------------------
    def run(self, cmd: str, timeout: float | None = None) -> str:
        """Run one command and return its output (no echo, no prompt, LF line ends)."""
        out, _ = self.channel.command(cmd, self.timeout if timeout is None else timeout)
        return out

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the line as they are (garbage, control keys); the next command resyncs first."""
        self.channel.send_raw(data)

    def enable(self, secret: str | None = None, timeout: float | None = None) -> None:
        """Go to privileged mode, answering the enable-secret dialog; CommandError if refused."""
        if self.mode != "user":
            return
        secret = secret if secret is not None else self.enable_secret
        timeout = self.timeout if timeout is None else timeout
        ch = self.channel
        out, i = ch.command("enable", timeout, expect_extra=[PASS_RE])
        if i == 1:
            ch.send(secret + "\r" if secret is not None else "\r", secret=True)
            i = ch.expect([ch.prompt_re(), PASS_RE], timeout, "prompt", "enable")
            for _ in range(3):  # asked again: the secret was wrong; answer empty until the device gives up
                if i == 0:
                    break
                ch.send("\r")
                i = ch.expect([ch.prompt_re(), PASS_RE], timeout, "prompt", "enable")
            ch.take_prompt()
            if secret is None and self.mode == "user":
                raise CommandError(f"{self.device} ({self.transport}): enable asks for a secret and none is known",
                                   device=self.device, command="enable", output=out)
        if self.mode == "user":
            raise CommandError(f"{self.device} ({self.transport}): enable refused (wrong enable secret?); "
                               f"last output: {self.channel.tail()!r}", device=self.device, command="enable",
                               output=self.channel.tail())

    def disable(self) -> None:
        if self.mode.startswith("config"):
            self.run("end")
        if self.mode == "privileged":
            self.run("disable")

    def configure(self, lines: list[str], timeout: float | None = None) -> str:
        """`configure terminal`, each line, `end`; the first rejected line raises CommandError (after
        leaving config mode), naming the device, the line and the device's answer."""
        if self.mode == "user":
            self.enable()
        if not self.mode.startswith("config"):
            self.run("configure terminal", timeout)
        outputs = []
        for line in lines:
            out = self.run(line, timeout)
            outputs.append(out)
            m = ERROR_RE.search(out)
            if m:
                try:
                    self.run("end", timeout)
                except DriverError:
                    pass
                raise CommandError(f"{self.device} ({self.transport}): configuration line {line!r} rejected: "
                                   f"{out.strip()}", device=self.device, command=line, output=out)
        self.run("end", timeout)
        return "\n".join(o for o in outputs if o)

    def close(self) -> None:
        """Log out where that is polite (SSH/telnet `exit`), then end the client process."""
        ch = self.channel
        if ch.alive and self.transport != "console":
            try:
                if self.mode.startswith("config"):
                    ch.command("end", 2.0)
                ch.send("exit\r")
                ch.wait_closed(2.0)
            except DriverError:
                pass
        ch.close()

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DeviceSession {self.device} over {self.transport} at {self.prompt!r}>"
