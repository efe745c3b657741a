"""The virtual link record (controllers/vlink/model.py): one pydantic model for lab files, the API and
the store; role rules per link type; every error names the field that is wrong."""
from __future__ import annotations

import pytest

from controllers.vlink.model import LINK_TYPES, ROLES, VLinkSpec, parse_link
from controllers.vlink.store import spec_json

pytestmark = pytest.mark.unit


def error(body, name: str | None = "l1") -> str:
    with pytest.raises(ValueError) as exc:
        parse_link(body, name)
    return str(exc.value)


# ------------------------------------------------------------------ accepted forms
def test_member_strings_take_the_default_role_and_dicts_name_it():
    spec = parse_link({"type": "p2mp", "members": [{"r:eth1": "root"}, "a:eth1", {"endpoint": "b:eth1"}]}, "p")
    assert spec.name == "p" and spec.endpoints() == ["r:eth1", "a:eth1", "b:eth1"]
    assert [spec.role_of(i) for i in range(3)] == ["root", "leaf", "leaf"]
    assert [m.endpoint for m in spec.with_role("leaf")] == ["a:eth1", "b:eth1"]
    assert spec.members[0].node == "r"


def test_a_cable_is_side_a_first_then_side_b():
    spec = parse_link({"type": "cable", "members": ["x:e1", "y:e1"]}, "c")
    assert (spec.role_of(0), spec.role_of(1)) == ("a", "b")
    # explicit roles win over position
    spec = parse_link({"type": "cable", "members": [{"x:e1": "b"}, {"y:e1": "a"}]}, "c")
    assert (spec.role_of(0), spec.role_of(1)) == ("b", "a")


def test_member_mapping_may_carry_member_options():
    spec = parse_link({"type": "hub", "members": ["a:e1", {"b:e1": {"promiscuous": True}}]}, "h")
    assert [m.promiscuous for m in spec.members] == [False, True]
    assert spec.role_of(1) == "member"


@pytest.mark.parametrize("body", [
    {"type": "cable", "members": ["a:e1", "b:e1"]},
    {"type": "switch", "members": ["a:e1", "b:e1", "c:e1"]},
    {"type": "hub", "members": ["a:e1", {"endpoint": "b:e1", "promiscuous": True}]},
    {"type": "p2mp", "members": [{"a:e1": "root"}, "b:e1"], "hub_mode": True},
    {"type": "resilient", "members": [{"a:e1": "root"}, {"b:e1": "primary"}, {"c:e1": "standby"}]},
    {"type": "clustered", "members": [{"a:e1": "root"}, "b:e1", "c:e1"]},
    {"type": "replicated", "tap": "x", "source": "a:e1", "members": ["d:e1"]},
    {"type": "probe", "members": ["d:e1"], "points": [{"link": "x"}, {"interface": "a:e1"}]},
    {"type": "external", "members": ["a:e1"], "external": {"port": "g1:p4"}},
    {"type": "external", "vlan": 100, "members": ["a:e1"], "external": {"port": "g1:p4", "tagged": True}},
], ids=lambda b: b["type"])
def test_every_type_has_a_valid_form_that_round_trips(body):
    spec = parse_link(body, "l1")
    assert set(ROLES) == set(LINK_TYPES)
    again = parse_link(spec_json(spec))
    assert again == spec
    assert VLinkSpec.model_validate_json(spec.model_dump_json()) == spec


def test_references_are_the_tapped_and_probed_links():
    assert parse_link({"type": "replicated", "tap": "c1", "members": ["d:e1"]}, "r").references() == ["c1"]
    probe = parse_link({"type": "probe", "members": ["d:e1"],
                        "points": [{"link": "c1"}, {"interface": "a:e1"}, {"link": "s1"}]}, "p")
    assert probe.references() == ["c1", "s1"]
    assert parse_link({"type": "cable", "members": ["a:e1", "b:e1"]}, "c").references() == []


# ------------------------------------------------------------------ role rules
def test_a_second_p2mp_root_names_the_member_and_the_first_root():
    msg = error({"type": "p2mp", "members": [{"a:e1": "root"}, "b:e1", {"c:e1": "root"}]})
    assert msg == "members[2]: a p2mp link has one root; c:e1 would be a second root (the root is already a:e1)"


def test_a_role_the_type_does_not_take():
    msg = error({"type": "switch", "members": ["a:e1", {"b:e1": "root"}, "c:e1"]})
    assert msg == "members[1].role: a switch link takes roles member; got 'root'"


