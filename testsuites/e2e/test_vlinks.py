"""Virtual links (spec 003, section A) end to end in labs/vlinks.yaml: three grid switches in a
triangle, every link type, real frames sent from inside the nodes and captured on every member.

Each test checks who receives what (broadcast, multicast, unicast) on one link, and that the members
of the other links sharing the same switches and trunks receive none of it. Runtime tests create and
delete links through the controller API on the lab's spare interfaces; the last test restarts the
controller after wiping its rules and expects every link back from the data store."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import twin
from twin.controller_client import ControllerError
from twin.evidence import attach_text
from twin.polling import wait_for
from twin.traffic.probe import ProbeStream
from vlink_frames import BROADCAST, MULTICAST, Captures, mac, send

pytestmark = [pytest.mark.e2e, pytest.mark.vlinks, pytest.mark.lab("labs/vlinks.yaml")]

GRID = ("g1", "g2", "g3")
UNKNOWN = "02:00:00:00:99:99"


@pytest.fixture(autouse=True)
def vlink_evidence(lab):
    yield
    try:
        attach_text("virtual links", json.dumps(lab.controller.request("GET", "/vlinks"), indent=1), "json")
        attach_text("grid flow tables", "\n\n".join(f"== {sw}\n{lab.dump_flows(sw)}" for sw in GRID))
    except Exception as exc:  # evidence must never turn a pass into an error
        attach_text("virtual link evidence unavailable", str(exc))


def show(lab, name: str) -> dict:
    return lab.controller.request("GET", f"/vlinks/{name}")


def ping(lab, src: str, ip: str, count: int = 1) -> bool:
    r = lab.nodes.run(src, ["ping", "-c", str(count), "-i", "0.2", "-W", "1", ip], timeout=15)
    return r.returncode == 0


def wait_ping(lab, src: str, ip: str, timeout: float = 10) -> None:
    wait_for(lambda: ping(lab, src, ip), timeout, f"{src} to reach {ip}", interval=0.1)


def learn(lab, *endpoints: str) -> None:
    """Each endpoint speaks once (a broadcast), so links that switch by destination know its MAC."""
    for ep in endpoints:
        node, intf = ep.split(":")
        send(lab, node, intf, [(BROADCAST, f"hello-{node}")])
    wait_for(lambda: all(any(v == ep for link in lab.controller.request("GET", "/vlinks")["links"]
                             for v in show(lab, link["name"])["learned"].values()) for ep in endpoints),
             10, f"the manager to learn {endpoints}", interval=0.05)


def our_flows(lab) -> dict[str, set[str]]:
    """Each grid switch's virtual link rules (cookie 0x7a/0x7b...) without counters."""
    out = {}
    for sw in GRID:
        lines = [l for l in lab.dump_flows(sw).splitlines() if "cookie=0x7" in l]
        out[sw] = {" ".join(w for w in l.split() if not w.startswith(("duration=", "n_packets=", "n_bytes=",
                                                                       "idle_age=", "hard_age=")))
                   for l in lines}
    return out


def test_every_link_is_programmed_with_its_own_vlan(lab):
    state = lab.controller.request("GET", "/vlinks")
    links = {l["name"]: l for l in state["links"]}
    assert set(links) == {"cable1", "vsw1", "vsw2", "hub1", "p2mp1", "res1", "clu1", "rep1", "probe1", "ext1",
                          "ext100", "ext200"}
    assert all(l["programmed"] for l in links.values())
    assert set(state["grid"]["synced"]) == set(GRID)
    vlans = [l["vlan"] for l in links.values()]
    assert len(set(vlans)) == len(vlans)
    assert links["ext100"]["vlan"] == 100 and links["ext200"]["vlan"] == 200
    assert all(3000 <= l["vlan"] <= 3099 for n, l in links.items() if n not in ("ext100", "ext200"))
    # the g2-g3 trunk is off the spanning tree: no link rule admits or forwards on it
    g2 = lab.controller.flows("g2")
    t3 = [f for f in g2 if f.get("match", {}).get("in_port") in ("t3",) and f["cookie"] >> 56 == 0x7B]
    assert t3 == []


