"""Virtual links -> OpenFlow 1.3 rules, as a pure function of the links, the grid and what was learned.

Layout on every grid switch (see docs/vlinks.md):

* table 0 admits: a member port's frames (and copies unknown source MACs to the controller for the
  link types that learn), tagged frames from tree trunks; everything else hits a priority-1 drop.
* table 1 forwards, keyed by where a frame came from. A frame from a member port gets the link's VLAN
  tag pushed; a frame on a trunk carries it. The tag's priority bits (PCP) carry the sender's class
  (cable side A or B, p2mp root or leaf, ...), so a transit switch knows the delivery set without
  per-direction VLANs: each link keeps exactly one VLAN ID. Tags are popped at member ports, so nodes
  see plain Ethernet.
* copies for replicated links and probes leave at the switch where the frame enters (or is
  delivered to a probed interface) and travel on the copy link's own VLAN; they are taken before any
  destination MAC rewrite, so a probe sees the original addresses.

Because the result is deterministic, installing a link, reprogramming it after a controller restart
and reconciling a switch that lost rules are all the same operation: compile, then diff (`diff`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.vlink.grid import Grid
from controllers.vlink.model import VLinkSpec

TABLE_ADMIT, TABLE_FORWARD = 0, 1
PRIO_GRID_DROP = 1
PRIO_ADMIT, PRIO_ADMIT_KNOWN = 100, 110
PRIO_FWD, PRIO_FWD_MCAST, PRIO_FWD_LEARNED = 100, 110, 120
MCAST = "01:00:00:00:00:00/01:00:00:00:00:00"
COOKIE_BASE = 0x7B << 56
GRID_COOKIE = 0x7A << 56
COOKIE_MASK = 0xFF << 56
CLASS_ANY, CLASS_ROOT, CLASS_OTHER = 0, 1, 2   # PCP values carried on trunks

COPY_TYPES = ("replicated", "probe")
LEARNING_TYPES = ("switch", "hub", "p2mp", "external", "clustered", "replicated")
UNICAST_TYPES = ("switch", "hub", "p2mp", "external")   # types whose delivery depends on the learned owner


def link_cookie(link_id: int) -> int:
    return COOKIE_BASE | ((link_id & 0xFFFFFF) << 8)


@dataclass(frozen=True)
class LinkRecord:
    """A stored link: the operator's spec plus what the manager assigned."""

    spec: VLinkSpec
    id: int
    vlan: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cookie(self) -> int:
        return link_cookie(self.id)


@dataclass
class Context:
    """Everything besides the links that decides the rules."""

    grid: Grid
    links: dict[str, LinkRecord]
    learned: dict[str, dict[str, str]] = field(default_factory=dict)   # link -> mac -> endpoint
    active: dict[str, str] = field(default_factory=dict)               # resilient link -> active endpoint
    macs: dict[str, str] = field(default_factory=dict)                 # endpoint -> its MAC, when known

    def mac_of(self, link: str, endpoint: str) -> str | None:
        for mac, ep in self.learned.get(link, {}).items():
            if ep == endpoint:
                return mac
        return self.macs.get(endpoint) or (self.grid.attachments[endpoint].mac
                                           if endpoint in self.grid.attachments else None)


@dataclass(frozen=True)
class Rule:
    switch: str
    table: int
    priority: int
    match: tuple[tuple[str, Any], ...]
    actions: tuple[str, ...]        # JSON of each action, hashable
    cookie: int

    @property
    def key(self) -> tuple[str, int, int, tuple[tuple[str, Any], ...]]:
        return (self.switch, self.table, self.priority, self.match)

    def body(self) -> dict[str, Any]:
        """The POST /flows body for this rule."""
        return {"switch": self.switch, "table_id": self.table, "priority": self.priority,
                "match": dict(self.match), "actions": [json.loads(a) for a in self.actions],
                "cookie": self.cookie}


def _rule(switch: str, table: int, priority: int, match: Mapping[str, Any], actions: Iterable[Mapping[str, Any]],
          cookie: int) -> Rule:
    return Rule(switch, table, priority, tuple(sorted(match.items())),
                tuple(json.dumps(a, sort_keys=True) for a in actions), cookie)


@dataclass(frozen=True)
class Port:
    """One place a link touches the grid: a member interface, or an external link's external port."""

    index: int
    endpoint: str
    switch: str
    port: str
    role: str
    tagged: bool = False        # external tagged port: frames carry the link's VLAN there
    promiscuous: bool = False


