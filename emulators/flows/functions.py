"""What an ANODE does to the packets of the flows it serves ([0051]): the application of its cluster.

A function sees the plain IPv4 packet (the descriptor removed and the original MACs restored, as an
application would, [0075]) and returns the packet to send on, possibly changed, or None to drop it.
The recorder is not here: it terminates copies instead of forwarding (engine.py).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from .packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP, PacketInfo, set_dscp

PROTOS = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP}
Function = Callable[[bytes, PacketInfo], "bytes | None"]


def _rule(rule: dict[str, Any]) -> Callable[[PacketInfo], bool]:
    if "proto" in rule:
        proto = PROTOS[rule["proto"]]
        port = rule.get("dport")
        if port is None:
            return lambda i: i.proto == proto
        return lambda i: i.proto == proto and (i.dport == port or i.sport == port)
    for side in ("src", "dst"):
        if side in rule:
            net = ipaddress.IPv4Network(rule[side], strict=False)
            lo, mask = int(net.network_address), int(net.netmask)
            if side == "src":
                return lambda i: int.from_bytes(i.src, "big") & mask == lo
            return lambda i: int.from_bytes(i.dst, "big") & mask == lo
    raise ValueError(f"unknown filter rule {rule!r}")


def make_function(spec: dict[str, Any]) -> Function:
    """The packet function of a cluster from its plan (`function`, `deny`, `dscp`)."""
    kind = spec.get("function", "counter")
    if kind == "filter":
        rules = [_rule(r) for r in spec.get("deny", [])]

        def packet_filter(l3: bytes, info: PacketInfo) -> bytes | None:
            for r in rules:
                if r(info):
                    return None
            return l3
        return packet_filter
    if kind == "marker":
        dscp = int(spec.get("dscp", 0))
        return lambda l3, info: set_dscp(l3, dscp)
    return lambda l3, info: l3          # counter (and recorder on transit): the engine counts
