"""The lab file's `flows:` section (twin/lab/flows.py): the whole-lab checks on variants of labs/fig5.yaml,
each problem reported at its field path and line like every other lab problem, and the plan files
flow_files hands every flow node and the MNODE."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.lab import load_lab, parse_lab
from twin.lab.flows import CONTROL_PORT, PLAN_FILE, check_flows, clusters_of, flow_files, neighbours, parse_deny
from twin.lab.grid import endpoint_mac
from lab_problems import lab_variant, problems, with_path

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LAB = (ROOT / "labs" / "fig5.yaml").read_text()
FLOW_NODES = ["ad1", "ad2", "ad3", "ae1", "ae2", "af1", "af2", "ar1", "ax1", "id1", "ie1", "if1"]


def variant(*edits: tuple[str, str]) -> str:
    return lab_variant(LAB, *edits)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of `needle` in `text`."""
    assert needle in text, needle
    return text[:text.index(needle)].count("\n") + 1


def only(found: list[str], path: str, message: str, text: str | None = None, needle: str | None = None) -> None:
    """Exactly one problem at `path`, its message containing `message`; at the line of `needle` if given."""
    hits = with_path(found, path)
    assert len(hits) == 1, hits
    assert message in hits[0], hits[0]
    if needle is not None:
        assert text is not None
        assert hits[0].startswith(f"lab.yaml:{line_of(text, needle)}: "), hits[0]


@pytest.fixture(scope="module")
def model():
    return load_lab(ROOT / "labs" / "fig5.yaml")


@pytest.fixture(scope="module")
def mgmt(model) -> dict[str, str]:
    return {n: str(a.ip) for n, a in model.plan.mgmt.items()}


@pytest.fixture(scope="module")
def plans(model, mgmt) -> dict[str, dict]:
    files = flow_files(model.spec, mgmt, "t0001")
    assert {name for name, _ in files.values()} == {PLAN_FILE}
    return {n: json.loads(text) for n, (_, text) in files.items()}


# ------------------------------------------------------------------ the shipped lab
def test_the_shipped_fig5_lab_is_clean(model):
    assert check_flows(model.spec) == []
    assert clusters_of(model.spec) == {"ID": ["id1"], "AD": ["ad1", "ad2", "ad3"], "AE": ["ae1", "ae2"],
                                       "AF": ["af1", "af2"], "IE": ["ie1"], "IF": ["if1"], "AX": ["ax1"],
                                       "AR": ["ar1"]}


def test_neighbours_follow_the_virtual_links(model):
    near = neighbours(model.spec)
    assert sorted(near["id1"]) == ["ad1", "ad2", "ad3", "ax1"]
    assert near["id1"]["ad2"] == ("vn6", "vn6")
    assert sorted(near["ad1"]) == ["ad2", "ad3", "ae1", "ae2", "af1", "af2", "ax1", "id1"]
    assert near["ie1"]["ar1"] == ("vn9", "vn9") and near["ie1"]["af1"] == ("vn9", "vn9")
    assert "ie1" not in near["ad1"] and "en5" not in near, "external networks are off the grid"


def test_parse_deny_rules():
    assert parse_deny("udp dport 9") == {"proto": "udp", "dport": 9}
    assert parse_deny(" TCP ") == {"proto": "tcp"}
    assert parse_deny("icmp") == {"proto": "icmp"}
    assert parse_deny("src 10.5.0.0/24") == {"src": "10.5.0.0/24"}
    assert parse_deny("dst 10.6.0.10/32") == {"dst": "10.6.0.10/32"}
    with pytest.raises(ValueError, match="not understood"):
        parse_deny("icmp dport 9")              # echo identifiers are no ports
    with pytest.raises(ValueError, match="not understood"):
        parse_deny("udp 9")
    with pytest.raises(ValueError, match="outside 1-65535"):
        parse_deny("tcp dport 0")


# ------------------------------------------------------------------ broken variants
def test_unknown_manager():
    text = variant(("manager: md1", "manager: mdx"))
    only(problems(text), "flows.manager", "unknown node 'mdx'", text, "manager: mdx")


def test_the_manager_must_be_an_mnode():
    text = variant(("manager: md1", "manager: id1"))
    hits = with_path(problems(text), "flows.manager")
    assert len(hits) == 1 and hits[0].startswith(f"lab.yaml:{line_of(text, 'manager: id1')}: ")
    assert "id1 is" in hits[0] and "inode" in hits[0] and hits[0].endswith("the manager must be of kind mnode")


