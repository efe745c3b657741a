"""The MNODE's logic ([0052], [0085]): it numbers clusters, nodes and topologies, tells live nodes from
failed ones by their heartbeats, publishes a new topology on every failure, recovery, restart or
operator change, and gathers every node's statistics into the system-wide view.

Sans-IO: `send(ip, type, body)` and the clock are injected, so the decisions are unit-tested
without sockets.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .selection import enumerate_routes
from .topology import ClusterView, Member, Topology

HISTORY_SENT = 16
BOOT_GRACE_S = 20.0
Send = Callable[[str, str, dict[str, Any]], None]


class NodeState:
    __slots__ = ("name", "ip", "cluster", "role", "boot", "last_seen", "alive", "in_service", "report",
                 "flows", "heard", "since")

    def __init__(self, name: str, ip: str, cluster: str, role: str, now: float) -> None:
        self.name, self.ip, self.cluster, self.role = name, ip, cluster, role
        self.boot: float | None = None
        self.last_seen = now
        self.alive = True
        self.in_service = True
        self.report: dict[str, Any] = {}
        self.flows: list[dict[str, Any]] = []
        self.heard = False
        self.since = now


class FlowManager:
    def __init__(self, plan: dict[str, Any], send: Send, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan, self.send, self.clock = plan, send, clock
        now = clock()
        self.started = now
        self.dead_s = plan["heartbeat_ms"] * plan.get("dead_intervals", 3) / 1000.0
        self.nodes = {n: NodeState(n, v["mgmt_ip"], v["cluster"], v["role"], now) for n, v in plan["nodes"].items()}
        clusters = {}
        for name, c in plan["clusters"].items():
            members = [Member(m["name"], int(m["node_id"]), int(m.get("weight", 1))) for m in c["members"]]
            clusters[name] = ClusterView.build(name, int(c["id"]), members, None, c.get("strategy", "redirect"),
                                               c.get("balance", "rr"))
        self.topologies: deque[Topology] = deque([Topology(1, clusters, "boot")], maxlen=128)
        self.events: deque[dict[str, Any]] = deque(maxlen=500)
        self._note(1, "boot", [], [])
        self.paths = {k: list(v) for k, v in plan["paths"].items()}
        self.policies = list(plan.get("policies", []))
        self.functions = {name: c.get("function", "counter") for name, c in plan["clusters"].items()}
        self._last_broadcast = 0.0
        self._last_check = now
        self._hold_until = 0.0
        self.stalls = 0             # times the MNODE doubted its own view (stalls, mass silence)

    # ------------------------------------------------------------------ topology
    @property
    def topology(self) -> Topology:
        return self.topologies[-1]

    def _note(self, tid: int, reason: str, failed: list[str], restored: list[str]) -> None:
        self.events.append({"time": time.time(), "topology": tid, "reason": reason, "failed": failed,
                            "restored": restored})

    def _change(self, failed: list[str], restored: list[str], reason: str) -> Topology:
        t = self.topology.next(failed=failed, restored=restored, reason=reason)
        self.topologies.append(t)
        self._note(t.id, reason, failed, restored)
        self.broadcast()
        return t

    def _live(self, n: NodeState) -> bool:
        return n.alive and n.in_service

    def message(self) -> dict[str, Any]:
        load = {n: float(s.report.get("pps", 0.0)) + float(s.report.get("active", 0)) for n, s in self.nodes.items()}
        return {"history": [t.to_dict() for t in list(self.topologies)[-HISTORY_SENT:]],
                "selection": self.plan.get("selection", "centralized"), "paths": self.paths,
                "policies": self.policies, "functions": self.functions, "load": load}

    def broadcast(self) -> None:
        self._last_broadcast = self.clock()
        msg = self.message()
        for n in self.nodes.values():
            if n.ip:
                self.send(n.ip, "topo", msg)

    # ------------------------------------------------------------------ inputs
    def on_message(self, type_: str, sender: str, boot: float, body: dict[str, Any], ip: str) -> str | None:
        """A node's heartbeat or statistics; returns why it was refused, or None."""
        n = self.nodes.get(sender)
        if n is None:
            return f"stranger: {sender!r} is not a flow node of this system"
        if n.ip and ip != n.ip:
            return f"stranger: {sender} speaks from {ip}, its management address is {n.ip}"
        now = self.clock()
        restarted = n.boot is not None and boot != n.boot
        n.boot = boot
        n.last_seen = now
        first = not n.heard
        n.heard = True
        if type_ == "stats":
            n.report = dict(body.get("report", {}))
            n.flows = list(body.get("flows", []))
        elif type_ == "hb":
            n.report.update({k: body[k] for k in ("pps", "active", "topology") if k in body})
        if not n.alive:
            n.alive = True
            n.since = now
            if n.in_service:
                self._change([], [sender], f"{sender} is back")
        elif restarted and n.in_service:
            # a restarted node lost its flows' state: a failure and a recovery, two topologies
            self._change([sender], [], f"{sender} restarted")
            self._change([], [sender], f"{sender} is back after a restart")
        elif first or body.get("topology") != self.topology.id:
            self.send(n.ip, "topo", self.message())
        return None

    def check(self) -> None:
        """Declare nodes whose heartbeats stopped failed; resend the topology every second.

        Silence only means failure while the MNODE itself keeps up: after a stall of its own (its
        checks came late, so it may not have read its socket either) every node gets a fresh dead
        interval, and when most nodes fall silent at once the MNODE, not the system, is the suspect."""
        now = self.clock()
        gap, self._last_check = now - self._last_check, now
        if gap > self.dead_s / 2:
            self._hold_until = now + self.dead_s
            self.stalls += 1
        dead = []
        for n in self.nodes.values() if now >= self._hold_until else ():
            limit = self.dead_s if n.heard else max(self.dead_s, BOOT_GRACE_S)
            if n.alive and now - (n.last_seen if n.heard else self.started) > limit:
                n.alive = False
                n.since = now
                if n.in_service:
                    dead.append(n.name)
        if dead and len(dead) > max(1, len(self.nodes) // 2):
            for name in dead:                   # not believed: give them another interval
                self.nodes[name].alive = True
                self.nodes[name].last_seen = now
            self.stalls += 1
            dead = []
        if dead:
            self._change(dead, [], f"{', '.join(sorted(dead))} stopped answering")
        elif now - self._last_broadcast >= 1.0:
            self.broadcast()

    def set_service(self, node: str, in_service: bool) -> Topology:
        """An operator change ([0085]): take a node out of service or put it back."""
        n = self.nodes.get(node)
        if n is None:
            raise KeyError(f"unknown flow node {node!r} (nodes: {', '.join(sorted(self.nodes))})")
        if n.in_service == in_service:
            return self.topology
        n.in_service = in_service
        if not n.alive:
            return self.topology
        if in_service:
            return self._change([], [node], f"operator: {node} in service")
        return self._change([node], [], f"operator: {node} out of service")

    def set_selection(self, mode: str) -> str:
        """An operator change of next-hop selection ([0069]); flows already running keep theirs,
        since their descriptors carry node IDs (centralized) or none (distributed)."""
        if mode not in ("centralized", "distributed"):
            raise ValueError(f"selection must be centralized or distributed, not {mode!r}")
        self.plan["selection"] = mode
        self._note(self.topology.id, f"operator: {mode} next-hop selection", [], [])
        self.broadcast()
        return mode

    # ------------------------------------------------------------------ views
    def routes(self) -> list[dict[str, Any]]:
        """Every flow route of every path ([0064]) and the flows each one carries now."""
        counts: dict[tuple[str, tuple[str, ...]], int] = {}
        for f in self.flows():
            if f.get("role") == "ingress" and f.get("path") in self.paths:
                key = (f["path"], tuple(f["route"][1:1 + len(self.paths[f["path"]])]))
                counts[key] = counts.get(key, 0) + 1
        return [{"path": path, "route": list(nodes), "flows": counts.get((path, tuple(nodes)), 0)}
                for path, nodes in enumerate_routes(self.paths, self.topology)]

    def flows(self) -> list[dict[str, Any]]:
        out = []
        for n in self.nodes.values():
            for f in n.flows:
                out.append({**f, "node": n.name})
        return out

    def node_table(self) -> list[dict[str, Any]]:
        now = self.clock()
        topo = self.topology
        rows = []
        for n in self.nodes.values():
            view = topo.clusters.get(n.cluster)
            node_id = view.member(n.name).node_id if view else 0
            rows.append({"node": n.name, "role": n.role, "cluster": n.cluster,
                         "cluster_id": view.cluster_id if view else 0, "node_id": node_id,
                         "state": "up" if n.alive else "down", "service": "in" if n.in_service else "out",
                         "live": bool(view and n.name in view.live), "backup": view.backups.get(n.name) if view else None,
                         "last_heard_ms": round((now - n.last_seen) * 1000) if n.heard else None,
                         "topology": n.report.get("topology"), "active": n.report.get("active", 0),
                         "pps": n.report.get("pps", 0.0), "counters": n.report.get("counters", {}),
                         "latency_us": n.report.get("latency_us", {}), "setup_us": n.report.get("setup_us", {})})
        return rows

    def summary(self) -> dict[str, Any]:
        return {"topology": self.topology.to_dict(), "selection": self.plan.get("selection", "centralized"),
                "paths": self.paths, "policies": self.policies, "events": list(self.events),
                "routes": len(enumerate_routes(self.paths, self.topology)), "stalls": self.stalls}
