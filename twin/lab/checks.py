"""Whole-lab rules: each broken rule becomes a Problem pointing at the field that breaks it."""
from __future__ import annotations

import ipaddress
from collections.abc import Callable

from twin.errors import Problem
from twin.lab.schema import (IFNAME_MAX, IFNAME_RE, KINDS, NODE_NAME_MAX, NODE_NAME_RE, PREFIX_LEN,
                             LabSpec)

RESERVED_INTFS = {"lo", "mgmt0"}


def check_lab(spec: LabSpec) -> list[Problem]:
    problems: list[Problem] = []

    def bad(path: str, msg: str) -> None:
        problems.append(Problem(path, msg))

    node_names = list(spec.nodes)
    known = ", ".join(node_names)
    for name, node in spec.nodes.items():
        path = f"nodes.{name}"
        if not NODE_NAME_RE.match(name):
            bad(path, f"node name {name!r} must start with a letter and hold only letters, digits and '_'")
        if len(name) > NODE_NAME_MAX:
            bad(path, f"node name {name!r} is {len(name)} characters; at most {NODE_NAME_MAX}")
        kind = node.kind or spec.defaults.kind
        if kind not in KINDS:
            bad(f"{path}.kind", f"unknown kind {kind!r}; expected one of: {', '.join(sorted(KINDS))}")
            continue
        if KINDS[kind].switch:
            # the bridge is named <prefix><switch> in the root namespace
            if PREFIX_LEN + len(name) > IFNAME_MAX:
                bad(path, f"switch name {name!r} is too long for a Linux interface: with the "
                          f"{PREFIX_LEN}-character lab prefix it needs {PREFIX_LEN + len(name)} of "
                          f"{IFNAME_MAX} characters; use at most {IFNAME_MAX - PREFIX_LEN}")
            for field in ("gateway", "routes", "mgmt_ipv4"):
                if getattr(node, field):
                    bad(f"{path}.{field}", f"a switch is layer 2 and takes no {field}")
            for intf, ispec in node.interfaces.items():
                if ispec.ipv4 is not None:
                    bad(f"{path}.interfaces.{intf}.ipv4", "a switch port takes no IP address")
        if node.startup_config is not None and not KINDS[kind].emulated:
            bad(f"{path}.startup-config", f"kind {kind!r} has no device CLI; startup-config needs an emulated "
                                          f"kind ({', '.join(k for k, i in sorted(KINDS.items()) if i.emulated)})")
        for intf in node.interfaces:
            if intf in RESERVED_INTFS:
                bad(f"{path}.interfaces.{intf}", f"interface name {intf!r} is reserved by the lab")

    _check_redundant_pairs(spec, bad)
    from twin.lab.clusters import check_clusters  # noqa: PLC0415 - clusters imports this module's package

    problems += check_clusters(spec)
    from twin.lab.grid import check_vlinks  # noqa: PLC0415 - same reason

    problems += check_vlinks(spec)
    from twin.lab.flows import check_flows  # noqa: PLC0415 - same reason

    problems += check_flows(spec)

    # links
    used: dict[tuple[str, str], str] = {}
    for i, link in enumerate(spec.links):
        lpath = f"links[{i}]"
        ends_ok = True
        for j, ep in enumerate(link.endpoints):
            epath = f"{lpath}.endpoints[{j}]"
            if ep.node not in spec.nodes:
                bad(epath, f"unknown node {ep.node!r} in {ep}; nodes are: {known}")
                ends_ok = False
                continue
            if not IFNAME_RE.match(ep.intf):
                bad(epath, f"interface name {ep.intf!r} must start with a letter and hold only letters, digits, '_' and '.'")
            elif ep.intf in RESERVED_INTFS:
                bad(epath, f"interface name {ep.intf!r} is reserved by the lab (management and loopback)")
            if len(ep.intf) > IFNAME_MAX:
                bad(epath, f"interface name {ep.intf!r} is {len(ep.intf)} characters; Linux allows {IFNAME_MAX}")
            elif ep.node in spec.nodes and spec.is_switch(ep.node):
                root_name = f"{ep.node}-{ep.intf}"
                if PREFIX_LEN + len(root_name) > IFNAME_MAX:
                    bad(epath, f"switch port {ep} is too long for a Linux interface: it becomes "
                               f"'<prefix>{root_name}', {PREFIX_LEN + len(root_name)} characters, over "
                               f"Linux's {IFNAME_MAX}; shorten the switch or interface name "
                               f"(at most {IFNAME_MAX - PREFIX_LEN - 1} characters together)")
            key = (ep.node, ep.intf)
            if key in used:
                bad(epath, f"{ep} is already used by {used[key]}")
            else:
                used[key] = lpath
        if not ends_ok:
            continue
        a, b = link.endpoints
        if a.node == b.node:
            bad(lpath, f"link connects {a.node} to itself")
        sw = [spec.is_switch(e.node) for e in link.endpoints]
        if link.vlan is not None and not any(sw):
            bad(f"{lpath}.vlan", "a VLAN needs a switch on one end of the link (it is the switch port's access VLAN)")
        if link.trunk is not None and not all(sw):
            bad(f"{lpath}.trunk", "trunk VLANs apply to switch-to-switch links only")
        if link.vlan is not None and all(sw):
            bad(f"{lpath}.vlan", "a switch-to-switch link is a trunk: use 'trunk: [VLAN, ...]'")

    # interfaces declared on nodes must be wired
    for name, node in spec.nodes.items():
        for intf in node.interfaces:
            if (name, intf) not in used and intf not in RESERVED_INTFS:
                bad(f"nodes.{name}.interfaces.{intf}", f"{name}:{intf} is not an endpoint of any link")

    # gateways, routes
    for name, node in spec.nodes.items():
        if node.gateway is not None:
            try:
                ipaddress.IPv4Address(node.gateway)
            except ValueError:
                if node.gateway not in spec.nodes:
                    bad(f"nodes.{name}.gateway", f"{node.gateway!r} is neither an IPv4 address nor a node; nodes are: {known}")
                elif spec.is_switch(node.gateway):
                    bad(f"nodes.{name}.gateway", f"{node.gateway!r} is a switch and cannot be a gateway")

    # address clashes among explicit addresses
    seen_ip: dict[ipaddress.IPv4Address, str] = {}
    from twin.lab.grid import shared_identity  # noqa: PLC0415

    twins = shared_identity(spec)   # a resilient link's primary and standby may share an address
    for name, node in spec.nodes.items():
        for intf, ispec in node.interfaces.items():
            if ispec.ipv4 is None:
                continue
            path = f"nodes.{name}.interfaces.{intf}.ipv4"
            ip = ispec.ipv4.ip
            if ip in (ispec.ipv4.network.network_address, ispec.ipv4.network.broadcast_address) and ispec.ipv4.network.prefixlen < 31:
                bad(path, f"{ispec.ipv4} is the network or broadcast address of its subnet")
            if ip in seen_ip and frozenset((seen_ip[ip], f"{name}:{intf}")) not in twins:
                bad(path, f"address clash: {ip} is also given to {seen_ip[ip]}")
            else:
                seen_ip[ip] = f"{name}:{intf}"
        if node.mgmt_ipv4 is not None:
            path = f"nodes.{name}.mgmt_ipv4"
            if node.mgmt_ipv4 not in spec.mgmt.network:
                bad(path, f"{node.mgmt_ipv4} is outside the management network {spec.mgmt.network}")
            if node.mgmt_ipv4 in seen_ip:
                bad(path, f"address clash: {node.mgmt_ipv4} is also given to {seen_ip[node.mgmt_ipv4]}")
            else:
                seen_ip[node.mgmt_ipv4] = f"{name}:mgmt0"

    # groups
    for gname, group in spec.groups.items():
        for k, member in enumerate(group.members):
            if member not in spec.nodes:
                bad(f"groups.{gname}.members[{k}]", f"unknown node {member!r}; nodes are: {known}")

    # the management station name
    st = spec.mgmt.station
    if spec.mgmt.enabled and st:
        if not NODE_NAME_RE.match(st):
            bad("mgmt.station", f"station name {st!r} must start with a letter and hold only letters, digits and '_'")
        elif st in spec.nodes and spec.is_switch(st):
            bad("mgmt.station", f"{st!r} is a switch; the management station must be a host")

    for k, app in enumerate(spec.controller.apps):
        if not all(part.isidentifier() for part in app.split(".")):
            bad(f"controller.apps[{k}]", f"{app!r} is not a Python module path like controllers.twin_base")
    return problems


