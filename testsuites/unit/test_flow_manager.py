"""The MNODE's logic alone (emulators/flows/manager.py, seed 003 [0052], [0085]) on the Figure 5 plan:
numbering, liveness from heartbeats, a new topology on every failure, recovery, restart and operator
change, refusing strangers, the routes of [0064] and the statistics gathered per route."""
from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from emulators.flows.manager import BOOT_GRACE_S, HISTORY_SENT, FlowManager
from twin.lab.flows import flow_files
from twin.lab.loader import load_lab

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
NODES = ["ad1", "ad2", "ad3", "ae1", "ae2", "af1", "af2", "ar1", "ax1", "id1", "ie1", "if1"]


@pytest.fixture(scope="module")
def fig5_plan() -> dict[str, Any]:
    model = load_lab(ROOT / "labs" / "fig5.yaml")
    mgmt = {n: str(a.ip) for n, a in model.plan.mgmt.items()}
    return json.loads(flow_files(model.spec, mgmt, "t0001")["md1"][1])


class Harness:
    """A FlowManager with a hand-driven clock and a record of everything it sends."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.now = 500.0
        self.plan = copy.deepcopy(plan)
        self.plan["dead_intervals"] = 3          # the tests' timings; fig5 itself waits longer
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.boot = {n: 7.0 for n in self.plan["nodes"]}
        self.m = FlowManager(self.plan, lambda ip, t, body: self.sent.append((ip, t, body)), clock=lambda: self.now)

    def ip(self, node: str) -> str:
        return self.plan["nodes"][node]["mgmt_ip"]

    def hb(self, node: str, topology: int | None = None, **body: Any) -> str | None:
        body.setdefault("topology", self.m.topology.id if topology is None else topology)
        return self.m.on_message("hb", node, self.boot[node], body, self.ip(node))

    def beat(self, skip: tuple[str, ...] = ()) -> None:
        for n in self.plan["nodes"]:
            if n not in skip:
                assert self.hb(n) is None

    def run(self, seconds: float, skip: tuple[str, ...] = (), step: float = 0.1) -> None:
        """`seconds` of heartbeats every `step` from everyone but `skip`, the manager checking each time."""
        for _ in range(round(seconds / step)):
            self.now += step
            self.beat(skip)
            self.m.check()

    def live(self, node: str) -> bool:
        t = self.m.topology
        return node in t.clusters[t.cluster_of(node)].live


@pytest.fixture
def h(fig5_plan) -> Harness:
    return Harness(fig5_plan)


# ------------------------------------------------------------------ boot
def test_boot_topology_numbers_clusters_and_nodes_in_plan_order(h):
    t = h.m.topology
    assert t.id == 1 and t.reason == "boot"
    assert {name: v.cluster_id for name, v in t.clusters.items()} == {
        "ID": 1, "AD": 2, "AE": 3, "AF": 4, "IE": 5, "IF": 6, "AX": 7, "AR": 8}
    assert [(m.name, m.node_id, m.weight) for m in t.clusters["AD"].members] == [("ad1", 1, 2), ("ad2", 2, 1),
                                                                                 ("ad3", 3, 1)]
    assert [(m.name, m.node_id) for m in t.clusters["AF"].members] == [("af1", 1), ("af2", 2)]
    for view in t.clusters.values():
        assert view.live == {m.name for m in view.members}, f"{view.name}: every member live at boot"
    assert (t.clusters["AD"].strategy, t.clusters["AE"].strategy, t.clusters["AF"].strategy) == (
        "redirect", "backup", "discard")
    assert (t.clusters["AD"].balance, t.clusters["AE"].balance) == ("wrr", "rr")
    assert t.clusters["AE"].backups == {"ae1": "ae2", "ae2": "ae1"}, "each AE node backs the other up"
    assert t.clusters["AD"].backups == {}
    assert [e["reason"] for e in h.m.events] == ["boot"]
    assert sorted(h.m.nodes) == NODES
    assert h.m.dead_s == pytest.approx(0.3), "heartbeat_ms 100 x dead_intervals 3"
    assert h.sent == [], "nothing is sent before a node is heard or a broadcast"


def test_broadcast_sends_the_topology_to_every_node(h):
    h.m.broadcast()
    assert sorted(ip for ip, _, _ in h.sent) == sorted(h.ip(n) for n in NODES)
    assert {t for _, t, _ in h.sent} == {"topo"}
    body = h.sent[0][2]
    assert [t["id"] for t in body["history"]] == [1]
    assert body["selection"] == "centralized"
    assert body["paths"] == {"52": ["AD", "AF", "IE"], "54": ["AD", "AE", "IF"], "r52": ["AX", "AR"]}
    assert body["policies"][0]["replicate"] == "r52" and body["policies"][0]["dport"] == 7100
    assert body["functions"]["AE"] == "marker" and body["functions"]["AR"] == "recorder"
    assert set(body["load"]) == set(NODES)
    json.dumps(body)            # it travels as JSON


def test_a_first_heartbeat_or_a_stale_topology_gets_the_topology_sent(h):
    assert h.hb("ad1") is None
    assert [(ip, t) for ip, t, _ in h.sent] == [(h.ip("ad1"), "topo")], "first heard: send it the topology"
    h.sent.clear()
    assert h.hb("ad1") is None
    assert h.sent == [], "a node on the current topology is left alone"
    assert h.hb("ad1", topology=0) is None
    assert [ip for ip, _, _ in h.sent] == [h.ip("ad1")], "a node behind gets it again"


# ------------------------------------------------------------------ liveness
def test_heartbeats_keep_every_node_live(h):
    h.run(5.0)
    assert h.m.topology.id == 1 and all(n.alive for n in h.m.nodes.values())
    assert all(r["state"] == "up" and r["last_heard_ms"] == 0 for r in h.m.node_table())


def test_a_silent_node_fails_after_heartbeat_ms_times_dead_intervals(h):
    h.run(1.0)
    h.beat()
    h.m.check()
    h.sent.clear()
    t0 = h.now
    for dt in (0.1, 0.2, 0.29):
        h.now = t0 + dt
        h.beat(skip=("ad2",))
        h.m.check()
    assert h.m.topology.id == 1, "0.29 s of silence is within 3 x 100 ms"
    h.now = t0 + 0.32
    h.beat(skip=("ad2",))
    h.m.check()
    t = h.m.topology
    assert t.id == 2 and t.reason == "ad2 stopped answering"
    assert not h.live("ad2") and h.live("ad1") and h.live("ad3")
    assert t.clusters["AE"] == h.m.topologies[0].clusters["AE"], "other clusters are untouched"
    assert sorted(ip for ip, _, b in h.sent if b["history"][-1]["id"] == 2) == sorted(h.ip(n) for n in NODES)
    assert h.m.events[-1]["failed"] == ["ad2"] and h.m.events[-1]["topology"] == 2
    row = next(r for r in h.m.node_table() if r["node"] == "ad2")
    assert row["state"] == "down" and not row["live"] and row["last_heard_ms"] == 320
    h.run(1.0, skip=("ad2",))
    assert h.m.topology.id == 2, "a failed node is declared once"


def test_two_silent_nodes_make_one_topology(h):
    h.run(0.5)
    h.run(0.4, skip=("ad3", "af2"))
    assert h.m.topology.id == 2 and h.m.topology.reason == "ad3, af2 stopped answering"
    assert not h.live("ad3") and not h.live("af2")


def test_a_node_never_heard_fails_only_after_the_boot_grace(h):
    assert BOOT_GRACE_S == 20.0
    for _ in range(199):
        h.now += 0.1
        h.beat(skip=("ax1",))
        h.m.check()
    assert h.m.topology.id == 1 and h.m.nodes["ax1"].alive, "19.9 s after start: still in its boot grace"
    h.run(0.2, skip=("ax1",))
    assert h.m.topology.id == 2 and not h.live("ax1") and h.m.topology.reason == "ax1 stopped answering"
    assert next(r for r in h.m.node_table() if r["node"] == "ax1")["last_heard_ms"] is None


def test_a_failed_node_that_returns_makes_a_new_topology(h):
    h.run(0.5)
    h.run(0.5, skip=("af1",))
    assert h.m.topology.id == 2
    h.sent.clear()
    h.now += 0.1
    assert h.hb("af1", topology=2) is None
    t = h.m.topology
    assert t.id == 3 and t.reason == "af1 is back" and h.live("af1")
    assert len(h.sent) == len(NODES), "broadcast"
    assert h.m.events[-1]["restored"] == ["af1"]
    h.run(2.0)
    assert h.m.topology.id == 3


def test_a_restart_makes_two_topologies_failed_then_back(h):
    h.run(0.5)
    h.sent.clear()
    h.boot["ae1"] = 8.0                     # the node restarted: a new boot id, its flows' state is gone
    assert h.hb("ae1", topology=0) is None
    ids = [t.id for t in h.m.topologies]
    assert ids == [1, 2, 3]
    failed, back = h.m.topologies[1], h.m.topologies[2]
    assert failed.reason == "ae1 restarted" and "ae1" not in failed.clusters["AE"].live
    assert failed.clusters["AE"].backups == {}, "no backup with one live member"
    assert back.reason == "ae1 is back after a restart" and "ae1" in back.clusters["AE"].live
    assert back.clusters["AE"].backups == {"ae1": "ae2", "ae2": "ae1"}
    assert [b["history"][-1]["id"] for _, _, b in h.sent] == [2] * len(NODES) + [3] * len(NODES)
    h.run(1.0)
    assert h.m.topology.id == 3, "the same boot id again is no restart"


def test_strangers_are_refused_with_the_reason(h):
    why = h.m.on_message("hb", "zz9", 1.0, {}, "10.0.0.9")
    assert why == "stranger: 'zz9' is not a flow node of this system"
    why = h.m.on_message("hb", "ad1", 1.0, {}, "10.0.0.9")
    assert why == f"stranger: ad1 speaks from 10.0.0.9, its management address is {h.ip('ad1')}"
    assert not h.m.nodes["ad1"].heard and h.sent == [], "a refused message counts for nothing"
    why = h.m.on_message("stats", "md1", 1.0, {}, h.plan["mgmt_ip"])
    assert why is not None and "not a flow node" in why, "the MNODE itself is no flow node"


# ------------------------------------------------------------------ operator changes
def test_set_service_out_and_in_makes_topologies_with_reasons(h):
    h.run(0.5)
    t = h.m.set_service("ad3", False)
    assert t.id == 2 and t.reason == "operator: ad3 out of service" and not h.live("ad3")
    assert h.m.set_service("ad3", False) is t, "no change, no topology"
    h.run(0.5)
    assert h.m.topology.id == 2, "its heartbeats do not put it back"
    t = h.m.set_service("ad3", True)
    assert t.id == 3 and t.reason == "operator: ad3 in service" and h.live("ad3")
    assert [e["reason"] for e in h.m.events][-2:] == ["operator: ad3 out of service", "operator: ad3 in service"]
    row = next(r for r in h.m.node_table() if r["node"] == "ad3")
    assert row["service"] == "in" and row["cluster_id"] == 2 and row["node_id"] == 3


def test_an_out_of_service_node_failing_and_returning_changes_nothing_until_put_back(h):
    h.run(0.5)
    h.m.set_service("af2", False)
    h.run(0.5, skip=("af2",))
    assert h.m.topology.id == 2 and not h.m.nodes["af2"].alive
    h.run(0.5)
    assert h.m.topology.id == 2 and h.m.nodes["af2"].alive
    assert h.m.set_service("af2", True).id == 3 and h.live("af2")


def test_set_service_of_a_failed_node_waits_for_it(h):
    h.run(0.5)
    h.run(0.5, skip=("af2",))
    assert h.m.topology.id == 2
    assert h.m.set_service("af2", False).id == 2, "already out of the topology"
    h.run(0.5)
    assert h.m.topology.id == 2 and not h.live("af2"), "back, but out of service"
    assert h.m.set_service("af2", True).id == 3 and h.live("af2")


def test_an_unknown_node_is_a_key_error_naming_the_known_ones(h):
    with pytest.raises(KeyError) as exc:
        h.m.set_service("zz9", False)
    assert f"unknown flow node 'zz9' (nodes: {', '.join(NODES)})" in str(exc.value)


def test_set_selection_switches_the_mode_everyone_gets(h):
    with pytest.raises(ValueError, match="centralized or distributed"):
        h.m.set_selection("random")
    assert h.m.set_selection("distributed") == "distributed"
    assert len(h.sent) == len(NODES) and all(b["selection"] == "distributed" for _, _, b in h.sent)
    assert h.m.topology.id == 1, "a selection change is no new topology"
    assert h.m.summary()["selection"] == "distributed"
    assert h.m.events[-1]["reason"] == "operator: distributed next-hop selection"


def test_message_carries_at_most_16_topologies(h):
    for i in range(20):
        h.m.set_service("ad1", i % 2 == 1)
    assert h.m.topology.id == 21
    msg = h.m.message()
    assert HISTORY_SENT == 16
    assert [t["id"] for t in msg["history"]] == list(range(6, 22)), "the newest 16, oldest first"
    assert len(h.m.topologies) == 21, "the manager itself keeps more"


def test_topology_ids_wrap_from_255_to_1(h):
    for i in range(256):
        h.m.set_service("ad1", i % 2 == 1)
    assert h.m.topology.id == 2, "1 + 256 changes, one byte, 0 unused: 255 -> 1"
    assert [t["id"] for t in h.m.message()["history"]][-3:] == [255, 1, 2]


def test_check_rebroadcasts_every_second_when_nothing_changes(h):
    h.m.broadcast()
    h.sent.clear()
    h.now += 0.9
    h.m.check()
    assert h.sent == []
    h.now += 0.1
    h.m.check()
    assert len(h.sent) == len(NODES)


# ------------------------------------------------------------------ routes and statistics
def test_routes_enumerates_the_13_flow_routes_of_fig5(h):
    routes = h.m.routes()
    assert len(routes) == 13 and h.m.summary()["routes"] == 13
    by_path: dict[str, list[tuple[str, ...]]] = {}
    for r in routes:
        by_path.setdefault(r["path"], []).append(tuple(r["route"]))
        assert r["flows"] == 0
    assert by_path["52"] == list(itertools.product(["ad1", "ad2", "ad3"], ["af1", "af2"], ["ie1"]))
    assert by_path["54"] == list(itertools.product(["ad1", "ad2", "ad3"], ["ae1", "ae2"], ["if1"]))
    assert by_path["r52"] == [("ax1", "ar1")]


def test_routes_of_paths_52_and_54_are_the_twelve_of_the_figure(fig5_plan):
    plan = copy.deepcopy(fig5_plan)
    plan["paths"] = {k: v for k, v in plan["paths"].items() if k in ("52", "54")}
    h = Harness(plan)
    assert len(h.m.routes()) == 12, "[0064]: a total of twelve possible flow routes"


def test_routes_count_ingress_flows_from_stats_messages(h):
    def rec(route: list[str], path: str = "52", role: str = "ingress") -> dict[str, Any]:
        return {"id": "01000001", "role": role, "path": path, "route": route, "pkts": [1, 1]}

    flows = [rec(["id1", "ad1", "af2", "ie1"]), rec(["id1", "ad1", "af2", "ie1"]),
             rec(["id1", "ad2", "af1", "ie1", "ar1"]),             # replicated: the recorder after the egress
             rec(["id1", "ad3", "ae1", "if1"], path="54"),
             rec(["id1", "ax1", "ar1"], path="r52", role="egress")]
    report = {"counters": {"rx_packets": 9}, "pps": 12.5, "active": 5, "topology": 1}
    assert h.m.on_message("stats", "id1", 7.0, {"report": report, "flows": flows}, h.ip("id1")) is None
    transit = [rec(["-"], role="transit")]
    assert h.m.on_message("stats", "ad1", 7.0, {"report": {}, "flows": transit}, h.ip("ad1")) is None
    counts = {(r["path"], tuple(r["route"])): r["flows"] for r in h.m.routes()}
    assert counts[("52", ("ad1", "af2", "ie1"))] == 2
    assert counts[("52", ("ad2", "af1", "ie1"))] == 1
    assert counts[("54", ("ad3", "ae1", "if1"))] == 1
    assert sum(counts.values()) == 4, "only ingress records count, once per flow"
    assert len(h.m.flows()) == 6 and {f["node"] for f in h.m.flows()} == {"id1", "ad1"}
    row = next(r for r in h.m.node_table() if r["node"] == "id1")
    assert row["counters"] == {"rx_packets": 9} and row["pps"] == 12.5 and row["active"] == 5
    assert h.m.message()["load"]["id1"] == 17.5, "pps + active flows"
    # the next stats message replaces the node's flows
    assert h.m.on_message("stats", "id1", 7.0, {"report": report, "flows": []}, h.ip("id1")) is None
    assert sum(r["flows"] for r in h.m.routes()) == 0


def test_a_heartbeat_updates_the_node_s_load_figures(h):
    assert h.hb("ad2", pps=40.0, active=3, ignored="x") is None
    assert h.m.nodes["ad2"].report == {"pps": 40.0, "active": 3, "topology": 1}
    assert h.m.message()["load"]["ad2"] == 43.0


def test_a_stall_of_the_mnode_itself_fails_nobody(h):
    """Checks that come late (the MNODE was starved) say nothing about the nodes: a fresh interval."""
    h.run(1.0)
    h.now += 2.0                                   # nothing checked, nothing read for 2 s
    h.m.check()
    assert h.m.topology.id == 1 and h.m.stalls == 1
    h.run(0.2, skip=("ad2",))
    assert h.m.topology.id == 1, "still within the hold-off after the stall"
    h.run(0.5, skip=("ad2",))
    assert h.m.topology.id == 2 and not h.live("ad2"), "a node silent past the hold-off does fail"


def test_most_nodes_silent_at_once_is_not_believed(h):
    """When more than half the nodes fall silent together, the MNODE suspects itself (or its network)."""
    h.run(1.0)
    quiet = tuple(n for n in NODES if n not in ("id1", "ie1", "if1"))
    h.run(0.5, skip=quiet)
    assert h.m.topology.id == 1 and h.m.stalls >= 1 and all(h.m.nodes[n].alive for n in quiet)
