"""The rule compiler (controllers/vlink/compiler.py): links -> OpenFlow rules, checked both as rules and
by following them through a small simulated data plane (vlink_sim.DataPlane), so each link type's
delivery semantics are asserted where frames actually end up."""
from __future__ import annotations

import pytest

from controllers.vlink.compiler import (CLASS_ANY, CLASS_OTHER, CLASS_ROOT, COOKIE_BASE, GRID_COOKIE, MCAST,
                                        PRIO_ADMIT, PRIO_ADMIT_KNOWN, PRIO_FWD, PRIO_FWD_LEARNED, PRIO_FWD_MCAST,
                                        TABLE_ADMIT, TABLE_FORWARD, Context, Out, build_actions, compile_link,
                                        dependents, diff, grid_rules, link_cookie, policy, ports_of)
from vlink_sim import BCAST, DataPlane, Frame, actions, all_rules, find, flat, mac_for, make_grid, records

pytestmark = pytest.mark.unit

# s1, s2, s3 cabled in a triangle: the tree is s1-s2 and s1-s3, the s2-s3 trunk stays idle
TRUNKS = [("s1", "t2", "s2", "t1"), ("s1", "t3", "s3", "t1"), ("s2", "t3", "s3", "t2")]
WIRING = {f"{h}:e{i}": f"{sw}:p{h}{i}" for h, sw in (("a", "s1"), ("b", "s2"), ("c", "s3"), ("d", "s1"),
                                                     ("e", "s2"), ("f", "s3")) for i in range(1, 5)}
WIRING["en:e1"] = "s2:pext"          # an external network's port
WIRING["ex:up"] = "s3:ptag"          # an external switch's trunk (tagged external links)
GRID = make_grid(["s1", "s2", "s3"], WIRING, TRUNKS)
PUSH = {"type": "PUSH_VLAN", "ethertype": 0x8100}
POP = {"type": "POP_VLAN"}
UC = "02:11:22:33:44:55"             # a unicast MAC nobody learned


def vid(v: int) -> dict:
    return {"type": "SET_FIELD", "field": "vlan_vid", "value": 0x1000 | v}


def pcp(p: int) -> dict:
    return {"type": "SET_FIELD", "field": "vlan_pcp", "value": p}


def out(port: str) -> dict:
    return {"type": "OUTPUT", "port": port}


def dst(mac: str) -> dict:
    return {"type": "SET_FIELD", "field": "eth_dst", "value": mac}


def ctx_of(*bodies, **kw) -> Context:
    return Context(GRID, records(*bodies), **kw)


def plane(ctx: Context) -> DataPlane:
    return DataPlane(ctx.grid, all_rules(ctx))


def port(ep: str) -> tuple[str, str]:
    a = GRID.attachments[ep]
    return (a.switch, a.port)


def got(trace, ep: str) -> list[Frame]:
    """The frames delivered to endpoint `ep`."""
    return [f for sw, p, f in trace.delivered if (sw, p) == port(ep)]


# ------------------------------------------------------------------ grid and table 0
def test_grid_rules_drop_by_default_and_admit_tagged_frames_from_tree_trunks_only():
    rules = grid_rules(GRID, "s2")
    assert {(r.table, r.priority, r.match, r.actions) for r in rules} == {
        (TABLE_ADMIT, 1, (), ()), (TABLE_FORWARD, 0, (), ()),
        (TABLE_ADMIT, PRIO_ADMIT, (("in_port", "t1"),), ('{"table_id": 1, "type": "GOTO_TABLE"}',))}
    assert all(r.cookie == GRID_COOKIE for r in rules)
    assert len(grid_rules(GRID, "s1")) == 4