@dataclass(frozen=True)
class Out:
    port: str
    vlan: int | None            # None: untagged
    pcp: int = 0
    mac: str | None = None      # rewrite the destination MAC to this


# ---------------------------------------------------------------------------------------------
# who talks to whom


def ports_of(rec: LinkRecord, grid: Grid) -> list[Port]:
    spec = rec.spec
    out = []
    for i, m in enumerate(spec.members):
        att = grid.attachments[m.endpoint]
        out.append(Port(i, m.endpoint, att.switch, att.port, spec.role_of(i), promiscuous=m.promiscuous))
    if spec.type == "external" and spec.external is not None:
        sw, port = spec.external.port.split(":", 1)
        out.append(Port(len(out), external_endpoint(spec), sw, port, "external",
                        tagged=spec.external.tagged))
    return out


@dataclass
class Policy:
    cls: dict[int, int]                   # sender index -> class (PCP)
    sends: set[int]                       # members whose frames the link carries
    learn_from: set[int]                  # members whose unknown source MACs go to the controller
    flood: dict[int, set[int]]            # class -> receivers of broadcast/multicast/unknown unicast
    unicast: dict[tuple[int, int], set[int]]  # (class, owner index) -> receivers; only UNICAST_TYPES
    rewrite: set[int]                     # receivers whose unicast destination MAC becomes their own


def policy(rec: LinkRecord, ports: list[Port], ctx: Context) -> Policy:
    spec, t = rec.spec, rec.spec.type
    idx = [p.index for p in ports]
    by_role: dict[str, set[int]] = {}
    for p in ports:
        by_role.setdefault(p.role, set()).add(p.index)
    cls: dict[int, int] = {}
    flood: dict[int, set[int]] = {}
    unicast: dict[tuple[int, int], set[int]] = {}
    rewrite: set[int] = set()
    learn_from = set(idx) if t in LEARNING_TYPES else set()
    if t == "cable":
        for i in by_role.get("a", ()):
            cls[i] = CLASS_ROOT
        for i in by_role.get("b", ()):
            cls[i] = CLASS_OTHER
        flood = {CLASS_ROOT: set(by_role.get("b", ())), CLASS_OTHER: set(by_role.get("a", ()))}
    elif t in ("switch", "external", "hub"):
        cls = {i: CLASS_ANY for i in idx}
        flood = {CLASS_ANY: set(idx)}
        promisc = {p.index for p in ports if p.promiscuous}
        for owner in idx:
            unicast[(CLASS_ANY, owner)] = ({owner} | promisc) if t == "hub" else {owner}
    elif t == "p2mp":
        root, leaves = by_role["root"], by_role.get("leaf", set())
        cls = {**{i: CLASS_ROOT for i in root}, **{i: CLASS_OTHER for i in leaves}}
        flood = {CLASS_ROOT: set(leaves), CLASS_OTHER: set(root)}
        if not spec.hub_mode:
            for owner in idx:
                unicast[(CLASS_ROOT, owner)] = {owner} & leaves
                unicast[(CLASS_OTHER, owner)] = {owner} & root
        else:
            learn_from = set()
    elif t == "resilient":
        root = by_role["root"]
        active_ep = ctx.active.get(rec.name)
        active = {p.index for p in ports if p.endpoint == active_ep and p.role in ("primary", "standby")}
        if not active:
            active = set(by_role["primary"])
        cls = {**{i: CLASS_ROOT for i in root}, **{i: CLASS_OTHER for i in active}}
        flood = {CLASS_ROOT: set(active), CLASS_OTHER: set(root)}
        rewrite = set(active)   # the standby answers for the primary: unicast reaches it with its own MAC
    elif t == "clustered":
        root, members = by_role["root"], by_role.get("member", set())
        cls = {i: CLASS_ROOT for i in root}
        flood = {CLASS_ROOT: set(members)}
        rewrite = set(members)
    elif t == "replicated":
        rewrite = set(idx)
    # probe: collectors only receive copies
    sends = set(cls)
    return Policy(cls, sends, learn_from, flood, unicast, rewrite)