def test_cable_carries_everything_to_the_other_end_only(lab):
    h2 = mac(lab, "h2", "eth1")
    eps = ["h2:eth1", "h1:eth2", "h3:eth1", "h2:eth2", "h4:eth2"]
    with Captures(lab, eps, "cable") as caps:
        send(lab, "h1", "eth1", [(BROADCAST, "c-bc"), (MULTICAST, "c-mc"), (UNKNOWN, "c-uc"), (h2, "c-h2")])
        caps.wait({"h2:eth1": ["c-bc", "c-h2", "c-mc", "c-uc"]})
    attach_text("cable1 receivers", caps.table())
    assert caps.tags("h2:eth1") == ["c-bc", "c-h2", "c-mc", "c-uc"]
    for ep in eps[1:]:
        assert caps.tags(ep) == [], f"{ep} is on another link and saw cable1's frames"
    assert ping(lab, "h2", lab.address("h1", "eth1"))


def test_virtual_switch_floods_to_members_and_isolates_unicast(lab):
    learn(lab, "h4:eth1", "h5:eth1", "h3:eth1")
    h4 = mac(lab, "h4", "eth1")
    members = ["h3:eth1", "h4:eth1", "h5:eth1"]
    others = ["h2:eth2", "h3:eth2", "h6:eth1", "h1:eth3"]     # vsw2 shares every switch and trunk
    with Captures(lab, members + others, "vswitch") as caps:
        send(lab, "h1", "eth2", [(BROADCAST, "s-bc"), (MULTICAST, "s-mc"), (UNKNOWN, "s-uc"), (h4, "s-h4")])
        caps.wait({"h3:eth1": ["s-bc", "s-mc", "s-uc"], "h4:eth1": ["s-bc", "s-h4", "s-mc", "s-uc"],
                   "h5:eth1": ["s-bc", "s-mc", "s-uc"]})
    attach_text("vsw1 receivers", caps.table())
    assert caps.tags("h4:eth1") == ["s-bc", "s-h4", "s-mc", "s-uc"]
    for ep in ("h3:eth1", "h5:eth1"):
        assert caps.tags(ep) == ["s-bc", "s-mc", "s-uc"], f"{ep}: unicast to h4 must reach h4 only"
    for ep in others:
        assert caps.tags(ep) == [], f"{ep} is not on vsw1 but saw its frames"
    assert ping(lab, "h1", lab.address("h4", "eth1")) and ping(lab, "h6", lab.address("h2", "eth2"))


def test_hub_gives_promiscuous_members_all_unicast(lab):
    learn(lab, "h4:eth2", "h6:eth2")
    h4, h6 = mac(lab, "h4", "eth2"), mac(lab, "h6", "eth2")
    with Captures(lab, ["h4:eth2", "h6:eth2"], "hub") as caps:
        send(lab, "h1", "eth3", [(BROADCAST, "h-bc"), (h4, "h-to4"), (h6, "h-to6")])
        caps.wait({"h4:eth2": ["h-bc", "h-to4"], "h6:eth2": ["h-bc", "h-to4", "h-to6"]})
    attach_text("hub1 receivers", caps.table())
    assert caps.tags("h6:eth2") == ["h-bc", "h-to4", "h-to6"], "the promiscuous member sees every frame"
    assert caps.tags("h4:eth2") == ["h-bc", "h-to4"], "a non-promiscuous member sees only its own unicast"


def test_point_to_multipoint_blocks_leaf_to_leaf(lab):
    learn(lab, "h7:eth1", "h5:eth2")
    h7, h5 = mac(lab, "h7", "eth1"), mac(lab, "h5", "eth2")
    leaves = ["h2:eth3", "h6:eth3", "h7:eth1"]
    with Captures(lab, ["h5:eth2", *leaves], "p2mp") as caps:
        send(lab, "h5", "eth2", [(BROADCAST, "r-bc"), (h7, "r-to7")])
        send(lab, "h2", "eth3", [(BROADCAST, "l-bc"), (h7, "l-to7"), (h5, "l-toroot")])
        caps.wait({"h5:eth2": ["l-bc", "l-toroot"], "h7:eth1": ["r-bc", "r-to7"]})
    attach_text("p2mp1 receivers", caps.table())
    assert caps.tags("h5:eth2") == ["l-bc", "l-toroot"]
    assert caps.tags("h7:eth1") == ["r-bc", "r-to7"], "leaf h7 must not see leaf h2's broadcast or unicast"
    assert caps.tags("h6:eth3") == ["r-bc"]
    assert caps.tags("h2:eth3") == ["r-bc"]
    assert not ping(lab, "h2", lab.address("h7", "eth1"))
    assert ping(lab, "h7", lab.address("h5", "eth2"))


