"""Configuration sync between an Active and a Standby running different images (spec 004), end to
end in labs/configsync.yaml: rpa (15.2(1)SY) and rpb (15.1(2)SY) front two LANs; h1 and h2 talk
through whichever unit is Active. Everything is checked the way an operator would, through the
units' consoles (pexpect), and with real traffic across switchovers."""
from __future__ import annotations

import os
import signal
import time

import pytest

from rp_pair import force_switchover, last_state, running_set, show, wait_hot
from twin.polling import wait_for
from twin.traffic.iperf import BackgroundIperf, tcp_established
from twin.traffic.probe import ProbeStream

pytestmark = [pytest.mark.e2e, pytest.mark.configsync, pytest.mark.lab("labs/configsync.yaml")]


def _has(lab, node: str, *lines: str, absent: tuple[str, ...] = ()) -> bool:
    cfg = show(lab, node, "show running-config")
    return all(l in cfg for l in lines) and not any(a in cfg for a in absent)


def test_boot_bulk_syncs_the_active_config_in_the_standbys_syntax(lab):
    active, standby = wait_hot(lab)
    assert (active, standby) == ("rpa", "rpb"), "the primary unit is elected Active at boot"
    red = show(lab, "rpa", "show redundancy", "show redundancy states", "show redundancy config-sync lists")
    assert "Operating Redundancy Mode = sso" in red and "STANDBY HOT" in red, red
    assert "my state = 13 -ACTIVE" in red and "peer state = 8  -STANDBY HOT" in red, red
    assert "transform  logging server <ipv4>" in red, red          # on the ADL, with a transformation
    cfg = show(lab, "rpb", "show running-config")
    # one level down: logging server -> logging host, ip flow ingress -> ip route-cache flow, ...
    for line in ("hostname rp1", "logging host 10.1.0.10", " ip route-cache flow",
                 "spanning-tree portfast default", " ip address 10.1.0.1 255.255.255.0", "ntp server 10.2.0.10"):
        assert line in cfg, f"{line!r} missing from the standby's config:\n{cfg}"
    for line in ("logging server", "ip flow ingress", "portfast edge"):
        assert line not in cfg, f"{line!r} reached the standby in the active's syntax:\n{cfg}"
    with lab.device("rpb").console() as s:
        s.enable()
        assert s.prompt.endswith("rp1-stby#"), s.prompt
        refused = s.run("configure terminal")
        assert "not allowed" in refused and s.prompt.endswith("rp1-stby#"), refused


def test_commands_typed_on_the_active_reach_the_standby_in_its_syntax(lab, timings):
    active, standby = wait_hot(lab)
    since = time.time()
    with lab.device(active).console() as s:
        s.enable()
        s.configure(["logging server 10.1.0.99", "interface eth2", " ip flow ingress", "exit",
                     "ip ssh time-out 90", "call-home reporting anonymous", "license boot level adventerprise",
                     "ntp server 10.1.0.77"])
    wait_for(lambda: _has(lab, standby, "logging host 10.1.0.99", "ip ssh timeout 90", "ntp server 10.1.0.77",
                          "license boot level adventerprise"),
             timeout=10, what="the typed commands on the standby")
    cfg = show(lab, standby, "show running-config interface eth2", "show running-config")
    assert " ip route-cache flow" in cfg.split("end")[0], cfg          # the sub-mode command, in context
    assert "call-home" not in cfg, "a don't-care command (15.2 only) was synced"
    # the standby applies a line, then records it: wait for the record of the last one typed
    def records() -> list | None:
        evs = lab.device_events(standby, "sync-applied", since=since)
        return evs if any("ntp server 10.1.0.77" in e["line"] for e in evs) else None

    applied = wait_for(records, 10, "the standby's sync-applied records")
    assert all(e["ok"] for e in applied), applied
    lat = sorted((e["time"] - e["sent"]) * 1000 for e in applied)
    timings.record("line-by-line sync, active send to standby applied (max)", lat[-1], "ms", lines=len(lat))
    # and away again: the `no` form is transformed like the command
    with lab.device(active).console() as s:
        s.enable()
        s.configure(["no logging server 10.1.0.99"])
    wait_for(lambda: _has(lab, standby, "ntp server 10.1.0.77", absent=("logging host 10.1.0.99",)),
             timeout=10, what="`no logging host` on the standby")