def test_unknown_cluster_member():
    text = variant(("AX: {members: [ax1]}", "AX: {members: [ax1, zz9]}"))
    only(problems(text), "flows.clusters.AX.members[1]", "unknown node 'zz9'", text, "AX: {members")


def test_a_member_of_two_clusters():
    text = variant(("AX: {members: [ax1]}", "AX: {members: [ax1, ad1]}"))
    only(problems(text), "flows.clusters.AX.members[1]", "ad1 is already a member of cluster AD", text, "AX: {")


def test_cluster_members_are_flow_nodes_of_one_kind():
    found = problems(variant(("AX: {members: [ax1]}", "AX: {members: [ax1, en5]}")))
    only(found, "flows.clusters.AX.members[1]", "en5 is a host; cluster members are anode or inode nodes")
    only(found, "flows.clusters.AX.members", "a cluster holds one kind of node (all anode or all inode)")


def test_an_anode_in_no_cluster():
    text = variant(("  ar1: {kind: anode, auto_address: false}\n",
                    "  ar1: {kind: anode, auto_address: false}\n  az1: {kind: anode, auto_address: false}\n"))
    only(problems(text), "nodes.az1", "anode az1 is in no cluster of flows.clusters", text, "  az1:")


def test_a_path_through_an_unknown_cluster():
    text = variant(('"52": [AD, AF, IE]', '"52": [AD, AZ, IE]'))
    only(problems(text), "flows.paths.52[1]", "unknown cluster 'AZ' (clusters: ID, AD, AE, AF, IE, IF, AX, AR)",
         text, '"52":')


def test_a_path_must_end_at_an_inode_cluster():
    text = variant(('"54": [AD, AE, IF]', '"54": [AD, AE]'))
    only(problems(text), "flows.paths.54[1]", "a path ends at an INODE cluster (the egress); AE is not one",
         text, '"54":')


def test_an_inode_cluster_only_ends_a_path():
    found = problems(variant(('"52": [AD, AF, IE]', '"52": [AD, IE, AF]')))
    assert [p for p in with_path(found, "flows.paths.52[1]") if "INODE" in p] == [
        'lab.yaml:103: flows.paths.52[1]: IE is an INODE cluster; only the last cluster of a path may be one']
    only(found, "flows.paths.52[2]", "a path ends at an INODE cluster (the egress); AF is not one")


def test_a_path_crosses_each_cluster_once():
    found = problems(variant(('"52": [AD, AF, IE]', '"52": [AD, AF, AD, IE]')))
    only(found, "flows.paths.52", "a path crosses each cluster once")


def test_a_replica_path_must_end_at_a_recorder():
    text = variant(("r52: [AX, AR]", "r52: [AX]"))
    found = problems(text)
    only(found, "flows.paths.r52[0]", "a replica path ends at a recorder cluster; AX is not one", text, "r52: [AX]")
    only(found, "flows.policies[0].replicate", "a replica path ends at a recorder cluster; AX is not one")


def test_an_unknown_replica_path():
    found = problems(variant(("replicate: r52}", "replicate: r99}")))
    only(found, "flows.policies[0].replicate", "unknown path 'r99'")


def test_clusters_that_share_no_virtual_link():
    text = variant(("members: [ad1:vn7, ad2:vn7,", "members: [ad2:vn7,"))
    found = with_path(problems(text), "flows.paths.52[1]")
    assert [p.split(": ", 2)[2] for p in found] == ["ad1 (AD) and af1 (AF) share no virtual link",
                                                    "ad1 (AD) and af2 (AF) share no virtual link"]
    assert all(p.startswith(f"lab.yaml:{line_of(text, chr(34) + '52' + chr(34))}: ") for p in found)


def test_a_p2mp_link_joins_its_root_to_each_leaf_only():
    text = variant(('vn10: {type: switch, description: "VN-10: cluster AE to IF-1", members: [ae1:vn10, ae2:vn10, '
                    'if1:vn10]}', "vn10: {type: p2mp, members: [{ae1:vn10: root}, ae2:vn10, if1:vn10]}"))
    only(problems(text), "flows.paths.54[2]", "ae2 (AE) and if1 (IF) share no virtual link")
    spec = parse_lab(variant(('vn10: {type: switch, description: "VN-10: cluster AE to IF-1", members: [ae1:vn10, '
                              'ae2:vn10, if1:vn10]}', "vn10: {type: p2mp, members: [{if1:vn10: root}, ae1:vn10, "
                              "ae2:vn10]}")), "lab.yaml").spec
    near = neighbours(spec)
    assert near["if1"] == {"ae1": ("vn10", "vn10"), "ae2": ("vn10", "vn10")}
    assert near["ae1"]["ae2"] == ("vn8", "vn8"), "the leaves meet on vn8, not on the p2mp link"


