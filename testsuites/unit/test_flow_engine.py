"""The flow engines of a whole Figure 5 system (labs/fig5.yaml, seed 003 [0063]-[0085]) wired together
in memory, without sockets: the lab's own plan files, one FlowEngine per INODE/ANODE, the MNODE's
FlowManager delivering topologies, frames handed to the neighbour owning their destination MAC, an
injectable clock. Client packets enter at id1 from EN-5, servers answer at ie1 (EN-6) and if1 (EN-7)."""
from __future__ import annotations

from collections.abc import Iterable

import copy
import json
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from emulators.flows.descriptor import Descriptor, DescriptorError, Flags, attach, detach, mac_bytes, split_frame
from emulators.flows.engine import LINGER_S, FlowEngine
from emulators.flows.manager import FlowManager
from emulators.flows.selection import hash_pick
from twin.lab.flows import flow_files
from twin.lab.loader import load_lab

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

CLIENT, EN6, EN7 = "10.5.0.10", "10.6.0.10", "10.7.0.10"
CLIENT_MAC, ID1_EXT_MAC = "02:00:00:05:00:0a", "02:00:00:05:00:01"
SERVER_MAC, INODE_EXT_MAC = "02:00:00:06:00:0a", "02:00:00:06:00:01"
CLUSTER_IDS = {"ID": 1, "AD": 2, "AE": 3, "AF": 4, "IE": 5, "IF": 6, "AX": 7, "AR": 8}
EXT = {"id1": "ext5", "ie1": "ext6", "if1": "ext7"}