def copy_sources(rec: LinkRecord, ctx: Context) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(copies of frames sent by endpoint, copies of frames delivered to endpoint) -> copy link names."""
    sent: dict[str, list[str]] = {}
    delivered: dict[str, list[str]] = {}
    members = rec.spec.endpoints()
    if rec.spec.external is not None:      # a link probe also sees what enters at the external port
        members = [*members, external_endpoint(rec.spec)]
    for other in ctx.links.values():
        s = other.spec
        if s.type == "replicated" and s.tap == rec.name:
            src = s.source or default_source(rec.spec)
            sent.setdefault(src, []).append(s.name)
        elif s.type == "probe":
            for pt in s.points:
                if pt.link == rec.name:
                    for ep in members:
                        sent.setdefault(ep, []).append(s.name)
                elif pt.interface in members:
                    sent.setdefault(pt.interface, []).append(s.name)
                    delivered.setdefault(pt.interface, []).append(s.name)
    return ({k: list(dict.fromkeys(v)) for k, v in sent.items()},
            {k: list(dict.fromkeys(v)) for k, v in delivered.items()})


def external_endpoint(spec: VLinkSpec) -> str:
    """The name an external link's external port goes by among its ports."""
    return f"external {spec.external.port}" if spec.external is not None else ""


def switch_of(endpoint: str, grid: Grid) -> str | None:
    if endpoint.startswith("external "):
        return endpoint.split(" ", 1)[1].split(":", 1)[0]
    att = grid.attachments.get(endpoint)
    return att.switch if att else None


def default_source(spec: VLinkSpec) -> str:
    roots = spec.with_role("root") or spec.with_role("a")
    return (roots[0] if roots else spec.members[0]).endpoint


def copy_origins(copy: LinkRecord, ctx: Context) -> set[str]:
    """Switches where copies for a replicated link or probe enter the grid."""
    out: set[str] = set()
    for rec in ctx.links.values():
        if rec.name == copy.name or rec.spec.type in COPY_TYPES:
            continue
        sent, delivered = copy_sources(rec, ctx)
        for ep, names in (*sent.items(), *delivered.items()):
            sw = switch_of(ep, ctx.grid)
            if copy.name in names and sw is not None:
                out.add(sw)
    return out


# ---------------------------------------------------------------------------------------------
# rules


def grid_rules(grid: Grid, switch: str) -> list[Rule]:
    """What every grid switch has whatever the links: drop by default, admit tagged frames on trunks."""
    rules = [_rule(switch, TABLE_ADMIT, PRIO_GRID_DROP, {}, [], GRID_COOKIE),
             _rule(switch, TABLE_FORWARD, 0, {}, [], GRID_COOKIE)]
    for t in grid.trunk_ports(switch):
        rules.append(_rule(switch, TABLE_ADMIT, PRIO_ADMIT, {"in_port": t}, [_goto()], GRID_COOKIE))
    return rules


def _goto() -> dict[str, Any]:
    return {"type": "GOTO_TABLE", "table_id": TABLE_FORWARD}


def _output(port: str) -> dict[str, Any]:
    return {"type": "OUTPUT", "port": port}


def build_actions(arrival: tuple[int, int | None] | None, outs: Iterable[Out],
                  in_port: str | None = None) -> list[dict[str, Any]]:
    """The action list delivering one frame to every `Out`, from a frame untagged (None) or tagged
    (vlan, pcp or None if unknown). Tagged outputs go first, then the tag is popped; destination MAC
    rewrites come last, so every other copy leaves with the original addresses. An output back to the
    arrival port (a probe copy returning over the trunk it came in on) must say IN_PORT: OpenFlow
    drops a plain output to the packet's own in_port."""
    outs = sorted({Out("IN_PORT" if o.port == in_port else o.port, o.vlan, o.pcp, o.mac) for o in outs},
                  key=lambda o: (o.vlan is None, o.vlan or 0, o.pcp, o.mac or "", o.port))
    acts: list[dict[str, Any]] = []
    cur: tuple[int, int | None] | None = arrival
    for o in outs:
        if o.vlan is None:
            continue
        if cur is None:
            acts.append({"type": "PUSH_VLAN", "ethertype": 0x8100})
            cur = (0, 0)
        if cur[0] != o.vlan:
            acts.append({"type": "SET_FIELD", "field": "vlan_vid", "value": 0x1000 | o.vlan})
        if cur[1] != o.pcp:
            acts.append({"type": "SET_FIELD", "field": "vlan_pcp", "value": o.pcp})
        cur = (o.vlan, o.pcp)
        acts.append(_output(o.port))
    plain = [o for o in outs if o.vlan is None]
    if plain and cur is not None:
        acts.append({"type": "POP_VLAN"})
    for o in plain:
        if o.mac:
            acts.append({"type": "SET_FIELD", "field": "eth_dst", "value": o.mac})
        acts.append(_output(o.port))
    return acts


@dataclass
class _Compiled:
    rec: LinkRecord
    ports: list[Port]
    pol: Policy
    sent: dict[str, list[str]]
    delivered: dict[str, list[str]]


