"""Provisioning a circuit (spec 001, claim 20) as IOS config lines: static routes along the
route, in both directions, so that traffic between the two edge LANs follows exactly the path the
servers computed (and nothing else needs a routing protocol).
"""
from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network

import networkx as nx

from .routing import RouteError, validate
from .topology import Link, Stub


def _link(g: nx.Graph, u: str, v: str) -> Link:
    link = g.edges[u, v].get("link")
    if link is None:
        raise RouteError(f"no addressing known for the link {u} -> {v}")
    return link


def _route(net: IPv4Network, next_hop: object) -> str:
    return f"ip route {net.network_address} {net.netmask} {next_hop}"


def _routes(g: nx.Graph, path: Sequence[str], src: Stub, dst: Stub) -> dict[str, list[str]]:
    """Per element, the two static routes it needs: towards the destination LAN via the next
    element, back towards the source LAN via the previous one. An element on which a LAN is
    directly connected needs no route to it."""
    path = list(path)
    validate(g, path)
    if path[0] != src.element:
        raise RouteError(f"route starts at {path[0]} but the source LAN {src.network} is on {src.element}")
    if path[-1] != dst.element:
        raise RouteError(f"route ends at {path[-1]} but the destination LAN {dst.network} is on {dst.element}")
    out: dict[str, list[str]] = {}
    k = len(path) - 1
    for i, e in enumerate(path):
        lines: list[str] = []
        if i < k and e != dst.element:
            lines.append(_route(dst.network, _link(g, e, path[i + 1]).ip_of(path[i + 1])))
        if i > 0 and e != src.element:
            lines.append(_route(src.network, _link(g, e, path[i - 1]).ip_of(path[i - 1])))
        out[e] = lines
    return out


def circuit_config(g: nx.Graph, path: Sequence[str], src: Stub, dst: Stub) -> dict[str, list[str]]:
    """Config lines per element, in path order. `ip routing` comes first everywhere because the
    routes are useless on an element that does not forward."""
    return {e: ["ip routing"] + routes for e, routes in _routes(g, path, src, dst).items()}


def circuit_unconfig(g: nx.Graph, path: Sequence[str], src: Stub, dst: Stub) -> dict[str, list[str]]:
    """Undo a circuit: remove its routes only. Forwarding stays on, since other circuits through
    the same element may still need it."""
    return {e: [f"no {r}" for r in routes] for e, routes in _routes(g, path, src, dst).items()}


def circuit_id(src: Stub, dst: Stub) -> str:
    """A circuit carries traffic both ways, so its name does not depend on which end was asked
    for first: the same pair of LANs is the same circuit."""
    a, b = sorted((src.network, dst.network), key=lambda n: (int(n.network_address), n.prefixlen))
    return f"{a}<->{b}"