@pytest.fixture(scope="module")
def lab() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(node -> plan as the node reads it, "node:intf" -> virtual link)."""
    model = load_lab(ROOT / "labs" / "fig5.yaml")
    mgmt = {n: str(a.ip) for n, a in model.plan.mgmt.items()}
    plans = {n: json.loads(text) for n, (_, text) in flow_files(model.spec, mgmt, "t0001").items()}
    vlink_of = {ep: name for name, body in model.spec.vlinks.items() for ep in body["members"]}
    return plans, vlink_of


class System:
    """Figure 5 in memory. Frames queue up and `pump` delivers them one at a time (no recursion); a node
    in `down` receives nothing, neither frames nor topologies, and sends no heartbeats."""

    def __init__(self, plans: dict[str, dict[str, Any]], vlink_of: dict[str, str]) -> None:
        self.now = 1000.0
        self.plans = copy.deepcopy(plans)
        self.vlink_of = vlink_of
        self.key = self.plans["id1"]["secret"].encode()
        self.down: set[str] = set()
        self.ext: dict[str, list[bytes]] = {n: [] for n in EXT}
        self.wire: list[tuple[str, str, bytes]] = []          # (from node, to node, frame) in send order
        self.lost: list[tuple[str, str, bytes]] = []
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.mac_owner = {mac_bytes(mac): (n, intf) for n, p in self.plans.items() if p["role"] != "mnode"
                          for intf, mac in p["macs"].items()}
        self.engines: dict[str, FlowEngine] = {}
        for n, p in self.plans.items():
            if p["role"] != "mnode":
                self.engines[n] = FlowEngine(p, self._grid_sender(n), self._ext_sender(n), clock=self.clock)
        self.by_ip = {self.plans[n]["mgmt_ip"]: n for n in self.engines}
        self.boot = {n: 1.0 for n in self.engines}
        self.control_log: list[tuple[str, int]] = []
        self.manager = FlowManager(copy.deepcopy(self.plans["md1"]), self._control, clock=self.clock)
        self.manager.broadcast()
        self.heartbeat()

    # ---------------------------------------------------------------- wiring
    def clock(self) -> float:
        return self.now

    def _grid_sender(self, node: str):
        def send(intf: str, frame: bytes) -> None:
            assert intf in self.plans[node]["grid_intfs"], f"{node} sent on {intf}, not a grid interface"
            peer, pintf = self.mac_owner[frame[:6]]
            assert self.vlink_of[f"{node}:{intf}"] == self.vlink_of[f"{peer}:{pintf}"], \
                f"{node}:{intf} -> {peer}:{pintf} crosses virtual links"
            assert frame[6:12] == mac_bytes(self.plans[node]["macs"][intf]), "source MAC is not the interface's"
            self.wire.append((node, peer, frame))
            if peer in self.down:
                self.lost.append((node, peer, frame))
            else:
                self.queue.append((peer, pintf, frame))
        return send

    def _ext_sender(self, node: str):
        def send(l3: bytes) -> None:
            assert node in EXT, f"{node} has no external network"
            self.ext[node].append(bytes(l3))
        return send

    def _control(self, ip: str, type_: str, body: dict[str, Any]) -> None:
        assert type_ == "topo"
        node = self.by_ip[ip]
        if node in self.down:
            return
        self.control_log.append((node, body["history"][-1]["id"]))
        self.engines[node].control(json.loads(json.dumps(body)))     # as it travels: JSON

    def pump(self) -> None:
        while self.queue:
            node, intf, frame = self.queue.popleft()
            self.engines[node].from_grid(intf, frame)

    # ---------------------------------------------------------------- the MNODE's view of liveness
    def heartbeat(self, skip: tuple[str, ...] = ()) -> None:
        for n, e in self.engines.items():
            if n in self.down or n in skip:
                continue
            body = {"topology": e.topology.id if e.topology else 0, "pps": 0.0, "active": 0}
            assert self.manager.on_message("hb", n, self.boot[n], body, self.plans[n]["mgmt_ip"]) is None

    def fail(self, node: str) -> int:
        """Power `node` off and let the MNODE notice: past the dead interval with everyone else beating."""
        self.down.add(node)
        before = self.manager.topology.id
        end = self.now + self.manager.dead_s + 0.05
        while self.now < end:                   # the MNODE checks every 50 ms, everyone else beats
            self.now = min(end, self.now + 0.05)
            self.heartbeat()
            self.manager.check()
        assert self.manager.topology.id == before + 1
        assert node not in self.manager.topology.clusters[self.plans[node]["cluster"]].live
        return self.manager.topology.id

    def restore(self, node: str) -> int:
        self.down.discard(node)
        before = self.manager.topology.id
        self.now += 0.1
        self.heartbeat()
        assert self.manager.topology.id == before + 1
        assert node in self.manager.topology.clusters[self.plans[node]["cluster"]].live
        return self.manager.topology.id

    def tick(self, dt: float) -> None:
        self.now += dt
        for e in self.engines.values():
            e.tick()

    # ---------------------------------------------------------------- traffic
    def client(self, pkt: IP) -> bytes:
        """A packet from EN-5's client into id1; returns its IPv4 bytes."""
        l3 = bytes(pkt)
        self.engines["id1"].from_ext("ext5", bytes(Ether(src=CLIENT_MAC, dst=ID1_EXT_MAC, type=0x0800)) + l3)
        self.pump()
        return l3

    def server(self, inode: str, pkt: IP) -> bytes:
        l3 = bytes(pkt)
        self.engines[inode].from_ext(EXT[inode], bytes(Ether(src=SERVER_MAC, dst=INODE_EXT_MAC, type=0x0800)) + l3)
        self.pump()
        return l3

    def udp(self, sport: int, dst: str = EN6, dport: int = 7000, payload: bytes = b"ping") -> bytes:
        return self.client(IP(src=CLIENT, dst=dst) / UDP(sport=sport, dport=dport) / payload)

    def udp_reply(self, sport: int, dst: str = EN6, dport: int = 7000, payload: bytes = b"pong") -> bytes:
        inode = "ie1" if dst == EN6 else "if1"
        return self.server(inode, IP(src=dst, dst=CLIENT) / UDP(sport=dport, dport=sport) / payload)

    def flow_id(self, sport: int, proto: int = 17) -> int:
        hits = [e.flow_id for e in self.engines["id1"].classifier.entries()
                if e.fwd.sport == sport and e.fwd.proto == proto]
        assert len(hits) == 1, hits
        return hits[0]

    # ---------------------------------------------------------------- what the engines report
    def carriers(self, fid: int, fresh: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
        """cluster -> node -> flows() record, for the nodes that carried the original flow (not shadows);
        `fresh`: only those that carried a packet of it at the current clock reading."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for n, e in self.engines.items():
            for rec in e.flows():
                if rec["id"] == f"{fid:08x}" and not rec["replica"] and rec["role"] in ("transit", "took-over") \
                        and not (fresh and rec["idle_s"] > 0):
                    out.setdefault(e.cluster, {})[n] = rec
        return out

    def exchange(self, sports: Iterable[int]) -> None:
        """One UDP request and its reply for each of these client flows (source ports)."""
        for sp in sports:
            self.udp(sp)
            self.udp_reply(sp)

    def route(self, fid: int, fresh: bool = False) -> dict[str, str]:
        """cluster -> the one node of each ANODE cluster carrying the flow (asserts it is only one);
        `fresh`: by the packets sent at the current clock reading (after a move the old node's record
        lingers until it idles out)."""
        out = {}
        for cluster, nodes in self.carriers(fid, fresh).items():
            assert len(nodes) == 1, f"flow {fid:08x} crossed {sorted(nodes)} in {cluster}"
            out[cluster] = next(iter(nodes))
        return out

    def ingress(self, fid: int) -> dict[str, Any]:
        recs = [r for r in self.engines["id1"].flows() if r["id"] == f"{fid:08x}" and r["role"] == "ingress"]
        assert len(recs) == 1
        return recs[0]

    def counter(self, node: str, name: str) -> int:
        return self.engines[node].stats.counters.get(name, 0)

    def sent_by(self, node: str, since: int = 0) -> list[tuple[str, bytes]]:
        return [(to, f) for frm, to, f in self.wire[since:] if frm == node]

    def desc(self, frame: bytes) -> Descriptor:
        return detach(frame, self.key)[1]


@pytest.fixture
def system(lab) -> System:
    return System(*lab)


def marked(l3: bytes, dscp: int = 10) -> bytes:
    """The packet as AE's marker leaves it: DSCP set, IP header checksum recomputed, nothing else."""
    p = IP(l3)
    p.tos = dscp << 2 | (p.tos & 3)
    del p.chksum
    return bytes(p)


# ------------------------------------------------------------------ boot
def test_every_engine_boots_into_topology_1_from_the_manager(system):
    assert sorted(system.engines) == ["ad1", "ad2", "ad3", "ae1", "ae2", "af1", "af2", "ar1", "ax1", "id1", "ie1",
                                      "if1"]
    for n, e in system.engines.items():
        assert e.ready and e.topology.id == 1, n
        assert e.ids == CLUSTER_IDS
        assert e.my_cluster_id == CLUSTER_IDS[system.plans[n]["cluster"]]
    assert system.engines["ad2"].my_node_id == 2 and system.engines["ae1"].my_node_id == 1


def test_before_any_topology_an_engine_drops_everything(lab):
    plans, _ = lab
    sent: list[Any] = []
    e = FlowEngine(plans["id1"], lambda i, f: sent.append(f), sent.append, clock=lambda: 1.0)
    e.from_ext("ext5", bytes(Ether(src=CLIENT_MAC, dst=ID1_EXT_MAC) / IP(src=CLIENT, dst=EN6) / UDP()))
    assert e.stats.counters["drop_no_topology"] == 1 and sent == []


# ------------------------------------------------------------------ carrying flows
def test_a_udp_flow_on_path_52_arrives_unchanged_and_its_reply_comes_back(system):
    sent = system.udp(40000, payload=b"request-1")
    assert system.ext["ie1"] == [sent], "EN-6 gets the client's IPv4 packet byte for byte, no descriptor"
    assert system.ext["if1"] == [] and system.ext["id1"] == []
    reply = system.udp_reply(40000, payload=b"reply-1")
    assert system.ext["id1"] == [reply], "the reply leaves at id1 byte for byte"
    fid = system.flow_id(40000)
    route = system.route(fid)
    assert set(route) == {"AD", "AF"}, "path 52 crosses AD and AF only"
    ad, af = route["AD"], route["AF"]
    for node, prev, nxt in ((ad, "id1", af), (af, ad, "ie1")):
        rec = system.carriers(fid)[system.plans[node]["cluster"]][node]
        assert rec["pkts"] == [1, 1], "one packet each way through the same node"
        assert rec["prev"] == [prev, nxt] and rec["next"] == [nxt, prev]
        assert rec["path"] == "ID-AD-AF-IE"
    assert system.ingress(fid)["route"] == ["id1", ad, af, "ie1"]
    assert system.ingress(fid)["path"] == "52" and system.ingress(fid)["pkts"] == [1, 1]
    egress = [r for r in system.engines["ie1"].flows() if r["role"] == "egress"]
    assert [r["id"] for r in egress] == [f"{fid:08x}"]
    # every frame inside the grid carried a descriptor signed with the grid's key
    hops = [(frm, to) for frm, to, _ in system.wire]
    assert hops == [("id1", ad), (ad, af), (af, "ie1"), ("ie1", af), (af, ad), (ad, "id1")]
    # the original MACs ride in the descriptor all the way; detaching restores them ([0075])
    client_macs = mac_bytes(ID1_EXT_MAC) + mac_bytes(CLIENT_MAC)
    server_macs = mac_bytes(INODE_EXT_MAC) + mac_bytes(SERVER_MAC)
    for i, (_, _, frame) in enumerate(system.wire):
        plain, d = detach(frame, system.key)
        assert d.flow_id == fid
        assert plain[14:] == (sent if i < 3 else reply) == split_frame(frame)[0][14:]
        assert plain[:12] == (client_macs if i < 3 else server_macs) != frame[:12]
        assert bool(d.flags & Flags.REVERSE) == (i >= 3)


def test_a_tcp_flow_on_path_54_is_marked_dscp_10_by_ae_both_ways(system):
    syn = system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=41000, dport=5001, flags="S", seq=100))
    assert system.ext["if1"] == [marked(syn)]
    assert IP(system.ext["if1"][0]).tos == 40 and IP(syn).tos == 0
    synack = system.server("if1", IP(src=EN7, dst=CLIENT) / TCP(sport=5001, dport=41000, flags="SA", seq=900,
                                                                ack=101))
    ack = system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=41000, dport=5001, flags="A", seq=101, ack=901))
    data = system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=41000, dport=5001, flags="PA", seq=101, ack=901)
                         / b"GET / HTTP/1.0\r\n\r\n")
    assert system.ext["if1"] == [marked(syn), marked(ack), marked(data)]
    assert system.ext["id1"] == [marked(synack)]
    for l3 in system.ext["if1"] + system.ext["id1"]:
        p = IP(l3)
        assert p.tos == 40
        fixed = p.copy()
        del fixed.chksum
        assert bytes(fixed) == l3, "the IP header checksum is valid after marking"
    assert system.ext["ie1"] == []
    fid = system.flow_id(41000, proto=6)
    route = system.route(fid)
    assert set(route) == {"AD", "AE"}
    assert system.carriers(fid)["AE"][route["AE"]]["pkts"] == [3, 1]
    assert system.carriers(fid)["AD"][route["AD"]]["pkts"] == [3, 1]
    assert system.ingress(fid)["type"] == "TCP" and system.ingress(fid)["state"] == "open"


