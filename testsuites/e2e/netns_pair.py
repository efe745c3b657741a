"""Two network namespaces joined by a veth pair, for tests of one component without a whole lab.

Addresses live only inside the namespaces (both veth ends are created there directly), each side
has a holder process (so `NodeExec` reaches it), TX checksum offload is off as in a lab, and
everything is removed afterwards, by the names and PIDs this helper created.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from twin.nodeexec import NodeExec


def ip(args: list[str]) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class NetnsPair:
    nodes: NodeExec
    ns: dict[str, str]       # side -> namespace name
    intf: dict[str, str]     # side -> its veth end
    ip: dict[str, str]       # side -> address (without the /24)

    def link(self, side: str, up: bool) -> None:
        ip(["-n", self.ns[side], "link", "set", self.intf[side], "up" if up else "down"])


@contextlib.contextmanager
def netns_pair(ns: dict[str, str], intf: dict[str, str], addresses: dict[str, str]) -> Iterator[NetnsPair]:
    """`ns`, `intf`, `addresses` map the two sides' names (e.g. "a"/"b") to namespace, interface
    and IPv4 address. Interface names are the final names inside each namespace."""
    a, b = list(ns)
    holders: list[subprocess.Popen] = []
    created: list[str] = []
    try:
        for side in (a, b):
            ip(["netns", "add", ns[side]])
            created.append(ns[side])
        # create under temporary names (the final ones may be equal, e.g. eth1 on both sides)
        ip(["link", "add", "twpa", "netns", ns[a], "type", "veth", "peer", "name", "twpb", "netns", ns[b]])
        for side, tmp in ((a, "twpa"), (b, "twpb")):
            ip(["-n", ns[side], "link", "set", tmp, "name", intf[side]])
            ip(["-n", ns[side], "link", "set", "lo", "up"])
            ip(["-n", ns[side], "addr", "add", f"{addresses[side]}/24", "dev", intf[side]])
            ip(["-n", ns[side], "link", "set", intf[side], "up"])
            # `ip netns exec` execs `sleep`, so this PID is a process living in the namespace
            holders.append(subprocess.Popen(["ip", "netns", "exec", ns[side], "sleep", "infinity"],
                                            stdin=subprocess.DEVNULL))
        nodes = NodeExec({a: holders[0].pid, b: holders[1].pid})
        deadline = time.monotonic() + 5
        while any(os.readlink(f"/proc/{p.pid}/ns/net") == os.readlink("/proc/self/ns/net") for p in holders):
            assert time.monotonic() < deadline, "namespace holders never entered their namespaces"
            time.sleep(0.01)
        for side in (a, b):
            nodes.run(side, ["ethtool", "-K", intf[side], "tx", "off"], timeout=10, check=True)
        yield NetnsPair(nodes=nodes, ns=dict(ns), intf=dict(intf), ip=dict(addresses))
    finally:
        for proc in holders:
            stop(proc)
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
