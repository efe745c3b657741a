"""Cluster re-provisioning (spec 000) end to end in labs/cluster.yaml: three active elements (roles
ne1-ne3) carry customers c1-c3 to the servers; spares sp1, sp2 wait in the pool; the cluster
manager cm replaces a failed element with a spare, has it clone the failed element's configuration
from its config server, and rewrites the cross-connects on both switches. Checked as an operator
would: real traffic (probe streams, iperf3), the devices' consoles, the switches' flow tables.

Tests run in order on one lab and each leaves the pool as it found it (failed elements repaired),
so the roles wander between elements; helpers ask who holds a role instead of assuming it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster_ops import (MANAGER, POOL_SIZE, ROLE_CUSTOMER, SERVER, cluster_flows, crash, holder, mac_of, pool, ports_in,
                         repair, running_config, show, status, status_cookie, wait_done, wait_in_pool,
                         wait_reachable)
from twin import clusterctl
from twin.evidence import attach_text
from twin.polling import wait_for
from twin.traffic.iperf import BackgroundIperf, tcp_established
from twin.traffic.probe import ProbeStream

# never beside fig5 (see test_fig5.py): heartbeats of 100 ms
pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.lab("labs/cluster.yaml"),
              pytest.mark.xdist_group("cpu-heavy-or-timed")]

SPOOF = Path(__file__).with_name("cluster_spoof.py")


@pytest.fixture(autouse=True)
def cluster_evidence(lab):
    """The manager's own account of every test, on success and failure: timeline and failovers."""
    yield
    try:
        attach_text("cluster manager timeline", show(lab, MANAGER, "show cluster timeline"))
        attach_text("cluster failovers and elements", show(lab, MANAGER, "show cluster failovers",
                                                           "show cluster elements", "show cluster xconnect"))
    except Exception as exc:  # evidence must never turn a pass into an error
        attach_text("cluster evidence unavailable", str(exc))


@pytest.fixture
def healthy(lab):
    """A full pool, every role held and archived, every element on the bus, before the test; a
    full pool again after it."""
    def ready() -> bool:
        st = status(lab)
        return (len(st["pool"]) == POOL_SIZE and all(r["holder"] and r["macs"] for r in st["roles"].values())
                and all(e["last_heard_ms"] is not None and e["last_heard_ms"] < 2000
                        for e in st["elements"].values() if e["state"] in ("active", "spare")))

    wait_for(ready, 40, "a full pool with every role held and archived and every element heard", interval=0.2)
    yield
    wait_for(lambda: len(pool(lab)) == POOL_SIZE, 40, "the pool to be full again", interval=0.2)


def _without_macs(cfg: list[str]) -> list[str]:
    return [l for l in cfg if not l.strip().startswith("mac-address")]