def test_admission_learns_on_learning_types_only():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "b:e1"]}),
                 ("vsw", {"type": "switch", "members": ["a:e2", "b:e2"]}),
                 learned={"vsw": {"02:00:00:00:00:0a": "a:e2"}})
    cab, vsw = flat(compile_link("cab", ctx)), flat(compile_link("vsw", ctx))
    assert actions(find(cab, "s1", TABLE_ADMIT, in_port="pa1")) == [{"type": "GOTO_TABLE", "table_id": 1}]
    assert actions(find(vsw, "s1", TABLE_ADMIT, PRIO_ADMIT, in_port="pa2")) == [
        {"type": "OUTPUT", "port": "CONTROLLER", "max_len": 128}, {"type": "GOTO_TABLE", "table_id": 1}]
    # a source MAC already learned skips the controller
    known = find(vsw, "s1", TABLE_ADMIT, PRIO_ADMIT_KNOWN, in_port="pa2", eth_src="02:00:00:00:00:0a")
    assert actions(known) == [{"type": "GOTO_TABLE", "table_id": 1}]
    assert {r.cookie for r in cab} == {link_cookie(1)} and {r.cookie for r in vsw} == {link_cookie(2)}
    assert link_cookie(2) == COOKIE_BASE | (2 << 8)


# ------------------------------------------------------------------ cable
def test_a_cable_pushes_its_vlan_with_the_senders_class_toward_the_other_side():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["b:e1", "c:e1"]}))    # s2 - (s1) - s3
    rules = flat(compile_link("cab", ctx))
    assert {r.switch for r in rules} == {"s1", "s2", "s3"}
    # side A (b, on s2) sends with PCP 1 toward s1, the only way to s3 on the tree
    assert actions(find(rules, "s2", TABLE_FORWARD, PRIO_FWD, in_port="pb1")) == [PUSH, vid(3000), pcp(CLASS_ROOT),
                                                                                   out("t1")]
    # s1 carries it on unchanged; s3 pops it to c
    assert actions(find(rules, "s1", TABLE_FORWARD, in_port="t2", vlan_vid=3000, vlan_pcp=CLASS_ROOT)) == [out("t3")]
    assert actions(find(rules, "s3", TABLE_FORWARD, in_port="t1", vlan_vid=3000, vlan_pcp=CLASS_ROOT)) == [POP,
                                                                                                        out("pc1")]
    # side B sends with PCP 2
    assert actions(find(rules, "s3", TABLE_FORWARD, in_port="pc1")) == [PUSH, vid(3000), pcp(CLASS_OTHER), out("t1")]
    assert not any(("in_port", "t3") in r.match and r.switch == "s2" for r in rules), "the idle trunk carries nothing"


def test_a_cable_end_to_end_both_ways():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["b:e1", "c:e1"]}))
    dp = plane(ctx)
    f = Frame(eth_dst=UC, eth_src=mac_for("b:e1"))
    t = dp.send_from("b:e1", f)
    assert t.delivered == [("s3", "pc1", f)]
    t = dp.send_from("c:e1", Frame())
    assert t.ports() == [port("b:e1")] and t.delivered[0][2].vlan is None


def test_a_cable_on_one_switch_needs_no_tag():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "d:e1"]}))
    compiled = compile_link("cab", ctx)
    assert list(compiled) == ["s1"]
    assert actions(find(compiled["s1"], "s1", TABLE_FORWARD, in_port="pa1")) == [out("pd1")]


def test_a_cable_with_several_members_per_side():
    ctx = ctx_of(("cab", {"type": "cable", "members": [{"a:e1": "a"}, {"d:e1": "a"}, {"b:e1": "b"}, {"c:e1": "b"}]}))
    dp = plane(ctx)
    assert sorted(dp.send_from("a:e1", Frame()).ports()) == [port("b:e1"), port("c:e1")]
    assert sorted(dp.send_from("c:e1", Frame()).ports()) == [port("a:e1"), port("d:e1")]


# ------------------------------------------------------------------ switch and hub
def test_a_virtual_switch_floods_to_every_other_member():
    ctx = ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1", "c:e1", "d:e1"]}))
    dp = plane(ctx)
    for sender in ("a:e1", "b:e1", "c:e1", "d:e1"):
        t = dp.send_from(sender, Frame(eth_dst=UC))
        assert sorted(t.ports()) == sorted(port(e) for e in ("a:e1", "b:e1", "c:e1", "d:e1") if e != sender)
        assert t.controller == [port(sender)], "unknown source MACs go to the controller"


