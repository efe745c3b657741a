"""Figure 4 of the virtual connectivity grid specification (seed 003, [0053]-[0055]) in labs/fig4.yaml:
three INODEs, application clusters AA, AB, AC, two MNODEs and four external networks, joined by the
five virtual networks VN-1..VN-5 that the controller's virtual link manager programs on a chain of
three OVS switches (vn1, vn2, vn3, vn5 virtual switches, vn4 a point-to-multipoint link rooted at ic1).

Checked as an operator would: the manager's own account (GET /vlinks), then traffic. Every member of
a virtual network reaches every other over it (a ping mesh per network), a node cannot reach a
node of another network from the first network's interface (and the probe's ARP request is seen on
the network it was sent into and nowhere near the target), and each external network reaches its INODE.
Membership comes from the lab file, so the tests follow it when the lab changes."""
from __future__ import annotations

import ipaddress
import json

import pytest

from controllers.vlink.model import parse_link
from twin.evidence import attach_text
from twin.polling import wait_for
from twin.traffic.pingmesh import MeshResult, ping_mesh

pytestmark = [pytest.mark.e2e, pytest.mark.lab("labs/fig4.yaml")]

VNETS = ["vn1", "vn2", "vn3", "vn4", "vn5"]
CHAIN = ["gs1", "gs2", "gs3"]   # the grid switches, in the order the trunks chain them


def links_of(lab) -> dict:
    return {name: parse_link(body, name) for name, body in lab.model.spec.vlinks.items()}


def members(lab, vnet: str) -> list[tuple[str, str]]:
    """(node, interface) of each member of a virtual network, in the lab file's order."""
    return [tuple(ep.split(":", 1)) for ep in links_of(lab)[vnet].endpoints()]


def addr(lab, node: str, intf: str) -> str:
    return lab.state.nodes[node].interfaces[intf].split("/")[0]


def switch_of(lab, endpoint: str) -> str:
    """The grid switch a node interface is cabled to, from the lab file."""
    for link in lab.model.spec.links:
        a, b = link.endpoints
        for ep, other in ((a, b), (b, a)):
            if str(ep) == endpoint and other.node in CHAIN:
                return other.node
    raise AssertionError(f"{endpoint} is not cabled to a grid switch")


def test_lab_file_is_figure_4(lab):
    """The lab holds what [0053] lists, so the rest of the module tests Figure 4 and not something else."""
    spec = lab.model.spec
    groups = {g: sorted(s.members) for g, s in spec.groups.items()}
    assert groups["AA"] == ["aa1", "aa2"] and groups["AB"] == ["ab1", "ab2", "ab3"] and \
        groups["AC"] == ["ac1", "ac2", "ac3"], groups
    assert all(spec.groups[g].type == "group" for g in ("AA", "AB", "AC")), "clusters here are plain groups"
    assert groups["inodes"] == ["ia1", "ib1", "ic1"] and groups["mnodes"] == ["ma1", "mb1"], groups
    assert sorted(spec.vlinks) == VNETS
    vn5 = {n for n, _ in members(lab, "vn5")}
    assert vn5 == set(groups["inodes"]) | set(groups["mnodes"]) | set(groups["AA"] + groups["AB"] + groups["AC"])