def test_power_off_moves_the_role_to_a_spare_with_traffic_and_config(lab, healthy, timings):
    role = "ne1"
    cust, cust_ip = ROLE_CUSTOMER[role]
    failed = holder(lab, role)
    spares = pool(lab)
    # a change typed after boot: the partial accumulated configuration (claim 7)
    t_cfg = time.time()
    with lab.device(failed).console() as s:
        s.enable()
        s.configure(["ip route 10.50.0.0 255.255.0.0 10.0.0.100", "interface eth1", " description customer c1"])
    wait_for(lambda: len([e for e in lab.device_events(MANAGER, "cluster-archive", t_cfg) if "change" in e["text"]]) >= 2,
             10, "the manager to archive the typed changes")
    archive = show(lab, MANAGER, f"show cluster config {role}")
    assert "partial accumulated configuration: 2 change(s)" in archive, archive
    before = running_config(lab, failed)
    macs = {i: mac_of(lab, failed, i) for i in ("eth1", "eth2")}
    with ProbeStream(lab.nodes, cust, SERVER[0], SERVER[1], interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        flow = BackgroundIperf(lab.nodes, cust, SERVER[0], SERVER[1], seconds=4, bitrate="20M")
        wait_for(lambda: tcp_established(lab.nodes, SERVER[0], 5201), 15, "the iperf3 TCP session")
        fault = lab.faults.power_off(failed)
        done = wait_done(lab, role, fault.time)
        probe.wait_until_flowing(10)
        tcp = flow.result(timeout=40)
    outage = probe.result.outage_after(fault.time)
    timings.record("power-off failover: probe outage, 5 ms probes", outage.duration_ms if outage else 0.0, "ms",
                   lost=outage.lost if outage else 0)
    for step, ms in done["steps_ms"].items():
        timings.record(f"power-off failover: manager step '{step}' after detection", ms, "ms")
    sub = done["substitute"]
    assert sub == spares[0], f"policy ordered picks the pool's first spare {spares[0]}, got {sub}"
    failure = next(e for e in lab.device_events(MANAGER, "cluster-failure", fault.time) if e.get("role") == role)
    assert failure["element"] == failed and any(k in failure["reason"] for k in ("switch port", "missed", "reported")), failure
    assert tcp["ok"], f"the TCP flow {cust}->{SERVER[0]} did not survive the failover: {tcp}"
    # the substitute is a logical clone: same config (its MACs pinned), same MACs
    after = running_config(lab, sub)
    assert _without_macs(after) == _without_macs(before), f"config differs:\n{before}\n---\n{after}"
    assert " description customer c1" in after and "ip route 10.50.0.0 255.255.0.0 10.0.0.100" in after, after
    assert {i: mac_of(lab, sub, i) for i in ("eth1", "eth2")} == macs
    # the role's documents (an element's own `default` is fetched under its name, which may equal a role's)
    fetched = [e["document"] for e in lab.device_events(MANAGER, "cluster-config-fetch", fault.time)
               if e["name"] == role and e["document"] != "default"]
    assert fetched[:2] == ["initial", "accumulated"], f"initial config first, then the accumulated changes: {fetched}"
    # both switches now wire the customer and the servers to the substitute, none to the failed element
    plan = json.loads((lab.device_dir(MANAGER) / "cluster.json").read_text())
    el = plan["elements"]
    access, network = ports_in(cluster_flows(lab, "sw1")), ports_in(cluster_flows(lab, "sw2"))
    assert el[sub]["access_port"] in access and el[sub]["network_port"] in network, (access, network)
    assert el[failed]["access_port"] not in access and el[failed]["network_port"] not in network, (access, network)
    assert pool(lab) == spares[1:], "the pool shrank by the substitute"
    # repaired, the failed element is rebooted with the cluster's default config and rejoins the pool
    repair(lab, failed)
    assert pool(lab) == spares[1:] + [failed]
    cfg = running_config(lab, failed)
    assert f"hostname {failed}" in cfg and not any(l.strip().startswith("ip address") for l in cfg), cfg


@pytest.mark.parametrize("kind,role", [("process-crash", "ne2"), ("announced-failing", "ne3")])
def test_failure_kinds(lab, healthy, timings, kind, role):
    cust, cust_ip = ROLE_CUSTOMER[role]
    failed = holder(lab, role)
    with ProbeStream(lab.nodes, cust, SERVER[0], SERVER[1], interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        t = time.time()
        if kind == "process-crash":
            t = crash(lab, failed)
        else:
            with lab.device(failed).console() as s:
                s.enable()
                assert "Failing announced" in s.run("cluster failing fan tray 2 overheating")
        done = wait_done(lab, role, t)
        probe.wait_until_flowing(10)
    outage = probe.result.outage_after(t)
    timings.record(f"{kind} failover: detection to done", done["steps_ms"]["done"], "ms")
    timings.record(f"{kind} failover: probe outage", outage.duration_ms if outage else 0.0, "ms")
    failure = next(e for e in lab.device_events(MANAGER, "cluster-failure", t) if e.get("role") == role)
    expected = "missed" if kind == "process-crash" else "fan tray 2 overheating"
    assert expected in failure["reason"], failure
    if kind == "process-crash":
        repair(lab, failed)
    else:   # alive: the manager reboots it with the default config at once, no power cycle needed
        wait_in_pool(lab, failed)


def test_two_concurrent_failures_go_to_two_spares(lab, healthy):
    roles = ["ne2", "ne3"]
    failed = [holder(lab, r) for r in roles]
    spares = set(pool(lab))
    t = time.time()
    for f in failed:
        lab.faults.power_off(f)
    subs = [wait_done(lab, r, t)["substitute"] for r in roles]
    assert len(set(subs)) == 2 and set(subs) == spares, f"each failure gets its own spare: {subs}, pool was {spares}"
    for r in roles:
        wait_reachable(lab, ROLE_CUSTOMER[r][0], SERVER[1])
    assert pool(lab) == []
    for f in failed:
        repair(lab, f)


def test_pool_exhausted_raises_an_alarm_and_disturbs_nothing_else(lab, healthy, quiet_datapath):
    spares = pool(lab)
    for s in spares:                                   # the operator empties the pool (claim 13)
        assert "removed from the pool" in clusterctl.run(lab, f"cluster pool remove {s}", MANAGER)
    with pytest.raises(clusterctl.ClusterCommandError, match="not wired to both cluster switches"):
        clusterctl.run(lab, "cluster pool add c1", MANAGER)
    role = "ne1"
    failed = holder(lab, role)
    others = [r for r in ROLE_CUSTOMER if r != role]
    streams = {r: ProbeStream(lab.nodes, ROLE_CUSTOMER[r][0], SERVER[0], SERVER[1], interval_ms=10, port=7800 + i)
               for i, r in enumerate(others)}
    for p in streams.values():
        p.start()
    try:
        for p in streams.values():
            p.wait_until_flowing(10)
        t = time.time()
        lab.faults.power_off(failed)
        alarm = lab.wait_device_event(MANAGER, "cluster-alarm", t)
        assert alarm["role"] == role and alarm["circuits"] == ["eth11"], alarm
        assert "POOL EXHAUSTED" in show(lab, MANAGER, "show cluster timeline")
        assert f"ALARM: role {role} unprotected" in show(lab, MANAGER, "show cluster")
        assert not lab.nodes.run(ROLE_CUSTOMER[role][0], ["ping", "-c", "2", "-W", "1", SERVER[1]], timeout=10).returncode == 0, \
            "the unprotected customer's traffic should be down"
    finally:
        for p in streams.values():
            p.stop()
    for r, p in streams.items():
        assert p.result.lost == 0, f"customer of {r} was disturbed: {p.result.to_dict()}"
    # a spare joins: the waiting failover completes with it
    t2 = time.time()
    clusterctl.run(lab, f"cluster pool add {spares[0]}", MANAGER)
    done = wait_done(lab, role, t)
    assert done["substitute"] == spares[0] and done["time"] >= t2
    wait_reachable(lab, ROLE_CUSTOMER[role][0], SERVER[1])
    repair(lab, failed)
    clusterctl.run(lab, f"cluster pool add {spares[1]}", MANAGER)


def test_manager_killed_mid_failover_finishes_with_the_same_substitute(lab, healthy):
    role = "ne2"
    failed = holder(lab, role)
    clusterctl.run(lab, "debug cluster hold", MANAGER)
    t = time.time()
    lab.faults.power_off(failed)
    sel = wait_for(lambda: next((e for e in lab.device_events(MANAGER, "cluster-select", t)), None), 15,
                   "the manager to choose a substitute")
    sub = sel["substitute"]
    assert status(lab)["elements"][sub]["state"] == "cloning"
    crash(lab, MANAGER)
    lab.faults.power_on(MANAGER)                        # boots again from its archive
    done = wait_done(lab, role, t)
    assert done["substitute"] == sub, f"resumed with another substitute: {done}"
    selects = [e for e in lab.device_events(MANAGER, "cluster-select", t)]
    assert len(selects) == 1, f"a second substitute was chosen: {selects}"
    assert any(e["text"].startswith(f"failover {sel['failover']} (role {role}) resumed")
               for e in lab.device_events(MANAGER, "cluster-resume", t))
    wait_reachable(lab, ROLE_CUSTOMER[role][0], SERVER[1])
    assert len(pool(lab)) == POOL_SIZE - 1
    repair(lab, failed)


def test_controller_restart_restores_the_cross_connects(lab, healthy):
    before = {sw: len(cluster_flows(lab, sw)) for sw in ("sw1", "sw2")}
    assert all(before.values()), before
    cookie = f"0x{status_cookie(lab):x}/-1"
    for sw in ("sw1", "sw2"):                           # the switches lose the cluster's rules
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", lab.bridge(sw), f"cookie={cookie}"], check=True)
    assert not cluster_flows(lab, "sw1")
    t = time.time()
    lab.faults.restart_controller()
    wait_for(lambda: {sw: len(cluster_flows(lab, sw)) for sw in ("sw1", "sw2")} == before, 20,
             "the manager to reinstall the cross-connects after the controller restart")
    assert lab.device_events(MANAGER, "cluster-controller", t) or lab.device_events(MANAGER, "cluster-xconnect", t)
    for role, (cust, _) in ROLE_CUSTOMER.items():
        wait_reachable(lab, cust, SERVER[1])


def test_spoofed_and_malformed_events_are_rejected_and_logged(lab, healthy):
    plan = json.loads((lab.device_dir(MANAGER) / "cluster.json").read_text())
    role = "ne2"
    holder_before = holder(lab, role)
    failovers_before = len(status(lab)["failovers"])
    t = time.time()
    cases = {"malformed": ["--garbage"], "bad-signature": ["--secret", "not-the-secret", "--sender", holder_before],
             "non-member": ["--secret", plan["secret"], "--sender", "intruder"],
             "wrong-address": ["--secret", plan["secret"], "--sender", holder_before]}
    for reason, args in cases.items():
        r = lab.nodes.run("c1", [sys.executable, str(SPOOF), "--manager", plan["manager_ip"], *args], timeout=30)
        assert r.returncode == 0, r.stderr
        ev = wait_for(lambda: next((e for e in lab.device_events(MANAGER, "cluster-rejected", t)
                                    if e.get("reason") == reason), None), 10, f"a {reason} rejection")
        assert ev["peer"] == lab.state.nodes["c1"].mgmt_ip.split("/")[0], ev
    bus = show(lab, MANAGER, "show cluster bus")
    for reason in cases:
        assert f"{reason} 0" not in bus, bus
    assert holder(lab, role) == holder_before and len(status(lab)["failovers"]) == failovers_before, \
        "a forged failure event moved a role"
    log = show(lab, MANAGER, "show logging")
    assert "%CLUSTER-4-REJECTED" in log, log[-2000:]