def test_a_learned_mac_gets_a_priority_120_rule_to_its_owner_only():
    mac_c = "02:00:00:00:0c:01"
    ctx = ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1", "c:e1", "d:e1"]}),
                 learned={"vsw": {mac_c: "c:e1"}})
    rules = flat(compile_link("vsw", ctx))
    rule = find(rules, "s1", TABLE_FORWARD, PRIO_FWD_LEARNED, in_port="pa1", eth_dst=mac_c)
    assert actions(rule) == [PUSH, vid(3000), out("t3")], "only toward c's switch, none to d on the same switch"
    # s2 has no learned owner: frames from b to c head for s1 only
    assert actions(find(rules, "s2", TABLE_FORWARD, PRIO_FWD_LEARNED, in_port="pb1", eth_dst=mac_c)) == [
        PUSH, vid(3000), out("t1")]
    dp = DataPlane(GRID, all_rules(ctx))
    for sender in ("a:e1", "b:e1", "d:e1"):
        assert dp.send_from(sender, Frame(eth_dst=mac_c)).ports() == [port("c:e1")]
    assert dp.send_from("c:e1", Frame(eth_dst=mac_c)).delivered == [], "to itself: dropped"
    assert len(dp.send_from("c:e1", Frame(eth_dst=BCAST)).delivered) == 3


def test_hub_promiscuous_members_see_unicast_to_others():
    mac_b = "02:00:00:00:0b:01"
    ctx = ctx_of(("hub", {"type": "hub", "members": ["a:e1", "b:e1", {"endpoint": "c:e1", "promiscuous": True},
                                                      "d:e1"]}), learned={"hub": {mac_b: "b:e1"}})
    dp = plane(ctx)
    assert sorted(dp.send_from("a:e1", Frame(eth_dst=mac_b)).ports()) == [port("b:e1"), port("c:e1")]
    assert dp.send_from("c:e1", Frame(eth_dst=mac_b)).ports() == [port("b:e1")]
    assert sorted(dp.send_from("a:e1", Frame()).ports()) == sorted(map(port, ("b:e1", "c:e1", "d:e1")))


def test_a_hub_without_promiscuous_members_is_a_switch():
    body = {"members": ["a:e1", "b:e1", "c:e1"]}
    learned = {"l": {"02:00:00:00:0b:01": "b:e1"}}
    hub = compile_link("l", ctx_of(("l", {"type": "hub", **body}), learned=learned))
    sw = compile_link("l", ctx_of(("l", {"type": "switch", **body}), learned=learned))
    assert hub == sw


# ------------------------------------------------------------------ point to multipoint
P2MP = ("pm", {"type": "p2mp", "members": ["a:e1", {"b:e1": "root"}, "c:e1", "d:e1"]})


def test_p2mp_leaves_only_reach_the_root():
    ctx = ctx_of(P2MP)
    dp = plane(ctx)
    assert sorted(dp.send_from("b:e1", Frame()).ports()) == sorted(map(port, ("a:e1", "c:e1", "d:e1")))
    for leaf in ("a:e1", "c:e1", "d:e1"):
        assert dp.send_from(leaf, Frame()).ports() == [port("b:e1")]
        assert dp.send_from(leaf, Frame(eth_dst=UC)).ports() == [port("b:e1")]
    # a leaf's frame never goes from s1 toward s3, where only leaves are
    rule = find(flat(compile_link("pm", ctx)), "s1", TABLE_FORWARD, PRIO_FWD, in_port="pa1")
    assert actions(rule) == [PUSH, vid(3000), pcp(CLASS_OTHER), out("t2")]