def test_every_virtual_network_is_programmed(lab):
    """GET /vlinks: the five networks exist as declared, are programmed on every switch they span,
    and each has its own VLAN from the grid's block."""
    got = lab.controller.request("GET", "/vlinks")
    attach_text("GET /vlinks", json.dumps(got, indent=1), "json")
    grid = got["grid"]
    assert grid["switches"] == CHAIN and sorted(grid["synced"]) == CHAIN, grid
    assert len(grid["trunks"]) == 2, grid["trunks"]
    block = tuple(lab.model.spec.grid.vlan_block)
    assert tuple(grid["vlan_block"]) == block == (3100, 3199), grid
    by_name = {link["name"]: link for link in got["links"]}
    assert sorted(by_name) == VNETS, f"links the manager holds: {sorted(by_name)} (refused ones are in its log)"
    declared = links_of(lab)
    for name, link in by_name.items():
        spec = declared[name]
        assert link["programmed"], f"{name} is not programmed: {link}"
        assert link["origin"] == "lab", link
        assert link["type"] == spec.type, (name, link["type"], spec.type)
        assert [m["endpoint"] for m in link["members"]] == spec.endpoints(), (name, link["members"])
        assert block[0] <= link["vlan"] <= block[1], f"{name} VLAN {link['vlan']} is outside {block}"
        # a link spans every switch between its members' switches on the chain (transit included)
        at = sorted({CHAIN.index(switch_of(lab, ep)) for ep in spec.endpoints()})
        assert link["switches"] == CHAIN[at[0]:at[-1] + 1], (name, link["switches"])
    vlans = [link["vlan"] for link in got["links"]]
    assert len(set(vlans)) == len(vlans), f"VLAN IDs are shared: {dict(zip(by_name, vlans))}"
    roles = {m["endpoint"]: m["role"] for m in by_name["vn4"]["members"]}
    assert roles == {"ic1:vn4": "root", "ac1:vn4": "leaf", "ac2:vn4": "leaf", "ac3:vn4": "leaf"}, roles
    # the transit switch of VN-2 (AA on gs1, AC on gs3, nobody on gs2) carries its VLAN trunk to trunk
    vid = by_name["vn2"]["vlan"]
    flows = lab.dump_flows("gs2")
    assert f"dl_vlan={vid}" in flows, f"gs2 has no rule for VN-2's VLAN {vid}:\n{flows}"
    assert "refused" not in lab.controller_log(), lab.controller_log()[-3000:]


@pytest.mark.parametrize("vnet", VNETS)
def test_ping_mesh_over_each_virtual_network(lab, vnet):
    """Every member reaches every other member at its address on this network. On the p2mp VN-4 that
    is the root and each leaf, both ways (leaf to leaf is not carried: see the isolation test)."""
    link = links_of(lab)[vnet]
    mems = members(lab, vnet)
    if link.type == "p2mp":
        root, root_intf = link.with_role("root")[0].endpoint.split(":", 1)
        result = MeshResult(nodes=[n for n, _ in mems])
        for node, intf in mems:
            if node != root:
                result.pairs += ping_mesh(lab.nodes, {root: addr(lab, root, root_intf),
                                                      node: addr(lab, node, intf)}).pairs
        note = "\n(leaf to leaf '?': not carried by a point-to-multipoint link)"
    else:
        result = ping_mesh(lab.nodes, {node: addr(lab, node, intf) for node, intf in mems})
        note = ""
    table = f"{vnet} ({link.type}, {link.description})\n{result}{note}"
    attach_text(f"ping matrix {vnet}", table)
    n = len(mems)
    expected = 2 * (n - 1) if link.type == "p2mp" else n * (n - 1)
    assert len(result.pairs) == expected, table
    assert result.ok, f"ping mesh over {vnet} failed:\n{table}"


# (source node, its interface on the source network, target node, the target's interface whose
#  address is probed, why the target is out of reach)
ISOLATION = [
    ("ia1", "vn1", "ma1", "vn5", "VN-1 vs management VN-5, across the gs1-gs2 trunk"),
    ("ab1", "vn1", "mb1", "vn5", "VN-1 vs management VN-5, both ports on gs2"),
    ("aa1", "vn2", "ab1", "vn3", "VN-2 (AA-AC) vs VN-3 (AB-AC)"),
    ("ac1", "vn4", "ac2", "vn4", "p2mp VN-4: a leaf does not reach another leaf"),
]


@pytest.mark.parametrize("src,intf,dst,dst_intf,why", ISOLATION,
                         ids=[f"{c[0]}-{c[1]}-to-{c[2]}-{c[3]}" for c in ISOLATION])
