"""Address plan: explicit addresses win, the rest come from the lab's pools (as netlab does).

A segment is what shares one subnet: the hosts on one L2 domain (switches joined by trunks, per
VLAN), or the two ends of a link with no switch. Routers take the lowest addresses of a segment so
gateways are predictable (.1, .2); other nodes start at .11.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import networkx as nx

from twin.errors import Problem
from twin.lab.schema import KINDS, LabSpec

Port = tuple[str, str]  # (node, interface)


@dataclass
class Segment:
    key: str                      # "lan:<switch>:vlan<N>" or "p2p:<a>-<b>"
    members: list[Port]
    subnet: ipaddress.IPv4Network | None = None
    vlan: int = 0

    @property
    def p2p(self) -> bool:
        return self.key.startswith("p2p:")


@dataclass
class AddressPlan:
    segments: list[Segment] = field(default_factory=list)
    addresses: dict[Port, ipaddress.IPv4Interface] = field(default_factory=dict)
    gateways: dict[str, ipaddress.IPv4Address] = field(default_factory=dict)
    mgmt: dict[str, ipaddress.IPv4Interface] = field(default_factory=dict)

    def primary(self, node: str) -> ipaddress.IPv4Interface | None:
        """The node's first data address (in interface declaration order), what a ping mesh targets."""
        for (n, _intf), addr in self.addresses.items():
            if n == node:
                return addr
        return None


def _segments(spec: LabSpec) -> list[Segment]:
    from twin.lab.clusters import cross_connect_segments

    from twin.lab.grid import grid_segments

    xc_switches, xc_segments = cross_connect_segments(spec)
    grid_sw, grid_segs = grid_segments(spec)
    xc_switches = xc_switches | grid_sw
    xc_segments = xc_segments + grid_segs
    switches = set(spec.switches())
    trunks: list[tuple[str, str, list[int] | None]] = []
    access: list[tuple[Port, str, int]] = []
    segs: list[Segment] = []
    for link in spec.links:
        a, b = link.endpoints
        if a.node in switches and b.node in switches:
            trunks.append((a.node, b.node, link.trunk))
        elif a.node in switches or b.node in switches:
            sw, other = (a, b) if a.node in switches else (b, a)
            if sw.node in xc_switches:     # a cluster's cross-connected ports: no shared LAN
                continue
            access.append(((other.node, other.intf), sw.node, link.vlan or 0))
        else:
            segs.append(Segment(f"p2p:{a}-{b}", [(a.node, a.intf), (b.node, b.intf)]))

    by_key: dict[tuple[int, str], Segment] = {}
    graphs: dict[int, nx.Graph] = {}
    for port, sw, vlan in access:
        g = graphs.get(vlan)
        if g is None:
            g = graphs[vlan] = nx.Graph()
            g.add_nodes_from(switches)
            for x, y, allowed in trunks:
                if allowed is None or vlan in allowed:
                    g.add_edge(x, y)
        root = min(nx.node_connected_component(g, sw), key=spec_order(spec))
        key = (vlan, root)
        if key not in by_key:
            label = f"lan:{root}" + (f":vlan{vlan}" if vlan else "")
            by_key[key] = Segment(label, [], vlan=vlan)
        by_key[key].members.append(port)
    return list(by_key.values()) + segs + [Segment(label, members) for label, members in xc_segments]


def spec_order(spec: LabSpec):
    order = {n: i for i, n in enumerate(spec.nodes)}
    return lambda n: order.get(n, len(order))