def test_no_inode_can_reach_the_first_cluster():
    text = variant(('members: [id1:vn6, ad1:vn6,', 'members: [ad1:vn6,'))
    only(problems(text), "flows.paths.52[0]", "no INODE shares a virtual link with every member of AD: no flow "
                                              "can enter")


def test_the_egress_must_reach_the_recorder():
    # ar1 moves from VN-9 to VN-6: ax1 still reaches it (path r52 is fine), ie1 no longer does
    text = variant(("members: [id1:vn6, ad1:vn6, ad2:vn6, ad3:vn6, ax1:vn6]",
                    "members: [id1:vn6, ad1:vn6, ad2:vn6, ad3:vn6, ax1:vn6, ar1:vn9]"),
                   ("ie1:vn9, ax1:vn9, ar1:vn9]", "ie1:vn9, ax1:vn9]"))
    found = problems(text)
    assert len(found) == 1, found
    only(found, "flows.policies[0].replicate", "egress ie1 shares no virtual link with recorder ar1: it cannot copy "
                                               "the original flow to it", text, "replicate: r52")


def test_a_policy_naming_an_unknown_path():
    text = variant(('path: "54"}', 'path: "55"}'))
    only(problems(text), "flows.policies[2].path", "unknown path '55' (paths: 52, 54, r52)", text, 'path: "55"')


def test_a_deny_rule_that_does_not_parse():
    text = variant(("deny: [udp dport 9]", "deny: [udp port 9]"))
    only(problems(text), "flows.clusters.AF.deny[0]", "filter rule 'udp port 9' not understood; expected "
                                                      "'tcp|udp [dport N]', 'icmp', 'src PREFIX' or 'dst PREFIX'",
         text, "deny: [udp port 9]")
    only(problems(variant(("deny: [udp dport 9]", "deny: [tcp, udp dport 70000]"))), "flows.clusters.AF.deny[1]",
         "port 70000 is outside 1-65535")
    only(problems(variant(("deny: [udp dport 9]", "deny: [icmp dport 9]"))), "flows.clusters.AF.deny[0]",
         "filter rule 'icmp dport 9' not understood")


def test_weights_for_a_non_member_or_below_one():
    text = variant(("weights: {ad1: 2}", "weights: {ad9: 2}"))
    only(problems(text), "flows.clusters.AD.weights.ad9", "ad9 is not a member of AD", text, "weights: {ad9")
    only(problems(variant(("weights: {ad1: 2}", "weights: {ad1: 0}"))), "flows.clusters.AD.weights.ad1",
         "weight must be a whole number >= 1, got 0")


def test_deny_rules_need_the_filter_function():
    text = variant(("function: filter, deny", "function: counter, deny"))
    only(problems(text), "flows.clusters.AF.deny", "deny rules need function: filter (this cluster is a counter)",
         text, "function: counter, deny")


def test_flows_without_virtual_links():
    text = LAB[:LAB.index("vlinks:\n")] + LAB[LAB.index("flows:\n"):]
    only(problems(text), "flows", "flow routing runs over virtual links: add a grid and vlinks joining the flow "
                                  "nodes", text, "flows:")


def test_flows_without_the_management_network():
    text = variant(("name: fig5\n", "name: fig5\nmgmt: {enabled: false}\n"))
    only(problems(text), "flows", "the MNODE talks to the flow nodes over the management network: mgmt.enabled "
                                  "must be true", text, "flows:")


def test_schema_errors_in_the_flows_section():
    only(problems(variant(("strategy: redirect", "strategy: reroute"))), "flows.clusters.AD.strategy", "redirect")
    only(problems(variant(('"54": [AD, AE, IF]', '"54": []'))), "flows.paths", "path '54' is empty")
    only(problems(variant(("heartbeat_ms: 100", "heartbeat_ms: 5"))), "flows.heartbeat_ms", "20")
    only(problems(variant(("dscp: 10", "dscp: 64"))), "flows.clusters.AE.dscp", "63")


