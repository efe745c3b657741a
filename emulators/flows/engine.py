"""The flow engine of one INODE or ANODE: flow management at the ingress, flow routing at every hop
([0061], [0066]). Pure logic over frames; `PacketIO` (io.py) feeds it and sends what it returns.

A flow's descriptor carries the flow's cluster sequence as its assignment list: the ingress INODE's
own cluster first, then the path's clusters in order (the egress INODE cluster last), then, after
the egress, a recorder the egress copies the flow to when the policy replicates it; entries marked
RESERVED are nodes reserved off the path ([0082]). A node finds its own cluster in that list: the
next entry is the next hop forward, the previous one the next hop in reverse. Which node of that
cluster is `failover.route_hop` from the descriptor's node ID (centralized) or the flow ID hashed
over the n of the flow's topology (distributed), so both directions of a flow agree ([0065], [0080]).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .classify import FlowClassifier, FlowEntry, FlowType
from .descriptor import (Assignment, Descriptor, DescriptorError, Flags, attach, detach, mac_bytes)
from .failover import ordered, route_hop
from .functions import PROTOS, make_function
from .packet import PROTO_TCP, parse_l3
from .selection import Balancer, Hop, hash_pick, make_balancer
from .topology import Topology, TopologyHistory

log = logging.getLogger(__name__)

LINGER_S = 2.0
# the flags as plain ints: IntFlag arithmetic costs microseconds per packet
SOF, EOF, REVERSE, REPLICA, BACKUP, COPY = (int(f) for f in (Flags.SOF, Flags.EOF, Flags.REVERSE, Flags.REPLICA,
                                                             Flags.BACKUP, Flags.COPY))
SendGrid = Callable[[str, bytes], None]
SendExt = Callable[[bytes], None]


class Policy:
    """One operator policy ([0060]) compiled for the packet path."""

    __slots__ = ("path", "replicate", "src", "dst", "proto", "dport", "app", "text")

    def __init__(self, d: dict[str, Any]) -> None:
        self.path, self.replicate = str(d["path"]), d.get("replicate")
        self.src = _net(d.get("src"))
        self.dst = _net(d.get("dst"))
        self.proto = PROTOS.get(d["proto"]) if d.get("proto") else None
        self.dport = d.get("dport")
        app = d.get("app")
        self.app = FlowType[app.upper()].value if app else None
        self.text = " ".join(f"{k} {v}" for k, v in d.items() if v is not None and k not in ("path", "replicate"))

    def matches(self, info: Any, flow_type: int) -> bool:
        if self.src and int.from_bytes(info.src, "big") & self.src[1] != self.src[0]:
            return False
        if self.dst and int.from_bytes(info.dst, "big") & self.dst[1] != self.dst[0]:
            return False
        if self.proto is not None and info.proto != self.proto:
            return False
        if self.dport is not None and info.dport != self.dport:
            return False
        return self.app is None or flow_type == self.app


def _net(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    n = ipaddress.IPv4Network(text, strict=False)
    return int(n.network_address), int(n.netmask)


class Transit:
    """What a node remembers of a flow it carries ([0066] c, [0080] a): counters per direction, the
    previous hop each way and where the flow went."""

    __slots__ = ("flow_id", "flow_type", "topo", "tuple", "created", "last", "pkts", "bytes", "prev", "next",
                 "action", "role", "ended", "path", "idle", "replica", "copies", "payloads")

    def __init__(self, d: Descriptor, now: float, role: str, tup: str, path: list[str], idle: float) -> None:
        self.flow_id, self.flow_type, self.topo = d.flow_id, d.flow_type, d.topology
        self.tuple, self.path, self.role, self.idle = tup, path, role, idle
        self.created = self.last = now
        self.pkts = [0, 0]
        self.bytes = [0, 0]
        self.prev: list[str | None] = [None, None]
        self.next: list[str | None] = [None, None]
        self.action = ""
        self.ended = 0.0
        self.replica = bool(d.flags & Flags.REPLICA)
        self.copies = [0, 0]            # recorder: originals, replicas
        self.payloads: list[deque[bytes]] = [deque(maxlen=4096), deque(maxlen=4096)]


class NodeStats:
    """Per-node counters and processing latency ([0052], [0066] g)."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.latency_us: deque[float] = deque(maxlen=4096)
        self.setup_us: deque[float] = deque(maxlen=4096)
        self._rate_mark = (time.monotonic(), 0)
        self.pps = 0.0

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    def rate(self, now: float) -> float:
        t0, n0 = self._rate_mark
        n = self.counters.get("rx_packets", 0)
        if now - t0 >= 1.0:
            self.pps = (n - n0) / (now - t0)
            self._rate_mark = (now, n)
        return self.pps

    def summary(self) -> dict[str, Any]:
        def pct(vals: deque[float], p: float) -> float | None:
            if not vals:
                return None
            s = sorted(vals)
            return round(s[min(len(s) - 1, int(p * len(s)))], 1)
        return {"counters": dict(self.counters), "pps": round(self.pps, 1),
                "latency_us": {"p50": pct(self.latency_us, 0.5), "p99": pct(self.latency_us, 0.99)},
                "setup_us": {"p50": pct(self.setup_us, 0.5), "p99": pct(self.setup_us, 0.99)}}


