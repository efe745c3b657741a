"""Helpers for the cluster suites (labs/cluster.yaml): who holds a role, waiting for a failover and
for a repaired element to rejoin the pool, reading a device's config through its console."""
from __future__ import annotations

import re
import time
from typing import Any

from twin import clusterctl
from twin.errors import LabError
from twin.polling import wait_for

MANAGER = "cm"
ROLE_CUSTOMER = {"ne1": ("c1", "10.1.0.10"), "ne2": ("c2", "10.2.0.10"), "ne3": ("c3", "10.3.0.10")}
SERVER = ("srv1", "10.0.0.100")
POOL_SIZE = 2


def status(lab, timeout: float = 15.0) -> dict[str, Any]:
    """The manager's status file; waited for while the manager (re)starts and has not written it."""
    def read() -> dict[str, Any] | None:
        try:
            return clusterctl.status(lab, MANAGER)
        except LabError:
            return None

    return wait_for(read, timeout, f"{MANAGER}'s cluster status file", interval=0.1)


def holder(lab, role: str) -> str:
    h = status(lab)["roles"][role]["holder"]
    assert h, f"role {role} has no holder: {status(lab)}"
    return h


def pool(lab) -> list[str]:
    return status(lab)["pool"]


def wait_done(lab, role: str, since: float, timeout: float = 20.0) -> dict[str, Any]:
    """The `cluster-done` event of the failover of `role` that started after `since`."""
    return wait_for(lambda: next((e for e in lab.device_events(MANAGER, "cluster-done", since) if e.get("role") == role),
                                 None), timeout, f"the failover of role {role} to complete", interval=0.05)


def wait_in_pool(lab, node: str, timeout: float = 40.0) -> None:
    wait_for(lambda: node in pool(lab) and status(lab)["elements"][node]["state"] == "spare", timeout,
             f"{node} back in the pool", interval=0.2)


def repair(lab, node: str) -> None:
    """Power a failed element back on (restarting a crashed emulator) and wait until the manager has
    rebooted it with the default config and returned it to the pool."""
    lab.faults.power_on(node)
    wait_in_pool(lab, node)


def crash(lab, node: str) -> float:
    """SIGKILL a device's emulator (a process crash); returns when it happened."""
    import os
    import signal

    lab.reload()
    pid = lab.state.nodes[node].emulator_pid
    assert pid, f"{node} has no emulator process"
    t = time.time()
    os.kill(pid, signal.SIGKILL)
    return t


def show(lab, node: str, *cmds: str) -> str:
    with lab.device(node).console() as s:
        s.enable()
        return "\n".join(s.run(c) for c in cmds)


def running_config(lab, node: str) -> list[str]:
    """The config lines after the header (`Building configuration...`, byte count)."""
    out = show(lab, node, "show running-config")
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Current configuration"))
    return [l for l in lines[start + 1:] if l.strip()]


def mac_of(lab, node: str, intf: str) -> str:
    out = show(lab, node, f"show interfaces {intf}")
    m = re.search(r"address is ([0-9a-f.]+)", out)
    assert m, out
    return m.group(1)


def ping_ok(lab, src: str, dst_ip: str, count: int = 3) -> bool:
    r = lab.nodes.run(src, ["ping", "-c", str(count), "-i", "0.2", "-W", "1", dst_ip], timeout=20)
    return r.returncode == 0


def wait_reachable(lab, src: str, dst_ip: str, timeout: float = 15.0) -> None:
    wait_for(lambda: ping_ok(lab, src, dst_ip, 1), timeout, f"{src} to reach {dst_ip}", interval=0.2)


def cluster_flows(lab, switch: str) -> list[dict[str, Any]]:
    """The switch's cross-connect rules (the manager's cookie), as the controller reports them."""
    cookie = status_cookie(lab)
    return [f for f in lab.controller.flows(switch) if int(f.get("cookie", 0)) == cookie]


def status_cookie(lab) -> int:
    from emulators.cluster.plan import PLAN_FILE, ClusterPlan

    return ClusterPlan.load(lab.device_dir(MANAGER) / PLAN_FILE).cookie


def ports_in(flows: list[dict[str, Any]]) -> set[str]:
    """Every port name a set of flows matches on or outputs to."""
    out: set[str] = set()
    for f in flows:
        if f.get("in_port_name"):
            out.add(f["in_port_name"])
        for a in f.get("actions_named") or []:
            m = re.match(r"OUTPUT:(\S+)", a)
            if m:
                out.add(m.group(1))
    return out


def since_now() -> float:
    return time.time()
