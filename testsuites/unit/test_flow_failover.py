"""failover.route_hop: the node of a cluster for a flow, walking every topology since the flow started
([0081], [0085]); what the e2e failure tests rely on, case by case."""
from __future__ import annotations

import pytest

from emulators.flows.failover import route_hop
from emulators.flows.topology import ClusterView, Member, Topology

pytestmark = pytest.mark.unit


def topo(strategy: str, names: list[str]) -> Topology:
    members = [Member(n, i) for i, n in enumerate(names, start=1)]
    return Topology(1, {"C": ClusterView.build("C", 2, members, None, strategy, "rr")})


def history(first: Topology, *changes: tuple[list[str], list[str]]) -> list[Topology]:
    out = [first]
    for failed, restored in changes:
        out.append(out[-1].next(failed=failed, restored=restored))
    return out


def test_an_untouched_flow_keeps_its_node_through_other_failures():
    h = history(topo("redirect", ["a", "b", "c"]), (["b"], []), ([], ["b"]), (["c"], []))
    assert route_hop(7, 1, 1, h, "C").node == "a" and route_hop(7, 1, 1, h, "C").action == "primary"


def test_redirect_sticks_after_the_failed_node_returns():
    h = history(topo("redirect", ["a", "b", "c"]), (["b"], []), ([], ["b"]))
    hop = route_hop(7, 2, 1, h, "C")
    assert hop.node in ("a", "c") and hop.action == "redirect"
    assert route_hop(7, 2, 1, h[:2], "C").node == hop.node, "the same node during and after the failure"


def test_a_one_node_cluster_redirects_to_its_node_once_it_is_back():
    h = history(topo("redirect", ["ie"]), (["ie"], []))
    assert route_hop(9, 1, 1, h, "C").node is None, "nobody live: dropped meanwhile"
    h = history(topo("redirect", ["ie"]), (["ie"], []), ([], ["ie"]))
    assert route_hop(9, 1, 1, h, "C").node == "ie"


def test_discard_is_for_good():
    h = history(topo("discard", ["a", "b"]), (["a"], []), ([], ["a"]))
    assert route_hop(3, 1, 1, h, "C").node is None and route_hop(3, 1, 1, h, "C").action == "discard"
    assert route_hop(3, 2, 1, h, "C").node == "b", "the other node's flows pass"


def test_backup_shadows_then_takes_over_and_keeps_the_flow():
    first = topo("backup", ["a", "b", "c"])
    assert route_hop(5, 1, 1, [first], "C").shadow == first.clusters["C"].backups["a"] == "b"
    h = history(first, (["a"], []), ([], ["a"]))
    hop = route_hop(5, 1, 1, h, "C")
    assert hop.node == "b" and hop.action == "backup" and hop.shadow is None


def test_a_backup_that_took_over_and_fails_is_redirected_not_backed_up_again():
    h = history(topo("backup", ["a", "b", "c"]), (["a"], []), (["b"], []))
    hop = route_hop(5, 1, 1, h, "C")
    assert hop.node == "c" and hop.action == "redirect"


def test_distributed_hashes_over_the_flows_own_topology():
    h = history(topo("redirect", ["a", "b", "c"]), (["c"], []))
    old = route_hop(11, 0, 1, h[:1], "C").node
    if old != "c":
        assert route_hop(11, 0, 1, h, "C").node == old, "n of the flow's topology, not the current one"
