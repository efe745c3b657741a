"""Helpers for the virtual link tests: small grids, link records, and a tiny OpenFlow 1.3 data plane
that follows compiled rules (table 0 -> table 1, tag push/pop/set, trunks to the neighbour switch),
so tests assert where a frame ends up instead of how the rules happen to be spelled."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from controllers.vlink.compiler import Context, LinkRecord, Rule, compile_link, grid_rules
from controllers.vlink.grid import Attachment, Grid, Trunk
from controllers.vlink.model import parse_link

BCAST = "ff:ff:ff:ff:ff:ff"


def mac_for(endpoint: str) -> str:
    """A distinct made-up MAC per endpoint."""
    n = sum((i + 1) * ord(c) for i, c in enumerate(endpoint)) & 0xFFFFFF
    return f"02:aa:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def make_grid(switches: list[str], wiring: Mapping[str, str], trunks: Iterable[tuple[str, str, str, str]] = (),
              macs: bool = True) -> Grid:
    """wiring: endpoint -> 'switch:port'."""
    atts = {}
    for ep, where in wiring.items():
        sw, port = where.split(":", 1)
        atts[ep] = Attachment(ep, sw, port, mac_for(ep) if macs else None)
    return Grid(list(switches), atts, [Trunk(*t) for t in trunks])


def records(*bodies: tuple[str, dict[str, Any]], first_vlan: int = 3000) -> dict[str, LinkRecord]:
    """Link records from (name, body) pairs: ids 1.., VLANs from `first_vlan` unless the body names one."""
    out: dict[str, LinkRecord] = {}
    nxt = first_vlan
    for i, (name, body) in enumerate(bodies):
        spec = parse_link(body, name)
        vlan = spec.vlan
        if vlan is None:
            vlan, nxt = nxt, nxt + 1
        out[name] = LinkRecord(spec, i + 1, vlan)
    return out


def all_rules(ctx: Context, names: Iterable[str] | None = None) -> list[Rule]:
    """Every link's rules plus each switch's grid rules."""
    rules = [r for sw in ctx.grid.switches for r in grid_rules(ctx.grid, sw)]
    for name in names if names is not None else ctx.links:
        for rs in compile_link(name, ctx).values():
            rules += rs
    return rules


def flat(compiled: Mapping[str, list[Rule]]) -> list[Rule]:
    return [r for rs in compiled.values() for r in rs]


def actions(rule: Rule) -> list[dict[str, Any]]:
    return [json.loads(a) for a in rule.actions]


def find(rules: Iterable[Rule], switch: str, table: int, priority: int | None = None, **match: Any) -> Rule:
    want = tuple(sorted(match.items()))
    hits = [r for r in rules if r.switch == switch and r.table == table and r.match == want
            and (priority is None or r.priority == priority)]
    assert len(hits) == 1, (switch, table, priority, match, hits)
    return hits[0]


# ---------------------------------------------------------------------------------------------
# the data plane


@dataclass(frozen=True)
class Frame:
    eth_dst: str = BCAST
    eth_src: str = "02:00:00:00:00:99"
    vlan: tuple[int, int] | None = None       # (vid, pcp) of the outer tag, None: untagged


@dataclass
class Trace:
    delivered: list[tuple[str, str, Frame]] = field(default_factory=list)   # (switch, port, frame)
    controller: list[tuple[str, str]] = field(default_factory=list)         # (switch, in_port)
    hops: int = 0

    def ports(self) -> list[tuple[str, str]]:
        return [(sw, p) for sw, p, _ in self.delivered]


class LoopError(AssertionError):
    pass


def _matches(rule: Rule, in_port: str, f: Frame) -> bool:
    for k, v in rule.match:
        if k == "in_port":
            if v != in_port:
                return False
        elif k == "vlan_vid":
            if f.vlan is None or f.vlan[0] != v:
                return False
        elif k == "vlan_pcp":
            if f.vlan is None or f.vlan[1] != v:
                return False
        elif k == "eth_dst":
            if "/" in v:
                value, mask = v.split("/")
                vb, mb, fb = (int(x.replace(":", ""), 16) for x in (value, mask, f.eth_dst))
                if fb & mb != vb & mb:
                    return False
            elif v.lower() != f.eth_dst.lower():
                return False
        elif k == "eth_src":
            if v.lower() != f.eth_src.lower():
                return False
        else:
            raise AssertionError(f"the simulator does not know match field {k}")
    return True


class DataPlane:
    def __init__(self, grid: Grid, rules: Iterable[Rule], max_hops: int = 64) -> None:
        self.grid = grid
        self.max_hops = max_hops
        self.tables: dict[tuple[str, int], list[Rule]] = {}
        for r in rules:
            self.tables.setdefault((r.switch, r.table), []).append(r)
        for lst in self.tables.values():
            lst.sort(key=lambda r: -r.priority)
        self.peer: dict[tuple[str, str], tuple[str, str]] = {}
        for t in grid.trunks:                       # every cable between switches, on the tree or not
            self.peer[(t.a, t.a_port)] = (t.b, t.b_port)
            self.peer[(t.b, t.b_port)] = (t.a, t.a_port)

    def lookup(self, sw: str, table: int, in_port: str, f: Frame) -> Rule | None:
        hits = [r for r in self.tables.get((sw, table), []) if _matches(r, in_port, f)]
        if len(hits) > 1:
            assert hits[0].priority > hits[1].priority, f"ambiguous overlapping rules: {hits[:2]}"
        return hits[0] if hits else None

    def send(self, sw: str, in_port: str, frame: Frame) -> Trace:
        trace = Trace()
        self._process(trace, sw, in_port, frame, 0)
        return trace

    def send_from(self, endpoint: str, frame: Frame) -> Trace:
        att = self.grid.attachments[endpoint]
        return self.send(att.switch, att.port, frame)

    def _process(self, trace: Trace, sw: str, in_port: str, f: Frame, table: int) -> None:
        trace.hops += 1
        if trace.hops > self.max_hops:
            raise LoopError(f"frame still travelling after {self.max_hops} hops")
        rule = self.lookup(sw, table, in_port, f)
        if rule is None:
            return
        for act in (json.loads(a) for a in rule.actions):
            kind = act["type"]
            if kind == "PUSH_VLAN":
                f = replace(f, vlan=(0, f.vlan[1] if f.vlan else 0))
            elif kind == "POP_VLAN":
                assert f.vlan is not None, "pop of an untagged frame"
                f = replace(f, vlan=None)
            elif kind == "SET_FIELD":
                fld, val = act["field"], act["value"]
                if fld == "vlan_vid":
                    assert f.vlan is not None and val & 0x1000
                    f = replace(f, vlan=(val & 0xFFF, f.vlan[1]))
                elif fld == "vlan_pcp":
                    assert f.vlan is not None
                    f = replace(f, vlan=(f.vlan[0], val))
                elif fld == "eth_dst":
                    f = replace(f, eth_dst=val)
                else:
                    raise AssertionError(fld)
            elif kind == "OUTPUT":
                port = act["port"]
                if port == in_port:
                    continue                # OpenFlow drops a plain output to the packet's own in_port
                if port == "IN_PORT":
                    port = in_port
                if port == "CONTROLLER":
                    trace.controller.append((sw, in_port))
                elif (sw, port) in self.peer:
                    nsw, nport = self.peer[(sw, port)]
                    self._process(trace, nsw, nport, f, 0)
                else:
                    trace.delivered.append((sw, port, f))
            elif kind == "GOTO_TABLE":
                self._process(trace, sw, in_port, f, act["table_id"])
            else:
                raise AssertionError(kind)
