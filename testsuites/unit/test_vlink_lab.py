"""Virtual links in a lab file (twin/lab/grid.py): the grid as the manager sees it, and the lab-time
checks of the `vlinks:` section, reported at `vlinks.<name>.<field>` like every other lab problem."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin.lab import load_lab, parse_lab
from twin.lab.grid import (check_vlinks, controller_section, endpoint_mac, grid_of, pool_of, reserved_vlans,
                           shared_identity)
from lab_problems import lab_variant, problems, with_path

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LAB = (ROOT / "labs" / "vlinks.yaml").read_text()


def variant(*edits: tuple[str, str]) -> str:
    return lab_variant(LAB, *edits)


def add_vlinks(*lines: str) -> str:
    """The shipped lab with more entries at the end of its `vlinks:` section."""
    assert LAB.rstrip().endswith("tagged: true}}")
    return LAB.rstrip() + "\n" + "".join(f"  {line}\n" for line in lines)


MINI = """
name: mini
mgmt: {enabled: false}
nodes:
  s1: {kind: switch}
  s2: {kind: switch}
  h1: {}
  h2: {}
links:
  - endpoints: [s1:t1, s2:t1]
  - endpoints: [h1:eth1, s1:p1]
  - endpoints: [h2:eth1, s2:p1]