def test_a_non_syn_tcp_packet_of_no_known_flow_is_dropped_at_the_ingress(system):
    system.client(IP(src=CLIENT, dst=EN6) / TCP(sport=41001, dport=80, flags="A"))
    assert system.wire == [] and system.counter("id1", "drop_tcp_no_syn") == 1


def test_a_packet_no_policy_matches_is_dropped(system):
    system.client(IP(src=CLIENT, dst="10.9.0.10") / UDP(sport=1, dport=2))
    assert system.wire == [] and system.counter("id1", "drop_no_path") == 1


def test_40_flows_spread_2_1_1_over_ad_and_1_1_over_ae_and_af(system):
    ad, ae, af = Counter(), Counter(), Counter()
    for i in range(40):
        dst = EN6 if i % 2 == 0 else EN7
        system.udp(42000 + i, dst=dst)
        system.udp_reply(42000 + i, dst=dst)
        fid = system.flow_id(42000 + i)
        route = system.route(fid)          # exactly one node per cluster
        for cluster, node in route.items():
            assert system.carriers(fid)[cluster][node]["pkts"] == [1, 1], "the same node both ways"
        ad[route["AD"]] += 1
        (af if dst == EN6 else ae)[route["AF" if dst == EN6 else "AE"]] += 1
        assert set(route) == ({"AD", "AF"} if dst == EN6 else {"AD", "AE"})
    assert ad == {"ad1": 20, "ad2": 10, "ad3": 10}, "weighted round robin 2:1:1"
    assert af == {"af1": 10, "af2": 10} and ae == {"ae1": 10, "ae2": 10}, "round robin 1:1"
    assert len(system.ext["ie1"]) == len(system.ext["if1"]) == 20 and len(system.ext["id1"]) == 40
    assert all(IP(p).tos == 40 for p in system.ext["if1"]) and all(IP(p).tos == 0 for p in system.ext["ie1"])
    assert system.lost == []