def test_p2mp_unicast_between_leaves_is_dropped():
    mac_c, mac_b = "02:00:00:00:0c:01", "02:00:00:00:0b:01"
    ctx = ctx_of(P2MP, learned={"pm": {mac_c: "c:e1", mac_b: "b:e1"}})
    dp = plane(ctx)
    assert dp.send_from("a:e1", Frame(eth_dst=mac_c)).delivered == []
    assert dp.send_from("d:e1", Frame(eth_dst=mac_b)).ports() == [port("b:e1")]
    assert dp.send_from("b:e1", Frame(eth_dst=mac_c)).ports() == [port("c:e1")]


def test_p2mp_hub_mode_floods_and_does_not_learn():
    ctx = ctx_of(("pm", {**P2MP[1], "hub_mode": True}), learned={"pm": {"02:00:00:00:0c:01": "c:e1"}})
    rules = flat(compile_link("pm", ctx))
    assert not any(r.priority == PRIO_FWD_LEARNED for r in rules)
    assert not any('"CONTROLLER"' in a for r in rules for a in r.actions)
    dp = DataPlane(GRID, all_rules(ctx))
    assert len(dp.send_from("b:e1", Frame(eth_dst="02:00:00:00:0c:01")).delivered) == 3


# ------------------------------------------------------------------ clustered and resilient
CLU = ("clu", {"type": "clustered", "members": [{"a:e1": "root"}, "d:e1", "b:e1", "c:e1"]})


def test_clustered_unicast_is_rewritten_to_each_members_mac_multicast_is_not():
    ctx = ctx_of(CLU)
    dp = plane(ctx)
    t = dp.send_from("a:e1", Frame(eth_dst=UC))
    assert sorted(t.ports()) == sorted(map(port, ("b:e1", "c:e1", "d:e1")))
    for ep in ("b:e1", "c:e1", "d:e1"):
        (f,) = got(t, ep)
        assert f.eth_dst == mac_for(ep) and f.vlan is None
    t = dp.send_from("a:e1", Frame(eth_dst=BCAST))
    assert {f.eth_dst for _, _, f in t.delivered} == {BCAST} and len(t.delivered) == 3
    rules = flat(compile_link("clu", ctx))
    mcast = find(rules, "s1", TABLE_FORWARD, PRIO_FWD_MCAST, in_port="pa1", eth_dst=MCAST)
    assert not any(a["field"] == "eth_dst" for a in actions(mcast) if a["type"] == "SET_FIELD")
    uni = find(rules, "s1", TABLE_FORWARD, PRIO_FWD, in_port="pa1")
    assert actions(uni)[-2:] == [dst(mac_for("d:e1")), out("pd1")]


def test_clustered_members_only_receive():
    ctx = ctx_of(CLU)
    dp = plane(ctx)
    assert dp.send_from("b:e1", Frame()).delivered == []
    assert dp.send_from("b:e1", Frame()).controller == [port("b:e1")], "but their MACs are learned"


def test_clustered_rewrite_prefers_a_learned_mac_then_the_known_one():
    ctx = ctx_of(CLU, learned={"clu": {"02:00:00:00:0b:99": "b:e1"}}, macs={"c:e1": "02:00:00:00:0c:99"})
    t = plane(ctx).send_from("a:e1", Frame(eth_dst=UC))
    assert got(t, "b:e1")[0].eth_dst == "02:00:00:00:0b:99"
    assert got(t, "c:e1")[0].eth_dst == "02:00:00:00:0c:99"
    assert got(t, "d:e1")[0].eth_dst == mac_for("d:e1")


RES = ("res", {"type": "resilient", "members": [{"a:e1": "root"}, {"b:e1": "primary"}, {"c:e1": "standby"}]})


def test_resilient_delivers_to_the_primary_by_default():
    ctx = ctx_of(RES)
    dp = plane(ctx)
    t = dp.send_from("a:e1", Frame(eth_dst=UC))
    assert t.ports() == [port("b:e1")] and got(t, "b:e1")[0].eth_dst == mac_for("b:e1")
    assert dp.send_from("b:e1", Frame()).ports() == [port("a:e1")]
    assert dp.send_from("c:e1", Frame()).delivered == [], "the standby is not admitted"


