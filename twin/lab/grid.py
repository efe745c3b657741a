"""A lab's connectivity grid, as the virtual link manager sees it, and the lab-time checks of its links.

The lab file's cabling decides which switch port each node interface is on and which switch links are
trunks; this module turns that into the manager's config section and checks the `vlinks:` section with
the manager's own model and checks (controllers.vlink), so a lab file is refused for exactly the
reasons `twin vlink create` would refuse the same link, with the path of the field in the lab file.
"""
from __future__ import annotations

import hashlib
from typing import Any

from controllers.vlink.check import check_link
from controllers.vlink.compiler import LinkRecord
from controllers.vlink.grid import Attachment, Grid, Trunk
from controllers.vlink.model import LinkSpecError, parse_link
from controllers.vlink.vlans import VlanPool
from twin.errors import Problem
from twin.lab.schema import LabSpec

VLINK_APP = "controllers.vlink_manager"


def grid_switches(spec: LabSpec) -> list[str]:
    if spec.grid is not None and spec.grid.switches is not None:
        return [s for s in spec.grid.switches if s in spec.nodes and spec.is_switch(s)]
    return spec.switches()


def endpoint_mac(endpoint: str) -> str:
    """A stable, locally administered MAC for a node interface on the grid (same at every boot)."""
    digest = hashlib.sha1(endpoint.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def grid_of(spec: LabSpec) -> Grid:
    switches = grid_switches(spec)
    atts: dict[str, Attachment] = {}
    trunks: list[Trunk] = []
    for link in spec.links:
        a, b = link.endpoints
        if a.node in switches and b.node in switches:
            trunks.append(Trunk(a.node, a.intf, b.node, b.intf))
            continue
        for sw_ep, node_ep in ((a, b), (b, a)):
            if sw_ep.node in switches and node_ep.node not in switches:
                # a node, or a switch outside the grid (an external network behind an external port)
                ep = str(node_ep)
                mac = None if spec.is_switch(node_ep.node) else endpoint_mac(ep)
                atts[ep] = Attachment(ep, sw_ep.node, sw_ep.intf, mac)
    return Grid(switches, atts, trunks)


def reserved_vlans(spec: LabSpec) -> dict[int, str]:
    """VLANs the lab's own switch ports use (access tags, trunk lists between grid switches).

    A trunk from a grid switch to a switch outside the grid is an external port: its VLANs are the
    external network's tags, which tagged external links are meant to use."""
    switches = set(grid_switches(spec))
    out: dict[int, str] = {}
    for i, link in enumerate(spec.links):
        ends = [ep.node in switches for ep in link.endpoints]
        if not any(ends) or (link.trunk and not all(ends)):
            continue
        for vid in [link.vlan] if link.vlan else []:
            out.setdefault(vid, f"access VLAN of links[{i}] ({link.endpoints[0]} - {link.endpoints[1]})")
        for vid in link.trunk or []:
            out.setdefault(vid, f"trunk VLAN of links[{i}] ({link.endpoints[0]} - {link.endpoints[1]})")
    return out


def pool_of(spec: LabSpec) -> VlanPool:
    block = spec.grid.vlan_block if spec.grid is not None else (3000, 3999)
    return VlanPool(tuple(block), reserved_vlans(spec))


def check_vlinks(spec: LabSpec) -> list[Problem]:
    if not spec.has_grid():
        return []
    problems: list[Problem] = []
    if spec.grid is not None and spec.grid.switches is not None:
        for i, sw in enumerate(spec.grid.switches):
            if sw not in spec.nodes:
                problems.append(Problem(f"grid.switches[{i}]", f"unknown node {sw!r}"))
            elif not spec.is_switch(sw):
                problems.append(Problem(f"grid.switches[{i}]", f"{sw} is a {spec.kind_of(sw)}, not a switch"))
    grid = grid_of(spec)
    pool = pool_of(spec)
    links: dict[str, LinkRecord] = {}
    nodes = set(spec.nodes)
    for name, body in spec.vlinks.items():
        path = f"vlinks.{name}"
        try:
            link = parse_link(body, name)
        except LinkSpecError as exc:
            problems += [Problem(f"{path}.{where}" if where else path, msg) for where, msg in exc.problems]
            continue
        found = check_link(link, grid, links, pool, nodes)
        for p in found:
            problems.append(Problem(f"{path}.{p.path}" if p.path else path, p.message))
        if not found:
            vlan = link.vlan or pool.allocate(r.vlan for r in links.values())
            if vlan is None:
                problems.append(Problem(f"{path}.vlan", f"the VLAN block {pool.block[0]}-{pool.block[1]} is exhausted"))
                continue
            links[name] = LinkRecord(link, len(links) + 1, vlan)
    return problems


def grid_segments(spec: LabSpec) -> tuple[set[str], list[tuple[str, list[tuple[str, str]]]]]:
    """Grid switches are not LANs: each virtual link is one addressing segment of its members (and the
    external port's node). Copy links (replicated, probe) only receive copies and get no subnet."""
    if not spec.has_grid():
        return set(), []
    grid = grid_of(spec)
    segments = []
    for name, body in spec.vlinks.items():
        try:
            link = parse_link(body, name)
        except ValueError:
            continue
        if link.type in ("replicated", "probe"):
            continue
        members = [tuple(ep.split(":", 1)) for ep in link.endpoints() if ep in grid.attachments]
        if link.external is not None:
            sw, _, port = link.external.port.partition(":")
            owner = grid.port_owner(sw, port)
            if owner is not None and not link.external.tagged:
                members.append(tuple(owner.endpoint.split(":", 1)))
        segments.append((f"vlink:{name}", members))
    return set(grid.switches), segments


def shared_identity(spec: LabSpec) -> set[frozenset[str]]:
    """Endpoint pairs that may hold the same address: a resilient link's primary and standby."""
    out = set()
    for name, body in spec.vlinks.items():
        try:
            link = parse_link(body, name)
        except ValueError:
            continue
        if link.type == "resilient":
            out.add(frozenset(m.endpoint for m in link.members if (m.role or "") in ("primary", "standby")))
    return out


def controller_section(spec: LabSpec, db_path: str) -> dict[str, Any]:
    """The `vlinks` section of the controller config."""
    pool = pool_of(spec)
    return {"grid": grid_of(spec).to_config(), "nodes": sorted(spec.nodes), "vlan_block": list(pool.block),
            "reserved_vlans": {str(v): why for v, why in pool.reserved.items()}, "db": db_path,
            "links": [{**body, "name": name} for name, body in spec.vlinks.items()]}