# ------------------------------------------------------------------ next-hop selection
def test_centralized_descriptors_name_a_node_in_every_cluster(system):
    system.udp(43000)
    system.udp(43000)
    fid = system.flow_id(43000)
    first, second = (system.desc(f) for _, f in system.sent_by("id1"))
    assert first.flags == Flags.SOF and second.flags == Flags(0), "start of flow on the first packet only"
    assert first.flow_id == fid and first.topology == 1 and first.flow_type == 17
    assert sorted(a.cluster for a in first.assignments) == sorted(CLUSTER_IDS.values()), "every cluster"
    on_path = [a for a in first.assignments if not a.reserved]
    assert [a.cluster for a in on_path] == [CLUSTER_IDS[c] for c in ("ID", "AD", "AF", "IE")]
    reserved = {a.cluster for a in first.assignments if a.reserved}
    assert reserved == {CLUSTER_IDS[c] for c in ("AE", "IF", "AX", "AR")}, "reserved off the path ([0082])"
    topo = system.engines["id1"].topology
    by_id = {v.cluster_id: v for v in topo.clusters.values()}
    for a in first.assignments:
        assert a.node >= 1 and by_id[a.cluster].by_id(a.node).name   # a real node of that cluster
        assert not a.processed
    route = system.route(fid)
    assert by_id[CLUSTER_IDS["AD"]].by_id(first.node_for(CLUSTER_IDS["AD"])).name == route["AD"]
    assert by_id[CLUSTER_IDS["AF"]].by_id(first.node_for(CLUSTER_IDS["AF"])).name == route["AF"]
    # AD marks its cluster processed on the way out ([0076])
    to_af = [f for to, f in system.sent_by(route["AD"])]
    assert [a.processed for a in system.desc(to_af[0]).assignments if a.cluster == CLUSTER_IDS["AD"]] == [True]


def test_distributed_flows_carry_node_0_and_hash_over_their_topology(system):
    system.udp(44000)                       # a centralized flow, before the switch
    old = system.flow_id(44000)
    old_route = system.route(old)
    system.manager.set_selection("distributed")
    assert all(e.selection == "distributed" for e in system.engines.values())
    mark = len(system.wire)
    fids = []
    for i in range(24):
        dst = EN6 if i % 2 == 0 else EN7
        system.udp(44100 + i, dst=dst)
        system.udp_reply(44100 + i, dst=dst)
        fids.append((system.flow_id(44100 + i), dst))
    topo1 = system.engines["id1"].topology
    assert topo1.id == 1
    for fid, dst in fids:
        d = next(system.desc(f) for frm, _, f in system.wire[mark:] if frm == "id1"
                 and system.desc(f).flow_id == fid)
        assert all(a.node == 0 for a in d.assignments[1:]) and not any(a.reserved for a in d.assignments)
        path = ("AD", "AF", "IE") if dst == EN6 else ("AD", "AE", "IF")
        assert [a.cluster for a in d.assignments] == [CLUSTER_IDS[c] for c in ("ID",) + path]
        route = system.route(fid)
        for c in path[:2]:
            assert route[c] == hash_pick(fid, topo1.clusters[c]).name
    assert len({system.route(f)["AD"] for f, _ in fids}) == 3, "the hash spreads flows over all of AD"
    # the flow started centralized keeps its nodes
    system.udp(44000)
    assert system.route(old) == old_route
    # after a failure, flows that did not use the failed node keep theirs: each hashes over the n
    # of its own topology ([0081]); new flows hash over the new topology
    victim = "ad3"
    before = {fid: system.route(fid) for fid, _ in fids}
    topo2 = system.fail(victim)
    for i, (fid, dst) in enumerate(fids):
        system.udp(44100 + i, dst=dst)
        system.udp_reply(44100 + i, dst=dst)
        now = system.route(fid, fresh=True)
        if before[fid]["AD"] != victim:
            assert now == before[fid]
        else:
            assert now["AD"] == hash_pick(fid, system.engines["id1"].topology.clusters["AD"]).name != victim
    system.udp(44500)
    fid = system.flow_id(44500)
    assert system.desc(system.sent_by("id1")[-1][1]).topology == topo2
    assert system.route(fid)["AD"] == hash_pick(fid, system.engines["id1"].topology.clusters["AD"]).name


