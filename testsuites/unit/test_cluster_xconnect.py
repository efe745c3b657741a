"""The cluster's cross-connects as OpenFlow rules: who holds a role decides which switch ports are
wired together, and a failover changes only what concerns the failed element and its substitute."""
from __future__ import annotations

import pytest

from emulators.cluster.plan import ClusterPlan, ElementPorts
from emulators.cluster.xconnect import (PRIO_ISOLATE, PRIO_ROLE, PRIO_ROLE_MAC, PRIO_SERVER, Rule, desired_rules,
                                        diff)

pytestmark = pytest.mark.unit

ROLES = ["ne1", "ne2", "ne3"]
SPARES = ["sp1", "sp2"]
MACS = {"ne1": "02:00:0a:01:00:01", "ne2": "02:00:0a:01:00:02", "ne3": "02:00:0a:01:00:03"}


def make_plan() -> ClusterPlan:
    """ne1-3 and sp1-2 on sw1:eth1-5 (access) and sw2:eth1-5 (network); customers on sw1:eth11-13,
    servers on sw2:eth11-12."""
    names = ROLES + SPARES
    elements = {n: ElementPorts(n, f"172.20.0.{10 + i}", "eth1", f"eth{i + 1}", "eth2", f"eth{i + 1}")
                for i, n in enumerate(names)}
    return ClusterPlan(name="agg", secret="s", manager="cm", manager_ip="172.20.0.2", api_socket="/tmp/api",
                       access_switch="sw1", network_switch="sw2", elements=elements, members=list(ROLES),
                       pool=list(SPARES), circuits={"ne1": ["eth11"], "ne2": ["eth12"], "ne3": ["eth13"]},
                       server_ports=["eth11", "eth12"])


PLAN = make_plan()
HOLDERS = {r: r for r in ROLES}


def by_match(rules: list[Rule]) -> dict[tuple[str, int, tuple], Rule]:
    out = {(r.switch, r.priority, r.match): r for r in rules}
    assert len(out) == len(rules), "two rules share a match"
    return out


def find(rules: list[Rule], switch: str, prio: int, **match) -> Rule:
    want = tuple(sorted(match.items()))
    hits = [r for r in rules if (r.switch, r.priority, r.match) == (switch, prio, want)]
    assert len(hits) == 1, (switch, prio, match, [r.describe() for r in rules])
    return hits[0]


def installed(rules: list[Rule]) -> dict[str, Rule]:
    return {r.key: r for r in rules}


# ------------------------------------------------------------------ the rules of a healthy cluster
def test_circuits_are_wired_to_their_holders_access_port_and_back():
    rules = desired_rules(PLAN, HOLDERS, MACS)
    for i, role in enumerate(ROLES):
        port = f"eth{i + 1}"                 # the holder's access port on sw1
        circuit = f"eth{11 + i}"
        assert find(rules, "sw1", PRIO_ROLE, in_port=circuit).outputs == (port,)
        assert find(rules, "sw1", PRIO_ROLE, in_port=port).outputs == (circuit,)


def test_holders_network_port_goes_to_the_servers():
    rules = desired_rules(PLAN, HOLDERS, MACS)
    for i, _ in enumerate(ROLES):
        assert find(rules, "sw2", PRIO_ROLE, in_port=f"eth{i + 1}").outputs == ("eth11", "eth12")


def test_each_server_has_a_mac_rule_per_role_and_a_flood_rule():
    rules = desired_rules(PLAN, HOLDERS, MACS)
    for server in ("eth11", "eth12"):
        for i, role in enumerate(ROLES):
            r = find(rules, "sw2", PRIO_ROLE_MAC, in_port=server, eth_dst=MACS[role])
            assert r.outputs == (f"eth{i + 1}",)
        other = "eth12" if server == "eth11" else "eth11"
        flood = find(rules, "sw2", PRIO_SERVER, in_port=server)
        assert flood.outputs == (other, "eth1", "eth2", "eth3"), "the other server, then every holder"
    assert PRIO_ROLE > PRIO_ROLE_MAC > PRIO_SERVER > PRIO_ISOLATE


def test_spares_have_no_rules_but_isolation_drops_everything_unwired():
    rules = desired_rules(PLAN, HOLDERS, MACS)
    drops = [r for r in rules if r.priority == PRIO_ISOLATE]
    assert sorted(r.switch for r in drops) == ["sw1", "sw2"]
    assert all(r.match == () and r.outputs == () and r.actions == [] for r in drops)
    assert all("drop" in r.describe() for r in drops)
    spare_ports = {"eth4", "eth5"}
    for r in rules:
        assert dict(r.match).get("in_port") not in spare_ports, r.describe()
        assert not spare_ports & set(r.outputs), r.describe()
    # 2 drops + per role (1 circuit + 1 back + 1 network) + per server (3 MACs + 1 flood)
    assert len(rules) == 2 + 3 * 3 + 2 * 4
    by_match(rules)


def test_a_role_without_a_mac_gets_no_mac_rule():
    rules = desired_rules(PLAN, HOLDERS, {**MACS, "ne2": None})
    mac_rules = [r for r in rules if r.priority == PRIO_ROLE_MAC]
    assert {dict(r.match)["eth_dst"] for r in mac_rules} == {MACS["ne1"], MACS["ne3"]}