def _check_redundant_pairs(spec: LabSpec, bad: Callable[[str, str], None]) -> None:
    """`rp` units come in pairs that name each other, run known images and are cabled alike (the
    Standby takes over the Active's interfaces, so both must have the same ones)."""
    from emulators.rp.images import UnknownImage, image
    from twin.devconfig import RP_CONFIG_KEYS

    def ports(node: str) -> set[str]:
        return {ep.intf for link in spec.links for ep in link.endpoints if ep.node == node}

    for name, node in spec.nodes.items():
        if spec.kind_of(name) != "rp":
            continue
        path = f"nodes.{name}"
        version = node.version or spec.defaults.version
        if version is not None:
            try:
                image(version)
            except UnknownImage as exc:
                bad(f"{path}.version", str(exc))
        extra = set(node.config) - RP_CONFIG_KEYS
        if extra:
            bad(f"{path}.config", f"unknown setting(s) {', '.join(sorted(extra))} for an rp unit; "
                                  f"expected: {', '.join(sorted(RP_CONFIG_KEYS))}")
        peer = node.config.get("peer")
        if not peer:
            bad(f"{path}.config.peer", "an rp unit needs its peer unit: config: {peer: <other rp node>}")
            continue
        if not isinstance(peer, str) or peer not in spec.nodes or spec.kind_of(peer) != "rp" or peer == name:
            bad(f"{path}.config.peer", f"peer {peer!r} is not another rp node of this lab")
            continue
        if spec.nodes[peer].config.get("peer") != name:
            bad(f"nodes.{peer}.config.peer", f"{peer} must name {name} as its peer ({name} names {peer})")
            continue
        pcfg = spec.nodes[peer].config
        unit = node.config.get("unit")
        if unit is not None and unit not in ("primary", "secondary"):
            bad(f"{path}.config.unit", f"unit must be primary or secondary, not {unit!r}")
        elif name < peer:
            mine = unit or "primary"                                   # as devconfig defaults it
            theirs = pcfg.get("unit") or "secondary"
            if mine == theirs:
                bad(f"{path}.config.unit", f"{name} and {peer} are both {mine} (a unit left out defaults by "
                                           "name order); one must be primary, one secondary")
        if name < peer and node.config.get("secret") != pcfg.get("secret"):
            bad(f"{path}.config.secret", f"{name} and {peer} must share one secret (or both leave it out)")
        if not spec.mgmt.enabled:
            bad(path, "rp units talk to each other over the management network; enable mgmt")
        if name < peer and ports(name) != ports(peer):
            bad(f"{path}", f"{name} and its peer {peer} must be cabled alike (the standby takes over the "
                           f"active's interfaces): {name} has {sorted(ports(name))}, {peer} has "
                           f"{sorted(ports(peer))}")