# ------------------------------------------------------------------ failures ([0085])
def test_a_failed_ad_node_s_flows_are_redirected_and_stay_after_it_returns(system):
    sports = range(45000, 45012)
    system.exchange(sports)
    before = {s: system.route(system.flow_id(s)) for s in sports}
    assert Counter(r["AD"] for r in before.values()) == {"ad1": 6, "ad2": 3, "ad3": 3}
    topo2 = system.fail("ad2")
    assert all(e.topology.id == topo2 for n, e in system.engines.items() if n != "ad2")
    assert system.engines["ad2"].topology.id == 1, "a node that is down hears nothing"
    system.exchange(sports)
    assert system.lost == [], "nothing is sent to the failed node"
    assert len(system.ext["ie1"]) == len(system.ext["id1"]) == 24, "every packet still arrives, both ways"
    view2 = system.engines["id1"].topology.clusters["AD"]
    moved = {}
    for s in sports:
        fid = system.flow_id(s)
        after = system.route(fid, fresh=True)
        if before[s]["AD"] != "ad2":
            assert after == before[s], "a flow that did not use ad2 keeps exactly its nodes"
            continue
        new = hash_pick(fid, view2).name
        assert new != "ad2" and after == {"AD": new, "AF": before[s]["AF"]}, "only AD changes"
        assert system.carriers(fid)["AD"][new]["pkts"] == [1, 1], "redirected both ways to the same node"
        assert system.carriers(fid)["AD"][new]["action"] == "primary"
        assert system.ingress(fid)["route"] == ["id1", new, before[s]["AF"], "ie1"]
        moved[s] = new
    assert len(moved) == 3
    assert system.counter("id1", "tx_redirect") == 3
    assert sum(system.counter(n, "tx_redirect") for n in ("af1", "af2")) == 3, "the reverse is redirected too"
    # ad2 comes back: the moved flows stay where they went, new flows may use ad2 again
    ad2_pkts = {s: system.engines["ad2"].transit[(system.flow_id(s), False)].pkts[:] for s in moved}
    topo3 = system.restore("ad2")
    assert system.engines["ad2"].topology.id == topo3
    system.exchange(sports)
    for s in sports:
        fid = system.flow_id(s)
        assert system.route(fid, fresh=True)["AD"] == moved.get(s, before[s]["AD"])
    for s, pkts in ad2_pkts.items():
        assert system.engines["ad2"].transit[(system.flow_id(s), False)].pkts == pkts, "ad2 sees none of them"
    for s in range(45100, 45104):
        system.udp(s)
    assert "ad2" in {system.route(system.flow_id(s))["AD"] for s in range(45100, 45104)}