def test_rule_actions_and_key():
    r = find(desired_rules(PLAN, HOLDERS, MACS), "sw1", PRIO_ROLE, in_port="eth11")
    assert r.actions == [{"type": "OUTPUT", "port": "eth1"}]
    assert r.describe() == "sw1 prio 110 in_port=eth11 -> eth1"
    # the key is the match (what OFPFC_ADD replaces), not the outputs
    moved = Rule(r.switch, r.priority, r.match, ("eth4",))
    assert moved.key == r.key and moved != r


# ------------------------------------------------------------------ a failover: ne1 -> sp1
def test_failover_diff_adds_the_substitutes_rules_and_deletes_only_the_failed_ingress():
    before = desired_rules(PLAN, HOLDERS, MACS)
    after = desired_rules(PLAN, {**HOLDERS, "ne1": "sp1"}, MACS)
    d = diff(installed(before), after)
    assert d
    added = {r.describe() for r in d.add}
    assert "sw1 prio 110 in_port=eth11 -> eth4" in added          # circuit to sp1's access port
    assert "sw1 prio 110 in_port=eth4 -> eth11" in added          # and back
    assert "sw2 prio 110 in_port=eth4 -> eth11,eth12" in added    # sp1's network port to the servers
    # the rules that only concerned ne1's ports as ingress go; nothing else does
    deleted = sorted(r.describe() for r in d.delete)
    assert deleted == ["sw1 prio 110 in_port=eth1 -> eth11", "sw2 prio 110 in_port=eth1 -> eth11,eth12"]
    # other roles' own rules are untouched
    untouched = [r for r in before if dict(r.match).get("in_port") in ("eth2", "eth3", "eth12", "eth13")
                 and r.switch == "sw1"]
    assert untouched and all(r not in d.add and r not in d.delete for r in untouched)


def test_failover_keeps_the_mac_rules_key_and_changes_its_output():
    before = desired_rules(PLAN, HOLDERS, MACS)
    after = desired_rules(PLAN, {**HOLDERS, "ne1": "sp1"}, MACS)
    old = find(before, "sw2", PRIO_ROLE_MAC, in_port="eth11", eth_dst=MACS["ne1"])
    new = find(after, "sw2", PRIO_ROLE_MAC, in_port="eth11", eth_dst=MACS["ne1"])
    assert old.key == new.key
    assert (old.outputs, new.outputs) == (("eth1",), ("eth4",))
    d = diff(installed(before), after)
    assert new in d.add, "changed in place by OFPFC_ADD"
    assert all(r.key != old.key for r in d.delete), "never deleted: that would open a gap"
    # the flood rules now reach sp1 instead of ne1
    flood = find(after, "sw2", PRIO_SERVER, in_port="eth11")
    assert flood.outputs == ("eth12", "eth4", "eth2", "eth3")


def test_applying_the_diff_gives_the_desired_rules_and_a_second_diff_is_empty():
    before = installed(desired_rules(PLAN, HOLDERS, MACS))
    after = desired_rules(PLAN, {**HOLDERS, "ne1": "sp1"}, MACS)
    d = diff(before, after)
    state = dict(before)
    for r in d.add:
        state[r.key] = r
    for r in d.delete:
        del state[r.key]
    assert state == installed(after)
    assert not diff(state, after)
    assert not diff(installed(after), after)


def test_an_unprotected_role_has_no_rules_and_the_others_are_unchanged():
    before = desired_rules(PLAN, HOLDERS, MACS)
    after = desired_rules(PLAN, {**HOLDERS, "ne1": None}, MACS)
    assert not [r for r in after if dict(r.match).get("in_port") == "eth1"], "ne1's ports are on neither switch"
    assert not [r for r in after if r.switch == "sw1" and dict(r.match).get("in_port") == "eth11"], "c1 is cut off"
    assert not [r for r in after if "eth1" in r.outputs and r.priority != PRIO_SERVER]
    assert not [r for r in after if dict(r.match).get("eth_dst") == MACS["ne1"]]
    d = diff(installed(before), after)
    # only the two flood rules change (they no longer reach ne1); everything else is a deletion
    assert sorted(r.describe() for r in d.add) == ["sw2 prio 100 in_port=eth11 -> eth12,eth2,eth3",
                                                   "sw2 prio 100 in_port=eth12 -> eth11,eth2,eth3"]
    for role, port in (("ne2", "eth2"), ("ne3", "eth3")):
        keep = [r for r in before if dict(r.match).get("in_port") == port or dict(r.match).get("eth_dst") == MACS[role]]
        assert keep and all(r in after for r in keep), role
    # isolation stays on both switches
    assert {r.switch for r in after if r.priority == PRIO_ISOLATE and r.outputs == ()} == {"sw1", "sw2"}


def test_nothing_held_leaves_only_the_isolation_and_server_rules():
    rules = desired_rules(PLAN, {r: None for r in ROLES}, MACS)
    assert {r.describe() for r in rules} == {"sw1 prio 1 * -> drop", "sw2 prio 1 * -> drop",
                                             "sw2 prio 100 in_port=eth11 -> eth12",
                                             "sw2 prio 100 in_port=eth12 -> eth11"}