"""


@pytest.fixture(scope="module")
def model():
    return load_lab(ROOT / "labs" / "vlinks.yaml")


# ------------------------------------------------------------------ the shipped lab
def test_the_shipped_vlinks_lab_validates(model):
    assert check_vlinks(model.spec) == []
    assert list(model.spec.vlinks)[:2] == ["cable1", "vsw1"]


def test_grid_of_the_shipped_lab(model):
    g = grid_of(model.spec)
    assert g.switches == ["g1", "g2", "g3"]
    assert [(t.a, t.a_port, t.b, t.b_port) for t in g.trunks] == [("g1", "t2", "g2", "t1"), ("g1", "t3", "g3", "t1"),
                                                                  ("g2", "t3", "g3", "t2")]
    h1 = g.attachment("h1:eth1")
    assert (h1.switch, h1.port, h1.mac) == ("g1", "p1", endpoint_mac("h1:eth1"))
    # the external network's switch is behind a grid port but has no MAC of its own
    ex = g.attachment("ex:up")
    assert (ex.switch, ex.port, ex.mac) == ("g3", "p14", None)
    assert g.attachment("en2:eth1") is None, "behind the external switch, not on the grid"
    # the triangle's g2-g3 trunk is off the spanning tree
    assert g.trunk_ports("g2") == ["t1"] and g.trunk_ports("g3") == ["t1"]


def test_endpoint_macs_are_stable_and_locally_administered():
    mac = endpoint_mac("h1:eth1")
    assert re.fullmatch(r"02(:[0-9a-f]{2}){5}", mac)
    assert mac == endpoint_mac("h1:eth1") != endpoint_mac("h1:eth2")


def test_a_trunk_to_a_switch_outside_the_grid_reserves_nothing(model):
    assert reserved_vlans(model.spec) == {}
    assert pool_of(model.spec).block == (3000, 3099)


def test_shared_identity_is_the_resilient_primary_and_standby(model):
    assert shared_identity(model.spec) == {frozenset({"h8:eth1", "h3:eth3"})}
    assert shared_identity(parse_lab(MINI).spec) == set()


def test_a_lab_without_a_grid_has_nothing_to_check():
    spec = parse_lab(MINI).spec
    assert not spec.has_grid() and check_vlinks(spec) == []


def test_the_controller_section(model):
    sec = controller_section(model.spec, "/var/lib/twin/vlinks.db")
    assert sec["grid"] == grid_of(model.spec).to_config()
    assert sec["vlan_block"] == [3000, 3099] and sec["db"] == "/var/lib/twin/vlinks.db"
    assert [link["name"] for link in sec["links"]] == list(model.spec.vlinks)
    assert sec["links"][0] == {"type": "cable", "members": ["h1:eth1", "h2:eth1"], "name": "cable1"}
    assert "ex" in sec["nodes"]


# ------------------------------------------------------------------ the grid's switches
def test_grid_switches_must_be_lab_switches():
    found = problems(variant(("switches: [g1, g2, g3]", "switches: [g1, g2, g3, h1, gx]")))
    (hit,) = with_path(found, "grid.switches[3]")
    assert hit.endswith("h1 is a host, not a switch")
    (hit,) = with_path(found, "grid.switches[4]")
    assert hit.endswith("unknown node 'gx'")


def test_without_a_switch_list_every_lab_switch_is_on_the_grid():
    spec = parse_lab(MINI + "vlinks:\n  c: {type: cable, members: [h1:eth1, h2:eth1]}\n").spec
    g = grid_of(spec)
    assert g.switches == ["s1", "s2"] and g.trunk_ports("s1") == ["t1"]
    assert check_vlinks(spec) == []


# ------------------------------------------------------------------ link problems at their paths
def test_a_member_not_on_the_grid():
    found = problems(variant(("cable1: {type: cable, members: [h1:eth1, h2:eth1]}",
                              "cable1: {type: cable, members: [h1:eth1, h2:eth9]}")))
    (hit,) = with_path(found, "vlinks.cable1.members[1]")
    assert "h2:eth9 is not wired to a grid switch (h2's grid interfaces: h2:eth1, h2:eth2, h2:eth3, h2:eth4, " \
           "h2:eth5)" in hit


def test_an_unknown_node():
    found = problems(add_vlinks("c9: {type: cable, members: [h1:eth5, zz:eth1]}"))
    (hit,) = with_path(found, "vlinks.c9.members[1]")
    assert "unknown node 'zz' (lab nodes: c1, en1, en2, en3, ex, g1, g2, g3, h1," in hit


def test_an_interface_on_two_links():
    found = problems(add_vlinks("c9: {type: cable, members: [h1:eth5, h2:eth1]}"))
    (hit,) = with_path(found, "vlinks.c9.members[1]")
    assert hit.endswith("h2:eth1 already belongs to link cable1; a node interface carries one virtual link")


def test_vlan_clashes_with_another_link_and_with_the_labs_own_vlans():
    found = problems(add_vlinks("c9: {type: cable, vlan: 3000, members: [h1:eth5, h2:eth5]}"))
    (hit,) = with_path(found, "vlinks.c9.vlan")
    assert hit.endswith("VLAN 3000 is already used by link cable1"), "cable1 got the first ID of the block"
    text = add_vlinks("c9: {type: cable, vlan: 300, members: [h1:eth5, h2:eth5]}").replace(
        "  - endpoints: [h4:eth5, g3:p16]\n", "  - {endpoints: [h4:eth5, g3:p16], vlan: 300}\n")
    (hit,) = with_path(problems(text), "vlinks.c9.vlan")
    assert hit.endswith("VLAN 300 is reserved: access VLAN of links[35] (h4:eth5 - g3:p16)")


def test_a_trunk_vlan_between_grid_switches_is_reserved_and_skipped_by_allocation():
    text = variant(("  - endpoints: [g1:t2, g2:t1]\n", "  - {endpoints: [g1:t2, g2:t1], trunk: [3000, 3002]}\n"))
    spec = parse_lab(text).spec
    assert reserved_vlans(spec) == {3000: "trunk VLAN of links[0] (g1:t2 - g2:t1)",
                                    3002: "trunk VLAN of links[0] (g1:t2 - g2:t1)"}
    assert pool_of(spec).allocate([]) == 3001 and pool_of(spec).allocate([3001]) == 3003


def test_the_vlan_block_runs_out():
    text = variant(("vlan_block: [3000, 3099]", "vlan_block: [3000, 3004]"))
    found = problems(text)
    # ten links need a VLAN from the block (ext100 and ext200 name theirs); the sixth finds none
    (hit,) = with_path(found, "vlinks.clu1.vlan")
    assert hit.endswith("the VLAN block 3000-3004 is exhausted")


def test_a_tap_of_a_link_the_file_does_not_define():
    found = problems(variant(("rep1: {type: replicated, tap: clu1, members: [h6:eth4]}",
                              "rep1: {type: replicated, tap: clu9, members: [h6:eth4]}")))
    (hit,) = with_path(found, "vlinks.rep1.tap")
    assert "no link named 'clu9' to tap (links: cable1, clu1, hub1, p2mp1, res1, vsw1, vsw2)" in hit


def test_a_probe_may_only_use_links_defined_before_it():
    found = problems(variant(("points: [{link: cable1}, {interface: h3:eth1}]",
                              "points: [{link: ext1}, {interface: h3:eth1}]")))
    (hit,) = with_path(found, "vlinks.probe1.points[0].link")
    assert "no link named 'ext1'" in hit


def test_model_errors_carry_the_link_and_field_path():
    found = problems(variant(("p2mp1:\n    type: p2mp", "p2mp1:\n    type: p2mp\n    vlan: 5000")))
    (hit,) = with_path(found, "vlinks.p2mp1.vlan")
    assert hit.endswith("VLAN 5000 is outside 1-4094")
    found = problems(add_vlinks("c9: {type: cable, members: [h1:eth5, 'h2 eth5']}"))
    (hit,) = with_path(found, "vlinks.c9.members[1].endpoint")
    assert hit.endswith("expected 'node:interface' like 'aa1:eth1', got 'h2 eth5'")


def test_a_second_p2mp_root_is_reported_at_the_member():
    found = problems(variant(("members: [{h5:eth2: root}, h2:eth3, h6:eth3, h7:eth1]",
                              "members: [{h5:eth2: root}, h2:eth3, {h6:eth3: root}, h7:eth1]")))
    hits = with_path(found, "vlinks.p2mp1.members[2]")
    assert any("a p2mp link has one root" in h for h in hits)


def test_a_second_p2mp_root_is_one_problem_with_the_whole_message():
    found = problems(variant(("members: [{h5:eth2: root}, h2:eth3, h6:eth3, h7:eth1]",
                              "members: [{h5:eth2: root}, h2:eth3, {h6:eth3: root}, h7:eth1]")))
    vl = [p for p in found if ": vlinks." in p]
    assert len(vl) == 1 and vl[0].endswith("vlinks.p2mp1.members[2]: a p2mp link has one root; h6:eth3 would be a "
                                           "second root (the root is already h5:eth2)"), vl
