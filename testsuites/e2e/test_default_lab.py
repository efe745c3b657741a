"""The default lab boots, passes a full ping mesh, carries TCP, obeys the controller, and measures an
outage when a link is broken."""
from __future__ import annotations

import subprocess
import time

import pytest

from twin.traffic.iperf import iperf3
from twin.traffic.pingmesh import ping_mesh
from twin.evidence import step
from twin.traffic.probe import ProbeStream

pytestmark = [pytest.mark.e2e, pytest.mark.lab("labs/default.yaml")]


def data_targets(lab) -> dict[str, str]:
    return {n: lab.address(n) for n in lab.node_names() if n != "mgmt" and lab.state.nodes[n].kind != "switch"}


def test_boot_state_and_switches_connected(lab):
    assert lab.state.phase == "ready"
    sw = {s["name"]: s for s in lab.controller.switches()}
    assert set(sw) == {"s1", "s2"} and all(s["connected"] for s in sw.values()), sw
    flows = lab.dump_flows("s1")
    assert "priority=0 actions=NORMAL" in flows, flows
    br = lab.bridge("s1")
    dp = subprocess.run(["ovs-vsctl", "get", "bridge", br, "datapath_type", "fail_mode", "protocols"],
                        capture_output=True, text=True).stdout.split()
    assert dp == ["netdev", "secure", "[OpenFlow13]"], dp


def test_tx_checksum_offload_is_off(lab):
    out = lab.nodes.run("h1", ["ethtool", "-k", "eth1"]).stdout
    assert "tx-checksumming: off" in out, out


def test_full_ping_mesh(lab):
    targets = data_targets(lab)
    assert len(targets) == 9
    mesh = ping_mesh(lab.nodes, targets)
    assert mesh.ok, f"ping mesh failed:\n{mesh}"


def test_management_network_reaches_every_node(lab):
    mesh = ping_mesh(lab.nodes, {"mgmt": lab.mgmt_address("mgmt"), "r1": lab.mgmt_address("r1"),
                                 "h6": lab.mgmt_address("h6")})
    assert mesh.ok, str(mesh)


def test_tcp_through_two_switches_and_a_router(lab, timings):
    res = iperf3(lab.nodes, "h1", "h4", lab.address("h4"), seconds=2)
    timings.record("iperf3 TCP h1->h4 via r1", res.bits_per_second / 1e6, "Mbit/s")
    assert res.bits_per_second > 10e6, f"TCP h1->h4 carried only {res.bits_per_second / 1e6:.1f} Mbit/s"


def test_controller_rule_is_obeyed(lab):
    h2 = lab.address("h2")
    assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "1", h2]).returncode == 0
    lab.controller.add_flow("s1", priority=100, match={"in_port": "eth3", "eth_type": 0x0800, "ipv4_dst": h2},
                            actions=[], cookie=0x77)
    try:
        assert "cookie=0x77" in lab.dump_flows("s1")
        res = lab.nodes.run("h1", ["ping", "-c", "2", "-W", "1", h2])
        assert res.returncode != 0, "a drop rule installed through the controller did not stop h1 -> h2"
        # the rule matches only h2: h1 still reaches h3
        assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "1", lab.address("h3")]).returncode == 0
    finally:
        lab.controller.delete_flows("s1", cookie=0x77)
    assert "cookie=0x77" not in lab.dump_flows("s1")
    assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "2", h2]).returncode == 0


def test_link_down_outage_is_measured(lab, timings):
    with lab.capture("h2", "eth1", "udp port 7777", name="h2-eth1-probe.pcap") as cap, \
            ProbeStream(lab.nodes, "h1", "h2", lab.address("h2"), interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        fault = lab.faults.link_down("h2:eth1")
        with step("wait until the probe sees the outage"):
            probe.wait_until_lost(5, gap_ms=200)
        repair = lab.faults.link_up("h2:eth1")
        probe.wait_until_flowing(10)
    result = probe.result
    assert cap.count() > 0, "the capture on h2:eth1 saw no probe packets"
    outage = result.outage_after(fault.time)
    assert outage is not None, f"no outage measured after the fault: {result.to_dict()}"
    down_ms = (repair.time - fault.time) * 1000
    assert outage.duration_ms >= down_ms * 0.5, (outage.duration_ms, down_ms)
    timings.record("h1->h2 outage, h2:eth1 down then up", outage.duration_ms, "ms", lost=outage.lost)
    kinds = [e.get("fault") for e in lab.events()]
    assert "link-down" in kinds and "link-up" in kinds


def test_port_status_event_reaches_the_api(lab):
    since = lab.controller.events(since=0, timeout=0)["next"]
    lab.faults.link_down("h3:eth1")
    try:
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            batch = lab.controller.events(since=since, timeout=1)
            since = batch["next"]
            seen += batch["events"]
            if any(e["type"] == "port_status" and e.get("port") == "eth5" and not e.get("link_up") for e in seen):
                break
        assert any(e["type"] == "port_status" and e.get("port") == "eth5" and e["switch"] == "s1"
                   and not e.get("link_up") for e in seen), seen
    finally:
        lab.faults.link_up("h3:eth1")


def test_controller_restart_relearns_switches_and_keeps_rules(lab, timings, quiet_datapath):
    lab.controller.add_flow("s2", priority=50, match={"in_port": "eth6"}, actions=[{"type": "OUTPUT", "port": "NORMAL"}],
                            cookie=0x55)
    old = lab.state.controller_pid
    with ProbeStream(lab.nodes, "h1", "srv1", lab.address("srv1"), interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        fault = lab.faults.restart_controller()
        probe.wait_until_flowing(10)
    # fail-mode secure keeps the installed rules: the data plane does not notice the restart
    assert probe.result.lost == 0, f"traffic lost during a controller restart: {probe.result}"
    timings.record("h1->srv1 packets lost during controller restart", probe.result.lost, "packets")
    assert lab.state.controller_pid != old
    assert all(s["connected"] for s in lab.controller.switches())
    assert "cookie=0x55" in lab.dump_flows("s2")
    assert ping_mesh(lab.nodes, {"h1": lab.address("h1"), "srv1": lab.address("srv1")}).ok
    assert fault.detail["ready"] >= fault.time
    timings.record("controller restart to all switches reconnected", (fault.detail["ready"] - fault.time) * 1000, "ms")
    lab.controller.delete_flows("s2", cookie=0x55)


def test_power_off_and_on(lab):
    lab.faults.power_off("h5")
    assert [r["state"] for r in lab.status() if r["node"] == "h5"] == ["powered-off"]
    assert lab.nodes.run("h4", ["ping", "-c", "1", "-W", "1", lab.address("h5")]).returncode != 0
    lab.faults.power_on("h5")
    mesh = ping_mesh(lab.nodes, {"h4": lab.address("h4"), "h5": lab.address("h5")})
    assert mesh.ok, str(mesh)


def test_kill_and_cpu_load(lab):
    load = lab.faults.cpu_load("srv1", workers=1, seconds=30)
    try:
        assert lab.faults.node_processes("srv1") == sorted(load.pids)
        fault = lab.faults.kill("srv1", "KILL")
        assert fault.detail["pids"] == sorted(load.pids)
    finally:
        load.stop()
    assert lab.faults.node_processes("srv1") == []