def test_a_failed_ae_node_s_backup_has_shadowed_its_flow_and_takes_it_over(system):
    system.udp(46000, dst=EN7)
    system.udp_reply(46000, dst=EN7)
    fid = system.flow_id(46000)
    primary = system.route(fid)["AE"]
    assert primary == "ae1", "round robin starts at node 1"
    backup = system.engines["id1"].topology.clusters["AE"].backups[primary]
    assert backup == "ae2"
    for _ in range(2):
        system.udp(46000, dst=EN7)
        system.udp_reply(46000, dst=EN7)
    shadow = [r for r in system.engines[backup].flows() if r["id"] == f"{fid:08x}"]
    assert len(shadow) == 1 and shadow[0]["role"] == "shadow"
    assert shadow[0]["pkts"] == [3, 3], "the backup processes every packet, both ways"
    assert shadow[0]["next"] == [None, None] and system.sent_by(backup) == [], "and forwards nothing"
    assert system.counter(backup, "shadow_absorbed") == 6
    ad = system.route(fid)["AD"]
    copies = [system.desc(f) for to, f in system.sent_by(ad) if to == backup]
    assert len(copies) == 3 and all(d.flags & Flags.BACKUP for d in copies)
    assert system.counter("if1", "tx_shadow") == 3, "the reverse previous hop shadows too"
    assert len(system.ext["if1"]) == len(system.ext["id1"]) == 3, "the shadow copies are not delivered"
    # the primary fails: the backup, which holds the flow's state, takes over
    topo2 = system.fail(primary)
    for _ in range(2):
        system.udp(46000, dst=EN7)
        system.udp_reply(46000, dst=EN7)
    assert system.lost == []
    assert len(system.ext["if1"]) == len(system.ext["id1"]) == 5
    assert all(IP(p).tos == 40 for p in system.ext["if1"] + system.ext["id1"]), "still marked: AE still works"
    rec = system.carriers(fid)["AE"]
    assert set(rec) == {primary, backup}       # the primary's record from before the failure lingers
    assert rec[backup]["role"] == "took-over" and rec[backup]["pkts"] == [5, 5]
    assert rec[backup]["next"] == ["if1", ad]
    assert rec[primary]["pkts"] == [3, 3], "the failed primary received nothing more"
    assert system.counter(backup, "takeovers") == 1
    assert system.counter(ad, "tx_backup") == 2 and system.counter("if1", "tx_backup") == 2
    assert system.ingress(fid)["route"] == ["id1", ad, backup, "if1"]
    # even when the primary returns the flow stays with the backup: the primary lost its state
    system.restore(primary)
    system.udp(46000, dst=EN7)
    system.udp_reply(46000, dst=EN7)
    rec = system.carriers(fid)["AE"]
    assert rec[backup]["pkts"] == [6, 6] and rec[primary]["pkts"] == [3, 3]
    assert system.engines["id1"].topology.id == topo2 + 1


def test_a_failed_af_node_s_flows_are_discarded_and_others_pass(system):
    sports = range(47000, 47006)
    for s in sports:
        system.udp(s)
    before = {s: system.route(system.flow_id(s)) for s in sports}
    assert Counter(r["AF"] for r in before.values()) == {"af1": 3, "af2": 3}
    system.fail("af1")
    delivered = len(system.ext["ie1"])
    for s in sports:
        system.udp(s, payload=b"after")
    assert system.lost == []
    arrived = system.ext["ie1"][delivered:]
    kept = [s for s in sports if before[s]["AF"] == "af2"]
    assert len(arrived) == len(kept) == 3, "the flows through af2 pass"
    assert sorted(IP(p)[UDP].sport for p in arrived) == kept
    assert sum(system.counter(n, "drop_discard") for n in ("ad1", "ad2", "ad3")) == 3, "af1's flows are discarded"
    for s in kept:
        assert system.route(system.flow_id(s), fresh=True) == before[s]
    # replies of a discarded flow are dropped at the egress as well
    dead = next(s for s in sports if before[s]["AF"] == "af1")
    replies = len(system.ext["id1"])
    system.udp_reply(dead)
    assert system.counter("ie1", "drop_discard") == 1 and len(system.ext["id1"]) == replies
    dead_fid = system.flow_id(dead)
    assert system.ingress(dead_fid)["route"] == ["id1", before[dead]["AD"], "-", "ie1"], "shown without an AF node"
    # the discard sticks after af1 returns (it lost the flows' state); new flows use either node again
    system.restore("af1")
    system.udp(dead)
    assert sum(system.counter(n, "drop_discard") for n in ("ad1", "ad2", "ad3")) == 4
    for s in range(47100, 47104):
        system.udp(s)
    assert Counter(system.route(system.flow_id(s))["AF"] for s in range(47100, 47104)) == {"af1": 2, "af2": 2}


def test_a_restarted_ad_node_loses_its_flows_to_the_others(system):
    sports = range(56000, 56008)
    system.exchange(sports)
    before = {s: system.route(system.flow_id(s)) for s in sports}
    on_ad2 = [s for s in sports if before[s]["AD"] == "ad2"]
    assert len(on_ad2) == 2
    # ad2 restarts: a fresh engine without any flow state, a new boot id in its heartbeats
    system.engines["ad2"] = FlowEngine(system.plans["ad2"], system._grid_sender("ad2"), system._ext_sender("ad2"),
                                       clock=system.clock)
    system.boot["ad2"] = 2.0
    system.now += 0.1
    system.heartbeat()
    m = system.manager
    assert [t.reason for t in m.topologies] == ["boot", "ad2 restarted", "ad2 is back after a restart"]
    assert all(e.topology.id == 3 for e in system.engines.values()), "the restarted node included"
    system.exchange(sports)
    restarted_view = m.topologies[1].clusters["AD"]
    for s in sports:
        fid = system.flow_id(s)
        now = system.route(fid, fresh=True)
        if s in on_ad2:
            assert now == {"AD": hash_pick(fid, restarted_view).name, "AF": before[s]["AF"]}
            assert now["AD"] != "ad2"
        else:
            assert now == before[s]
    assert system.engines["ad2"].transit == {}, "none of the old flows reach the restarted node"
    assert len(system.ext["ie1"]) == len(system.ext["id1"]) == 16