def test_clustered_link_replicates_with_each_members_mac_and_the_tap_gets_copies(lab):
    members = ["h4:eth3", "h5:eth3", "h2:eth4"]
    own = {ep: mac(lab, *ep.split(":")) for ep in members + ["h6:eth4"]}
    learn(lab, *members, "h6:eth4")
    with Captures(lab, members + ["h6:eth4", "h8:eth2"], "clustered") as caps:
        send(lab, "h8", "eth2", [(UNKNOWN, "k-uc"), (BROADCAST, "k-bc")])
        send(lab, "h4", "eth3", [(BROADCAST, "k-member")])      # unidirectional: goes nowhere
        caps.wait({ep: ["k-bc", "k-uc"] for ep in members + ["h6:eth4"]})
    attach_text("clu1 / rep1 receivers", caps.table())
    for ep in members + ["h6:eth4"]:
        seen = {s.tag: s.dst for s in caps.seen(ep)}
        assert sorted(seen) == ["k-bc", "k-uc"], ep
        assert seen["k-uc"] == own[ep], f"{ep}: unicast must arrive with its own MAC, got {seen['k-uc']}"
        assert seen["k-bc"] == BROADCAST
    assert caps.tags("h8:eth2") == []


def test_probe_collects_exactly_the_probed_traffic_with_original_macs(lab):
    h2, h4 = mac(lab, "h2", "eth1"), mac(lab, "h4", "eth1")
    h3 = mac(lab, "h3", "eth1")
    learn(lab, "h3:eth1", "h4:eth1")
    with Captures(lab, ["c1:eth1", "h2:eth1", "h3:eth1", "h4:eth1"], "probe") as caps:
        send(lab, "h1", "eth1", [(h2, "p-cable-fwd")])         # link probe point on cable1
        send(lab, "h2", "eth1", [(BROADCAST, "p-cable-back")])
        send(lab, "h1", "eth2", [(h3, "p-to-h3")])             # interface probe point h3:eth1 (received)
        send(lab, "h3", "eth1", [(h4, "p-from-h3")])           # ... and sent
        send(lab, "h5", "eth1", [(h4, "p-unprobed")])          # vsw1 unicast not touching h3
        caps.wait({"c1:eth1": ["p-cable-back", "p-cable-fwd", "p-from-h3", "p-to-h3"], "h4:eth1": ["p-unprobed"]})
    attach_text("probe1 collector", caps.table())
    got = {s.tag: s for s in caps.seen("c1:eth1") if not s.tag.startswith("hello")}
    assert sorted(got) == ["p-cable-back", "p-cable-fwd", "p-from-h3", "p-to-h3"]
    assert got["p-cable-fwd"].dst == h2 and got["p-to-h3"].dst == h3 and got["p-from-h3"].dst == h4


def test_external_links_bridge_tagged_and_untagged_ports(lab):
    assert ping(lab, "h1", lab.address("en1", "eth1"))
    assert ping(lab, "h4", "10.80.100.9") and ping(lab, "h5", "10.80.200.9")
    with Captures(lab, ["en2:eth1", "en3:eth1"], "external") as caps:
        send(lab, "h4", "eth4", [(BROADCAST, "x-100")])
        send(lab, "h5", "eth4", [(BROADCAST, "x-200")])
        caps.wait({"en2:eth1": ["x-100"], "en3:eth1": ["x-200"]})
    assert caps.tags("en2:eth1") == ["x-100"] and caps.tags("en3:eth1") == ["x-200"]
    trunk = [f for f in lab.controller.flows("g3") if f["cookie"] >> 56 == 0x7B and "OUTPUT:p14" in f["actions_named"]]
    assert trunk and all("SET_FIELD: {vlan_pcp:0}" in f["actions"] or "POP_VLAN" not in f["actions"][:1]
                         for f in trunk)