def test_resilient_delivers_only_to_the_active_member_with_its_mac():
    ctx = ctx_of(RES, active={"res": "c:e1"})
    dp = plane(ctx)
    t = dp.send_from("a:e1", Frame(eth_dst=mac_for("b:e1")))     # addressed to the primary
    assert t.ports() == [port("c:e1")]
    assert got(t, "c:e1")[0].eth_dst == mac_for("c:e1")
    assert got(dp.send_from("a:e1", Frame()), "c:e1")[0].eth_dst == BCAST
    assert dp.send_from("c:e1", Frame()).ports() == [port("a:e1")]
    assert dp.send_from("b:e1", Frame()).delivered == []
    # an active name that is not a primary or standby falls back to the primary
    assert plane(ctx_of(RES, active={"res": "a:e1"})).send_from("a:e1", Frame()).ports() == [port("b:e1")]


# ------------------------------------------------------------------ copies: replicated and probe
def test_a_replicated_link_gets_copies_of_the_tapped_sources_frames():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "b:e1"]}),
                 ("rep", {"type": "replicated", "tap": "cab", "members": ["c:e1", "d:e1"]}))
    dp = plane(ctx)
    t = dp.send_from("a:e1", Frame(eth_dst=UC))         # a is the default source: side A
    assert sorted(t.ports()) == sorted(map(port, ("b:e1", "c:e1", "d:e1")))
    assert got(t, "b:e1")[0].eth_dst == UC
    assert got(t, "c:e1")[0].eth_dst == mac_for("c:e1") and got(t, "d:e1")[0].eth_dst == mac_for("d:e1")
    t = dp.send_from("a:e1", Frame(eth_dst=BCAST))
    assert {f.eth_dst for _, _, f in t.delivered} == {BCAST}
    assert dp.send_from("b:e1", Frame()).ports() == [port("a:e1")], "side B is not tapped"
    # the copy rides the replicated link's VLAN from s1 to s3, and s3 knows it as a copy
    rule = find(flat(compile_link("rep", ctx)), "s3", TABLE_FORWARD, PRIO_FWD, in_port="t1", vlan_vid=3001,
                vlan_pcp=CLASS_ANY)
    assert actions(rule) == [POP, dst(mac_for("c:e1")), out("pc1")]


def test_a_replicated_link_taps_a_named_source():
    ctx = ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1", "c:e1"]}),
                 ("rep", {"type": "replicated", "tap": "vsw", "source": "b:e1", "members": ["f:e1"]}))
    dp = plane(ctx)
    assert port("f:e1") in dp.send_from("b:e1", Frame()).ports()
    assert port("f:e1") not in dp.send_from("a:e1", Frame()).ports()
    assert port("f:e1") not in dp.send_from("c:e1", Frame()).ports()


def test_probe_copies_leave_before_the_destination_is_rewritten():
    # a probe on a clustered member's interface, its collector on the member's switch and on another one
    for collector in ("e:e1", "f:e1"):
        ctx = ctx_of(CLU, ("pr", {"type": "probe", "members": [collector], "points": [{"interface": "b:e1"}]}))
        t = plane(ctx).send_from("a:e1", Frame(eth_dst=UC))
        assert got(t, "b:e1")[0].eth_dst == mac_for("b:e1")
        (copy,) = got(t, collector)
        assert copy.eth_dst == UC and copy.vlan is None
        rule = find(flat(compile_link("clu", ctx)), "s2", TABLE_FORWARD, PRIO_FWD, in_port="t1", vlan_vid=3000,
                    vlan_pcp=CLASS_ROOT)
        acts = actions(rule)
        first_rewrite = next(i for i, a in enumerate(acts) if a.get("field") == "eth_dst")
        copy_out = [i for i, a in enumerate(acts) if a["type"] == "OUTPUT" and a["port"] != "pb1"]
        assert copy_out and max(copy_out) < first_rewrite, acts