def tuple_text(l3: bytes) -> str:
    i = parse_l3(l3)
    if i is None:
        return "?"
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(i.proto, str(i.proto))
    return f"{proto} {socket.inet_ntoa(i.src)}:{i.sport} > {socket.inet_ntoa(i.dst)}:{i.dport}"


class FlowEngine:
    """See the module docstring. Called from one packet thread; `control` (topology updates) may be
    called from another: it swaps whole objects, which the packet path reads once per packet."""

    def __init__(self, plan: dict[str, Any], send_grid: SendGrid, send_ext: SendExt,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.name: str = plan["node"]
        self.role: str = plan["role"]
        self.cluster: str = plan["cluster"]
        self.key = str(plan["secret"]).encode()
        self.send_grid, self.send_ext, self.clock = send_grid, send_ext, clock
        self.neighbors = {p: (v[0], mac_bytes(v[1])) for p, v in plan.get("neighbors", {}).items()}
        self.macs = {i: mac_bytes(m) for i, m in plan.get("macs", {}).items()}
        self.function = make_function(plan.get("function", {}))
        self.is_recorder = plan.get("function", {}).get("function") == "recorder"
        self.udp_idle = float(plan.get("udp_idle_s", 30.0))
        self.tcp_idle = float(plan.get("tcp_idle_s", 300.0))
        self.classifier = FlowClassifier(int(plan.get("origin", 0)), clock=clock, udp_idle_s=self.udp_idle,
                                         tcp_idle_s=self.tcp_idle)
        self.stats = NodeStats()
        self.history = TopologyHistory(128)
        self.topologies: list[Topology] = []
        self.selection = "centralized"
        self.paths: dict[str, list[str]] = {}
        self.policies: list[Policy] = []
        self.functions: dict[str, str] = {}
        self.load: dict[str, float] = {}
        self.by_id: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.my_cluster_id = 0
        self.my_node_id = 0
        self.balancers: dict[str, Balancer] = {}
        self.active: dict[str, int] = {}
        self.transit: dict[tuple[int, bool], Transit] = {}
        self._hop_cache: dict[tuple[int, int, int, int], Hop] = {}
        self._marked: dict[tuple[Assignment, ...], tuple[Assignment, ...]] = {}
        self._mac_owner = {mac: name for name, (_, mac) in self.neighbors.items()}
        self._last_tick = 0.0
        self.ready = False

    # ------------------------------------------------------------------ control plane
    def control(self, msg: dict[str, Any]) -> bool:
        """A topology update from the MNODE ([0085]); True when it changed anything."""
        history = [Topology.from_dict(t) for t in msg["history"]]
        if not history:
            return False
        cur = history[-1]
        changed = not self.topologies or self.topologies[-1].to_dict() != cur.to_dict() or \
            self.paths != msg.get("paths", {}) or self.selection != msg.get("selection")
        h = TopologyHistory(128)
        for t in ordered(self.history) + history:     # keep what we knew; the MNODE's copy wins per id
            h.add(t)
        me = cur.clusters.get(self.cluster)
        if me is None:
            log.warning("%s: my cluster %s is not in topology %d", self.name, self.cluster, cur.id)
            return False
        self.ids = {name: v.cluster_id for name, v in cur.clusters.items()}
        self.by_id = {v: k for k, v in self.ids.items()}
        self.my_cluster_id = me.cluster_id
        self.my_node_id = me.member(self.name).node_id
        self.selection = msg.get("selection", "centralized")
        self.paths = {k: list(v) for k, v in msg.get("paths", {}).items()}
        self.policies = [Policy(p) for p in msg.get("policies", [])]
        self.functions = dict(msg.get("functions", {}))
        self.load = {k: float(v) for k, v in msg.get("load", {}).items()}
        for name, v in cur.clusters.items():
            b = self.balancers.get(name)
            if b is None or b.kind != v.balance:
                self.balancers[name] = make_balancer(v.balance)
        self.history = h
        self.topologies = ordered(h)
        self._hop_cache = {}
        self._marked = {}
        self.ready = True
        return changed

    @property
    def topology(self) -> Topology | None:
        return self.topologies[-1] if self.topologies else None

    # ------------------------------------------------------------------ helpers
    def _hop(self, flow_id: int, a: Assignment, topo: int) -> Hop:
        key = (flow_id, a.cluster, a.node, topo)
        h = self._hop_cache.get(key)
        if h is None:
            name = self.by_id.get(a.cluster)
            h = route_hop(flow_id, a.node, topo, self.topologies, name) if name else Hop(None, "discard")
            if len(self._hop_cache) > 200_000:
                self._hop_cache.clear()
            self._hop_cache[key] = h
        return h

    def _send(self, node: str, plain: bytes, d: Descriptor) -> bool:
        nb = self.neighbors.get(node)
        if nb is None:
            self.stats.count("drop_no_adjacency")
            return False
        intf, mac = nb
        try:
            frame = attach(plain, d, self.key, mac, self.macs.get(intf, plain[6:12]))
        except DescriptorError as exc:
            self.stats.count(f"drop_{exc.reason}")
            return False
        self.send_grid(intf, frame)
        self.stats.count("tx_packets")
        self.stats.count("tx_bytes", len(frame))
        return True

    def _forward(self, plain: bytes, d: Descriptor, target: Assignment, t: Transit | None, direction: int) -> None:
        hop = self._hop(d.flow_id, target, d.topology)
        if hop.node is None:
            self.stats.count(f"drop_{hop.action}")
            if t is not None:
                t.action = hop.action
            return
        if t is not None:
            t.next[direction] = hop.node
            t.action = hop.action
        if hop.action in ("redirect", "backup"):
            self.stats.count(f"tx_{hop.action}")
        self._send(hop.node, plain, d)
        if hop.shadow is not None and not int(d.flags) & BACKUP:
            self._send(hop.shadow, plain, _flagged(d, int(d.flags) | BACKUP))
            self.stats.count("tx_shadow")

    def _position(self, d: Descriptor) -> tuple[list[Assignment], int]:
        seq = [a for a in d.assignments if not a.reserved]
        for i, a in enumerate(seq):
            if a.cluster == self.my_cluster_id:
                return seq, i
        return seq, -1

    # ------------------------------------------------------------------ packets from the grid
    def from_grid(self, intf: str, frame: bytes) -> None:
        t0 = self.clock()
        st = self.stats
        st.count("rx_packets")
        st.count("rx_bytes", len(frame))
        try:
            plain, d = detach(frame, self.key)
        except DescriptorError as exc:
            st.count(f"drop_descriptor_{exc.reason}")
            return
        if not self.ready:
            st.count("drop_no_topology")
            return
        seq, pos = self._position(d)
        if pos < 0:
            st.count("drop_not_on_path")
            return
        l3 = plain[14:]
        rev = bool(int(d.flags) & REVERSE)
        if not rev and seq[pos].processed:
            st.count("drop_loop")
            return
        src_name = self._mac_owner.get(frame[6:12])
        is_inode = self.role == "inode"
        if is_inode:
            self._inode_from_grid(plain, l3, d, seq, pos, rev, src_name)
        else:
            self._anode_from_grid(plain, l3, d, seq, pos, rev, src_name)
        st.latency_us.append((self.clock() - t0) * 1e6)

    def _transit(self, d: Descriptor, l3: bytes, role: str, now: float) -> Transit:
        fl = int(d.flags)
        key = (d.flow_id, bool(fl & REPLICA))
        t = self.transit.get(key)
        if t is None or t.ended and fl & SOF:
            seq = [a for a in d.assignments if not a.reserved]
            path = [self.by_id.get(a.cluster, str(a.cluster)) for a in seq]
            idle = self.tcp_idle if len(l3) > 9 and l3[9] == PROTO_TCP else self.udp_idle
            t = Transit(d, now, role, tuple_text(l3), path, idle)
            self.transit[key] = t
            self.stats.count("flows_new")
        return t

    def _anode_from_grid(self, plain: bytes, l3: bytes, d: Descriptor, seq: list[Assignment], pos: int,
                         rev: bool, src_name: str | None) -> None:
        st = self.stats
        now = self.clock()
        fl = int(d.flags)
        if fl & COPY or (self.is_recorder and pos == len(seq) - 1):
            self._record(d, l3, now)
            return
        shadow = bool(fl & BACKUP)
        t = self._transit(d, l3, "shadow" if shadow else "transit", now)
        if not shadow and t.role == "shadow":
            t.role = "took-over"
            st.count("takeovers")
        direction = 1 if rev else 0
        t.pkts[direction] += 1
        t.bytes[direction] += len(l3)
        t.last = now
        t.prev[direction] = src_name
        if fl & EOF:
            t.ended = now
        info = parse_l3(l3)
        if info is None:
            st.count("drop_malformed")
            return
        out = self.function(l3, info)
        if out is None:
            st.count("drop_filtered")
            return
        if shadow:
            st.count("shadow_absorbed")   # [0085] c: the backup processes but sends nothing
            return
        target = seq[pos - 1] if rev else seq[pos + 1] if pos + 1 < len(seq) else None
        if target is None:
            st.count("drop_end_of_path")
            return
        if not rev:
            marked = self._marked.get(d.assignments)
            if marked is None:
                marked = tuple(Assignment(a.cluster, a.node, True if (a.cluster == self.my_cluster_id and not
                                                                      a.reserved) else a.processed, a.reserved)
                               for a in d.assignments)
                if len(self._marked) > 10_000:
                    self._marked.clear()
                self._marked[d.assignments] = marked
            d = Descriptor(d.flow_id, d.flow_type, d.topology, d.flags, marked, d.orig_dst, d.orig_src)
        if out is not l3:
            plain = plain[:14] + out
        self._forward(plain, d, target, t, direction)

    def _record(self, d: Descriptor, l3: bytes, now: float) -> None:
        """The recorder ([0084]): keeps the payloads of a flow's original (COPY) and its replica."""
        which = 1 if int(d.flags) & REPLICA else 0
        t = self._transit(_flagged(d, int(d.flags) & ~REPLICA), l3, "recorder", now)
        info = parse_l3(l3)
        payload = bytes(l3[info.payload_off:info.payload_off + info.payload_len]) if info else b""
        t.copies[which] += 1
        t.payloads[which].append(payload)
        t.pkts[0] += 1
        t.bytes[0] += len(l3)
        t.last = now
        self.stats.count("recorded_replica" if which else "recorded_original")

    # ------------------------------------------------------------------ INODE
    def _inode_from_grid(self, plain: bytes, l3: bytes, d: Descriptor, seq: list[Assignment], pos: int,
                         rev: bool, src_name: str | None) -> None:
        st = self.stats
        now = self.clock()
        if rev:
            if pos != 0:
                st.count("drop_not_ingress")
                return
            v = self.classifier.classify(l3, now)     # the client's side of the flow: TCP state, counters
            if v.entry is not None:
                if v.new and v.entry.parent is not None:
                    self._join(v.entry, flipped=True)     # active FTP: the server opened the data connection
                if v.entry.data.get("rtt_ms") is None:
                    v.entry.data["rtt_ms"] = round((now - v.entry.created) * 1000, 3)
            self.send_ext(l3)
            st.count("egress_packets")
            return
        if pos == 0:
            st.count("drop_loop")
            return
        try:
            e = self.classifier.adopt(l3, d.flow_id, d.flow_type, "fwd", now)
        except ValueError:
            st.count("drop_malformed")
            return
        if "desc" not in e.data or int(d.flags) & SOF:
            e.data.update(role="egress", desc=d.with_(flags=Flags(0), signature=bytes(8)), prev=src_name,
                          path="-".join(self.by_id.get(a.cluster, "?") for a in seq[1:]))
        self.send_ext(l3)
        st.count("egress_packets")
        if pos + 1 < len(seq):          # a recorder after the egress: copy the original to it ([0084])
            self._forward(plain, d.with_(flags=(d.flags | Flags.COPY) & ~(Flags.SOF | Flags.EOF)), seq[pos + 1],
                          None, 0)

    def from_ext(self, intf: str, frame: bytes) -> None:
        """A packet from an external network ([0061]): classify, assign a path and route, or send the
        reverse half of a flow this INODE is the egress of."""
        t0 = self.clock()
        st = self.stats
        st.count("rx_packets")
        st.count("rx_bytes", len(frame))
        if not self.ready:
            st.count("drop_no_topology")
            return
        if frame[12:14] != b"\x08\x00":
            st.count("drop_not_ip")
            return
        plain = frame[:14 + _ip_len(frame)]
        l3 = plain[14:]
        v = self.classifier.classify(l3, t0)
        if v.entry is None:
            st.count(f"drop_{v.reason.replace('-', '_')}")
            return
        e = v.entry
        flags = Flags.EOF if v.end else Flags(0)
        if v.new and e.parent is not None and self._join(e, flipped=False):
            v = v._replace(new=False)
        # a connection the server side opened (active FTP data) runs "forward" from server to client
        forward = (v.direction == "fwd") != bool(e.data.get("flipped"))
        if e.data.get("role") == "egress":
            if forward:
                st.count("drop_wrong_direction")
                return
            tmpl: Descriptor = e.data["desc"]
            seq = [a for a in tmpl.assignments if not a.reserved]
            pos = next((i for i, a in enumerate(seq) if a.cluster == self.my_cluster_id), -1)
            if pos <= 0:
                st.count("drop_not_on_path")
                return
            d = Descriptor(tmpl.flow_id, tmpl.flow_type, tmpl.topology, int(flags) | REVERSE, tmpl.assignments,
                           plain[0:6], plain[6:12])
            self._forward(plain, d, seq[pos - 1], None, 1)
            return
        if v.new:
            if not self._admit(e, l3, t0):
                self.classifier.remove(e.key)
                return
            flags |= Flags.SOF
        elif "assign" not in e.data:
            st.count("drop_no_path")
            return
        assign: tuple[Assignment, ...] = e.data["assign"]
        d = Descriptor(flow_id=e.flow_id, flow_type=e.flow_type, topology=e.data["topo"], flags=flags,
                       assignments=assign, orig_dst=plain[0:6], orig_src=plain[6:12])
        if not forward:                 # the server side answering through the INODE that classified it
            st.count("drop_wrong_direction")
            return
        self._forward(plain, d, assign[1], None, 0)
        replica = e.data.get("replica")
        if replica is not None:
            self._forward(plain, d.with_(flags=flags | Flags.REPLICA, assignments=replica), replica[1], None, 0)
        if v.new:
            st.setup_us.append((self.clock() - t0) * 1e6)
        st.latency_us.append((self.clock() - t0) * 1e6)

    def _admit(self, e: FlowEntry, l3: bytes, now: float) -> bool:
        """A new flow: its path by policy, its route by the selection mode ([0060], [0082])."""
        st = self.stats
        topo = self.topology
        assert topo is not None
        info = parse_l3(l3)
        policy = next((p for p in self.policies if p.matches(info, e.flow_type)), None)
        if policy is None or policy.path not in self.paths:
            st.count("drop_no_path")
            return False
        assign = self._assign(e.flow_id, self.paths[policy.path], topo, policy)
        if assign is None:
            st.count("drop_no_node")
            return False
        replica = None
        if policy.replicate and policy.replicate in self.paths:
            replica = self._assign(e.flow_id, self.paths[policy.replicate], topo, None)
        e.data.update(role="ingress", assign=assign, topo=topo.id, path=policy.path, replica=replica,
                      nodes=[topo.clusters[self.by_id[a.cluster]].by_id(a.node).name
                             for a in assign if a.node and not a.reserved])
        for n in e.data["nodes"]:
            self.active[n] = self.active.get(n, 0) + 1
        st.count("flows_new")
        return True

    def _join(self, e: FlowEntry, flipped: bool) -> bool:
        """An FTP data connection rides its control connection's flow: same ID, route and role ([0059]).
        `flipped`: the data connection was opened from the far side of the grid (active mode)."""
        for other in self.classifier.get(e.flow_id):
            if other is not e and ("assign" in other.data or "desc" in other.data):
                e.data.update({k: other.data[k] for k in ("role", "assign", "topo", "path", "replica", "desc")
                               if k in other.data})
                e.data["nodes"] = []
                # who opened it, relative to the control connection's client, decides its direction
                e.data["flipped"] = flipped if e.data.get("role") == "ingress" else not flipped
                self.stats.count("flows_joined")
                return True
        return False

    def _assign(self, flow_id: int, path: list[str], topo: Topology, policy: Policy | None
                ) -> tuple[Assignment, ...] | None:
        out = [Assignment(self.my_cluster_id, self.my_node_id)]
        for cname in path:
            view = topo.clusters[cname]
            if self.selection == "distributed":
                if not view.live_members():
                    return None
                out.append(Assignment(view.cluster_id, 0))
                continue
            m = self.balancers[cname].pick(view, self.active, self.load, flow_id=flow_id)
            if m is None:
                return None
            out.append(Assignment(view.cluster_id, m.node_id))
        if policy is not None and policy.replicate in self.paths:
            rec = self.paths[policy.replicate][-1]          # the egress copies the original there
            view = topo.clusters[rec]
            m = hash_pick(flow_id, view)
            if m is None:
                return None
            out.append(Assignment(view.cluster_id, m.node_id if self.selection == "centralized" else 0))
        if self.selection == "centralized":                 # [0082]: a node reserved in every cluster
            used = {a.cluster for a in out}
            for cname, view in topo.clusters.items():
                if view.cluster_id not in used:
                    m = hash_pick(flow_id, view)
                    if m is not None:
                        out.append(Assignment(view.cluster_id, m.node_id, reserved=True))
        return tuple(out)

    # ------------------------------------------------------------------ housekeeping and reports
    def tick(self) -> None:
        now = self.clock()
        if now - self._last_tick < 0.1:
            return
        self._last_tick = now
        self.stats.rate(now)
        for e in self.classifier.expire(now):
            for n in e.data.get("nodes", ()):
                self.active[n] = max(0, self.active.get(n, 0) - 1)
            self.stats.count("flows_ended")
        for key, t in list(self.transit.items()):
            if (t.ended and now - t.ended > LINGER_S) or now - t.last > t.idle:
                del self.transit[key]
                self.stats.count("flows_ended")

    def flows(self, limit: int = 500) -> list[dict[str, Any]]:
        """Flow records for `show flows` and the MNODE ([0061] e, [0066] g), newest first."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        topo = self.topology
        for e in list(self.classifier.entries()):
            role = e.data.get("role", "?")
            route: list[str] = []
            desc = e.data.get("desc")
            assign = e.data.get("assign") or (desc.assignments if desc is not None else ())
            ftopo = e.data.get("topo", desc.topology if desc is not None else 0)
            for a in assign:
                if a.reserved:
                    continue
                name = self.by_id.get(a.cluster)
                hop = route_hop(e.flow_id, a.node, ftopo, self.topologies, name) if name and topo else None
                route.append(hop.node if hop and hop.node else "-")
            dur = max(1e-3, e.last_seen - e.created)
            out.append({"id": f"{e.flow_id:08x}", "type": FlowType.name_of(e.flow_type), "role": role,
                        "tuple": _fwd_text(e), "path": e.data.get("path", ""), "route": route, "topology": ftopo,
                        "pkts": [e.packets_fwd, e.packets_rev], "bytes": [e.bytes_fwd, e.bytes_rev],
                        "state": e.state, "age_s": round(now - e.created, 2), "idle_s": round(now - e.last_seen, 2),
                        "rtt_ms": e.data.get("rtt_ms"), "bps": int(8 * (e.bytes_fwd + e.bytes_rev) / dur),
                        "replica": e.data.get("replica") is not None})
        for t in list(self.transit.values()):
            dur = max(1e-3, t.last - t.created)
            rec = {"id": f"{t.flow_id:08x}", "type": FlowType.name_of(t.flow_type), "role": t.role, "tuple": t.tuple,
                   "path": "-".join(t.path), "route": [], "topology": t.topo, "pkts": list(t.pkts),
                   "bytes": list(t.bytes), "state": "ended" if t.ended else "open", "age_s": round(now - t.created, 2),
                   "idle_s": round(now - t.last, 2), "prev": list(t.prev), "next": list(t.next), "action": t.action,
                   "bps": int(8 * sum(t.bytes) / dur), "replica": t.replica}
            if t.role == "recorder":
                pairs = min(len(t.payloads[0]), len(t.payloads[1]))
                same = sum(1 for i in range(pairs) if t.payloads[0][i] == t.payloads[1][i])
                rec.update(originals=t.copies[0], replicas=t.copies[1], identical=same, differing=pairs - same)
            out.append(rec)
        out.sort(key=lambda r: r["idle_s"])
        return out[:limit]

    def report(self) -> dict[str, Any]:
        s = self.stats.summary()
        s.update(node=self.name, role=self.role, cluster=self.cluster, ready=self.ready,
                 topology=self.topology.id if self.topology else None,
                 active=len(self.classifier.entries()) + len(self.transit), classifier=self.classifier.stats())
        return s


def _flagged(d: Descriptor, flags: int) -> Descriptor:
    """The same descriptor with other flags (cheaper than dataclasses.replace on the packet path)."""
    return Descriptor(d.flow_id, d.flow_type, d.topology, flags, d.assignments, d.orig_dst, d.orig_src)


def _ip_len(frame: bytes) -> int:
    if len(frame) < 18:
        return len(frame) - 14
    return min(len(frame) - 14, int.from_bytes(frame[16:18], "big"))


def _fwd_text(e: FlowEntry) -> str:
    f = e.fwd
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(f.proto, str(f.proto))
    return f"{proto} {socket.inet_ntoa(f.src)}:{f.sport} > {socket.inet_ntoa(f.dst)}:{f.dport}"
