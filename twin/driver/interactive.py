"""`twin console NODE` / `twin ssh NODE` / `twin telnet NODE`: the same access paths, for a person.

The client runs on the user's own terminal but, like every lab client, inside a lab namespace
(`mnexec -a PID`): the console client in the device's node, SSH and telnet from the management
station. Nothing is spawned in the root namespace's network.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

from twin.driver import target_for
from twin.driver.errors import DriverError
from twin.driver.transport import Target
from twin.nodeexec import _clean_env, ns_argv


def interactive_argv(target: Target, transport: str = "console", python: str = sys.executable) -> list[str]:
    """The client command line a person gets for `transport` (escape: Ctrl-] on console and telnet)."""
    t = target
    if transport == "console":
        if not (t.node_pid or t.node_netns) or not t.console_socket:
            raise DriverError(f"{t.device} has no console")
        return ns_argv([python, "-m", "emulators.console_attach", "--escape", t.console_socket],
                       t.node_pid, t.node_netns)
    if not (t.station_pid or t.station_netns) or not t.mgmt_ip:
        raise DriverError(f"{t.device}: {transport} needs a management address and a management station")
    if transport == "ssh":
        return ns_argv(["ssh", "-t", "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no", "-o", "LogLevel=ERROR",
                        "-p", str(t.ssh_port), f"{t.username or 'admin'}@{t.mgmt_ip}"], t.station_pid, t.station_netns)
    if transport == "telnet":
        return ns_argv(["telnet", t.mgmt_ip, str(t.telnet_port)], t.station_pid, t.station_netns)
    raise DriverError(f"unknown transport {transport!r} (console, ssh, telnet)")


def interactive(lab: Any, node: str, transport: str = "console", username: str | None = None) -> int:
    """Run the client on this terminal until the user leaves; returns the client's exit code."""
    target = target_for(lab, node, username=username)
    argv = interactive_argv(target, transport)
    hint = {"console": "Ctrl-] leaves", "telnet": "Ctrl-] then 'quit' leaves", "ssh": "'exit' leaves"}[transport]
    creds = f"login {target.username} / {target.password}" if target.username else "no credentials in the lab state"
    print(f"{node} {transport}: {creds}; enable secret {target.enable_secret}; {hint}", file=sys.stderr)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the device, not to twin
    try:
        return subprocess.call(argv, env=_clean_env(),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finally:
        signal.signal(signal.SIGINT, old)
