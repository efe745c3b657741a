"""The pexpect driver for emulated devices: `lab.device("r1").ssh().run("show version")`.

Layered like scrapli: a transport (which real client, spawned in which lab namespace, and its login
dialog), a channel (echo, prompt, paging, timeouts, transcript) and the driver session (run, enable,
configure, modes). Credentials and addresses come from the lab's state file, so any process that can
attach to a lab can drive its devices.
"""
from __future__ import annotations

import json
from typing import Any

from twin.driver.channel import Channel
from twin.driver.errors import CommandError, ConnectionClosed, DriverError, DriverTimeout, LoginError
from twin.driver.session import DeviceSession
from twin.driver.transcript import Transcript
from twin.driver.transport import TRANSPORTS, Target, make_transport

__all__ = ["open_session", "connect", "target_for", "DeviceHandle", "DeviceSession", "Target", "Transcript",
           "DriverError", "DriverTimeout", "CommandError", "LoginError", "ConnectionClosed", "TRANSPORTS",
           "DEFAULT_STATION"]

DEFAULT_STATION = "mgmt"


def target_for(lab: Any, node: str, *, station: str | None = None, username: str | None = None,
               password: str | None = None, enable_secret: str | None = None) -> Target:
    """How to reach `node` of a RunningLab, from its state file (and the emulator's ready file)."""
    state = lab.state
    try:
        ns = state.nodes[node]
    except KeyError:
        raise DriverError(f"no node named {node!r} in lab {state.name} (nodes: {', '.join(state.nodes)})") from None
    station = station or getattr(state, "station", None) or DEFAULT_STATION
    st_node = state.nodes.get(station)
    ready = _ready_info(lab, node)
    mgmt_ip = (ns.mgmt_ip or "").split("/")[0] or None
    console = getattr(ns, "console", None) or ready.get("console") or str(lab.dir / "devices" / node / "console.sock")
    return Target(
        device=node, node_pid=ns.pid or None, station_pid=(st_node.pid or None) if st_node else None,
        node_netns=lab.netns_path(node) if hasattr(lab, "netns_path") else None,
        station_netns=lab.netns_path(station) if st_node and hasattr(lab, "netns_path") else None,
        mgmt_ip=mgmt_ip, console_socket=console,
        ssh_port=int(ready.get("ssh_port") or 22), telnet_port=int(ready.get("telnet_port") or 23),
        username=username if username is not None else getattr(ns, "username", None),
        password=password if password is not None else getattr(ns, "password", None),
        enable_secret=enable_secret if enable_secret is not None else getattr(ns, "enable_secret", None),
    )


def _ready_info(lab: Any, node: str) -> dict[str, Any]:
    try:
        return json.loads((lab.dir / "devices" / node / "ready.json").read_text())
    except (OSError, ValueError):
        return {}


def connect(target: Target, transport: str = "console", *, timeout: float = 10.0,
            disable_paging: bool = True) -> DeviceSession:
    """A logged-in session on `target` over `transport` ("console", "ssh" or "telnet")."""
    channel = Channel(make_transport(transport, target), timeout=timeout)
    return DeviceSession.open(channel, enable_secret=target.enable_secret, timeout=timeout,
                              disable_paging=disable_paging)


def open_session(lab: Any, node: str, transport: str = "console", username: str | None = None,
                 password: str | None = None, enable_secret: str | None = None, timeout: float = 10.0,
                 *, station: str | None = None, disable_paging: bool = True) -> DeviceSession:
    """A logged-in session on a lab device; credentials default to the ones in the lab state."""
    target = target_for(lab, node, station=station, username=username, password=password,
                        enable_secret=enable_secret)
    return connect(target, transport, timeout=timeout, disable_paging=disable_paging)


class DeviceHandle:
    """`lab.device("r1")`: opens sessions on one device."""

    def __init__(self, lab: Any, node: str) -> None:
        self.lab = lab
        self.node = node
        self.on_open: Any = None  # the lab records sessions so their transcripts reach the report

    def open(self, transport: str = "console", **kwargs: Any) -> DeviceSession:
        session = open_session(self.lab, self.node, transport, **kwargs)
        if self.on_open is not None:
            self.on_open(session)
        return session

    def console(self, **kwargs: Any) -> DeviceSession:
        return self.open("console", **kwargs)

    def ssh(self, **kwargs: Any) -> DeviceSession:
        return self.open("ssh", **kwargs)

    def telnet(self, **kwargs: Any) -> DeviceSession:
        return self.open("telnet", **kwargs)

    def target(self, **kwargs: Any) -> Target:
        return target_for(self.lab, self.node, **kwargs)

    def __repr__(self) -> str:
        return f"<DeviceHandle {self.node}>"
