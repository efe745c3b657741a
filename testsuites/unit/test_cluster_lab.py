"""Clusters in a lab file: labs/cluster.yaml validates and resolves into the manager's cabling;
every mistake is a problem naming the field (file:line: path: message); the cross-connected
switches are not LANs for addressing; the lab engine's files for the manager and the elements."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from emulators.cluster.plan import AgentPlan, ClusterPlan
from twin.lab import load_lab, parse_lab
from twin.lab.clusters import check_clusters, cluster_files, cross_connect_segments, resolve
from lab_problems import lab_variant, problems, with_path

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LAB = (ROOT / "labs" / "cluster.yaml").read_text()


def variant(*edits: tuple[str, str]) -> str:
    return lab_variant(LAB, *edits)


@pytest.fixture(scope="module")
def model():
    return load_lab(ROOT / "labs" / "cluster.yaml")


# ------------------------------------------------------------------ the shipped lab
def test_the_shipped_cluster_lab_validates(model):
    assert check_clusters(model.spec) == []
    assert model.spec.kind_of("cm") == "cluster-manager"


def test_resolve_gives_the_cabling(model):
    rc, found = resolve(model.spec, "agg")
    assert found == [] and rc is not None
    assert (rc.manager, rc.access, rc.network) == ("cm", "sw1", "sw2")
    assert rc.members == ["ne1", "ne2", "ne3"] and rc.pool == ["sp1", "sp2"]
    ne1 = rc.elements["ne1"]
    assert (ne1.access_intf, ne1.access_port, ne1.network_intf, ne1.network_port) == ("eth1", "eth1", "eth2", "eth1")
    sp2 = rc.elements["sp2"]
    assert (sp2.access_intf, sp2.access_port, sp2.network_intf, sp2.network_port) == ("eth1", "eth5", "eth2", "eth5")
    assert set(rc.elements) == {"ne1", "ne2", "ne3", "sp1", "sp2"}
    assert rc.circuits == {"ne1": ["eth11"], "ne2": ["eth12"], "ne3": ["eth13"]}
    assert rc.server_ports == ["eth11", "eth12"]


def test_circuits_may_name_a_customer_interface():
    text = variant(("circuits: {ne1: [c1], ne2: [c2], ne3: [c3]}", "circuits: {ne1: ['c1:eth1'], ne3: c3}"))
    m = parse_lab(text, "lab.yaml")
    rc, _ = resolve(m.spec, "agg")
    assert rc is not None and rc.circuits == {"ne1": ["eth11"], "ne3": ["eth13"]}
    # not one LAN either: two customers of one role must share its subnet
    found = problems(variant(("circuits: {ne1: [c1], ne2: [c2], ne3: [c3]}", "circuits: {ne1: [c1, c2]}")))
    (hit,) = with_path(found, "nodes.ne1.interfaces.eth1.ipv4")
    assert "xc:agg:ne1" in hit and "different subnets" in hit


# ------------------------------------------------------------------ mistakes, each at its field
def test_a_pool_element_not_wired_to_both_switches():
    found = problems(variant(("  - endpoints: [sp2:eth2, sw2:eth5]\n", "")))
    (hit,) = with_path(found, "groups.spares.members")
    assert "not wired to both cluster switches" in hit and "sp2" in hit
    assert "0 links to sw2" in hit and "fix the links to sw2" in hit


def test_an_active_element_wired_twice_to_a_switch():
    found = problems(variant(("  - endpoints: [c3:eth1, sw1:eth13]\n",
                              "  - endpoints: [c3:eth1, sw1:eth13]\n  - endpoints: [ne2:eth3, sw1:eth9]\n")))
    (hit,) = with_path(found, "groups.agg.members")
    assert "active element ne2" in hit and "not wired to both cluster switches" in hit and "2 links to sw1" in hit


def test_the_manager_must_be_a_cluster_manager():
    found = problems(variant(("  cm: {kind: cluster-manager}", "  cm: {kind: router}")))
    (hit,) = with_path(found, "groups.agg.vars.manager")
    assert "kind cluster-manager" in hit and "'cm'" in hit


def test_a_missing_manager_node():
    found = problems(variant(("      manager: cm\n", "      manager: cmx\n"),
                             ("  cm: {kind: cluster-manager}\n", "")))
    (hit,) = with_path(found, "groups.agg.vars.manager")
    assert "'cmx'" in hit


def test_an_unknown_setting_is_named():
    found = problems(variant(("      selection: ordered\n", "      selection: ordered\n      colour: red\n")))
    (hit,) = with_path(found, "groups.agg.vars")
    assert "unknown setting(s) colour" in hit and "heartbeat_ms" in hit


def test_a_bad_selection_policy():
    found = problems(variant(("      selection: ordered", "      selection: random")))
    (hit,) = with_path(found, "groups.agg.vars.selection")
    assert "'random'" in hit and "ordered, least-failed" in hit


@pytest.mark.parametrize("field,value", [("heartbeat_ms", "5"), ("heartbeat_ms", "true"), ("dead_intervals", "1"),
                                         ("dead_intervals", "50")])
def test_timing_out_of_range(field, value):
    text = re.sub(rf"(?m)^      {field}: .*\n", "", LAB)
    assert text != LAB
    found = problems(text.replace("      selection: ordered\n", f"      selection: ordered\n      {field}: {value}\n"))
    (hit,) = with_path(found, f"groups.agg.vars.{field}")
    assert f"got {value.replace('true', 'True')}" in hit


def test_a_circuit_for_a_role_that_is_not_a_member():
    found = problems(variant(("circuits: {ne1: [c1], ne2: [c2], ne3: [c3]}", "circuits: {ne1: [c1], sp1: [c3]}")))
    (hit,) = with_path(found, "groups.agg.vars.circuits.sp1")
    assert "'sp1' is not an active element of cluster agg" in hit and "ne1, ne2, ne3" in hit


def test_a_circuit_used_twice_or_not_on_the_access_switch():
    found = problems(variant(("circuits: {ne1: [c1], ne2: [c2], ne3: [c3]}", "circuits: {ne1: [c1], ne2: [c1]}")))
    (hit,) = with_path(found, "groups.agg.vars.circuits.ne2")
    assert "already a circuit of role ne1" in hit
    found = problems(variant(("circuits: {ne1: [c1], ne2: [c2], ne3: [c3]}", "circuits: {ne1: [srv1]}")))
    (hit,) = with_path(found, "groups.agg.vars.circuits.ne1")
    assert "srv1" in hit and "access switch sw1" in hit


def test_elements_cabled_on_different_interface_names():
    found = problems(variant(("  - endpoints: [sp1:eth2, sw2:eth4]", "  - endpoints: [sp1:eth3, sw2:eth4]")))
    (hit,) = with_path(found, "groups.agg")
    assert "sp1 reaches the switches on eth1/eth3 but ne1 on eth1/eth2" in hit and "cabled alike" in hit


def test_a_cluster_manager_managing_no_cluster():
    found = problems(variant(("  cm: {kind: cluster-manager}\n", "  cm: {kind: cluster-manager}\n"
                                                                  "  cm2: {kind: cluster-manager}\n")))
    (hit,) = with_path(found, "nodes.cm2")
    assert "cluster-manager cm2 manages no cluster" in hit


@pytest.mark.parametrize("det", ["[heartbeats, psychic]", "[]", "heartbeats"])
def test_an_invalid_detection_list(det):
    found = problems(variant(("      selection: ordered\n", f"      selection: ordered\n      detection: {det}\n")))
    (hit,) = with_path(found, "groups.agg.vars.detection")
    assert "expected a non-empty list of heartbeats, ports, events" in hit


def test_a_valid_detection_list_reaches_the_plan():
    text = variant(("      selection: ordered\n", "      selection: ordered\n      detection: [heartbeats]\n"))
    m = parse_lab(text, "lab.yaml")
    mgmt = {n: str(a.ip) for n, a in m.plan.mgmt.items()}
    plan = ClusterPlan.from_dict(json.loads(cluster_files(m.spec, mgmt, "t-", "/s")["cm"][1]))
    assert plan.detection == ("heartbeats",)


def test_switches_must_be_two_different_switches():
    found = problems(variant(("switches: [sw1, sw2]", "switches: [sw1, sw1]")))
    (hit,) = with_path(found, "groups.agg.vars.switches")
    assert "two different switch nodes" in hit


def test_an_element_both_active_and_spare():
    found = problems(variant(("members: [sp1, sp2]", "members: [sp1, sp2, ne3]")))
    (hit,) = with_path(found, "groups.spares.members")
    assert "ne3 cannot be active and a spare at once" in hit


# ------------------------------------------------------------------ addressing
def test_cross_connected_switches_are_not_lans(model):
    # the fixture loaded without a "different subnets" problem although sw1 carries 10.1/10.2/10.3;
    # sw1 carries 10.1/10.2/10.3 customers and sw2 the servers; each role is a segment of its own
    switches, segments = cross_connect_segments(model.spec)
    assert switches == {"sw1", "sw2"}
    seg = dict(segments)
    assert seg["xc:agg:ne1"] == [("ne1", "eth1"), ("c1", "eth1")]
    assert sorted(seg["xc:agg:servers"]) == [("ne1", "eth2"), ("ne2", "eth2"), ("ne3", "eth2"), ("srv1", "eth1"),
                                             ("srv2", "eth1")]
    assert not any(("sp1", "eth1") in members or ("sp2", "eth2") in members for members in seg.values())
    assert str(model.plan.addresses[("c2", "eth1")]) == "10.2.0.10/24"
    assert str(model.plan.addresses[("ne3", "eth2")]) == "10.0.0.3/24"


def test_without_the_cluster_the_same_switches_are_lans_with_mixed_subnets():
    """The control for the test above: it is the cluster that keeps sw1 from being one LAN."""
    head = LAB.split("\ngroups:\n")[0] + "\n"
    found = problems(head.replace("  cm: {kind: cluster-manager}\n", ""))
    assert any("different subnets" in p and "lan:sw1" in p for p in found), found


# ------------------------------------------------------------------ the lab engine's files
def test_cluster_files_for_the_manager_and_every_element(model):
    mgmt = {n: str(a.ip) for n, a in model.plan.mgmt.items()}
    files = cluster_files(model.spec, mgmt, "t-", "/run/api.sock")
    assert set(files) == {"cm", "ne1", "ne2", "ne3", "sp1", "sp2"}
    name, text = files["cm"]
    assert name == "cluster.json"
    plan = ClusterPlan.from_dict(json.loads(text))
    assert (plan.name, plan.manager, plan.manager_ip, plan.api_socket) == ("agg", "cm", mgmt["cm"], "/run/api.sock")
    assert (plan.access_switch, plan.network_switch, plan.members, plan.pool) == ("sw1", "sw2", ["ne1", "ne2", "ne3"],
                                                                                  ["sp1", "sp2"])
    assert plan.elements["sp1"].mgmt == mgmt["sp1"] and plan.elements["sp1"].access_port == "eth4"
    assert plan.circuits == {"ne1": ["eth11"], "ne2": ["eth12"], "ne3": ["eth13"]}
    lab_vars = yaml.safe_load(LAB)["groups"]["agg"]["vars"]
    assert plan.server_ports == ["eth11", "eth12"]
    assert (plan.hb_ms, plan.dead_intervals) == (lab_vars["heartbeat_ms"], lab_vars["dead_intervals"])
    assert len(plan.secret) == 32
    for n in ("ne1", "ne2", "ne3", "sp1", "sp2"):
        fname, atext = files[n]
        assert fname == "cluster-agent.json"
        agent = AgentPlan(**json.loads(atext))
        assert (agent.cluster, agent.element, agent.manager_ip, agent.hb_ms) == ("agg", n, mgmt["cm"], plan.hb_ms)
        assert agent.secret == plan.secret, n
    # another lab prefix gets another secret; an explicit one wins
    other = ClusterPlan.from_dict(json.loads(cluster_files(model.spec, mgmt, "u-", "/s")["cm"][1]))
    assert other.secret != plan.secret
    m2 = parse_lab(variant(("      selection: ordered\n", "      selection: ordered\n      secret: s3cr3t\n")), "lab.yaml")
    f2 = cluster_files(m2.spec, {n: str(a.ip) for n, a in m2.plan.mgmt.items()}, "t-", "/s")
    assert json.loads(f2["cm"][1])["secret"] == "s3cr3t" and json.loads(f2["sp2"][1])["secret"] == "s3cr3t"
