"""Checks of a link against the grid and the existing links (controllers/vlink/check.py): each problem
carries the API's HTTP status (400 wrong in itself, 404 unknown reference, 409 clash) and a field path."""
from __future__ import annotations

import pytest

from controllers.vlink.check import check_link, delete_problems
from controllers.vlink.model import parse_link
from controllers.vlink.vlans import VlanPool
from vlink_sim import make_grid, records

pytestmark = pytest.mark.unit

# s1, s2, s3 in a triangle; s4 is a grid switch without trunks
GRID = make_grid(
    ["s1", "s2", "s3", "s4"],
    {"a:e1": "s1:p1", "a:e2": "s1:p2", "e:e1": "s1:p3", "h:e1": "s1:p4",
     "b:e1": "s2:p1", "b:e2": "s2:p2", "f:e1": "s2:p3",
     "en:e1": "s2:p9", "c:e1": "s3:p1", "c:e2": "s3:p2", "c:e3": "s3:p3", "ex:up": "s3:p14", "d:e1": "s4:p1"},
    [("s1", "t2", "s2", "t1"), ("s1", "t3", "s3", "t1"), ("s2", "t3", "s3", "t2")])
NODES = {"a", "b", "c", "d", "e", "f", "en", "ex", "g", "h"}
POOL = VlanPool((3000, 3099), {42: "access VLAN of links[7] (h9:eth1 - s1:p7)"})

LINKS = records(
    ("cab", {"type": "cable", "members": ["a:e1", "b:e1"]}),
    ("vsw", {"type": "switch", "members": ["a:e2", "b:e2", "c:e1"]}),
    ("ext", {"type": "external", "members": ["c:e2"], "external": {"port": "s2:p9"}}),
    ("ext100", {"type": "external", "vlan": 100, "members": ["c:e3"], "external": {"port": "s3:p14", "tagged": True}}),
    ("rep", {"type": "replicated", "tap": "cab", "members": ["e:e1"]}),
)


def check(body, name: str = "new", links=LINKS, nodes=NODES):
    return [(p.status, p.path, p.message) for p in check_link(parse_link(body, name), GRID, links, POOL, nodes)]


def only(body, name: str = "new", links=LINKS):
    found = check(body, name, links)
    assert len(found) == 1, found
    return found[0]


def test_a_good_link_has_no_problems():
    assert check({"type": "switch", "members": ["h:e1", "f:e1"]}, links={}) == []
    assert check({"type": "cable", "members": ["h:e1", "f:e1"], "vlan": 3050}) == []


def test_a_name_that_exists():
    assert only({"type": "cable", "members": ["h:e1", "f:e1"]}, "cab") == \
        (409, "name", "a link named cab already exists (cable, VLAN 3000)")


def test_an_unknown_node_is_404():
    assert only({"type": "cable", "members": ["h:e1", "zz:e1"]}) == \
        (404, "members[1]", "unknown node 'zz' (lab nodes: a, b, c, d, e, en, ex, f, g, h)")


def test_an_endpoint_not_wired_to_the_grid_is_400():
    status, path, msg = only({"type": "cable", "members": ["a:e9", "f:e1"]})
    assert (status, path) == (400, "members[0]")
    assert msg == "a:e9 is not wired to a grid switch (a's grid interfaces: a:e1, a:e2)"
    assert only({"type": "cable", "members": ["h:e1", "g:e1"]})[2] == \
        "g:e1 is not wired to a grid switch (g has no interface on the grid)"


def test_an_endpoint_on_another_link_is_409():
    assert only({"type": "cable", "members": ["h:e1", "b:e2"]}) == \
        (409, "members[1]", "b:e2 already belongs to link vsw; a node interface carries one virtual link")


def test_the_same_link_may_keep_its_own_endpoints():
    # checking a link against a table without itself: what an update of `vsw` looks like
    others = {k: v for k, v in LINKS.items() if k != "vsw"}
    assert check({"type": "switch", "members": ["a:e2", "b:e2"]}, "vsw", links=others) == []


def test_members_on_switches_no_trunk_joins():
    assert only({"type": "cable", "members": ["h:e1", "d:e1"]}) == \
        (400, "members", "the members' switches (s1, s4) are not joined by grid trunks")


# ------------------------------------------------------------------ VLANs
def test_a_vlan_another_link_has():
    assert only({"type": "cable", "members": ["h:e1", "f:e1"], "vlan": 3001}) == \
        (409, "vlan", "VLAN 3001 is already used by link vsw")


def test_a_reserved_vlan():
    assert only({"type": "cable", "members": ["h:e1", "f:e1"], "vlan": 42}) == \
        (409, "vlan", "VLAN 42 is reserved: access VLAN of links[7] (h9:eth1 - s1:p7)")