def test_resilient_link_cuts_over_to_the_standby(lab, timings):
    assert show(lab, "res1")["active"] == "h8:eth1"
    echo = lab.nodes.popen("h3", [sys.executable, "-m", "twin.traffic.probe_agent", "echo", "--port", "7801",
                                  "--ready-file", str(lab.dir / "h3-echo.ready")],
                           env={"PYTHONPATH": str(Path(twin.__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with lab.capture("h3", "eth3", "udp port 7801", name="res1-standby.pcap") as standby:
            since = lab.controller.events(0)["next"]
            with ProbeStream(lab.nodes, "h7", "h8", "10.70.0.2", port=7801, interval_ms=2) as probe:
                wait_for(lambda: probe.progress() and probe.progress().received > 100, 10, "probes to flow")
                before = standby.count()
                fault = lab.faults.link_down("h8:eth1")
                cut = lab.controller.wait_event(since, 10, type="vlink_cutover", link="res1")
                wait_for(lambda: probe.progress().last_rx_age_ms is not None and probe.progress().last_rx_age_ms < 20,
                         10, "probes answered by the standby")
                n = probe.progress().received
                wait_for(lambda: probe.progress().received > n + 50, 10, "probes flowing through the standby")
        assert before == 0, "the standby saw probe traffic while the primary was up"
        assert cut["to"] == "h3:eth3" and cut["from"] == "h8:eth1"
        outage = probe.result.outage_after(fault.time)
        assert outage is not None and outage.recovered
        timings.record("resilient cutover outage", outage.duration_ms)
        timings.record("resilient cutover programming", cut["program_ms"])
        assert show(lab, "res1")["active"] == "h3:eth3"
        since = lab.controller.events(0)["next"]
        lab.faults.link_up("h8:eth1")
        back = lab.controller.wait_event(since, 10, type="vlink_cutover", link="res1")
        assert back["to"] == "h8:eth1", "a revertive link returns to its primary"
        wait_ping(lab, "h7", "10.70.0.2")
    finally:
        echo.terminate()
        echo.wait(5)


def test_bad_links_are_refused_with_the_reason_and_nothing_is_installed(lab):
    before_flows, before_links = our_flows(lab), lab.controller.request("GET", "/vlinks")["links"]
    cases = [
        ({"name": "bad1", "type": "cable", "vlan": 100, "members": ["h1:eth5", "h2:eth5"]}, 409,
         "VLAN 100 is already used by link ext100"),
        ({"name": "bad2", "type": "cable", "members": ["h1:eth5", "zz:eth1"]}, 404, "unknown node 'zz'"),
        ({"name": "bad3", "type": "p2mp", "members": [{"h1:eth5": "root"}, {"h2:eth5": "root"}, "h4:eth5"]}, 400,
         "members[1]: a p2mp link has one root; h2:eth5 would be a second root"),
        ({"name": "bad4", "type": "switch", "members": ["h1:eth5", "h2:eth1"]}, 409,
         "h2:eth1 already belongs to link cable1"),
        ({"name": "bad5", "type": "cable", "members": ["h1:eth9", "h2:eth5"]}, 400, "h1:eth9 is not wired to a grid switch"),
        ({"name": "bad6", "type": "wormhole", "members": ["h1:eth5", "h2:eth5"]}, 400, "type"),
        ({"name": "cable1", "type": "cable", "members": ["h1:eth5", "h2:eth5"]}, 409, "a link named cable1 already exists"),
    ]
    answers = []
    for body, status, text in cases:
        with pytest.raises(ControllerError) as err:
            lab.controller.request("POST", "/vlinks", body)
        answers.append(f"{body['name']}: {err.value.status} {err.value}")
        assert err.value.status == status, answers[-1]
        assert text in str(err.value), answers[-1]
    # the operator's command says the same
    r = subprocess.run([sys.executable, "-m", "twin.cli", "vlink", "create", "bad7", "--lab", lab.prefix, "--type",
                        "p2mp", "--member", "h1:eth5=root", "--member", "h2:eth5=root"], capture_output=True, text=True)
    answers.append(f"twin vlink create: rc {r.returncode}: {r.stderr.strip()}")
    attach_text("refused links", "\n".join(answers))
    assert r.returncode != 0 and "second root" in r.stderr
    assert our_flows(lab) == before_flows, "a refused link left rules behind"
    assert lab.controller.request("GET", "/vlinks")["links"] == before_links


def _addr(lab, ep: str, ip: str) -> None:
    node, intf = ep.split(":")
    lab.nodes.run(node, ["ip", "addr", "replace", ip, "dev", intf], check=True)


def test_links_created_and_deleted_at_run_time(lab):
    _addr(lab, "h1:eth5", "10.90.0.1/24")
    _addr(lab, "h2:eth5", "10.90.0.2/24")
    _addr(lab, "h4:eth5", "10.90.0.4/24")
    created = lab.controller.request("POST", "/vlinks", {"name": "rt1", "type": "p2mp", "hub_mode": True,
                                                         "members": [{"h1:eth5": "root"}, "h2:eth5", "h4:eth5"]})
    try:
        assert created["programmed"] and 3000 <= created["vlan"] <= 3099
        wait_ping(lab, "h1", "10.90.0.2")
        h2 = mac(lab, "h2", "eth5")
        with Captures(lab, ["h2:eth5", "h4:eth5"], "hubmode") as caps:
            send(lab, "h1", "eth5", [(h2, "hm-to2")])
            send(lab, "h4", "eth5", [(BROADCAST, "hm-leaf")])
            caps.wait({"h2:eth5": ["hm-to2"], "h4:eth5": ["hm-to2"]})
        assert caps.tags("h4:eth5") == ["hm-to2"], "hub mode copies the root's unicast to every leaf"
        assert "hm-leaf" not in caps.tags("h2:eth5")
        assert not ping(lab, "h2", "10.90.0.4"), "leaves stay apart in hub mode too"
    finally:
        lab.controller.request("DELETE", "/vlinks/rt1")
    cookie = created["cookie"]
    assert all(cookie[2:4] not in l or f"cookie={cookie}" not in l for sw in GRID for l in our_flows(lab)[sw])
    assert not ping(lab, "h1", "10.90.0.2")
    # the same again with the operator's command
    r = subprocess.run([sys.executable, "-m", "twin.cli", "vlink", "create", "rt2", "--lab", lab.prefix, "--type",
                        "cable", "--member", "h1:eth5", "--member", "h2:eth5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wait_ping(lab, "h1", "10.90.0.2")
    listed = subprocess.run([sys.executable, "-m", "twin.cli", "vlink", "list", "--lab", lab.prefix],
                            capture_output=True, text=True)
    attach_text("twin vlink list", listed.stdout)
    assert "rt2" in listed.stdout


def test_controller_restart_reprograms_every_link_from_the_store(lab):
    assert "rt2" in {l["name"] for l in lab.controller.request("GET", "/vlinks")["links"]}, "needs the previous test"
    for sw in GRID:
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", lab.bridge(sw), "cookie=0x7b00000000000000/0xff00000000000000"],
                       check=True, capture_output=True)
    assert not ping(lab, "h1", lab.address("h2", "eth1")), "the wiped cable should be dead"
    lab.faults.restart_controller()
    wait_for(lambda: set(lab.controller.request("GET", "/vlinks")["grid"]["synced"]) == set(GRID), 20,
             "the restarted manager to program every grid switch", interval=0.1)
    state = lab.controller.request("GET", "/vlinks")
    assert {l["name"] for l in state["links"]} >= {"cable1", "vsw1", "res1", "rt2"}
    assert all(l["programmed"] for l in state["links"])
    wait_ping(lab, "h1", lab.address("h2", "eth1"))
    wait_ping(lab, "h1", "10.90.0.2")
    wait_ping(lab, "h1", lab.address("h4", "eth1"))
    wait_ping(lab, "h7", "10.70.0.2")
    assert any(h["event"] == "created" for h in show(lab, "rt2")["history"])