def test_new_flows_after_a_failure_avoid_the_failed_node(system):
    system.fail("ad1")
    for s in range(48000, 48009):
        system.udp(s)
    assert Counter(system.route(system.flow_id(s))["AD"] for s in range(48000, 48009)) == {"ad2": 5, "ad3": 4}
    assert system.lost == [] and len(system.ext["ie1"]) == 9


# ------------------------------------------------------------------ replication ([0084])
def test_a_replicated_flow_reaches_the_recorder_twice_identically(system):
    sent = [system.udp(49000, dport=7100, payload=f"sample-{i}".encode()) for i in range(3)]
    assert system.ext["ie1"] == sent, "the original flow is delivered as usual"
    fid = system.flow_id(49000)
    assert system.ingress(fid)["replica"] is True
    # the clone goes id1 -> ax1 -> ar1, the original is copied by ie1 to ar1
    assert [d.flags & Flags.REPLICA for to, d in ((to, system.desc(f)) for to, f in system.sent_by("id1"))
            if to == "ax1"] == [Flags.REPLICA] * 3
    assert [to for to, _ in system.sent_by("ax1")] == ["ar1"] * 3
    copies = [system.desc(f) for to, f in system.sent_by("ie1") if to == "ar1"]
    assert len(copies) == 3 and all(d.flags & Flags.COPY and not d.flags & Flags.REPLICA for d in copies)
    recs = [r for r in system.engines["ar1"].flows() if r["id"] == f"{fid:08x}"]
    assert len(recs) == 1
    rec = recs[0]
    assert rec["role"] == "recorder"
    assert rec["originals"] == rec["replicas"] == rec["identical"] == 3 and rec["differing"] == 0
    assert system.counter("ar1", "recorded_original") == system.counter("ar1", "recorded_replica") == 3
    assert system.sent_by("ar1") == [], "the recorder terminates what it records"
    # the replica's own route: AX only (AR is the recorder); the original crosses AD and AF once
    assert system.route(fid) == {"AD": system.ingress(fid)["route"][1], "AF": system.ingress(fid)["route"][2]}
    replica = [r for r in system.engines["ax1"].flows() if r["id"] == f"{fid:08x}"]
    assert len(replica) == 1 and replica[0]["replica"] is True and replica[0]["pkts"] == [3, 0]


# ------------------------------------------------------------------ descriptors refused
def test_spoofed_or_damaged_descriptors_are_dropped_and_counted(system):
    system.udp(50000)
    (ad, frame), = system.sent_by("id1")
    plain, d = detach(frame, system.key)
    mark = len(system.wire)

    def inject(raw: bytes) -> None:
        system.engines[ad].from_grid("vn6", raw)
        system.pump()

    forged = attach(plain, d, b"not the grid's secret", frame[:6], frame[6:12])
    inject(forged)
    assert system.counter(ad, "drop_descriptor_bad-signature") == 1
    end = len(split_frame(frame)[0])
    damaged = bytearray(frame)
    damaged[end + 30] ^= 0x01                    # a byte of the flow ID
    inject(bytes(damaged))
    assert system.counter(ad, "drop_descriptor_bad-checksum") == 1
    tampered = bytearray(frame)
    tampered[end - 1] ^= 0xFF                    # the packet's payload, the descriptor left intact
    inject(bytes(tampered))
    assert system.counter(ad, "drop_descriptor_bad-signature") == 2
    inject(frame[:6] + frame[6:12] + plain[12:])
    assert system.counter(ad, "drop_descriptor_no-descriptor") == 1
    inject(frame[:6] + frame[6:12] + plain[12:] + bytes(8))
    assert system.counter(ad, "drop_descriptor_no-descriptor") == 2, "zero padding is no descriptor"
    assert system.wire[mark:] == [] and len(system.ext["ie1"]) == 1, "nothing forwarded"
    # a genuine descriptor is still accepted after all that
    inject(frame)
    assert len(system.ext["ie1"]) == 2


def test_a_descriptor_for_another_cluster_or_a_loop_is_dropped(system):
    system.udp(50100)
    (ad, frame), = system.sent_by("id1")
    plain, d = detach(frame, system.key)
    off_path = d.with_(assignments=tuple(a for a in d.assignments if a.cluster != CLUSTER_IDS["AD"]))
    system.engines[ad].from_grid("vn6", attach(plain, off_path, system.key, frame[:6], frame[6:12]))
    assert system.counter(ad, "drop_not_on_path") == 1
    looped = d.with_(assignments=tuple(a.__class__(a.cluster, a.node, a.cluster == CLUSTER_IDS["AD"], a.reserved)
                                       for a in d.assignments))
    system.engines[ad].from_grid("vn6", attach(plain, looped, system.key, frame[:6], frame[6:12]))
    assert system.counter(ad, "drop_loop") == 1
    system.pump()
    assert len(system.ext["ie1"]) == 1


# ------------------------------------------------------------------ AF's filter
def test_af_drops_udp_to_port_9_on_path_52_and_passes_other_ports(system):
    system.udp(51000, dport=9)
    assert system.ext["ie1"] == []
    assert sum(system.counter(n, "drop_filtered") for n in ("af1", "af2")) == 1
    af = system.route(system.flow_id(51000))["AF"]
    assert system.counter(af, "drop_filtered") == 1 and system.sent_by(af) == []
    system.udp(51001, dport=10)
    system.udp(51002, dport=7000)
    assert len(system.ext["ie1"]) == 2
    system.udp(51003, dst=EN7, dport=9)
    assert len(system.ext["if1"]) == 1, "path 54 has no filter"
    assert sum(system.counter(n, "drop_filtered") for n in ("af1", "af2")) == 1


