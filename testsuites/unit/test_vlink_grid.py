"""The connectivity grid (controllers/vlink/grid.py): one spanning tree over the trunks, rooted at the
first switch, so links never loop however the switches are cabled; and the VLAN pool (vlans.py)."""
from __future__ import annotations

import networkx as nx
import pytest

from controllers.vlink.grid import Grid
from controllers.vlink.vlans import DEFAULT_BLOCK, VlanPool
from vlink_sim import make_grid

pytestmark = pytest.mark.unit

TRIANGLE = [("s1", "t2", "s2", "t1"), ("s1", "t3", "s3", "t1"), ("s2", "t3", "s3", "t2")]


def triangle() -> Grid:
    return make_grid(["s1", "s2", "s3"], {"a:e1": "s1:p1", "b:e1": "s2:p1", "c:e1": "s3:p1"}, TRIANGLE)


def tree_edges(grid: Grid) -> set[frozenset[str]]:
    out = set()
    for sw in grid.switches:
        for port in grid.trunk_ports(sw):
            out.add(frozenset((sw, grid.neighbour(sw, port))))
    return out


# ------------------------------------------------------------------ the spanning tree
def test_a_triangle_drops_the_trunk_between_the_two_far_switches():
    g = triangle()
    assert tree_edges(g) == {frozenset({"s1", "s2"}), frozenset({"s1", "s3"})}
    assert g.trunk_ports("s1") == ["t2", "t3"]
    assert g.trunk_ports("s2") == ["t1"] and g.trunk_ports("s3") == ["t1"]   # s2:t3 - s3:t2 carries nothing
    assert g.neighbour("s2", "t3") is None and g.neighbour("s2", "t1") == "s1"


def test_the_tree_is_rooted_at_the_first_switch():
    g = make_grid(["s2", "s1", "s3"], {}, TRIANGLE)
    assert tree_edges(g) == {frozenset({"s2", "s1"}), frozenset({"s2", "s3"})}


def test_parallel_trunks_and_trunks_to_non_grid_switches_are_ignored():
    g = make_grid(["s1", "s2"], {}, [("s1", "t1", "s2", "t1"), ("s1", "t9", "s2", "t9"), ("s1", "x", "ex", "up"),
                                    ("s1", "l", "s1", "l2")])
    assert g.trunk_ports("s1") == ["t1"] and g.trunk_ports("s2") == ["t1"]
    assert g.neighbour("s1", "x") is None


def test_span_toward_and_connectivity_on_a_line():
    # s1 - s2 - s3 - s4, s5 alone
    g = make_grid(["s1", "s2", "s3", "s4", "s5"], {},
                  [("s1", "r", "s2", "l"), ("s2", "r", "s3", "l"), ("s3", "r", "s4", "l")])
    assert g.span(["s1", "s3"]) == {"s1", "s2", "s3"}
    assert g.span(["s4", "s2"]) == {"s2", "s3", "s4"}
    assert g.span(["s3"]) == {"s3"} and g.span([]) == set()
    assert g.toward("s2", {"s4"}) == ["r"]
    assert g.toward("s2", {"s1", "s4"}) == ["l", "r"]
    assert g.toward("s2", {"s1", "s4"}, exclude="l") == ["r"]
    assert g.toward("s2", {"s2"}) == [] and g.toward("s1", {"s5"}) == []
    assert g.connected(["s1", "s4"]) and g.connected([]) and g.connected(["s5"])
    assert not g.connected(["s1", "s5"])


def test_every_cyclic_cabling_gives_a_tree():
    # a full mesh of 5 switches with two cables between s1 and s2
    sw = [f"s{i}" for i in range(1, 6)]
    trunks = [(a, f"to{b}", b, f"to{a}") for i, a in enumerate(sw) for b in sw[i + 1:]]
    trunks.append(("s1", "extra", "s2", "extra"))
    g = make_grid(sw, {}, trunks)
    t = nx.Graph(list(map(tuple, tree_edges(g))))
    assert nx.is_tree(t) and set(t.nodes) == set(sw)
    # every switch reaches every other through exactly one of its trunk ports
    for s in sw:
        for other in sw:
            if other != s:
                assert len(g.toward(s, {other})) == 1


def test_lookups_by_endpoint_and_by_port():
    g = triangle()
    att = g.attachment("b:e1")
    assert (att.switch, att.port) == ("s2", "p1") and att.mac
    assert g.port_owner("s3", "p1").endpoint == "c:e1"
    assert g.port_owner("s3", "p9") is None and g.attachment("z:e1") is None


def test_config_round_trip():
    g = triangle()
    g.attachments["x:e1"] = type(g.attachments["a:e1"])("x:e1", "s1", "p2", None)
    cfg = g.to_config()
    assert "mac" not in cfg["attachments"]["x:e1"] and cfg["attachments"]["a:e1"]["mac"] == g.attachments["a:e1"].mac
    back = Grid.from_config(cfg)
    assert back == g
    assert tree_edges(back) == tree_edges(g)


# ------------------------------------------------------------------ VLANs
def test_allocate_takes_the_lowest_free_id_of_the_block():
    pool = VlanPool((10, 14), {11: "access VLAN of links[0]"})
    assert pool.allocate([]) == 10
    assert pool.allocate([10]) == 12
    assert pool.allocate([10, 12, 13]) == 14
    assert pool.allocate([10, 12, 13, 14]) is None
    assert VlanPool().block == DEFAULT_BLOCK and VlanPool().allocate(range(3000, 3005)) == 3005


def test_conflict_names_the_other_link_or_the_reservation():
    pool = VlanPool(reserved={100: "trunk VLAN of links[2] (g1:t1 - g2:t1)"})
    used = {3000: "cable1"}
    assert pool.conflict(3000, used, "vsw1") == "VLAN 3000 is already used by link cable1"
    assert pool.conflict(3000, used, "cable1") is None          # a link keeps its own VLAN
    assert pool.conflict(100, used) == "VLAN 100 is reserved: trunk VLAN of links[2] (g1:t1 - g2:t1)"
    assert pool.conflict(3001, used) is None