def test_a_link_probe_copies_every_members_frames_once():
    ctx = ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1", "c:e1"]}),
                 ("pr", {"type": "probe", "members": ["f:e2"], "points": [{"link": "vsw"}]}))
    dp = plane(ctx)
    for sender in ("a:e1", "b:e1", "c:e1"):
        for frame in (Frame(), Frame(eth_dst=UC)):
            t = dp.send_from(sender, frame)
            assert got(t, "f:e2") == [frame], (sender, t.delivered)
            assert len(t.delivered) == 3


def test_an_interface_probe_sees_both_directions():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "b:e1"]}),
                 ("pr", {"type": "probe", "members": ["c:e2"], "points": [{"interface": "b:e1"}]}))
    dp = plane(ctx)
    assert len(got(dp.send_from("a:e1", Frame()), "c:e2")) == 1
    assert len(got(dp.send_from("b:e1", Frame()), "c:e2")) == 1
    assert dp.send_from("c:e2", Frame()).delivered == [], "a collector sends nothing"
    # the copy of a's frame delivered to b (s2) returns over the trunk it came in on: OpenFlow needs IN_PORT
    rule = find(flat(compile_link("cab", ctx)), "s2", TABLE_FORWARD, in_port="t1", vlan_vid=3000, vlan_pcp=CLASS_ROOT)
    assert actions(rule) == [vid(3001), pcp(0), out("IN_PORT"), POP, out("pb1")]


# ------------------------------------------------------------------ external
def test_an_untagged_external_link_bridges_the_external_port():
    ctx = ctx_of(("ext", {"type": "external", "members": ["a:e1", "c:e1"], "external": {"port": "s2:pext"}}))
    dp = plane(ctx)
    assert sorted(dp.send_from("en:e1", Frame()).ports()) == [port("a:e1"), port("c:e1")]
    assert sorted(dp.send_from("a:e1", Frame()).ports()) == sorted([port("c:e1"), port("en:e1")])
    assert [f.vlan for _, _, f in dp.send_from("a:e1", Frame()).delivered] == [None, None]


def test_a_tagged_external_port_keeps_the_tag_with_pcp_0():
    ctx = ctx_of(("x100", {"type": "external", "vlan": 100, "members": ["a:e1", "f:e1"],
                           "external": {"port": "s3:ptag", "tagged": True}}),
                 ("x200", {"type": "external", "vlan": 200, "members": ["b:e1"],
                           "external": {"port": "s3:ptag", "tagged": True}}))
    dp = plane(ctx)
    t = dp.send_from("a:e1", Frame())
    assert sorted(t.ports()) == [port("f:e1"), ("s3", "ptag")]
    (tagged,) = got(t, "ex:up")
    assert tagged.vlan == (100, 0)
    # from the external network, with its own priority bits: untagged to the members
    t = dp.send("s3", "ptag", Frame(vlan=(100, 5)))
    assert sorted(t.ports()) == [port("a:e1"), port("f:e1")] and {f.vlan for _, _, f in t.delivered} == {None}
    assert dp.send("s3", "ptag", Frame(vlan=(200, 3))).ports() == [port("b:e1")]
    assert dp.send("s3", "ptag", Frame(vlan=(300, 0))).delivered == []
    rule = find(flat(compile_link("x100", ctx)), "s3", TABLE_FORWARD, PRIO_FWD, in_port="ptag", vlan_vid=100)
    assert actions(rule)[:2] == [pcp(0), out("t1")], "toward s1 the tag stays, its PCP set to 0"


# ------------------------------------------------------------------ building action lists
def test_build_actions_orders_tagged_then_pop_then_plain_then_rewrites():
    outs = [Out("p2", None, 0, "02:00:00:00:00:02"), Out("p1", None), Out("t1", 3000, 1), Out("t1", 3005, 0)]
    assert build_actions(None, outs) == [PUSH, vid(3000), pcp(1), out("t1"), vid(3005), pcp(0), out("t1"), POP,
                                         out("p1"), dst("02:00:00:00:00:02"), out("p2")]
    assert build_actions((3000, 1), [Out("t9", 3000, 1), Out("p1", None)]) == [out("t9"), POP, out("p1")]
    assert build_actions(None, [Out("p1", None), Out("p2", None)]) == [out("p1"), out("p2")]
    assert build_actions((3000, None), [Out("t1", 3000, 0)]) == [pcp(0), out("t1")]
    assert build_actions(None, []) == []


