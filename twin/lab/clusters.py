"""Clusters in a lab file (spec 000, claims 8 and 13): a `type: cluster` group names its active
elements, its two switches, its manager and its spare pool; this module resolves that into the
cabling the cluster manager needs and reports every mistake with the field that causes it.

    groups:
      agg:
        type: cluster
        members: [ne1, ne2, ne3]           # active elements; each one's name is its role
        vars:
          manager: cm                      # a cluster-manager node
          switches: [sw1, sw2]             # access (customer) side first, network (server) side second
          pool: spares                     # a `type: pool` group of spare elements
          circuits: {ne1: [c1], ne2: [c2]} # customer nodes (or node:intf) each role carries
          selection: ordered               # or least-failed
          heartbeat_ms: 100
          dead_intervals: 3
      spares: {type: pool, members: [sp1, sp2]}

Checks and the lab engine both call `resolve`, so what validation accepts is exactly what boots.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from twin.errors import Problem
from twin.lab.schema import LabSpec

CLUSTER_VARS = {"manager", "switches", "pool", "circuits", "selection", "heartbeat_ms", "dead_intervals", "secret",
                "boot_grace_s", "detection"}
DETECTION = ("heartbeats", "ports", "events")
SELECTIONS = ("ordered", "least-failed")
ELEMENT_KINDS = ("router",)


@dataclass
class Wiring:
    name: str
    access_intf: str
    access_port: str
    network_intf: str
    network_port: str


@dataclass
class ResolvedCluster:
    group: str
    manager: str
    access: str
    network: str
    members: list[str]
    pool: list[str]
    elements: dict[str, Wiring] = field(default_factory=dict)
    circuits: dict[str, list[str]] = field(default_factory=dict)
    server_ports: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


def _ports_towards(spec: LabSpec, node: str, switch: str) -> list[tuple[str, str]]:
    """(node interface, switch port) for every link between node and switch."""
    out = []
    for link in spec.links:
        a, b = link.endpoints
        if a.node == node and b.node == switch:
            out.append((a.intf, b.intf))
        elif b.node == node and a.node == switch:
            out.append((b.intf, a.intf))
    return out


def clusters(spec: LabSpec) -> list[str]:
    return [g for g, gs in spec.groups.items() if gs.type == "cluster"]


def resolve(spec: LabSpec, gname: str) -> tuple[ResolvedCluster | None, list[Problem]]:
    g = spec.groups[gname]
    path = f"groups.{gname}"
    problems: list[Problem] = []

    def bad(p: str, msg: str) -> None:
        problems.append(Problem(p, msg))

    v = g.vars
    extra = set(v) - CLUSTER_VARS
    if extra:
        bad(f"{path}.vars", f"unknown setting(s) {', '.join(sorted(extra))} for a cluster; expected: "
                            f"{', '.join(sorted(CLUSTER_VARS))}")
    manager = v.get("manager")
    if not isinstance(manager, str) or manager not in spec.nodes or spec.kind_of(manager) != "cluster-manager":
        bad(f"{path}.vars.manager", f"a cluster needs its manager: a node of kind cluster-manager, got {manager!r}")
    sws = v.get("switches")
    if not (isinstance(sws, list) and len(sws) == 2 and all(isinstance(s, str) and s in spec.nodes and spec.is_switch(s)
                                                            for s in sws) and sws[0] != sws[1]):
        bad(f"{path}.vars.switches", f"expected two different switch nodes, access side first: [sw1, sw2]; got {sws!r}")
        sws = None
    pool_name = v.get("pool")
    pool: list[str] = []
    if pool_name is not None:
        if not isinstance(pool_name, str) or pool_name not in spec.groups or spec.groups[pool_name].type != "pool":
            bad(f"{path}.vars.pool", f"pool {pool_name!r} is not a group of type pool in this lab")
        else:
            pool = list(spec.groups[pool_name].members)
    sel = v.get("selection", "ordered")
    if sel not in SELECTIONS:
        bad(f"{path}.vars.selection", f"unknown selection policy {sel!r}; expected one of {', '.join(SELECTIONS)}")
    hb = v.get("heartbeat_ms", 100)
    if not isinstance(hb, int) or isinstance(hb, bool) or not 20 <= hb <= 10000:
        bad(f"{path}.vars.heartbeat_ms", f"expected milliseconds between 20 and 10000, got {hb!r}")
    dead = v.get("dead_intervals", 3)
    if not isinstance(dead, int) or isinstance(dead, bool) or not 2 <= dead <= 20:
        bad(f"{path}.vars.dead_intervals", f"expected a count between 2 and 20, got {dead!r}")
    det = v.get("detection", list(DETECTION))
    if not (isinstance(det, list) and det and all(d in DETECTION for d in det)):
        bad(f"{path}.vars.detection", f"expected a non-empty list of {', '.join(DETECTION)}; got {det!r}")
    if not spec.mgmt.enabled:
        bad(f"{path}", "a cluster's elements talk to its manager over the management network; enable mgmt")
    if not g.members:
        bad(f"{path}.members", "a cluster needs at least one active element")
    for label, names, p in (("active element", g.members, f"{path}.members"),
                            ("pool element", pool, f"groups.{pool_name}.members")):
        for i, n in enumerate(names):
            if n not in spec.nodes:
                bad(f"{p}[{i}]", f"{label} {n!r} is not a node of this lab")
            elif spec.kind_of(n) not in ELEMENT_KINDS:
                bad(f"{p}[{i}]", f"{label} {n} is of kind {spec.kind_of(n)}; cluster elements are routers "
                                 f"(kind {', '.join(ELEMENT_KINDS)})")
    both = sorted(set(g.members) & set(pool))
    if both:
        bad(f"groups.{pool_name}.members", f"{', '.join(both)} cannot be active and a spare at once")
    if problems or sws is None:
        return None, problems

    access, network = sws
    rc = ResolvedCluster(gname, str(manager), access, network, list(g.members), pool, vars=dict(v))
    # every router wired to both switches can be a substitute; members and pool must be
    candidates = list(dict.fromkeys(g.members + pool + [n for n in spec.nodes if spec.kind_of(n) in ELEMENT_KINDS]))
    for n in candidates:
        a = _ports_towards(spec, n, access)
        b = _ports_towards(spec, n, network)
        required = n in g.members or n in pool
        if len(a) == 1 and len(b) == 1:
            rc.elements[n] = Wiring(n, a[0][0], a[0][1], b[0][0], b[0][1])
        elif required:
            where = f"{path}.members" if n in g.members else f"groups.{pool_name}.members"
            missing = [s for s, ports in ((access, a), (network, b)) if len(ports) != 1]
            detail = "; ".join(f"{len(ports)} links to {s}" for s, ports in ((access, a), (network, b)) if len(ports) != 1)
            bad(where, f"{'active' if n in g.members else 'pool'} element {n} is not wired to both cluster switches "
                       f"({access}, {network}): needs exactly one link to each, has {detail} "
                       f"(fix the links to {', '.join(missing)})")
    if problems:
        return None, problems
    ref = rc.elements[g.members[0]]
    for n, w in rc.elements.items():
        if (n in g.members or n in pool) and (w.access_intf, w.network_intf) != (ref.access_intf, ref.network_intf):
            bad(f"groups.{gname}", f"{n} reaches the switches on {w.access_intf}/{w.network_intf} but "
                                   f"{ref.name} on {ref.access_intf}/{ref.network_intf}: a substitute takes over the "
                                   "failed element's interface names, so every element must be cabled alike")
    circuits = v.get("circuits") or {}
    if not isinstance(circuits, dict):
        bad(f"{path}.vars.circuits", "expected a map of role -> list of customer nodes")
        circuits = {}
    used: dict[str, str] = {}
    for role, custs in circuits.items():
        cp = f"{path}.vars.circuits.{role}"
        if role not in g.members:
            bad(cp, f"{role!r} is not an active element of cluster {gname} (roles: {', '.join(g.members)})")
            continue
        if not isinstance(custs, list):
            custs = [custs]
        ports = []
        for c in custs:
            node, _, intf = str(c).partition(":")
            found = [(i, p) for i, p in _ports_towards(spec, node, access) if not intf or i == intf]
            if node not in spec.nodes:
                bad(cp, f"customer {c!r} is not a node of this lab")
            elif len(found) != 1:
                bad(cp, f"customer {c} needs exactly one link to the access switch {access}, has {len(found)}")
            elif found[0][1] in used:
                bad(cp, f"customer {c} is already a circuit of role {used[found[0][1]]}")
            else:
                used[found[0][1]] = role
                ports.append(found[0][1])
        rc.circuits[role] = ports
    element_ports = {w.network_port for w in rc.elements.values()}
    for link in spec.links:
        for ep, other in (link.endpoints, link.endpoints[::-1]):
            if ep.node == network and ep.intf not in element_ports and not spec.is_switch(other.node):
                rc.server_ports.append(ep.intf)
    return (None if problems else rc), problems


def cross_connect_segments(spec: LabSpec) -> tuple[set[str], list[tuple[str, list[tuple[str, str]]]]]:
    """A cluster's switches are not LANs: the manager wires each role's circuits to its holder and
    the holders to the servers. For addressing, a role's customers and its element form one
    segment, the servers and the active elements another; spare ports belong to none (a spare
    takes its addresses from the element it replaces)."""
    switches: set[str] = set()
    segments: list[tuple[str, list[tuple[str, str]]]] = []
    for g in clusters(spec):
        sws = spec.groups[g].vars.get("switches")
        if not (isinstance(sws, list) and len(sws) == 2 and all(isinstance(x, str) and x in spec.nodes for x in sws)):
            continue
        switches.update(sws)
        rc, _ = resolve(spec, g)
        if rc is None:
            continue
        by_port = {}
        for link in spec.links:
            for ep, other in (link.endpoints, link.endpoints[::-1]):
                if other.node in sws and not spec.is_switch(ep.node):
                    by_port[(other.node, other.intf)] = (ep.node, ep.intf)
        for role in rc.members:
            w = rc.elements[role]
            members = [(role, w.access_intf)] + [by_port[(rc.access, p)] for p in rc.circuits.get(role, [])
                                                 if (rc.access, p) in by_port]
            segments.append((f"xc:{g}:{role}", members))
        servers = [(m, rc.elements[m].network_intf) for m in rc.members]
        servers += [by_port[(rc.network, p)] for p in rc.server_ports if (rc.network, p) in by_port]
        segments.append((f"xc:{g}:servers", servers))
    return switches, segments


def check_clusters(spec: LabSpec) -> list[Problem]:
    problems: list[Problem] = []
    managers: dict[str, str] = {}
    for g in clusters(spec):
        _, p = resolve(spec, g)
        problems += p
        m = spec.groups[g].vars.get("manager")
        if isinstance(m, str):
            if m in managers:
                problems.append(Problem(f"groups.{g}.vars.manager", f"{m} already manages cluster {managers[m]}; "
                                                                    "one manager per cluster"))
            managers[m] = g
    for n in spec.nodes:
        if spec.kind_of(n) == "cluster-manager" and n not in managers:
            problems.append(Problem(f"nodes.{n}", f"cluster-manager {n} manages no cluster: add a group of "
                                                  f"type cluster with vars: {{manager: {n}, ...}}"))
    return problems


def cluster_files(spec: LabSpec, mgmt: dict[str, str], prefix: str, api_socket: str) -> dict[str, tuple[str, str]]:
    """node -> (file name, JSON text) for the cluster.json of every manager and the
    cluster-agent.json of every element."""
    from emulators.cluster.plan import AGENT_FILE, PLAN_FILE, AgentPlan, ClusterPlan, ElementPorts

    out: dict[str, tuple[str, str]] = {}
    for g in clusters(spec):
        rc, problems = resolve(spec, g)
        if rc is None:
            continue
        secret = str(rc.vars.get("secret") or hashlib.sha256(f"{prefix}/{spec.name}/{g}".encode()).hexdigest()[:32])
        hb = int(rc.vars.get("heartbeat_ms", 100))
        plan = ClusterPlan(
            name=g, secret=secret, manager=rc.manager, manager_ip=mgmt[rc.manager], api_socket=api_socket,
            access_switch=rc.access, network_switch=rc.network,
            elements={n: ElementPorts(n, mgmt[n], w.access_intf, w.access_port, w.network_intf, w.network_port)
                      for n, w in rc.elements.items()},
            members=rc.members, pool=rc.pool, circuits=rc.circuits, server_ports=rc.server_ports,
            selection=str(rc.vars.get("selection", "ordered")), hb_ms=hb,
            dead_intervals=int(rc.vars.get("dead_intervals", 3)),
            boot_grace_s=float(rc.vars.get("boot_grace_s", 20.0)),
            detection=tuple(rc.vars.get("detection", DETECTION)))
        out[rc.manager] = (PLAN_FILE, plan.to_json())
        for n in rc.elements:
            out[n] = (AGENT_FILE, AgentPlan(g, n, secret, mgmt[rc.manager], hb).to_json())
    return out