# ------------------------------------------------------------------ external ports
@pytest.mark.parametrize("port, expected", [
    ("s9:p1", (400, "external.port", "s9 is not a grid switch (grid: s1, s2, s3, s4)")),
    ("s2:t3", (400, "external.port", "s2:t3 is a trunk between grid switches")),   # off the tree, still a trunk
    ("s1:t2", (400, "external.port", "s1:t2 is a trunk between grid switches")),
    ("s1:p8", (400, "external.port", "nothing is wired to s1:p8")),
    ("s2:p9", (409, "external.port", "s2:p9 is already the untagged external port of link ext")),
    ("s3:p1", (409, "external.port", "s3:p1 (c:e1) is a member of link vsw")),
])
def test_untagged_external_port_problems(port, expected):
    assert only({"type": "external", "members": ["f:e1"], "external": {"port": port}}) == expected


def test_tagged_and_untagged_links_on_one_external_port():
    assert only({"type": "external", "members": ["f:e1"], "external": {"port": "s3:p14"}}) == \
        (409, "external.port", "s3:p14 carries tagged link ext100; an untagged link needs the port to itself")
    # tagged links share the port, each with its own tag
    assert check({"type": "external", "vlan": 200, "members": ["f:e1"],
                  "external": {"port": "s3:p14", "tagged": True}}) == []
    assert only({"type": "external", "vlan": 100, "members": ["f:e1"],
                 "external": {"port": "s3:p14", "tagged": True}}) == \
        (409, "vlan", "VLAN 100 is already used by link ext100")


def test_the_owner_of_an_external_port_cannot_join_another_link():
    # en:e1 is behind s2:p9, the external port of link `ext`; the reverse order is refused with 409
    found = check({"type": "cable", "members": ["en:e1", "f:e1"]})
    assert [(s, p) for s, p, _ in found] == [(409, "members[0]")]


# ------------------------------------------------------------------ references
@pytest.mark.parametrize("body, expected", [
    ({"type": "replicated", "tap": "nope", "members": ["f:e1"]},
     (404, "tap", "no link named 'nope' to tap (links: cab, ext, ext100, rep, vsw)")),
    ({"type": "replicated", "tap": "rep", "members": ["f:e1"]},
     (400, "tap", "rep is a replicated link; tap the link it copies from instead")),
    ({"type": "replicated", "tap": "cab", "source": "c:e1", "members": ["f:e1"]},
     (400, "source", "c:e1 is not a member of cab (members: a:e1, b:e1)")),
    ({"type": "replicated", "tap": "vsw", "members": ["f:e1"]},
     (400, "source", "vsw is a virtual switch: name the member whose frames are tapped (default would be a:e2)")),
    ({"type": "probe", "members": ["f:e1"], "points": [{"link": "cab"}, {"link": "nope"}]},
     (404, "points[1].link", "no link named 'nope' (links: cab, ext, ext100, rep, vsw)")),
    ({"type": "probe", "members": ["f:e1"], "points": [{"link": "rep"}]},
     (400, "points[0].link", "rep is a replicated link, which carries copies only")),
    ({"type": "probe", "members": ["f:e1"], "points": [{"interface": "a:e9"}]},
     (404, "points[0].interface", "a:e9 is not a member of any virtual link")),
    ({"type": "probe", "members": ["f:e1"], "points": [{"interface": "e:e1"}]},     # member of a copy link only
     (404, "points[0].interface", "e:e1 is not a member of any virtual link")),
])
def test_reference_problems(body, expected):
    assert only(body) == expected


def test_good_references():
    assert check({"type": "replicated", "tap": "vsw", "source": "c:e1", "members": ["f:e1"]}) == []
    assert check({"type": "probe", "members": ["f:e1"], "points": [{"link": "ext"}, {"interface": "b:e2"}]}) == []
    assert check({"type": "replicated", "tap": "x", "members": ["f:e1"]}, links={})[0][2] == \
        "no link named 'x' to tap (links: none)"


def test_problems_print_as_path_and_message():
    (p,) = check_link(parse_link({"type": "cable", "members": ["h:e1", "f:e1"], "vlan": 3000}, "n"), GRID, LINKS, POOL)
    assert str(p) == "vlan: VLAN 3000 is already used by link cab"


# ------------------------------------------------------------------ deleting
def test_delete_a_free_link_and_an_unknown_one():
    assert delete_problems("vsw", LINKS) == []
    assert delete_problems("rep", LINKS) == []
    (p,) = delete_problems("nope", LINKS)
    assert (p.status, str(p)) == (404, "no link named 'nope' (links: cab, ext, ext100, rep, vsw)")


def test_delete_a_link_others_copy_from():
    (p,) = delete_problems("cab", LINKS)
    assert (p.status, p.message) == (409, "link cab is copied by rep; delete it first")
    links = {**LINKS, **records(
        ("pr1", {"type": "probe", "members": ["f:e1"], "points": [{"link": "cab"}]}),
        ("pr2", {"type": "probe", "members": ["d:e1"], "points": [{"interface": "b:e1"}]}),
        ("pr3", {"type": "probe", "members": ["c:e1"], "points": [{"interface": "a:e2"}]}), first_vlan=3050)}
    (p,) = delete_problems("cab", links)
    assert p.message == "link cab is copied by rep, pr1, pr2; delete them first"
    assert delete_problems("vsw", links)[0].message == "link vsw is copied by pr3; delete it first"
