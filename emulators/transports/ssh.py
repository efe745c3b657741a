"""SSH on the node's addresses (asyncssh): password login through the device's login method list
(the local users, or a RADIUS server first on a NAS with `aaa authentication login default group radius`).

A shell channel gets an interactive CLI session (pty size and window changes passed on); an exec
channel (`ssh r1 show version`) runs that one command and closes, as IOS does. asyncssh's own line
editor is off: the engine owns echo and line editing, exactly as on the console and telnet. The host
key is generated once per device into its state directory and reused, so clients that remember host
keys see the same key across restarts of the emulator.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncssh

from emulators.transports.host import DeviceHost, Link

log = logging.getLogger("emulators.transports.ssh")

HOST_KEY_FILE = "ssh_host_ed25519_key"


def load_host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The device's host key: created on first start (ed25519: fast to make), then always reused."""
    path = Path(state_dir) / HOST_KEY_FILE
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key())
    os.replace(tmp, path)
    return key


class _Server(asyncssh.SSHServer):
    def __init__(self, host: DeviceHost) -> None:
        self.host = host
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer = "?"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peername = conn.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        # The login method list may ask a RADIUS server: wait for it on a worker thread so the
        # event loop keeps serving every other session meanwhile.
        device = self.host.device
        if device is None:
            return False
        ok = bool(await asyncio.get_running_loop().run_in_executor(
            None, lambda: device.check_password(username, password, transport="ssh", peer=self.peer)))
        log.info("ssh %s: password login as %r %s", self.peer, username, "accepted" if ok else "refused")
        return ok

    def session_requested(self) -> "_Session | bool":
        assert self.conn is not None
        if not self.host.allows("ssh"):
            log.info("ssh %s: refused by the vty lines' transport input", self.peer)
            return False
        return _Session(self.host, self.conn, self.peer)


class _Session(asyncssh.SSHServerSession):
    def __init__(self, host: DeviceHost, conn: asyncssh.SSHServerConnection, peer: str) -> None:
        self.host = host
        self.conn = conn
        self.peer = peer
        self.chan: Any = None
        self.link: Link | None = None
        self.width, self.height = 80, 24
        self.command: str | None = None

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.width, self.height = term_size[0] or 80, term_size[1] or 24
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

    def session_started(self) -> None:
        user = self.conn.get_extra_info("username")
        try:
            if self.command is not None:
                self._run_exec(user)
                return
            self.link = self.host.attach("ssh", self.peer, self.chan.write, self._hangup,
                                         user=user, width=self.width, height=self.height)
            self.link.start()
        except Exception:
            log.exception("ssh %s: could not start a session", self.peer)
            self._hangup()

    def _run_exec(self, user: str | None) -> None:
        """One command, no paging, output without the echo and the prompt, then exit status 0."""
        out: list[bytes] = []
        link = self.host.attach("ssh", self.peer, out.append, lambda: None, user=user, width=self.width)
        try:
            link.start()
            set_terminal = getattr(link.session, "set_terminal", None)
            if callable(set_terminal):  # the engine's `terminal length 0`, without logging a command
                set_terminal(length=0)
            else:
                link.feed(b"terminal length 0\r")
            out.clear()
            for line in self.command.replace("\r", "\n").split("\n"):
                if line.strip():
                    link.feed(line.encode("utf-8", "replace") + b"\r")
        finally:
            link.detach()
        text = b"".join(out)
        first = text.find(b"\n")
        text = text[first + 1:] if first >= 0 else text
        last = text.rfind(b"\n")
        text = text[:last + 1] if last >= 0 else b""
        log.info("ssh %s: exec %r", self.peer, self.command)
        self.chan.write(text)
        self.chan.exit(0)

    def _hangup(self) -> None:
        try:
            self.chan.exit(0)
        except Exception:
            self.chan.close()

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.link is not None:
            self.link.feed(data)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.link is not None:
            self.link.set_window(width, height)

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.detach()
        return False  # close the channel

    def break_received(self, msec: int) -> bool:
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.detach()


async def serve_ssh(host: DeviceHost, address: str, port: int, state_dir: Path) -> asyncssh.SSHAcceptor:
    key = load_host_key(state_dir)
    return await asyncssh.create_server(
        lambda: _Server(host), address, port,
        server_host_keys=[key], encoding=None, line_editor=False,
        login_timeout=60, keepalive_interval=0, reuse_address=True,
        server_version="Cisco-1.25",
    )