def compile_link(name: str, ctx: Context) -> dict[str, list[Rule]]:
    """Every rule of one link, per switch."""
    rec = ctx.links[name]
    grid = ctx.grid
    ports = ports_of(rec, grid)
    pol = policy(rec, ports, ctx)
    sent, delivered = copy_sources(rec, ctx)
    c = _Compiled(rec, ports, pol, sent, delivered)
    switches = {p.switch for p in ports}
    if rec.spec.type in COPY_TYPES:
        switches |= copy_origins(rec, ctx)
    span = grid.span(sorted(switches, key=grid.switches.index))
    out: dict[str, list[Rule]] = {}
    learned = ctx.learned.get(name, {})
    cookie = rec.cookie
    for sw in sorted(span, key=grid.switches.index):
        rules: list[Rule] = []
        local = [p for p in ports if p.switch == sw]
        # table 0: admission from member ports
        for p in local:
            m = {"in_port": p.port, **({"vlan_vid": rec.vlan} if p.tagged else {})}
            own_macs = sorted(mac for mac, ep in learned.items() if ep == p.endpoint)
            if p.index in pol.sends:
                learn = [{"type": "OUTPUT", "port": "CONTROLLER", "max_len": 128}] if p.index in pol.learn_from else []
                rules.append(_rule(sw, TABLE_ADMIT, PRIO_ADMIT, m, [*learn, _goto()], cookie))
                for mac in own_macs if learn else []:
                    rules.append(_rule(sw, TABLE_ADMIT, PRIO_ADMIT_KNOWN, {**m, "eth_src": mac}, [_goto()], cookie))
            elif p.index in pol.learn_from:
                rules.append(_rule(sw, TABLE_ADMIT, PRIO_ADMIT, m,
                                   [{"type": "OUTPUT", "port": "CONTROLLER", "max_len": 128}], cookie))
                for mac in own_macs:
                    rules.append(_rule(sw, TABLE_ADMIT, PRIO_ADMIT_KNOWN, {**m, "eth_src": mac}, [], cookie))
        # table 1: frames from local senders
        for p in local:
            if p.index not in pol.sends:
                continue
            m = {"in_port": p.port, **({"vlan_vid": rec.vlan} if p.tagged else {})}
            arrival = (rec.vlan, None) if p.tagged else None
            rules += _forward(c, ctx, sw, m, arrival, pol.cls[p.index], from_port=p)
        # table 1: frames arriving tagged on trunks
        for t in grid.trunk_ports(sw):
            nbr = grid.neighbour(sw, t)
            if nbr not in span:
                continue
            if rec.spec.type in COPY_TYPES:
                rules += _forward_copy_transit(c, ctx, sw, t)
                continue
            beyond = grid._beyond(sw, nbr)
            for klass in sorted({pol.cls[i] for i in pol.sends if ports[i].switch in beyond}):
                m = {"in_port": t, "vlan_vid": rec.vlan, "vlan_pcp": klass}
                rules += _forward(c, ctx, sw, m, (rec.vlan, klass), klass, from_trunk=t)
        if rules:
            out[sw] = rules
    return out


def _deliver(c: _Compiled, ctx: Context, sw: str, klass: int, targets: set[int], unicast: bool,
             from_port: Port | None, from_trunk: str | None) -> set[Out]:
    grid, rec = ctx.grid, c.rec
    outs: set[Out] = set()
    local_delivered = []
    for i in sorted(targets):
        p = c.ports[i]
        if p.switch != sw or (from_port is not None and p.index == from_port.index):
            continue
        local_delivered.append(p)
        if p.tagged:
            outs.add(Out(p.port, rec.vlan, 0))
        else:
            mac = ctx.mac_of(rec.name, p.endpoint) if (unicast and i in c.pol.rewrite) else None
            outs.add(Out(p.port, None, 0, mac))
    far = {c.ports[i].switch for i in targets} - {sw}
    for t in grid.toward(sw, far, exclude=from_trunk):
        outs.add(Out(t, rec.vlan, klass))
    copies: list[str] = []
    if from_port is not None:
        copies += c.sent.get(from_port.endpoint, [])
    for p in local_delivered:
        copies += c.delivered.get(p.endpoint, [])
    for name in dict.fromkeys(copies):
        outs |= _copy_outputs(ctx, sw, name, unicast, from_trunk=None)
    return outs