@pytest.mark.parametrize("body, expected", [
    ({"type": "switch", "members": ["a:e1"]}, "members: a switch link needs at least 2 members; it has 1"),
    ({"type": "cable", "members": ["a:e1"]}, "members: a cable link needs at least 1 b; it has 0"),
    ({"type": "p2mp", "members": ["a:e1", "b:e1"]}, "members: a p2mp link needs at least 1 root; it has 0"),
    ({"type": "resilient", "members": [{"a:e1": "root"}, {"b:e1": "primary"}]},
     "members: a resilient link needs at least 1 standby; it has 0"),
    ({"type": "probe", "members": ["c:e1", "d:e1"], "points": [{"link": "x"}]},
     "members[1]: a probe link has one collector; d:e1 would be a second collector (the collector is already c:e1)"),
])
def test_role_counts(body, expected):
    assert error(body) == expected


def test_a_member_listed_twice():
    msg = error({"type": "switch", "members": ["a:e1", "b:e1", "a:e1"]})
    assert msg == "members[2]: a:e1 is listed twice (also members[0])"


@pytest.mark.parametrize("body, expected", [
    ({"type": "switch", "members": ["a:e1", {"endpoint": "b:e1", "promiscuous": True}]},
     "members[1].promiscuous: only hub members can be promiscuous"),
    ({"type": "switch", "members": ["a:e1", "b:e1"], "hub_mode": True},
     "hub_mode: only point-to-multipoint links have a hub mode"),
    ({"type": "replicated", "members": ["d:e1"]}, "tap: a replicated link names the link it taps"),
    ({"type": "cable", "members": ["a:e1", "b:e1"], "source": "a:e1"}, "tap: only replicated links tap another link"),
    ({"type": "probe", "members": ["d:e1"]}, "points: a probe needs at least one probe point"),
    ({"type": "cable", "members": ["a:e1", "b:e1"], "points": [{"link": "x"}]},
     "points: only probes have probe points"),
    ({"type": "external", "members": ["a:e1"]},
     "external: an external link names its external port: {port: 'sw:port', tagged: false}"),
    ({"type": "external", "members": ["a:e1"], "external": {"port": "g1:p1", "tagged": True}},
     "vlan: a tagged external link needs a user-assigned VLAN (the external network's tag)"),
    ({"type": "switch", "members": ["a:e1", "b:e1"], "external": {"port": "g1:p1"}},
     "external: only external links have an external port"),
])
def test_type_specific_fields(body, expected):
    assert error(body) == expected


def test_several_role_problems_are_reported_together():
    msg = error({"type": "switch", "members": ["a:e1"], "hub_mode": True})
    assert msg == ("members: a switch link needs at least 2 members; it has 1; "
                   "hub_mode: only point-to-multipoint links have a hub mode")


# ------------------------------------------------------------------ field errors
def test_field_errors_carry_their_paths():
    msg = error({"type": "switch", "members": ["a:e1", "bad"], "vlan": 5000})
    assert "vlan: VLAN 5000 is outside 1-4094" in msg
    assert "members[1].endpoint: expected 'node:interface' like 'aa1:eth1', got 'bad'" in msg


@pytest.mark.parametrize("vlan", [1, 4094])
def test_vlan_bounds_are_inclusive(vlan):
    assert parse_link({"type": "cable", "members": ["a:e1", "b:e1"], "vlan": vlan}, "c").vlan == vlan


def test_unknown_type_and_unknown_field():
    assert error({"type": "bridge", "members": ["a:e1", "b:e1"]}).startswith("type: Input should be 'cable'")
    assert error({"type": "cable", "members": ["a:e1", "b:e1"], "colour": "red"}) == \
        "colour: Extra inputs are not permitted"


def test_probe_points_take_exactly_one_target():
    msg = error({"type": "probe", "members": ["d:e1"], "points": [{"link": "x", "interface": "a:e1"}]})
    assert msg == "points[0]: give exactly one of 'link' or 'interface'"
    msg = error({"type": "probe", "members": ["d:e1"], "points": [{"interface": "nocolon"}]})
    assert msg.startswith("points[0]: expected 'node:interface'")


@pytest.mark.parametrize("name", ["1abc", "a b", "x" * 33, ""])
def test_bad_link_names(name):
    assert error({"type": "cable", "members": ["a:e1", "b:e1"]}, name).startswith(f"name: link name {name!r}: ")


def test_name_in_the_body_must_match_the_key():
    assert error({"name": "other", "type": "cable", "members": ["a:e1", "b:e1"]}, "c1") == \
        "name: 'other' differs from the key 'c1'"
    assert parse_link({"name": "c1", "type": "cable", "members": ["a:e1", "b:e1"]}).name == "c1"


def test_a_body_that_is_not_an_object():
    assert error(["a:e1"]) == "expected an object with type and members, got list"