# ------------------------------------------------------------------ determinism and applying
def test_policy_of_a_cable():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "b:e1", "c:e1"]}))
    rec = ctx.links["cab"]
    pol = policy(rec, ports_of(rec, GRID), ctx)
    assert pol.cls == {0: CLASS_ROOT, 1: CLASS_OTHER, 2: CLASS_OTHER}
    assert pol.flood == {CLASS_ROOT: {1, 2}, CLASS_OTHER: {0}}
    assert pol.learn_from == set() and pol.unicast == {} and pol.rewrite == set()


def test_compiling_is_deterministic_and_diff_of_equal_sets_is_empty():
    def build():
        return ctx_of(CLU, ("vsw", {"type": "switch", "members": ["a:e2", "b:e2", "c:e2"]}),
                      ("pr", {"type": "probe", "members": ["f:e1"],
                              "points": [{"link": "vsw"}, {"interface": "c:e1"}]}),
                      learned={"vsw": {"02:00:00:00:00:0b": "b:e2", "02:00:00:00:00:0a": "a:e2"}})
    first = all_rules(build())
    second = all_rules(build())
    assert first == second
    assert diff(first, second) == ([], [])
    assert diff(first, list(reversed(second))) == ([], [])
    assert len({r.key for r in first}) == len(first), "no two rules share a match"


def test_diff_adds_changed_rules_and_deletes_stale_ones():
    before = all_rules(ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1", "c:e1"]})))
    after = all_rules(ctx_of(("vsw", {"type": "switch", "members": ["a:e1", "b:e1"]})))
    add, delete = diff(after, before)
    assert {r.key for r in delete} == {r.key for r in before} - {r.key for r in after}
    assert "s3" in {r.switch for r in delete} and not any(r.switch == "s3" and r.cookie != GRID_COOKIE for r in after)
    assert add and all(r in after and r not in before for r in add)
    assert {r.key for r in add} <= {r.key for r in before}, "same matches, new actions: replaced in place"
    assert diff(before, []) == (before, [])


def test_rule_body_is_the_flow_api_request():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "d:e1"]}))
    rule = find(flat(compile_link("cab", ctx)), "s1", TABLE_FORWARD, in_port="pa1")
    assert rule.body() == {"switch": "s1", "table_id": 1, "priority": 100, "match": {"in_port": "pa1"},
                           "actions": [{"type": "OUTPUT", "port": "pd1"}], "cookie": link_cookie(1)}


def test_dependents_are_the_links_a_copy_link_copies_from():
    ctx = ctx_of(("cab", {"type": "cable", "members": ["a:e1", "b:e1"]}),
                 ("vsw", {"type": "switch", "members": ["a:e2", "b:e2"]}),
                 ("rep", {"type": "replicated", "tap": "cab", "members": ["c:e1"]}),
                 ("pr", {"type": "probe", "members": ["c:e2"],
                         "points": [{"interface": "b:e2"}, {"link": "cab"}, {"link": "gone"}]}))
    assert dependents("rep", ctx) == ["cab"]
    assert dependents("pr", ctx) == ["cab", "vsw"]
    assert dependents("cab", ctx) == [] and dependents("nope", ctx) == []


def test_a_link_probe_on_an_external_link_sees_the_external_sides_frames():
    ctx = ctx_of(("ext", {"type": "external", "members": ["a:e1"], "external": {"port": "s2:pext"}}),
                 ("pr", {"type": "probe", "members": ["f:e2"], "points": [{"link": "ext"}]}))
    dp = plane(ctx)
    assert len(got(dp.send_from("a:e1", Frame()), "f:e2")) == 1
    assert len(got(dp.send_from("en:e1", Frame()), "f:e2")) == 1
