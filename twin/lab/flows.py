"""The lab file's `flows:` section (multi-stage flow routing, seed 003 [0056]-[0085]): whole-lab checks
with field paths, and the plan files the lab engine hands each flow node and the MNODE.

Who can reach whom is decided by the virtual links: two nodes are neighbours when a virtual link of
type switch, hub, cable or p2mp (root and leaf) has both, and a frame for a neighbour leaves on the
interface that link joins. Every hop of every path must be a neighbour pair, or a flow would be
routed into a node it cannot reach; the lab refuses that at load time instead.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from twin.errors import Problem
from twin.lab.schema import FlowsSpec, LabSpec

PLAN_FILE = "flows.json"
CONTROL_PORT = 7600
MAX_CLUSTERS = 63
MIN_MTU = 1600          # 1500-byte packets + Ethernet + a descriptor with up to 33 assignments
_DENY_RE = re.compile(r"^(?:(tcp|udp|icmp)(?:\s+dport\s+(\d{1,5}))?|(src|dst)\s+(\d+\.\d+\.\d+\.\d+/\d+))$")


def parse_deny(rule: str) -> dict[str, Any]:
    """'udp dport 9' / 'tcp' / 'icmp' / 'src 10.5.0.0/24' -> a match dict; ValueError says what is accepted."""
    m = _DENY_RE.match(rule.strip().lower())
    if m is None or (m.group(1) == "icmp" and m.group(2)):     # icmp has no ports
        raise ValueError(f"filter rule {rule!r} not understood; expected 'tcp|udp [dport N]', 'icmp', "
                         "'src PREFIX' or 'dst PREFIX'")
    if m.group(1):
        out: dict[str, Any] = {"proto": m.group(1)}
        if m.group(2):
            port = int(m.group(2))
            if not 1 <= port <= 65535:
                raise ValueError(f"filter rule {rule!r}: port {port} is outside 1-65535")
            out["dport"] = port
        return out
    return {m.group(3): m.group(4)}


def neighbours(spec: LabSpec) -> dict[str, dict[str, tuple[str, str]]]:
    """node -> peer -> (own interface, peer interface) over the virtual links."""
    from controllers.vlink.model import parse_link

    out: dict[str, dict[str, tuple[str, str]]] = {}
    for name, body in spec.vlinks.items():
        try:
            link = parse_link(body, name)
        except ValueError:
            continue
        if link.type not in ("switch", "hub", "cable", "p2mp"):
            continue
        members = [(m.endpoint, (m.role or "")) for m in link.members]
        for ep_a, role_a in members:
            for ep_b, role_b in members:
                a, ia = ep_a.split(":", 1)
                b, ib = ep_b.split(":", 1)
                if a == b:
                    continue
                if link.type == "p2mp" and "root" not in (role_a, role_b):
                    continue
                out.setdefault(a, {}).setdefault(b, (ia, ib))
    return out


def clusters_of(spec: LabSpec) -> dict[str, list[str]]:
    """Declared clusters plus an implicit one-node cluster for every INODE in none (named after it):
    the ingress INODE's own place heads every flow's assignment list."""
    assert spec.flows is not None
    out = {name: list(c.members) for name, c in spec.flows.clusters.items()}
    placed = {m for ms in out.values() for m in ms}
    for n in spec.nodes:
        if spec.kind_of(n) == "inode" and n not in placed:
            out[n] = [n]
    return out


def check_flows(spec: LabSpec) -> list[Problem]:
    fl = spec.flows
    if fl is None:
        return []
    problems: list[Problem] = []

    def bad(path: str, msg: str) -> None:
        problems.append(Problem(path, msg))

    if not spec.vlinks:
        bad("flows", "flow routing runs over virtual links: add a grid and vlinks joining the flow nodes")
    if not spec.mgmt.enabled:
        bad("flows", "the MNODE talks to the flow nodes over the management network: mgmt.enabled must be true")
    if spec.grid is None or spec.grid.mtu < MIN_MTU:
        have = spec.grid.mtu if spec.grid is not None else 1500
        bad("grid.mtu", f"flow descriptors ride behind full-size packets: the grid needs jumbo frames, "
                        f"mtu: {MIN_MTU} or more (it is {have})")
    if fl.secret is not None and not 8 <= len(fl.secret.encode()) <= 64:
        bad("flows.secret", f"the descriptor signature key must be 8 to 64 bytes, got {len(fl.secret.encode())}")
    if fl.manager not in spec.nodes:
        bad("flows.manager", f"unknown node {fl.manager!r}")
    elif spec.kind_of(fl.manager) != "mnode":
        bad("flows.manager", f"{fl.manager} is of kind {spec.kind_of(fl.manager)}; the manager must be of kind mnode")
    owner: dict[str, str] = {}
    for cname, c in fl.clusters.items():
        path = f"flows.clusters.{cname}"
        kinds = set()
        for i, m in enumerate(c.members):
            if m not in spec.nodes:
                bad(f"{path}.members[{i}]", f"unknown node {m!r}")
                continue
            k = spec.kind_of(m)
            kinds.add(k)
            if k not in ("anode", "inode"):
                bad(f"{path}.members[{i}]", f"{m} is a {k}; cluster members are anode or inode nodes")
            if m in owner:
                bad(f"{path}.members[{i}]", f"{m} is already a member of cluster {owner[m]}")
            owner[m] = cname
        if len(kinds) > 1:
            bad(f"{path}.members", "a cluster holds one kind of node (all anode or all inode)")
        if len(c.members) > 255:
            bad(f"{path}.members", f"{len(c.members)} members; at most 255 (node IDs are one byte)")
        for w, val in c.weights.items():
            if w not in c.members:
                bad(f"{path}.weights.{w}", f"{w} is not a member of {cname}")
            elif not isinstance(val, int) or val < 1:
                bad(f"{path}.weights.{w}", f"weight must be a whole number >= 1, got {val!r}")
        for i, rule in enumerate(c.deny):
            try:
                parse_deny(rule)
            except ValueError as exc:
                bad(f"{path}.deny[{i}]", str(exc))
        if c.deny and c.function != "filter":
            bad(f"{path}.deny", f"deny rules need function: filter (this cluster is a {c.function})")
    for n in spec.nodes:
        if spec.kind_of(n) == "anode" and n not in owner:
            bad(f"nodes.{n}", f"anode {n} is in no cluster of flows.clusters")
    all_clusters = clusters_of(spec) if not problems else {k: list(v.members) for k, v in fl.clusters.items()}
    if len(all_clusters) > MAX_CLUSTERS:
        bad("flows.clusters", f"{len(all_clusters)} clusters (counting one per INODE outside a cluster); at most "
                              f"{MAX_CLUSTERS} (cluster IDs are 6 bits)")
    near = neighbours(spec)

    def is_inode_cluster(c: str) -> bool:
        return bool(all_clusters.get(c)) and all(spec.nodes.get(m) is not None and spec.kind_of(m) == "inode"
                                                 for m in all_clusters[c])

    for pname, seq in fl.paths.items():
        path = f"flows.paths.{pname}"
        for i, c in enumerate(seq):
            if c not in all_clusters:
                bad(f"{path}[{i}]", f"unknown cluster {c!r} (clusters: {', '.join(all_clusters)})")
        if problems:
            continue
        if len(set(seq)) != len(seq):
            bad(path, "a path crosses each cluster once")
        replica_only = pname in {p.replicate for p in fl.policies} and pname not in {p.path for p in fl.policies}
        if replica_only:
            last = fl.clusters.get(seq[-1])
            if last is None or last.function != "recorder":
                bad(f"{path}[{len(seq) - 1}]", f"a replica path ends at a recorder cluster; {seq[-1]} is not one")
        elif not is_inode_cluster(seq[-1]):
            bad(f"{path}[{len(seq) - 1}]", f"a path ends at an INODE cluster (the egress); {seq[-1]} is not one")
        for i, c in enumerate(seq[:-1]):
            if is_inode_cluster(c):
                bad(f"{path}[{i}]", f"{c} is an INODE cluster; only the last cluster of a path may be one")
        for i in range(len(seq) - 1):
            for a in all_clusters[seq[i]]:
                for b in all_clusters[seq[i + 1]]:
                    if b not in near.get(a, {}):
                        bad(f"{path}[{i + 1}]", f"{a} ({seq[i]}) and {b} ({seq[i + 1]}) share no virtual link")
        first = all_clusters[seq[0]]
        ingress = [n for n in spec.nodes if spec.kind_of(n) == "inode" and all(m in near.get(n, {}) for m in first)]
        if not ingress:
            bad(f"{path}[0]", f"no INODE shares a virtual link with every member of {seq[0]}: no flow can enter")
    from emulators.flows.classify import FlowType

    for i, pol in enumerate(fl.policies):
        path = f"flows.policies[{i}]"
        if pol.app is not None and pol.app.upper() not in FlowType.__members__:
            bad(f"{path}.app", f"unknown application {pol.app!r}; flow types: {', '.join(FlowType.__members__)}")
        if pol.path not in fl.paths:
            bad(f"{path}.path", f"unknown path {pol.path!r} (paths: {', '.join(fl.paths)})")
        if pol.replicate is not None:
            if pol.replicate not in fl.paths:
                bad(f"{path}.replicate", f"unknown path {pol.replicate!r}")
            elif pol.path in fl.paths:
                last = fl.paths[pol.replicate][-1]
                rec = fl.clusters.get(last)
                if rec is None or rec.function != "recorder":
                    bad(f"{path}.replicate", f"a replica path ends at a recorder cluster; {last} is not one")
                else:
                    egress = all_clusters.get(fl.paths[pol.path][-1], [])
                    for e in egress:
                        for r in rec.members:
                            if r not in near.get(e, {}):
                                bad(f"{path}.replicate", f"egress {e} shares no virtual link with recorder {r}: "
                                                         "it cannot copy the original flow to it")
    return problems


def _secret(fl: FlowsSpec, prefix: str, lab: str) -> str:
    return fl.secret or hashlib.sha256(f"{prefix}/{lab}/flows".encode()).hexdigest()[:32]


def flow_files(spec: LabSpec, mgmt: dict[str, str], prefix: str) -> dict[str, tuple[str, str]]:
    """node -> (file name, JSON text): the MNODE's plan (clusters with IDs, paths, policies, every node's
    management address) and each flow node's (its interfaces, neighbours' MACs, its function)."""
    from twin.lab.grid import endpoint_mac, grid_of

    fl = spec.flows
    if fl is None or check_flows(spec):
        return {}
    secret = _secret(fl, prefix, spec.name)
    allc = clusters_of(spec)
    near = neighbours(spec)
    grid = grid_of(spec)
    clusters: dict[str, Any] = {}
    for cid, (cname, members) in enumerate(allc.items(), start=1):
        c = fl.clusters.get(cname)
        role = "inode" if spec.kind_of(members[0]) == "inode" else "anode"
        clusters[cname] = {
            "id": cid, "role": role,
            "members": [{"name": m, "node_id": i, "weight": int((c.weights if c else {}).get(m, 1))}
                        for i, m in enumerate(members, start=1)],
            "strategy": c.strategy if c else "discard", "balance": c.balance if c else "rr",
            "function": c.function if c else "counter"}
    policies = [{k: (str(v) if v is not None and k in ("src", "dst") else v)
                 for k, v in p.model_dump().items()} for p in fl.policies]
    inodes = [n for n in spec.nodes if spec.kind_of(n) == "inode"]
    out: dict[str, tuple[str, str]] = {}
    common = {"secret": secret, "manager": fl.manager, "manager_ip": mgmt.get(fl.manager, ""),
              "control_port": CONTROL_PORT, "heartbeat_ms": fl.heartbeat_ms}
    owner = {m: cname for cname, ms in allc.items() for m in ms}
    for cname, ms in allc.items():
        c = fl.clusters.get(cname)
        for n in ms:
            links = [(str(ep.node), ep.intf) for link in spec.links for ep in link.endpoints if ep.node == n]
            grid_intfs = sorted(i for node, i in links if f"{node}:{i}" in grid.attachments)
            ext = sorted(i for node, i in links if f"{node}:{i}" not in grid.attachments)
            nb = {peer: [mine, endpoint_mac(f"{peer}:{theirs}")] for peer, (mine, theirs) in near.get(n, {}).items()
                  if peer in owner}
            plan = {**common, "node": n, "role": spec.kind_of(n), "cluster": owner[n], "mgmt_ip": mgmt.get(n, ""),
                    "ext_intfs": ext, "grid_intfs": grid_intfs, "neighbors": nb,
                    "macs": {i: endpoint_mac(f"{n}:{i}") for i in grid_intfs},
                    "origin": inodes.index(n) + 1 if n in inodes else 0,
                    "udp_idle_s": fl.udp_idle_s, "tcp_idle_s": fl.tcp_idle_s,
                    "function": {"function": c.function if c else "counter",
                                 "deny": [parse_deny(r) for r in (c.deny if c else [])],
                                 "dscp": c.dscp if c else 0}}
            out[n] = (PLAN_FILE, json.dumps(plan, indent=1, sort_keys=True))
    mplan = {**common, "node": fl.manager, "role": "mnode", "selection": fl.selection, "mgmt_ip": mgmt.get(fl.manager, ""),
             "dead_intervals": fl.dead_intervals, "clusters": clusters, "paths": fl.paths, "policies": policies,
             "nodes": {n: {"mgmt_ip": mgmt.get(n, ""), "role": spec.kind_of(n), "cluster": owner[n]} for n in owner}}
    out[fl.manager] = (PLAN_FILE, json.dumps(mplan, indent=1, sort_keys=True))
    return out