def _copy_outputs(ctx: Context, sw: str, name: str, unicast: bool, from_trunk: str | None,
                  ) -> set[Out]:
    """Deliver one copy on copy link `name` from switch `sw`: to its local receivers and toward the rest."""
    rec = ctx.links.get(name)
    if rec is None:
        return set()
    outs: set[Out] = set()
    ports = ports_of(rec, ctx.grid)
    rewrite = rec.spec.type == "replicated" and unicast
    for p in ports:
        if p.switch == sw:
            outs.add(Out(p.port, None, 0, ctx.mac_of(name, p.endpoint) if rewrite else None))
    far = {p.switch for p in ports} - {sw}
    for t in ctx.grid.toward(sw, far, exclude=from_trunk):
        outs.add(Out(t, rec.vlan, CLASS_ANY))
    return outs


def _kinds(c: _Compiled, ctx: Context, klass: int) -> list[tuple[int, dict[str, Any], set[int], bool]]:
    """(priority, eth_dst match, receivers, unicast) for each kind of destination a sender's frame may have."""
    pol = c.pol
    flood = pol.flood.get(klass, set())
    kinds: list[tuple[int, dict[str, Any], set[int], bool]] = []
    if c.rec.spec.type in UNICAST_TYPES and not (c.rec.spec.type == "p2mp" and c.rec.spec.hub_mode):
        index_of = {p.endpoint: p.index for p in c.ports}
        for mac, ep in sorted(ctx.learned.get(c.rec.name, {}).items()):
            if ep in index_of:
                kinds.append((PRIO_FWD_LEARNED, {"eth_dst": mac},
                              pol.unicast.get((klass, index_of[ep]), set()), True))
    kinds.append((PRIO_FWD_MCAST, {"eth_dst": MCAST}, flood, False))
    kinds.append((PRIO_FWD, {}, flood, True))
    return kinds


def _forward(c: _Compiled, ctx: Context, sw: str, match: dict[str, Any], arrival: tuple[int, int | None] | None,
             klass: int, from_port: Port | None = None, from_trunk: str | None = None) -> list[Rule]:
    rules = []
    kinds = _kinds(c, ctx, klass)
    resolved = [(prio, m, _deliver(c, ctx, sw, klass, targets, uni, from_port, from_trunk))
                for prio, m, targets, uni in kinds]
    default = resolved[-1][2]
    for prio, m, outs in resolved:
        if prio == PRIO_FWD_MCAST and outs == default:
            continue     # no rewrite anywhere: one rule serves every destination
        if prio == PRIO_FWD and not outs:
            continue     # nothing to deliver: table 1's miss drops it
        rules.append(_rule(sw, TABLE_FORWARD, prio, {**match, **m}, build_actions(arrival, outs, match["in_port"]),
                           c.rec.cookie))
    return rules


def _forward_copy_transit(c: _Compiled, ctx: Context, sw: str, trunk: str) -> list[Rule]:
    m = {"in_port": trunk, "vlan_vid": c.rec.vlan, "vlan_pcp": CLASS_ANY}
    arrival = (c.rec.vlan, CLASS_ANY)
    uni = _copy_outputs(ctx, sw, c.rec.name, True, from_trunk=trunk)
    multi = _copy_outputs(ctx, sw, c.rec.name, False, from_trunk=trunk)
    if not uni and not multi:
        return []
    rules = [_rule(sw, TABLE_FORWARD, PRIO_FWD, m, build_actions(arrival, uni, trunk), c.rec.cookie)]
    if multi != uni:
        rules.append(_rule(sw, TABLE_FORWARD, PRIO_FWD_MCAST, {**m, "eth_dst": MCAST},
                           build_actions(arrival, multi, trunk), c.rec.cookie))
    return rules


# ---------------------------------------------------------------------------------------------
# applying


def dependents(name: str, ctx: Context) -> list[str]:
    """Links whose rules change when `name` is created or deleted: the links it copies from."""
    rec = ctx.links.get(name)
    if rec is None:
        return []
    out = list(rec.spec.references())
    for p in rec.spec.points:
        if p.interface:
            out += [r.name for r in ctx.links.values() if p.interface in r.spec.endpoints()
                    and r.spec.type not in COPY_TYPES]
    return [n for n in dict.fromkeys(out) if n in ctx.links and n != name]


def diff(want: Iterable[Rule], have: Iterable[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(rules to add or replace, rules to delete) to turn `have` into `want`."""
    want_by = {r.key: r for r in want}
    have_by = {r.key: r for r in have}
    add = [r for k, r in want_by.items() if have_by.get(k) != r]
    delete = [r for k, r in have_by.items() if k not in want_by]
    return add, delete
