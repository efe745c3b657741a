"""Transports: which client process reaches a device, from which namespace, and how it logs in.

Every client runs inside a lab namespace through `mnexec -a PID` (the network safety rule): the
console client in the device's own node, the SSH and telnet clients in the management station, so
no lab traffic ever starts in the root namespace. The clients are the real ones (OpenSSH, telnet),
so the driver exercises the device the way a person or an automation tool does.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pexpect

from twin.driver.errors import DriverError, LoginError
from twin.nodeexec import _clean_env, ns_argv

if TYPE_CHECKING:
    from twin.driver.channel import Channel

USER_RE = r"(?i)(?:user ?name|login): *\Z"
PASS_RE = r"(?i)password: *\Z"
LOGIN_FAILED_RE = r"% *(?:Login invalid|Authentication failed|Access denied|Bad passwords?)"
SSH_DENIED_RE = r"Permission denied|Too many authentication failures|Authentication failed"
UNREACHABLE_RE = (r"Connection refused|Connection timed out|No route to host|Network is unreachable|"
                  r"Could not resolve|Connection closed by|Unable to connect|cannot connect to")
COLUMNS = 511


@dataclass
class Target:
    """Everything needed to reach one device; built from the lab state, or by hand in tests."""
    device: str                         # node name, used in every message
    node_pid: int | None = None         # a process in the device's namespace (console client runs there)
    station_pid: int | None = None      # a process in the management station (ssh/telnet clients run there)
    node_netns: str | None = None       # or the pinned handles of those namespaces (preferred)
    station_netns: str | None = None
    mgmt_ip: str | None = None
    console_socket: str | None = None
    ssh_port: int = 22
    telnet_port: int = 23
    username: str | None = None
    password: str | None = None
    enable_secret: str | None = None


class Transport:
    """Spawns one client under pexpect and gets it to the device's first prompt."""

    name = "?"

    def __init__(self, target: Target, python: str = sys.executable) -> None:
        self.target = target
        self.python = python

    def argv(self) -> list[str]:
        raise NotImplementedError

    def spawn(self, transcript_reader: object) -> pexpect.spawn:
        argv = self.argv()
        env = _clean_env()
        env["TERM"] = "vt100"
        child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace", env=env,
                              dimensions=(24, COLUMNS), echo=False, timeout=10)
        child.delaybeforesend = None
        child.logfile_read = transcript_reader
        return child

    def login(self, channel: "Channel", timeout: float) -> None:
        """Answer the client's and the device's dialogs until a CLI prompt shows."""
        raise NotImplementedError

    # shared dialog: "Username:" / "Password:" from the device itself (telnet, console with login)
    def _device_login(self, channel: "Channel", timeout: float, first: int) -> None:
        t = self.target
        state = first
        sent_password = False
        while True:
            if state == 0:  # prompt
                return
            if state == 1:  # Username:
                if sent_password:
                    raise LoginError(f"{t.device} ({self.name}): login as {t.username!r} refused; "
                                     f"last output: {channel.tail()!r}")
                if not t.username:
                    raise LoginError(f"{t.device} ({self.name}) asks for a username and none is known")
                channel.send(t.username + "\r")
            elif state == 2:  # Password:
                if t.password is None:
                    raise LoginError(f"{t.device} ({self.name}) asks for a password and none is known")
                channel.send(t.password + "\r", secret=True)
                sent_password = True
            elif state == 3:
                raise LoginError(f"{t.device} ({self.name}): login as {t.username!r} refused; "
                                 f"last output: {channel.tail()!r}")
            state = channel.expect([channel.prompt_re(), USER_RE, PASS_RE, LOGIN_FAILED_RE], timeout, "login")


class ConsoleTransport(Transport):
    """`mnexec -a NODE_PID python -m emulators.console_attach SOCKET` on a pexpect pty."""

    name = "console"

    def argv(self) -> list[str]:
        t = self.target
        if not (t.node_pid or t.node_netns) or not t.console_socket:
            raise DriverError(f"{t.device} has no console (no namespace PID or console socket in the lab state)")
        return ns_argv([self.python, "-m", "emulators.console_attach", t.console_socket], t.node_pid, t.node_netns)

    def login(self, channel: "Channel", timeout: float) -> None:
        pats = [channel.prompt_re(), USER_RE, PASS_RE, LOGIN_FAILED_RE]
        # The device prints its prompt when the line is attached; a quiet line gets an Enter.
        first = channel.expect(pats, min(2.0, timeout), "console prompt", raise_timeout=False)
        if first is None:
            channel.send("\r")
            first = channel.expect(pats, timeout, "console prompt")
        self._device_login(channel, timeout, first)


def from_station(t: "Target", what: str, argv: list[str]) -> list[str]:
    """`argv` run in the management station: SSH and telnet clients never run in the root namespace."""
    if not (t.station_pid or t.station_netns) or not t.mgmt_ip:
        raise DriverError(f"{t.device}: {what} needs a management address and a management station "
                          f"(mgmt_ip={t.mgmt_ip!r}, station pid={t.station_pid!r})")
    return ns_argv(argv, t.station_pid, t.station_netns)


class SshTransport(Transport):
    """The OpenSSH client from the management station, password authentication only."""

    name = "ssh"

    def argv(self) -> list[str]:
        t = self.target
        if not t.username and (t.station_pid or t.station_netns) and t.mgmt_ip:
            raise LoginError(f"{t.device} (ssh): no username known (pass username=)")
        return from_station(t, "SSH", ["ssh", "-tt", "-e", "none",
                                       "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                       "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
                                       "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
                                       "-p", str(t.ssh_port), f"{t.username}@{t.mgmt_ip}"])

    def login(self, channel: "Channel", timeout: float) -> None:
        t = self.target
        sent = False
        while True:
            i = channel.expect([channel.prompt_re(), PASS_RE, SSH_DENIED_RE, UNREACHABLE_RE, pexpect.EOF],
                               timeout, "ssh login")
            if i == 0:
                return
            if i == 1 and not sent:
                if t.password is None:
                    raise LoginError(f"{t.device} (ssh) asks for a password and none is known")
                channel.send(t.password + "\r", secret=True)
                sent = True
                continue
            if i == 3:
                raise DriverError(f"{t.device} (ssh): cannot connect to {t.mgmt_ip}:{t.ssh_port}: "
                                  f"{channel.tail()!r}")
            raise LoginError(f"{t.device} (ssh): login as {t.username!r} refused; last output: {channel.tail()!r}")


class TelnetTransport(Transport):
    """The telnet client from the management station; `-E` so no byte is taken as the escape key."""

    name = "telnet"

    def argv(self) -> list[str]:
        t = self.target
        return from_station(t, "telnet", ["telnet", "-8", "-E", t.mgmt_ip, str(t.telnet_port)])

    def login(self, channel: "Channel", timeout: float) -> None:
        i = channel.expect([channel.prompt_re(), USER_RE, PASS_RE, UNREACHABLE_RE, pexpect.EOF], timeout,
                           "telnet login")
        if i == 3 or i == 4:
            raise DriverError(f"{self.target.device} (telnet): cannot connect to "
                              f"{self.target.mgmt_ip}:{self.target.telnet_port}: {channel.tail()!r}")
        self._device_login(channel, timeout, i)


TRANSPORTS: dict[str, type[Transport]] = {"console": ConsoleTransport, "ssh": SshTransport, "telnet": TelnetTransport}


def make_transport(name: str, target: Target) -> Transport:
    try:
        return TRANSPORTS[name](target)
    except KeyError:
        raise DriverError(f"unknown transport {name!r} (known: {', '.join(TRANSPORTS)})") from None
