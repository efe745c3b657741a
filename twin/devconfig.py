"""The first configuration of an emulated device, generated from the lab's address plan.

The device owns its configuration (the CLI changes it, `write memory` saves it), so the lab does not
set a router's addresses itself: it hands the device this IOS-syntax config, which the device applies
to its namespace on first boot, exactly as a real router boots from its startup-config.
"""
from __future__ import annotations

import ipaddress

from twin.lab.loader import LabModel
from twin.lab.schema import KINDS


def initial_config(model: LabModel, node: str) -> str:
    spec, plan = model.spec, model.plan
    kind = KINDS[spec.kind_of(node)]
    lines = [f"hostname {node}", "!"]
    intfs: list[str] = []
    for link in spec.links:
        for ep in link.endpoints:
            if ep.node == node:
                intfs.append(ep.intf)
    for intf in intfs:
        lines.append(f"interface {intf}")
        desc = spec.nodes[node].interfaces.get(intf)
        if desc is not None and desc.description:
            lines.append(f" description {desc.description}")
        addr = plan.addresses.get((node, intf))
        if addr is not None:
            lines.append(f" ip address {addr.ip} {addr.netmask}")
        lines.append(" no shutdown")
        lines.append("!")
    if kind.forwards:
        lines.append("ip routing")
    for r in spec.nodes[node].routes:
        net = ipaddress.IPv4Network("0.0.0.0/0" if r.to == "default" else r.to, strict=False)
        lines.append(f"ip route {net.network_address} {net.netmask} {r.via}")
    if node in plan.gateways:
        lines.append(f"ip route 0.0.0.0 0.0.0.0 {plan.gateways[node]}")
    lines.append("!")
    extra = spec.nodes[node].startup_config
    if extra:
        lines += [ln.rstrip() for ln in extra.strip("\n").splitlines() if ln.strip() != "end"]
        lines.append("!")
    lines.append("end")
    return "\n".join(lines) + "\n"
