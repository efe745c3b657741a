"""The first configuration of an emulated device, generated from the lab's address plan.

The device owns its configuration (the CLI changes it, `write memory` saves it), so the lab does not
set a router's addresses itself: it hands the device this IOS-syntax config, which the device applies
to its namespace on first boot, exactly as a real router boots from its startup-config.
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

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


RP_CONFIG_KEYS = {"peer", "unit", "secret", "hb_ms", "dead_ms"}


def redundancy_hardware(model: LabModel, node: str, prefix: str) -> dict[str, Any] | None:
    """What a redundant unit (`rp`) knows from its chassis, not its config: which unit it is, its
    peer's management address, the pair's name (interface MACs derive from it) and secret."""
    spec, plan = model.spec, model.plan
    if spec.kind_of(node) != "rp":
        return None
    cfg = spec.nodes[node].config
    peer = str(cfg["peer"])
    pair = "-".join(sorted([node, peer]))
    unit = cfg.get("unit") or ("primary" if node < peer else "secondary")
    secret = cfg.get("secret") or hashlib.sha256(f"{prefix}/{pair}".encode()).hexdigest()[:32]
    hw: dict[str, Any] = {"unit": unit, "peer": peer, "pair": f"{prefix}{pair}", "secret": secret,
                          "peer_address": str(plan.mgmt[peer].ip), "port": 7500}
    for k in ("hb_ms", "dead_ms"):
        if k in cfg:
            hw[k] = cfg[k]
    return hw
