"""The cross-connects of both switches as OpenFlow rules, computed from who holds which role.

Access switch: each customer circuit port of a role is wired to its holder's access port, and back
(a role's several circuits share the holder's port, so traffic from it goes to all of them).
Network switch: the holder's network port goes to the servers' ports; from a server, frames for the
role's MAC go to its holder and everything else (ARP, broadcast) to every holder and the other
servers. A priority-1 drop under all of it keeps spares, failed elements and unprotected circuits
off both switches: only what the manager wired carries traffic.

A substitute clones its role's MACs, so the rule that matches a role's MAC keeps its match and only
changes its output port: `OFPFC_ADD` over an identical match replaces it in one step, which is why
`diff` installs the new rules first and deletes the ones that no longer exist afterwards.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .plan import ClusterPlan

PRIO_ROLE = 110        # a holder's own ports and its customers' ports
PRIO_ROLE_MAC = 105    # server -> the role's MAC
PRIO_SERVER = 100      # server -> everything else (flooded to holders and other servers)
PRIO_ISOLATE = 1       # drop whatever the manager did not wire


@dataclass(frozen=True)
class Rule:
    switch: str
    priority: int
    match: tuple[tuple[str, Any], ...]
    outputs: tuple[str, ...]      # empty: drop

    @property
    def key(self) -> str:
        return json.dumps([self.switch, self.priority, dict(self.match)], sort_keys=True)

    @property
    def actions(self) -> list[dict[str, Any]]:
        return [{"type": "OUTPUT", "port": p} for p in self.outputs]

    def describe(self) -> str:
        m = ",".join(f"{k}={v}" for k, v in self.match) or "*"
        return f"{self.switch} prio {self.priority} {m} -> {','.join(self.outputs) or 'drop'}"


def _rule(switch: str, prio: int, match: Mapping[str, Any], outputs: list[str]) -> Rule:
    return Rule(switch, prio, tuple(sorted(match.items())), tuple(outputs))


def desired_rules(plan: ClusterPlan, holders: Mapping[str, str | None], macs: Mapping[str, str | None]) -> list[Rule]:
    """Every rule the cluster needs when role r is held by holders[r] (None: unprotected)."""
    a, n = plan.access_switch, plan.network_switch
    rules = [_rule(a, PRIO_ISOLATE, {}, []), _rule(n, PRIO_ISOLATE, {}, [])]
    held = [(role, plan.elements[h]) for role in plan.members if (h := holders.get(role))]
    for role, e in held:
        circuits = plan.circuits.get(role, [])
        for c in circuits:
            rules.append(_rule(a, PRIO_ROLE, {"in_port": c}, [e.access_port]))
        if circuits:
            rules.append(_rule(a, PRIO_ROLE, {"in_port": e.access_port}, list(circuits)))
        if plan.server_ports:
            rules.append(_rule(n, PRIO_ROLE, {"in_port": e.network_port}, list(plan.server_ports)))
    for s in plan.server_ports:
        for role, e in held:
            mac = macs.get(role)
            if mac:
                rules.append(_rule(n, PRIO_ROLE_MAC, {"in_port": s, "eth_dst": mac}, [e.network_port]))
        others = [p for p in plan.server_ports if p != s] + [e.network_port for _, e in held]
        rules.append(_rule(n, PRIO_SERVER, {"in_port": s}, others))
    return rules


@dataclass
class Diff:
    add: list[Rule]          # new or changed: installed first
    delete: list[Rule]       # no longer wanted: removed afterwards

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


def diff(installed: Mapping[str, Rule], desired: list[Rule]) -> Diff:
    want = {r.key: r for r in desired}
    add = [r for k, r in want.items() if installed.get(k) != r]
    delete = [r for k, r in installed.items() if k not in want]
    return Diff(add, delete)