# ------------------------------------------------------------------ flow ends
def _fin_handshake_frames(system: System, since: int) -> list[tuple[str, str, Flags]]:
    return [(frm, to, system.desc(f).flags) for frm, to, f in system.wire[since:]]


def test_tcp_fin_ends_a_flow_everywhere_after_the_linger(system):
    def c(flags: str, **kw) -> bytes:
        return system.client(IP(src=CLIENT, dst=EN6) / TCP(sport=52000, dport=80, flags=flags, **kw))

    def s(flags: str, **kw) -> bytes:
        return system.server("ie1", IP(src=EN6, dst=CLIENT) / TCP(sport=80, dport=52000, flags=flags, **kw))

    c("S", seq=1)
    fid = system.flow_id(52000, proto=6)
    assert system.desc(system.sent_by("id1")[0][1]).flags == Flags.SOF
    assert system.desc(system.sent_by("id1")[0][1]).flow_type == 80, "flow type HTTP from the port"
    s("SA", seq=10, ack=2)
    c("A", seq=2, ack=11)
    c("FA", seq=2, ack=11)
    mark = len(system.wire)
    s("FA", seq=11, ack=3)
    flags = _fin_handshake_frames(system, mark)
    assert [f for _, _, f in flags] == [Flags.EOF | Flags.REVERSE] * 3, "the closing FIN carries end of flow"
    c("A", seq=3, ack=12)
    route = system.route(fid)
    for cluster, node in route.items():
        assert system.carriers(fid)[cluster][node]["state"] == "ended"
    assert system.ingress(fid)["state"] == "ended"
    assert len(system.ext["ie1"]) == 4 and len(system.ext["id1"]) == 2
    system.tick(LINGER_S / 2)
    assert system.carriers(fid) and system.engines["id1"].classifier.get(fid), "lingering"
    system.tick(LINGER_S)
    assert system.carriers(fid) == {}, "transit entries removed after the linger"
    assert system.engines["id1"].classifier.get(fid) == [] and system.engines["ie1"].classifier.get(fid) == []
    for n in ("id1", *route.values()):
        assert system.counter(n, "flows_ended") == 1, n
    assert system.engines["id1"].active.get(route["AD"]) == 0, "the ingress frees the route's load"


def test_tcp_rst_ends_a_flow_at_once(system):
    system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=53000, dport=22, flags="S", seq=1))
    fid = system.flow_id(53000, proto=6)
    system.server("if1", IP(src=EN7, dst=CLIENT) / TCP(sport=22, dport=53000, flags="SA", seq=5, ack=2))
    mark = len(system.wire)
    system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=53000, dport=22, flags="R", seq=2))
    frames = _fin_handshake_frames(system, mark)
    assert [f for _, _, f in frames if not f & Flags.BACKUP] == [Flags.EOF] * 3
    assert [f for _, _, f in frames if f & Flags.BACKUP] == [Flags.EOF | Flags.BACKUP], "AE's backup hears it too"
    route = system.route(fid)
    assert all(system.carriers(fid)[c][n]["state"] == "ended" for c, n in route.items())
    assert system.engines["if1"].classifier.get(fid)[0].state == "ended"
    system.tick(LINGER_S + 0.5)
    assert system.carriers(fid) == {} and system.engines["id1"].classifier.get(fid) == []
    assert system.engines["if1"].classifier.get(fid) == []
    # the tuple is free again: a new SYN starts a new flow (start of flow again)
    mark = len(system.wire)
    system.client(IP(src=CLIENT, dst=EN7) / TCP(sport=53000, dport=22, flags="S", seq=100))
    assert system.desc(system.sent_by("id1", mark)[0][1]).flags == Flags.SOF


def test_idle_udp_flows_expire_after_udp_idle_s(system):
    system.udp(54000)
    fid = system.flow_id(54000)
    assert system.carriers(fid)
    system.tick(5.0)
    assert system.carriers(fid), "udp_idle_s is 10 in fig5"
    system.tick(5.5)
    assert system.carriers(fid) == {} and system.engines["id1"].classifier.get(fid) == []


def test_report_sums_up_a_node(system):
    for s in range(55000, 55004):
        system.udp(s)
    rep = system.engines["id1"].report()
    assert rep["node"] == "id1" and rep["cluster"] == "ID" and rep["topology"] == 1 and rep["ready"]
    assert rep["counters"]["rx_packets"] == 4 and rep["counters"]["tx_packets"] == 4
    assert rep["counters"]["flows_new"] == 4 and rep["active"] == 4
    with pytest.raises(DescriptorError):
        detach(bytes(Ether(src=CLIENT_MAC, dst=ID1_EXT_MAC) / IP(src=CLIENT, dst=EN6) / UDP()), system.key)
