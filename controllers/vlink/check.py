"""Checks a link against the grid and the links that exist, before anything is installed.

Each problem carries the HTTP status the API answers with (400 for a link that is wrong in itself,
404 for a reference to something that does not exist, 409 for a clash with another link) and the
path of the field that causes it, so the same text serves the lab loader and `twin vlink create`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controllers.vlink.compiler import COPY_TYPES, LinkRecord, default_source
from controllers.vlink.grid import Grid
from controllers.vlink.model import VLinkSpec
from controllers.vlink.vlans import VlanPool


@dataclass(frozen=True)
class LinkProblem:
    status: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def check_link(spec: VLinkSpec, grid: Grid, links: Mapping[str, LinkRecord], pool: VlanPool,
               nodes: set[str] | None = None) -> list[LinkProblem]:
    out: list[LinkProblem] = []

    def bad(status: int, path: str, msg: str) -> None:
        out.append(LinkProblem(status, path, msg))

    if spec.name in links:
        bad(409, "name", f"a link named {spec.name} already exists ({links[spec.name].spec.type}, "
                         f"VLAN {links[spec.name].vlan})")
    owners = {ep: rec.name for rec in links.values() for ep in rec.spec.endpoints() if rec.name != spec.name}
    behind_ext: dict[str, str] = {}   # what is wired behind an external port belongs to that link too
    for rec in links.values():
        ext = rec.spec.external
        behind = grid.port_owner(*ext.port.split(":", 1)) if ext is not None else None
        if behind is not None and rec.name != spec.name:
            behind_ext.setdefault(behind.endpoint, rec.name)
    switches: list[str] = []
    for i, m in enumerate(spec.members):
        node = m.node
        att = grid.attachment(m.endpoint)
        if nodes is not None and node not in nodes:
            bad(404, f"members[{i}]", f"unknown node {node!r} (lab nodes: {', '.join(sorted(nodes))})")
        elif att is None:
            wired = sorted(ep for ep in grid.attachments if ep.startswith(node + ":"))
            hint = f"{node}'s grid interfaces: {', '.join(wired)}" if wired else f"{node} has no interface on the grid"
            bad(400, f"members[{i}]", f"{m.endpoint} is not wired to a grid switch ({hint})")
        else:
            switches.append(att.switch)
            if m.endpoint in owners:
                bad(409, f"members[{i}]", f"{m.endpoint} already belongs to link {owners[m.endpoint]}; "
                                          "a node interface carries one virtual link")
            elif m.endpoint in behind_ext:
                bad(409, f"members[{i}]", f"{m.endpoint} is behind the external port of link "
                                          f"{behind_ext[m.endpoint]}; a node interface carries one virtual link")
    if spec.external is not None:
        sw, _, port = spec.external.port.partition(":")
        owner = grid.port_owner(sw, port)
        if sw not in grid.switches:
            bad(400, "external.port", f"{sw} is not a grid switch (grid: {', '.join(grid.switches)})")
        elif port in grid.trunk_ports(sw) or any((t.a, t.a_port) == (sw, port) or (t.b, t.b_port) == (sw, port)
                                                  for t in grid.trunks):
            bad(400, "external.port", f"{spec.external.port} is a trunk between grid switches")
        elif owner is None:
            bad(400, "external.port", f"nothing is wired to {spec.external.port}")
        else:
            switches.append(sw)
            if owner.endpoint in owners:
                bad(409, "external.port", f"{spec.external.port} ({owner.endpoint}) is a member of link "
                                          f"{owners[owner.endpoint]}")
            for rec in links.values():
                ext = rec.spec.external
                if rec.name != spec.name and ext is not None and ext.port == spec.external.port \
                        and not (ext.tagged and spec.external.tagged):
                    bad(409, "external.port", f"{spec.external.port} is already the untagged external port of "
                                              f"link {rec.name}" if not ext.tagged else
                        f"{spec.external.port} carries tagged link {rec.name}; an untagged link needs the port "
                        "to itself")
    if switches and not grid.connected(switches):
        bad(400, "members", f"the members' switches ({', '.join(sorted(set(switches)))}) are not joined by "
                            "grid trunks")
    _check_refs(spec, links, bad)
    if spec.vlan is not None:
        used = {rec.vlan: rec.name for rec in links.values()}
        why = pool.conflict(spec.vlan, used, spec.name)
        if why:
            bad(409, "vlan", why)
    return out


def _check_refs(spec: VLinkSpec, links: Mapping[str, LinkRecord], bad) -> None:
    if spec.type == "replicated" and spec.tap:
        tapped = links.get(spec.tap)
        if tapped is None:
            bad(404, "tap", f"no link named {spec.tap!r} to tap (links: {', '.join(sorted(links)) or 'none'})")
        elif tapped.spec.type in COPY_TYPES:
            bad(400, "tap", f"{spec.tap} is a {tapped.spec.type} link; tap the link it copies from instead")
        elif spec.source and spec.source not in tapped.spec.endpoints():
            bad(400, "source", f"{spec.source} is not a member of {spec.tap} "
                               f"(members: {', '.join(tapped.spec.endpoints())})")
        elif tapped.spec.type == "switch" and not spec.source:
            bad(400, "source", f"{spec.tap} is a virtual switch: name the member whose frames are tapped "
                               f"(default would be {default_source(tapped.spec)})")
    for i, pt in enumerate(spec.points):
        if pt.link is not None:
            target = links.get(pt.link)
            if target is None:
                bad(404, f"points[{i}].link", f"no link named {pt.link!r} (links: "
                                              f"{', '.join(sorted(links)) or 'none'})")
            elif target.spec.type in COPY_TYPES:
                bad(400, f"points[{i}].link", f"{pt.link} is a {target.spec.type} link, which carries copies only")
        elif pt.interface is not None:
            if not any(pt.interface in r.spec.endpoints() and r.spec.type not in COPY_TYPES for r in links.values()):
                bad(404, f"points[{i}].interface", f"{pt.interface} is not a member of any virtual link")


def delete_problems(name: str, links: Mapping[str, LinkRecord]) -> list[LinkProblem]:
    """Why link `name` cannot be deleted now (other links copy from it)."""
    rec = links.get(name)
    if rec is None:
        return [LinkProblem(404, "", f"no link named {name!r} (links: {', '.join(sorted(links)) or 'none'})")]
    users = []
    for other in links.values():
        if other.name == name:
            continue
        if other.spec.tap == name or any(p.link == name for p in other.spec.points) or \
                any(p.interface in rec.spec.endpoints() for p in other.spec.points):
            users.append(other.name)
    if users:
        return [LinkProblem(409, "", f"link {name} is copied by {', '.join(users)}; delete "
                                     f"{'it' if len(users) == 1 else 'them'} first")]
    return []
