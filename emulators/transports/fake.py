"""A tiny stand-in device that honours the CLI engine's contract, for testing transports and the driver.

It is not the engine: a handful of commands, IOS-like prompts, echo, the telnet login dialog, the
enable dialog, ` --More-- ` paging and `reload`. The transports and the pexpect driver are tested
against it so their behaviour is pinned down independently of the real command tree.

`python -m emulators.transports.fake` runs one session on its own stdin/stdout (raw tty): the
scripted device the driver's unit tests spawn with pexpect.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

VERSION_LINES = ["Twin Fake IOS Software, Version 0.0(fake)", "fake uptime is 1 minute",
                 "Processor board ID FAKE0001"]


class FakeSession:
    def __init__(self, device: "FakeDevice", *, transport: str, write: Callable[[bytes], None],
                 close: Callable[[], None], peer: str = "", authenticated_user: str | None = None,
                 width: int = 80, height: int = 24) -> None:
        self.device, self.transport, self._write, self._close = device, transport, write, close
        self.user = authenticated_user
        self.width, self.height = width, height
        self.mode = "exec"           # exec, priv, config, config-if
        self.stage = "login-user" if transport == "telnet" and not authenticated_user else "cli"
        self.line = bytearray()
        self.pending: list[str] = []  # paged output still to show
        self.login_user = ""
        self.last_cr = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- contract ------------------------------------------------------------------------------
    def start(self) -> None:
        self._out("Username: " if self.stage == "login-user" else "\r\n" + self.prompt())

    def set_window(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def feed(self, data: bytes) -> None:
        for b in data:
            if self._closed:
                return
            if self.pending:
                self._page(b)
                continue
            if b in (0x0D, 0x0A):
                if b == 0x0A and self.last_cr:
                    self.last_cr = False
                    continue
                self.last_cr = b == 0x0D
                self._enter()
                continue
            self.last_cr = False
            if b == 0x00:
                continue
            if b in (0x7F, 0x08):
                if self.line:
                    self.line.pop()
                    if self.stage in ("cli", "login-user"):
                        self._out("\b \b")
                continue
            if b == 0x1A:  # Ctrl-Z
                self.line.clear()
                if self.mode.startswith("config"):
                    self.mode = "priv"
                self._out("\r\n" + self.prompt())
                continue
            if b < 0x20 or b >= 0x7F:
                continue
            if len(self.line) < 1024:
                self.line.append(b)
                if self.stage in ("cli", "login-user"):
                    self._write(bytes([b]))

    # ---- internals -----------------------------------------------------------------------------
    def prompt(self) -> str:
        name = self.device.hostname
        return {"exec": f"{name}>", "priv": f"{name}#", "config": f"{name}(config)#",
                "config-if": f"{name}(config-if)#"}[self.mode]

    def _out(self, text: str) -> None:
        self._write(text.encode())

    def _enter(self) -> None:
        text = self.line.decode(errors="replace").strip()
        self.line.clear()
        self._out("\r\n")
        if self.stage == "login-user":
            self.login_user, self.stage = text, "login-pass"
            self._out("Password: ")
        elif self.stage == "login-pass":
            if self.device.check_password(self.login_user, text):
                self.user, self.stage = self.login_user, "cli"
                self._out("\r\n" + self.prompt())
            else:
                self.stage = "login-user"
                self._out("% Login invalid\r\n\r\nUsername: ")
        elif self.stage == "confirm":
            self.stage = "cli"
            if text in ("", "y", "yes") and self.device.on_reload:
                self.device.on_reload()
            else:
                self._out(self.prompt())
        elif self.stage == "enable":
            self.stage = "cli"
            if text == self.device.enable_secret:
                self.mode = "priv"
            else:
                self._out("% Access denied\r\n\r\n")
            self._out(self.prompt())
        else:
            self._command(text)

    def _command(self, cmd: str) -> None:
        words = cmd.split()
        out: list[str] = []
        if not words:
            pass
        elif cmd == "enable":
            self.stage = "enable"
            self._out("Password: ")
            return
        elif cmd == "disable":
            self.mode = "exec"
        elif words[0] == "terminal" and len(words) == 3 and words[2].isdigit():
            if words[1] == "length":
                self.height = int(words[2])
            elif words[1] == "width":
                self.width = int(words[2])
        elif cmd in ("show version", "sh ver"):
            out = VERSION_LINES
        elif cmd == "show long":
            out = [f"line {i:03d}" for i in range(1, 61)]
        elif cmd == "hang":
            return  # never comes back: for timeout tests
        elif cmd in ("configure terminal", "conf t") and self.mode == "priv":
            self.mode = "config"
        elif cmd == "end" and self.mode.startswith("config"):
            self.mode = "priv"
        elif words[0] == "interface" and self.mode.startswith("config") and len(words) == 2:
            self.mode = "config-if"
        elif words[0] == "hostname" and self.mode == "config" and len(words) == 2:
            self.device.hostname = words[1]
        elif words[0] == "description" and self.mode == "config-if":
            pass
        elif words[0] == "ip" and self.mode == "config-if" and len(words) == 2:
            out = ["% Incomplete command.", ""]
        elif cmd in ("exit", "logout", "quit"):
            if self.mode == "config-if":
                self.mode = "config"
            elif self.mode == "config":
                self.mode = "priv"
            else:
                self._closed = True
                self._close()
                return
        elif cmd == "reload" and self.mode == "priv":
            self.stage = "confirm"
            self._out("Proceed with reload? [confirm]")
            return
        else:
            out = [" " * (len(self.prompt()) + 0) + "^", "% Invalid input detected at '^' marker.", ""]
        self._show(out)

    def _show(self, lines: list[str]) -> None:
        page = self.height - 1 if self.height > 1 else 0
        if page and len(lines) > page:
            self._out("".join(f"{l}\r\n" for l in lines[:page]) + " --More-- ")
            self.pending = lines[page:]
            return
        self._out("".join(f"{l}\r\n" for l in lines) + self.prompt())

    def _page(self, b: int) -> None:
        self._out("\b" * 10 + " " * 10 + "\b" * 10)
        if b == 0x20:
            rest, self.pending = self.pending, []
            self._show(rest)
        elif b in (0x0D, 0x0A):
            line, self.pending = self.pending[0], self.pending[1:]
            if self.pending:
                self._out(f"{line}\r\n --More-- ")
            else:
                self._out(f"{line}\r\n{self.prompt()}")
        else:
            self.pending = []
            self._out(self.prompt())


class FakeDevice:
    def __init__(self, name: str, *, state_dir: Path, users: dict[str, str], enable_secret: str,
                 version: str | None = None, initial_config: str | None = None, apply: bool = True) -> None:
        self.name, self.hostname = name, name
        self.users, self.enable_secret = users, enable_secret
        self.on_reload: Callable[[], None] | None = None
        self.started = self.closed_ = False

    def start(self) -> None:
        self.started = True

    def check_password(self, user: str, password: str) -> bool:
        return self.users.get(user) == password

    def new_session(self, **kwargs) -> FakeSession:
        return FakeSession(self, **kwargs)

    def subscribe(self, callback: Callable[[dict], None]) -> None:
        pass

    def close(self) -> None:
        self.closed_ = True


def _stdio_main() -> None:
    """One console-style session on stdin/stdout, for pexpect-driven unit tests of the driver."""
    import tty

    if os.isatty(0):
        tty.setraw(0)
    name = sys.argv[1] if len(sys.argv) > 1 else "fake1"
    transport = sys.argv[2] if len(sys.argv) > 2 else "console"
    dev = FakeDevice(name, state_dir=Path("."), users={"admin": "admin"}, enable_secret="secret")
    done = []
    sess = dev.new_session(transport=transport, write=lambda b: os.write(1, b), close=lambda: done.append(1))
    sess.start()
    while not done:
        data = os.read(0, 4096)
        if not data:
            break
        sess.feed(data)


if __name__ == "__main__":
    _stdio_main()