def test_virtual_networks_are_isolated(lab, src, intf, dst, dst_intf, why):
    """`ping -I <intf>` sends the probe into one virtual network only (the kernel ARPs for the target
    on that interface). A member of that network sees the ARP request; the target, which is not on it,
    sees nothing on any interface, and no reply comes back."""
    link = links_of(lab)[intf]
    on_net = [n for n, _ in members(lab, intf)]
    assert src in on_net
    # a target that is a member would answer for any of its addresses (Linux ARP); only a p2mp leaf is
    # a member that must still be out of reach of another leaf
    assert dst not in on_net or (link.type == "p2mp" and {src, dst} <= {m.node for m in link.with_role("leaf")}), \
        f"bad case: {dst} is on {intf}"
    target = addr(lab, dst, dst_intf)
    src_ip = addr(lab, src, intf)
    assert ipaddress.ip_address(target) not in ipaddress.ip_interface(lab.state.nodes[src].interfaces[intf]).network \
        or link.type == "p2mp"
    # a witness: another member of the source network, the p2mp root for a leaf
    roots = [m.node for m in link.with_role("root")]
    witness = roots[0] if roots else next(n for n in on_net if n != src)
    witness_intf = dict(members(lab, intf))[witness]
    bpf = f"arp and arp src host {src_ip} and arp dst host {target}"
    with lab.capture(witness, witness_intf, bpf, name=f"isolation-{src}-{intf}-witness-{witness}.pcap") as seen, \
            lab.capture(dst, "any", f"arp and arp src host {src_ip}",
                        name=f"isolation-{src}-{intf}-target-{dst}.pcap") as leak:
        res = lab.nodes.run(src, ["ping", "-n", "-c", "2", "-i", "0.3", "-W", "1", "-I", intf, target], timeout=15)
        wait_for(lambda: seen.count() > 0, 5, what=f"{witness}:{witness_intf} to see {src}'s ARP request for {target}")
    leaked = leak.count()
    attach_text(f"isolation {src}:{intf} -> {dst} {target}",
                f"{why}\n$ ping -I {intf} {target}   (in {src})\n{res.stdout}{res.stderr}\n"
                f"ARP requests seen by {witness}:{witness_intf} (on {intf}): {seen.count()}\n"
                f"ARP requests from {src_ip} seen by {dst} on any interface: {leaked}")
    assert "packets transmitted" in res.stdout, f"the probe never left {src}:{intf}: {res.stdout}{res.stderr}"
    assert res.returncode != 0 and " 0 received" in res.stdout, \
        f"{src} reached {dst}'s {target} from {intf} ({why}):\n{res.stdout}"
    assert leaked == 0, f"{dst} saw {leaked} ARP request(s) sent into {intf} by {src} ({why})"


def external_links(lab) -> list[tuple[str, str, str, str]]:
    """(external network host, its interface, INODE, INODE interface) for every plain EN-INODE link."""
    ext = set(lab.model.spec.groups["external"].members)
    out = []
    for link in lab.model.spec.links:
        a, b = link.endpoints
        for en, inode in ((a, b), (b, a)):
            if en.node in ext:
                out.append((en.node, en.intf, inode.node, inode.intf))
    return sorted(out)


def test_each_external_network_reaches_its_inode(lab):
    """EN-1 behind ia1, EN-2 and EN-3 behind ib1, EN-4 behind ic1: both ways over the plain link."""
    pairs = external_links(lab)
    assert [(en, inode) for en, _, inode, _ in pairs] == \
        [("en1", "ia1"), ("en2", "ib1"), ("en3", "ib1"), ("en4", "ic1")], pairs
    tables, failed = [], []
    for en, en_intf, inode, inode_intf in pairs:
        mesh = ping_mesh(lab.nodes, {en: addr(lab, en, en_intf), inode: addr(lab, inode, inode_intf)})
        tables.append(f"{en}:{en_intf} <-> {inode}:{inode_intf}\n{mesh}")
        if not mesh.ok:
            failed.append(f"{en} <-> {inode}")
    report = "\n\n".join(tables)
    attach_text("external networks to INODEs", report)
    assert not failed, f"external networks cut off from their INODE: {', '.join(failed)}\n{report}"