def test_policy_outcomes_for_a_command_the_standby_cannot_take(lab):
    active, standby = wait_hot(lab)
    assert last_state(lab, active).get("image") == "15.2(1)SY", "runs before the switchover tests swap the units"
    # drop (the default): logged, the pair stays SSO
    with lab.device(active).console() as s:
        s.enable()
        s.configure(["ip ssh time-out 200"])
        fails = s.run("show redundancy config-sync failures")
        assert "'ip ssh time-out 200'" in fails and "dropped with a warning" in fails, fails
        assert "has no equivalent before 15.2(1)SY" in fails, fails
        # out-of-sync
        s.configure(["redundancy", " config-sync policy out-of-sync", "ip ssh time-out 210"])
        red = s.run("show redundancy")
        assert "Config Sync State = Out of sync" in red and "Operating Redundancy Mode = sso" in red, red
        # downgrade: the pair drops to RPR and the standby is reset
        s.configure(["redundancy", " config-sync policy downgrade", "ip ssh time-out 220"])
        red = s.run("show redundancy")
        assert "Operating Redundancy Mode = rpr" in red and "STANDBY COLD" in red, red
    wait_for(lambda: last_state(lab, standby).get("state") == "STANDBY COLD", 10, "the standby reset to COLD")
    assert not _has(lab, standby, "ip address 10.1.0.1"), "the reset standby kept the synced config"
    # back to a hot pair: drop the offending command, reload the peer
    with lab.device(active).console() as s:
        s.enable()
        s.configure(["redundancy", " config-sync policy drop", "no ip ssh time-out"])
        out, i = s.channel.command("redundancy reload peer", 10, expect_extra=[r"\[confirm\] *\Z"])
        assert i == 1, out
        s.run("")
    assert wait_hot(lab) == (active, standby)
    assert "Operating Redundancy Mode = sso" in show(lab, active, "show redundancy")


def test_active_crash_switchover_keeps_traffic_and_sessions(lab, timings):
    active, standby = wait_hot(lab)
    synced = running_set(lab, standby)
    with ProbeStream(lab.nodes, "h1", "h2", "10.2.0.10", interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        # a TCP session that must live through the switchover (iperf3 fails if its connection resets)
        flow = BackgroundIperf(lab.nodes, "h1", "h2", "10.2.0.10", seconds=5)
        wait_for(lambda: tcp_established(lab.nodes, "h2", 5201), 15, "the iperf3 TCP session")
        # A crashed unit stops forwarding; in the lab its kernel would go on, so its ports go down
        # with the process, as the unit's line cards would.
        t_kill = time.time()
        os.kill(lab.state.nodes[active].emulator_pid, signal.SIGKILL)
        for intf in ("eth1", "eth2"):
            lab.faults.link_down(f"{active}:{intf}")
        wait_for(lambda: last_state(lab, standby).get("state") == "ACTIVE", 10, f"{standby} to take over")
        result_tcp = flow.result(timeout=40)
        probe.wait_until_flowing(10)
    result = probe.result
    outage = result.outage_after(t_kill)
    worst = outage.duration_ms if outage else 0.0
    timings.record("switchover (active SIGKILL) probe outage, 5 ms probes", worst, "ms",
                   lost=outage.lost if outage else 0)
    assert worst < 2000, f"traffic through the pair stopped for {worst:.0f} ms: {result.to_dict()}"
    assert result_tcp["ok"], f"the TCP session did not survive the switchover: {result_tcp}"
    assert result_tcp["result"].bits_per_second > 0, result_tcp
    ev = lab.device_events(standby, "rf-active", since=t_kill)
    assert ev and ev[-1]["stateful"] and ev[-1]["switchover"], ev
    # the new Active runs exactly the config it was synced
    assert running_set(lab, standby) == synced
    # the crashed unit boots again and becomes the Standby of the new Active
    lab.faults.power_on(active)
    assert wait_hot(lab) == (standby, active)
    red = show(lab, standby, "show redundancy")
    assert "Switchovers system experienced = 1" in red and "active unit lost" in red, red


def test_forced_switchover_from_the_console(lab, timings):
    active, standby = wait_hot(lab)
    synced = running_set(lab, standby)
    with ProbeStream(lab.nodes, "h1", "h2", "10.2.0.10", interval_ms=5) as probe:
        probe.wait_until_flowing(10)
        t = force_switchover(lab, active)
        wait_for(lambda: last_state(lab, standby).get("state") == "ACTIVE", 10, f"{standby} to take over")
        probe.wait_until_flowing(10)
    outage = probe.result.outage_after(t)
    timings.record("forced switchover probe outage, 5 ms probes", outage.duration_ms if outage else 0.0, "ms")
    assert wait_hot(lab) == (standby, active)
    assert running_set(lab, standby) == synced
    ev = lab.device_events(standby, "rf-active", since=t)
    assert ev and ev[-1]["reason"] == "user forced switchover", ev
