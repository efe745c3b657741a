"""The network as the element-management servers see it: learned from the routers' own
`show interfaces` output rather than from the lab file, so a server only needs CLI access to the
elements it manages. Links are inferred from shared subnets; a subnet on one element only is an
edge LAN (a stub), where a circuit starts or ends.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from itertools import combinations

import networkx as nx

# The lab's management network reaches every router: treating it as a subnet would make a full mesh.
MANAGEMENT = frozenset({"mgmt0", "lo"})

_HEADER = re.compile(r"^(?P<name>\S+) is (?P<status>.+?), line protocol is (?P<proto>\S+)")
_ADDRESS = re.compile(r"^\s+Internet address is (?P<addr>\d+\.\d+\.\d+\.\d+/\d+)")


class TopologyError(ValueError):
    """The topology cannot answer the question (unknown address, malformed input)."""


@dataclass(frozen=True)
class Interface:
    element: str
    name: str
    address: IPv4Interface
    up: bool = True         # admin and line protocol both up


@dataclass(frozen=True)
class Link:
    a: str
    a_if: str
    a_ip: IPv4Address
    b: str
    b_if: str
    b_ip: IPv4Address
    subnet: IPv4Network
    up: bool = True         # False when either side is down: the link is known but carries nothing

    def _side(self, element: str) -> str:
        if element == self.a:
            return "a"
        if element == self.b:
            return "b"
        raise TopologyError(f"{element} is not an end of the link {self.a}-{self.b} ({self.subnet})")

    def ip_of(self, element: str) -> IPv4Address:
        """The address `element` has on this link: the next hop its neighbour routes to."""
        return self.a_ip if self._side(element) == "a" else self.b_ip

    def if_of(self, element: str) -> str:
        return self.a_if if self._side(element) == "a" else self.b_if

    def other(self, element: str) -> str:
        return self.b if self._side(element) == "a" else self.a


@dataclass(frozen=True)
class Stub:
    element: str
    interface: str
    address: IPv4Interface
    up: bool = True

    @property
    def network(self) -> IPv4Network:
        return self.address.network


def parse_show_interfaces(element: str, text: str) -> list[Interface]:
    """Addressed data interfaces of one element. Tolerant of CR/LF and of lines that are not
    part of an interface block (prompts, syslog), since the text comes straight off a CLI."""
    out: list[Interface] = []
    name: str | None = None
    up = False
    seen: set[str] = set()
    for raw in text.replace("\r", "").split("\n"):
        m = _HEADER.match(raw)
        if m:
            name = m["name"]
            up = m["status"].strip() == "up" and m["proto"].strip() == "up"
            continue
        m = _ADDRESS.match(raw)
        if m and name is not None and name not in MANAGEMENT and name not in seen:
            try:
                addr = IPv4Interface(m["addr"])
            except ValueError as exc:
                raise TopologyError(f"{element} {name}: bad address {m['addr']!r}") from exc
            seen.add(name)
            out.append(Interface(element, name, addr, up))
    return out


def infer(interfaces: Iterable[Interface]) -> tuple[list[Link], list[Stub]]:
    """Links and stubs from addressing alone: the routers are wired so that the two ends of a
    cable share a subnet, which is all a server can observe through the CLI. A subnet shared by
    more than two elements (a LAN segment) links every pair of them."""
    by_net: dict[IPv4Network, list[Interface]] = {}
    for i in interfaces:
        by_net.setdefault(i.address.network, []).append(i)
    links: list[Link] = []
    stubs: list[Stub] = []
    for net in sorted(by_net, key=lambda n: (int(n.network_address), n.prefixlen)):
        members = sorted(by_net[net], key=lambda i: (i.element, i.name))
        if len({i.element for i in members}) == 1:
            first = members[0]
            stubs.append(Stub(first.element, first.name, first.address, first.up))
            continue
        for x, y in combinations(members, 2):
            if x.element == y.element:
                continue
            links.append(Link(x.element, x.name, x.address.ip, y.element, y.name, y.address.ip, net,
                              x.up and y.up))
    return links, stubs


def graph(links: Iterable[Link], nodes: Iterable[str] = ()) -> nx.Graph:
    """The usable topology: links that are down are left out (traffic cannot cross them), but
    their elements stay as nodes. `nodes` adds elements that have no link at all (a lone router
    with only LANs) so that routing can tell "isolated" from "unknown". Between two elements with
    parallel links the first by subnet is kept, so every server picks the same one."""
    g = nx.Graph()
    g.add_nodes_from(sorted(nodes))
    ordered = sorted(links, key=lambda l: (int(l.subnet.network_address), l.subnet.prefixlen, l.a, l.b))
    for l in ordered:
        g.add_node(l.a)
        g.add_node(l.b)
    for l in ordered:
        if l.up and not g.has_edge(l.a, l.b):
            g.add_edge(l.a, l.b, link=l, weight=1)
    return g


def find_endpoint(stubs: Iterable[Stub], address_or_prefix: str) -> Stub:
    """The edge LAN a circuit endpoint names, given as a host address or the LAN's prefix; the
    most specific LAN wins if (mis)configured LANs overlap."""
    text = address_or_prefix.strip()
    try:
        target: IPv4Network = (ipaddress.IPv4Network(text, strict=False) if "/" in text
                               else ipaddress.IPv4Network(f"{ipaddress.IPv4Address(text)}/32"))
    except ValueError as exc:
        raise TopologyError(f"not an IPv4 address or prefix: {address_or_prefix!r}") from exc
    matches = [s for s in stubs if target.subnet_of(s.network)]
    if not matches:
        what = target.network_address if target.prefixlen == 32 and "/" not in text else target
        raise TopologyError(f"no element has a LAN containing {what}")
    return max(matches, key=lambda s: (s.network.prefixlen, s.element, s.interface))