def plan_addresses(spec: LabSpec) -> tuple[AddressPlan, list[Problem]]:
    problems: list[Problem] = []
    plan = AddressPlan(segments=_segments(spec))
    order = spec_order(spec)
    explicit: dict[Port, ipaddress.IPv4Interface] = {}
    for name, node in spec.nodes.items():
        for intf, ispec in node.interfaces.items():
            if ispec.ipv4 is not None:
                explicit[(name, intf)] = ispec.ipv4

    used_nets = {a.network for a in explicit.values()}
    if spec.mgmt.enabled:
        used_nets.add(spec.mgmt.network)

    def next_subnet(pool: ipaddress.IPv4Network, plen: int, it_cache: dict) -> ipaddress.IPv4Network | None:
        it = it_cache.setdefault((pool, plen), pool.subnets(new_prefix=plen) if plen >= pool.prefixlen else iter(()))
        for net in it:
            if not any(net.overlaps(u) for u in used_nets):
                used_nets.add(net)
                return net
        return None

    cache: dict = {}
    forwards = {n for n in spec.nodes if KINDS.get(spec.kind_of(n)) and KINDS[spec.kind_of(n)].forwards}
    for seg in plan.segments:
        nets = {explicit[p].network for p in seg.members if p in explicit}
        if len(nets) > 1:
            shown = ", ".join(f"{n}:{i} {explicit[(n, i)]}" for n, i in seg.members if (n, i) in explicit)
            node, intf = next(p for p in seg.members if p in explicit)
            problems.append(Problem(f"nodes.{node}.interfaces.{intf}.ipv4",
                                    f"interfaces on one segment ({seg.key}) are given different subnets: {shown}"))
            continue
        if nets:
            seg.subnet = nets.pop()
        elif seg.p2p:
            seg.subnet = next_subnet(spec.addressing.p2p, spec.addressing.p2p_prefix, cache)
        else:
            seg.subnet = next_subnet(spec.addressing.lan, spec.addressing.lan_prefix, cache)
        if seg.subnet is None:
            problems.append(Problem("addressing", f"address pool exhausted while addressing {seg.key}"))
            continue
        taken = {explicit[p].ip for p in seg.members if p in explicit}
        hosts = list(seg.subnet.hosts()) if seg.subnet.prefixlen < 31 else list(seg.subnet)
        ordered = sorted(seg.members, key=lambda p: (p[0] not in forwards, order(p[0])))
        r_idx, h_idx = 0, 10 if len(hosts) > 20 + len(seg.members) else 0
        for port in ordered:
            if port in explicit:
                plan.addresses[port] = explicit[port]
                continue
            if not spec.nodes[port[0]].auto_address:
                continue
            is_router = port[0] in forwards
            idx = r_idx if is_router else max(h_idx, r_idx)
            while idx < len(hosts) and hosts[idx] in taken:
                idx += 1
            if idx >= len(hosts):
                problems.append(Problem(f"nodes.{port[0]}", f"subnet {seg.subnet} of {seg.key} has no address left for {port[0]}:{port[1]}"))
                break
            plan.addresses[port] = ipaddress.IPv4Interface(f"{hosts[idx]}/{seg.subnet.prefixlen}")
            taken.add(hosts[idx])
            if is_router:
                r_idx = idx + 1
            else:
                h_idx = idx + 1
    # keep each node's addresses in the order its links were declared
    plan.addresses = dict(sorted(plan.addresses.items(), key=lambda kv: (order(kv[0][0]), _link_pos(spec, kv[0]))))

    # gateways for nodes that do not forward
    for name in spec.hosts():
        node = spec.nodes[name]
        if name in forwards:
            continue
        mine = [p for p in plan.addresses if p[0] == name]
        if node.gateway is not None:
            try:
                plan.gateways[name] = ipaddress.IPv4Address(node.gateway)
                continue
            except ValueError:
                pass
            gw_node = node.gateway
            found = None
            for p in mine:
                net = plan.addresses[p].network
                for q, addr in plan.addresses.items():
                    if q[0] == gw_node and addr.ip in net:
                        found = addr.ip
                        break
                if found:
                    break
            if found is None:
                problems.append(Problem(f"nodes.{name}.gateway", f"{gw_node} shares no subnet with {name}"))
            else:
                plan.gateways[name] = found
            continue
        for p in mine:
            seg = next((s for s in plan.segments if p in s.members), None)
            if seg is None or seg.subnet is None:
                continue
            rts = sorted((q for q in seg.members if q[0] in forwards and q in plan.addresses), key=lambda q: order(q[0]))
            if rts:
                plan.gateways[name] = plan.addresses[rts[0]].ip
                break

    # management addresses
    if spec.mgmt.enabled:
        net = spec.mgmt.network
        mg_hosts = list(net.hosts())
        taken = {spec.nodes[n].mgmt_ipv4 for n in spec.nodes if spec.nodes[n].mgmt_ipv4 is not None}
        names = spec.hosts()
        station = spec.mgmt.station
        idx = 10
        for name in names:
            given = spec.nodes[name].mgmt_ipv4
            if given is not None:
                plan.mgmt[name] = ipaddress.IPv4Interface(f"{given}/{net.prefixlen}")
                continue
            if name == station and mg_hosts and mg_hosts[0] not in taken:
                plan.mgmt[name] = ipaddress.IPv4Interface(f"{mg_hosts[0]}/{net.prefixlen}")
                taken.add(mg_hosts[0])
                continue
            while idx < len(mg_hosts) and mg_hosts[idx] in taken:
                idx += 1
            if idx >= len(mg_hosts):
                problems.append(Problem("mgmt.network", f"management network {net} has no address left for {name}"))
                break
            plan.mgmt[name] = ipaddress.IPv4Interface(f"{mg_hosts[idx]}/{net.prefixlen}")
            taken.add(mg_hosts[idx])
            idx += 1
    return plan, problems


def _link_pos(spec: LabSpec, port: Port) -> int:
    for i, link in enumerate(spec.links):
        for ep in link.endpoints:
            if (ep.node, ep.intf) == port:
                return i
    return len(spec.links)