def test_twin_validate_prints_the_field_paths(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(variant(('"52": [AD, AF, IE]', '"52": [AD, AZ, IE]'), ("weights: {ad1: 2}", "weights: {ad9: 2}")))
    run = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(broken), str(ROOT / "labs" / "fig5.yaml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 2, run
    err = " ".join(run.stderr.split())
    assert f"{broken}:{line_of(broken.read_text(), chr(34) + '52' + chr(34))}: flows.paths.52[1]: unknown cluster " \
           "'AZ'" in err
    assert f"{broken}:{line_of(broken.read_text(), 'weights:')}: flows.clusters.AD.weights.ad9: ad9 is not a member " \
           "of AD" in err
    assert "fig5.yaml: ok (19 nodes, 27 links)" in " ".join(run.stdout.split())


# ------------------------------------------------------------------ plan files
def test_every_flow_node_and_the_mnode_get_a_plan(plans):
    assert sorted(plans) == sorted(FLOW_NODES + ["md1"])
    secrets = {p["secret"] for p in plans.values()}
    assert len(secrets) == 1 and len(next(iter(secrets))) == 32, "one grid secret, shared by all"
    for n, p in plans.items():
        assert p["node"] == n and p["manager"] == "md1" and p["control_port"] == CONTROL_PORT
        assert p["manager_ip"] == plans["md1"]["mgmt_ip"] and p["heartbeat_ms"] == 100


def test_flow_node_plans_hold_cluster_interfaces_and_function(plans, mgmt):
    cluster = {"id1": "ID", "ad1": "AD", "ad2": "AD", "ad3": "AD", "ae1": "AE", "ae2": "AE", "af1": "AF", "af2": "AF",
               "ie1": "IE", "if1": "IF", "ax1": "AX", "ar1": "AR"}
    for n in FLOW_NODES:
        p = plans[n]
        assert p["cluster"] == cluster[n] and p["mgmt_ip"] == mgmt[n]
        assert p["role"] == ("inode" if n[0] == "i" else "anode")
        assert p["macs"] == {i: endpoint_mac(f"{n}:{i}") for i in p["grid_intfs"]}
        assert p["udp_idle_s"] == 10 and p["tcp_idle_s"] == 300
    assert (plans["id1"]["grid_intfs"], plans["id1"]["ext_intfs"]) == (["vn6"], ["ext5"])
    assert (plans["ie1"]["grid_intfs"], plans["ie1"]["ext_intfs"]) == (["vn9"], ["ext6"])
    assert (plans["if1"]["grid_intfs"], plans["if1"]["ext_intfs"]) == (["vn10"], ["ext7"])
    assert (plans["ad1"]["grid_intfs"], plans["ad1"]["ext_intfs"]) == (["vn6", "vn7", "vn8"], [])
    assert [plans[n]["origin"] for n in ("id1", "ie1", "if1", "ad1")] == [1, 2, 3, 0], "flow ID origin per INODE"
    assert plans["af1"]["function"] == {"function": "filter", "deny": [{"proto": "udp", "dport": 9}], "dscp": 0}
    assert plans["ae2"]["function"] == {"function": "marker", "deny": [], "dscp": 10}
    assert plans["ar1"]["function"]["function"] == "recorder"
    assert plans["id1"]["function"]["function"] == "counter"


def test_neighbours_carry_the_mac_of_the_peer_s_interface(model, plans):
    on_link: dict[str, list[str]] = {}
    for name, body in model.spec.vlinks.items():
        for ep in body["members"]:
            on_link.setdefault(ep.split(":")[0], []).append(name)
    link_of = {ep: name for name, body in model.spec.vlinks.items() for ep in body["members"]}
    for n in FLOW_NODES:
        nb = plans[n]["neighbors"]
        expect = {peer for link in on_link[n] for peer in on_link if peer != n and link in on_link[peer]}
        assert set(nb) == expect, n
        for peer, (mine, mac) in nb.items():
            theirs = next(i for i in plans[peer]["grid_intfs"] if link_of[f"{peer}:{i}"] == link_of[f"{n}:{mine}"])
            assert mac == endpoint_mac(f"{peer}:{theirs}") == plans[peer]["macs"][theirs]
    assert plans["id1"]["neighbors"]["ad1"] == ["vn6", endpoint_mac("ad1:vn6")]
    assert plans["ad1"]["neighbors"]["af2"] == ["vn7", endpoint_mac("af2:vn7")]
    assert plans["ad1"]["neighbors"]["ae1"] == ["vn8", endpoint_mac("ae1:vn8")]
    assert plans["ie1"]["neighbors"]["ar1"] == ["vn9", endpoint_mac("ar1:vn9")]


def test_the_mnode_plan_numbers_every_cluster_and_holds_paths_and_policies(plans, mgmt):
    m = plans["md1"]
    assert m["role"] == "mnode" and m["selection"] == "centralized" and m["dead_intervals"] == 8
    assert m["mgmt_ip"] == mgmt["md1"]
    assert [(name, c["id"]) for name, c in m["clusters"].items()] == sorted(
        [("ID", 1), ("AD", 2), ("AE", 3), ("AF", 4), ("IE", 5), ("IF", 6), ("AX", 7), ("AR", 8)])
    assert sorted(c["id"] for c in m["clusters"].values()) == list(range(1, 9))
    ad = m["clusters"]["AD"]
    assert ad["members"] == [{"name": "ad1", "node_id": 1, "weight": 2}, {"name": "ad2", "node_id": 2, "weight": 1},
                             {"name": "ad3", "node_id": 3, "weight": 1}]
    assert (ad["balance"], ad["strategy"], ad["function"], ad["role"]) == ("wrr", "redirect", "counter", "anode")
    assert (m["clusters"]["AE"]["strategy"], m["clusters"]["AF"]["strategy"]) == ("backup", "discard")
    assert m["clusters"]["IE"]["role"] == "inode"
    assert m["paths"] == {"52": ["AD", "AF", "IE"], "54": ["AD", "AE", "IF"], "r52": ["AX", "AR"]}
    assert m["policies"][0] == {"path": "52", "replicate": "r52", "src": None, "dst": "10.6.0.0/24", "proto": "udp",
                                "dport": 7100, "app": None}
    assert [(p["dst"], p["path"]) for p in m["policies"][1:]] == [("10.6.0.0/24", "52"), ("10.7.0.0/24", "54")]
    ipaddress.IPv4Network(m["policies"][2]["dst"])
    assert m["nodes"] == {n: {"mgmt_ip": mgmt[n], "role": plans[n]["role"], "cluster": plans[n]["cluster"]}
                          for n in FLOW_NODES}


def test_an_inode_in_no_cluster_gets_a_cluster_of_its_own():
    text = variant(("    IE: {members: [ie1]}\n", ""), ('"52": [AD, AF, IE]', '"52": [AD, AF, ie1]'))
    model = parse_lab(text, "lab.yaml")
    assert check_flows(model.spec) == []
    assert list(clusters_of(model.spec))[-1] == "ie1"
    files = flow_files(model.spec, {}, "t0001")
    m = json.loads(files["md1"][1])
    assert m["clusters"]["ie1"] == {"id": 8, "role": "inode", "members": [{"name": "ie1", "node_id": 1, "weight": 1}],
                                    "strategy": "discard", "balance": "rr", "function": "counter"}
    assert json.loads(files["ie1"][1])["cluster"] == "ie1"


def test_the_secret_comes_from_the_lab_prefix_unless_given(model, mgmt):
    a = json.loads(flow_files(model.spec, mgmt, "t0001")["id1"][1])["secret"]
    b = json.loads(flow_files(model.spec, mgmt, "t0002")["id1"][1])["secret"]
    assert a != b, "two running copies of the lab do not share a key"
    text = variant(("selection: centralized", "selection: distributed\n  secret: s3cret-of-the-lab"))
    spec = parse_lab(text, "lab.yaml").spec
    files = flow_files(spec, {}, "t0001")
    assert {json.loads(t)["secret"] for _, t in files.values()} == {"s3cret-of-the-lab"}
    assert json.loads(files["md1"][1])["selection"] == "distributed"


def test_no_plans_without_flows_or_with_problems(model, mgmt):
    assert flow_files(load_lab(ROOT / "labs" / "vlinks.yaml").spec, mgmt, "t0001") == {}
    broken = model.spec.model_copy(deep=True)
    broken.flows.paths["54"] = ["AD", "AE"]
    assert check_flows(broken) and flow_files(broken, mgmt, "t0001") == {}
