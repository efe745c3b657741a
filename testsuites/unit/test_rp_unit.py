"""In-process redundant pairs (two `rp` units over a real loopback RF channel): bulk sync across
images, line-by-line sync, don't-care lists, the policies, the Standby's CLI, a garbled bulk sync,
hostile messages on the channel, a forced switchover and an incompatible ISSU load."""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.cli.testing import ScriptedTerminal
from emulators.rp import rf_channel
from emulators.rp.configsync import config_set
from emulators.rp.loopback import loopback_unit
from emulators.rp.rf_channel import Rejected, RfChannel, sign, verify
from emulators.rp.unit import RpUnit
from twin.polling import wait_for
from twin.ports import allocate_port, release_ports

pytestmark = pytest.mark.unit

V1, V2, V3, V4 = "15.0(1)SY", "15.1(2)SY", "15.2(1)SY", "15.4(1)SY"
DEADLINE = 10.0

# The Active's config, in the syntax of its own image.
CONFIG = {
    V1: """\
hostname rp1
interface eth1
 ip address 10.1.0.1 255.255.255.0
 ip route-cache flow
logging 10.1.0.10
ip ssh timeout 100
spanning-tree portfast default
scheduler allocate 4000 2000
ntp server 10.2.0.10
""",
    V2: """\
hostname rp1
interface eth1
 ip address 10.1.0.1 255.255.255.0
 ip route-cache flow
logging host 10.1.0.10
ip ssh timeout 100
spanning-tree portfast default
license boot level adventerprise
ntp server 10.2.0.10
""",
    V3: """\
hostname rp1
interface eth1
 ip address 10.1.0.1 255.255.255.0
 ip flow ingress
logging server 10.1.0.10
ip ssh time-out 100
spanning-tree portfast edge default
license boot level adventerprise
ntp server 10.2.0.10
""",
    V4: """\
hostname rp1
interface eth1
 ip address 10.1.0.1 255.255.255.0
 ip flow ingress
logging server 10.1.0.10
spanning-tree portfast edge default
platform hardware profile big-fib
ntp server 10.2.0.10
""",
}
STANDBY_OWN = "hostname rpb-own\n"      # what the Standby boots with before the Active's config replaces it


@pytest.fixture
def free_port(request: pytest.FixtureRequest) -> Iterator[int]:
    owner = f"rp-unit-{os.getpid()}-{request.node.nodeid}"
    yield allocate_port(owner)
    release_ports(owner)


class Pair:
    """Builds units; closes every one of them at teardown."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.tmp_path = tmp_path
        self.port = port
        self.units: list[RpUnit] = []
        self.closed = False
        self.hw = {"secret": "s3cret", "dead_ms": 3000}

    def unit(self, name: str, unit: str, version: str, config: str) -> RpUnit:
        u = loopback_unit(name, self.tmp_path / name, unit=unit, port=self.port, version=version, config=config,
                          **self.hw)
        self.units.append(u)
        return u

    def __call__(self, active: str, standby: str, active_cfg: str | None = None,
                 standby_cfg: str = STANDBY_OWN, hot: bool = True) -> tuple[RpUnit, RpUnit]:
        a = self.unit("rpa", "primary", active, CONFIG[active] if active_cfg is None else active_cfg)
        b = self.unit("rpb", "secondary", standby, standby_cfg)
        assert a.config_errors == [] and b.config_errors == [], (a.config_errors, b.config_errors)
        a.start()
        b.start()
        wait_for(lambda: a.role == "active" and b.role == "standby", DEADLINE, "roles")
        if hot:
            wait_hot(a, b)
        return a, b

    def close(self) -> None:
        self.closed = True
        for u in reversed(self.units):
            try:
                u.close()
            except Exception:      # one unit failing to close must not leave the others running
                pass


@pytest.fixture
def pair(tmp_path: Path, free_port: int) -> Iterator[Pair]:
    p = Pair(tmp_path, free_port)
    try:
        yield p
    finally:
        p.close()


def wait_hot(a: RpUnit, b: RpUnit) -> None:
    wait_for(lambda: b.rf_state == "STANDBY HOT" and a.peer_state == "STANDBY HOT", DEADLINE,
             f"{b.name} STANDBY HOT (is {b.rf_state}, {b.mode_reason!r})")


def term(u: RpUnit) -> ScriptedTerminal:
    t = ScriptedTerminal(u, user="admin")
    t.read()
    t.cmd("terminal length 0")
    return t


def configure(u: RpUnit, *lines: str) -> ScriptedTerminal:
    """Type lines in config mode on a unit's console; every line must be accepted."""
    t = term(u)
    out = t.cmd("configure terminal")
    assert "(config)#" in out, out
    for line in lines:
        out = t.cmd(line)
        errors = [ln for ln in out.split("\r\n")[1:] if ln.startswith("%")]
        assert not errors, (line, out)
    t.cmd("end")
    return t


def running(u: RpUnit) -> set[tuple[str, str]]:
    return config_set(term(u).output("show running-config").replace("\r\n", "\n"))


def squeeze(text: str) -> str:
    """Show output with runs of spaces as one (column padding is not what these tests check)."""
    return re.sub(r" +", " ", text)


def polled(fn: Callable[[], Any], what: str) -> Any:
    return wait_for(fn, DEADLINE, what)


# ---------------------------------------------------------------------------------------------- (a) bulk sync

INTF = "interface eth1"
BULK = [
    pytest.param(V3, V3, {("", "logging server 10.1.0.10"), ("", "ip ssh time-out 100"),
                          (INTF, "ip flow ingress"), ("", "spanning-tree portfast edge default"),
                          ("", "license boot level adventerprise")},
                 set(), id="same-version"),
    pytest.param(V1, V3, {("", "logging server 10.1.0.10"), ("", "ip ssh time-out 100"),
                          (INTF, "ip flow ingress"), ("", "spanning-tree portfast edge default")},
                 {("", "logging 10.1.0.10"), ("", "ip ssh timeout 100"), (INTF, "ip route-cache flow"),
                  ("", "spanning-tree portfast default"), ("", "scheduler allocate 4000 2000")},
                 id="standby-newer-L1-L3"),
    pytest.param(V3, V1, {("", "logging 10.1.0.10"), ("", "ip ssh timeout 100"), (INTF, "ip route-cache flow"),
                          ("", "spanning-tree portfast default")},
                 {("", "logging server 10.1.0.10"), ("", "ip ssh time-out 100"), (INTF, "ip flow ingress"),
                  ("", "spanning-tree portfast edge default"), ("", "license boot level adventerprise")},
                 id="standby-older-L3-L1"),
    pytest.param(V2, V1, {("", "logging 10.1.0.10"), ("", "ip ssh timeout 100"), (INTF, "ip route-cache flow")},
                 {("", "logging host 10.1.0.10"), ("", "license boot level adventerprise")},
                 id="standby-older-L2-L1"),
]


@pytest.mark.parametrize("active, standby, present, absent", BULK)
def test_bulk_sync_transforms_to_the_standby_image(pair, active, standby, present, absent):
    a, b = pair(active, standby)
    assert (a.role, a.rf_state, a.operating_mode) == ("active", "ACTIVE", "sso")
    assert (b.role, b.rf_state, b.operating_mode) == ("standby", "STANDBY HOT", "sso")
    got = running(b)
    common = {("", "hostname rp1"), (INTF, "ip address 10.1.0.1 255.255.255.0"), ("", "ntp server 10.2.0.10")}
    assert common | present <= got, sorted(got)
    assert not (absent & got), sorted(absent & got)
    assert ("", "hostname rpb-own") not in got                 # the Standby's own config was replaced
    assert a.counters["bulk_syncs"] == b.counters["bulk_syncs"] == 1
    # the Active's own config is untouched
    assert ("", "hostname rp1") in running(a)
    assert b.peer.get("image") == active and a.peer.get("image") == standby


def test_bulk_sync_counts_dont_care_lines_and_transformations(pair):
    a, b = pair(V3, V1)
    assert a.counters["dont_care"] == 1                        # license boot level
    assert [f["line"] for f in a.failures] == ["license boot level adventerprise"]
    assert a.failures[0]["decision"] == "not synced (don't-care)" and a.failures[0]["phase"] == "bulk"
    assert a.counters["lines_transformed"] == 4                # logging, ssh, flow, spanning-tree
    assert a.counters["policy"] == 0 and b.counters["prc_failures"] == 0


def test_incompatible_images_run_rpr(pair):
    a, b = pair(V3, V4, hot=False)
    polled(lambda: b.operating_mode == "rpr" and a.operating_mode == "rpr", "both units in RPR")
    assert b.rf_state == "STANDBY COLD" and a.peer_state == "STANDBY COLD"
    assert "incompatible" in a.mode_reason and "incompatible" in b.mode_reason
    assert "platform hardware profile" in b.mode_reason
    show = squeeze(term(a).output("show redundancy"))
    assert "Operating Redundancy Mode = rpr" in show
    assert "Configured Redundancy Mode = sso" in show
    assert "incompatible" in show
    # nothing was synced: the Standby keeps its own config
    got = running(b)
    assert ("", "hostname rpb-own") in got and ("", "logging server 10.1.0.10") not in got
    assert a.counters["bulk_syncs"] == 0
    lists = squeeze(term(a).output("show redundancy config-sync lists"))
    assert "INCOMPATIBLE" in lists and "UNREGISTERED platform hardware profile <word>" in lists


# ---------------------------------------------------------------------------------------------- (b) line by line


def test_line_by_line_sync_transforms_two_levels_and_sub_modes(pair):
    a, b = pair(V3, V1, active_cfg=CONFIG[V3].replace(" ip flow ingress\n", ""))
    assert (INTF, "ip route-cache flow") not in config_set(b.render_body())
    t = term(a)
    assert t.session.prompt.endswith("#")                      # admin has privilege 15: no `enable` needed
    applied = b.counters["lines_applied"]
    for line, prompt in (("configure terminal", "(config)#"), ("logging server 10.7.7.7", "(config)#"),
                         ("interface eth1", "(config-if)#"), (" ip flow ingress", "(config-if)#"), ("end", "rp1#")):
        out = t.cmd(line)
        assert out.rstrip().endswith(prompt) and "\r\n%" not in out, (line, out)
    polled(lambda: "logging 10.7.7.7" in b.render_body().splitlines(), "logging 10.7.7.7 on the standby")
    polled(lambda: (INTF, "ip route-cache flow") in config_set(b.render_body()), "ip route-cache flow on eth1")
    body = b.render_body()
    assert "logging server 10.7.7.7" not in body and " ip flow ingress" not in body
    assert a.counters["lines_synced"] == 3                     # logging, interface eth1, ip flow ingress
    assert a.counters["lines_transformed"] >= 2
    polled(lambda: b.counters["lines_applied"] == applied + 3, "three lines applied")
    assert b.counters["prc_failures"] == 0


# ---------------------------------------------------------------------------------------------- (c) DCL


def test_dont_care_line_is_not_synced(pair):
    a, b = pair(V3, V1, active_cfg=CONFIG[V3].replace("license boot level adventerprise\n", ""))
    dont_care, applied = a.counters["dont_care"], b.counters["lines_applied"]
    configure(a, "license boot level adventerprise", "logging server 10.8.8.8")
    # the line after it arrives: the channel works, and only that line was sent
    polled(lambda: "logging 10.8.8.8" in b.render_body().splitlines(), "the next line on the standby")
    assert b.counters["lines_applied"] == applied + 1
    assert a.counters["dont_care"] == dont_care + 1
    assert a.failures[-1]["line"] == "license boot level adventerprise"
    assert a.failures[-1]["decision"] == "not synced (don't-care)" and a.failures[-1]["phase"] == "line"
    assert "license boot level adventerprise" in a.render_body()       # applied on the Active itself
    assert "license" not in b.render_body()
    assert a.counters["policy"] == 0 and not a.out_of_sync


# ---------------------------------------------------------------------------------------------- (d) policies


def test_policy_drop_is_the_default(pair):
    a, b = pair(V3, V2)
    policy = a.counters["policy"]
    configure(a, "ip ssh time-out 200", "ntp server 10.9.9.1")
    polled(lambda: "ntp server 10.9.9.1" in b.render_body(), "the next line on the standby")
    assert "ip ssh timeout 100" in b.render_body().splitlines()          # the Standby kept its value
    assert a.counters["policy"] == policy + 1
    failures = term(a).output("show redundancy config-sync failures")
    assert "'ip ssh time-out 200'" in failures and "dropped" in failures
    assert "no equivalent before 15.2(1)SY" in failures
    assert not a.out_of_sync and a.operating_mode == "sso" and b.rf_state == "STANDBY HOT"
    assert "Config Sync State = In sync" in squeeze(term(a).output("show redundancy"))


def test_policy_out_of_sync(pair):
    a, b = pair(V3, V2)
    configure(a, "redundancy", " config-sync policy out-of-sync", "exit", "ip ssh time-out 250")
    assert a.sync_policy == "out-of-sync" and a.out_of_sync
    show = squeeze(term(a).output("show redundancy"))
    assert "Config Sync State = Out of sync" in show
    assert "(policy out-of-sync)" in show
    assert "'ip ssh time-out 250' -> not synced; standby declared out of sync" in show
    # the pair stays stateful
    assert a.operating_mode == "sso" and b.rf_state == "STANDBY HOT"
    polled(lambda: b.sync_policy == "out-of-sync", "the policy line synced to the standby")


def test_policy_downgrade_resets_the_standby_to_rpr(pair):
    a, b = pair(V3, V2)
    assert "ip address 10.1.0.1 255.255.255.0" in b.render_body()
    configure(a, "redundancy", " config-sync policy downgrade", "exit", "ip ssh time-out 250")
    polled(lambda: b.operating_mode == "rpr" and b.rf_state == "STANDBY COLD", "standby reset to RPR")
    assert a.operating_mode == "rpr" and a.peer_state == "STANDBY COLD"
    assert "ip ssh time-out 250" in a.mode_reason and "ip ssh time-out 250" in b.mode_reason
    body = b.render_body()
    assert "ip address 10.1.0.1" not in body and "logging host 10.1.0.10" not in body
    assert "Operating Redundancy Mode = rpr" in squeeze(term(a).output("show redundancy"))
    # no more line sync to a Standby in RPR
    synced = a.counters["lines_synced"]
    configure(a, "ntp server 10.9.9.2")
    assert a.counters["lines_synced"] == synced


# ---------------------------------------------------------------------------------------------- (e) standby CLI


def test_standby_cli(pair):
    a, b = pair(V3, V1)
    t = term(b)
    assert t.session.prompt == "rp1-stby#"
    out = t.cmd("configure terminal")
    assert "% Standby RP: configuration is not allowed" in out
    assert out.endswith("rp1-stby#") and "(config)" not in out
    states = squeeze(t.output("show redundancy states"))
    assert "my state = 8 -STANDBY HOT" in states and "peer state = 13 -ACTIVE" in states
    assert "Unit = Secondary" in states
    mine = squeeze(term(a).output("show redundancy states"))
    assert "my state = 13 -ACTIVE" in mine and "peer state = 8 -STANDBY HOT" in mine
    red = squeeze(t.output("show redundancy"))
    assert "Current Software state = STANDBY HOT" in red and f"Version {V1}" in red
    assert term(a).session.prompt == "rp1#"


# ---------------------------------------------------------------------------------------------- (f) bad bulk sync


def test_garbled_bulk_sync_leaves_nothing_half_applied(pair):
    a, b = pair(V3, V3)
    prc = b.counters["prc_failures"]
    # as the Active's bulk sync would come (the generation, where the Active numbers its bulk syncs,
    # lets the Active match the answer to it)
    with b.lock:
        b._rx_rcsf({"type": "rcsf", "seq": 1, "lines": ["hostname x", "this is garbled", "end"],
                    "level": b.image.level, "gen": getattr(a, "_bulk_gen", None)})
    assert b.rf_state == "STANDBY COLD" and b.operating_mode == "rpr"
    assert "this is garbled" in b.mode_reason and "PRC" in b.mode_reason
    body = b.render_body()
    assert "hostname x" not in body
    assert "ip address 10.1.0.1" not in body              # the previous sync is gone too: a clean reset
    assert b.counters["prc_failures"] == prc + 1
    assert b.failures[-1]["phase"] == "bulk" and b.failures[-1]["line"] == "this is garbled"
    # the Active hears about it
    polled(lambda: a.operating_mode == "rpr" and a.peer_state == "STANDBY COLD", "the active in RPR")
    assert "this is garbled" in a.mode_reason


# ---------------------------------------------------------------------------------------------- (g) RF channel


def test_verify_accepts_a_signed_line_and_rejects_the_rest():
    line = sign({"type": "hello", "seq": 3}, b"k")
    assert line.endswith(b"\n") and verify(line, b"k") == {"type": "hello", "seq": 3}
    cases = [
        (b"this is not json\n", "malformed"),
        (b"\xff\xfe\n", "malformed"),
        (b'["m", "h"]\n', "malformed"),
        (b'{"m": {"type": "x", "seq": 1}}\n', "malformed"),             # no signature
        (sign({"type": "hello", "seq": 3}, b"wrong"), "bad-signature"),
        (line.replace(b'"seq":3', b'"seq":4'), "bad-signature"),        # tampered body
        (sign({"type": "hello"}, b"k"), "malformed"),                    # authentic, but no seq
        (sign({"seq": 1}, b"k"), "malformed"),
    ]
    for raw, reason in cases:
        with pytest.raises(Rejected) as exc:
            verify(raw, b"k")
        assert exc.value.reason == reason, (raw, exc.value)


@pytest.fixture
def listener(free_port: int) -> Iterator[tuple[RfChannel, list[tuple[str, Any]]]]:
    events: list[tuple[str, Any]] = []
    ch = RfChannel(secret=b"k", listen=("127.0.0.1", free_port), dial=None,
                   on_message=lambda m: events.append(("msg", m)), on_up=lambda: events.append(("up", None)),
                   on_down=lambda why: events.append(("down", why)),
                   on_reject=lambda peer, reason, detail: events.append(("reject", reason)),
                   hb_s=0.05, dead_s=5, name="t-rf")
    ch.start()
    try:
        yield ch, events
    finally:
        ch.close()


def _raw(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_channel_rejects_replay_and_oversized(listener, monkeypatch):
    ch, events = listener
    assert ch.port is not None
    with _raw(ch.port) as s:
        s.sendall(sign({"type": "hello-channel", "seq": 1}, b"k"))
        polled(lambda: ch.up, "authenticated connection")
        s.sendall(sign({"type": "ping", "seq": 2}, b"k") + sign({"type": "ping", "seq": 2}, b"k"))
        polled(lambda: ("reject", "replay") in events, "replay rejected")
    assert [m["seq"] for kind, m in events if kind == "msg"] == [2]
    monkeypatch.setattr(rf_channel, "MAX_LINE", 64)
    with _raw(ch.port) as s:
        s.sendall(sign({"type": "x", "seq": 1, "pad": "p" * 200}, b"k"))
        polled(lambda: ("reject", "oversized") in events, "oversized rejected")
    assert ch.rejected == {"replay": 1, "oversized": 1}


def test_hostile_messages_do_not_disturb_a_hot_pair(pair):
    a, b = pair(V3, V2)
    assert a.channel is not None and a.channel.port == pair.port
    conn = a.channel._conn
    with _raw(pair.port) as s:
        s.sendall(sign({"type": "takeover", "seq": 1, "reason": "evil"}, b"not-the-secret"))
        polled(lambda: any(r["reason"] == "bad-signature" for r in a.rf_rejects), "bad-signature reject")
    with _raw(pair.port) as s:
        s.sendall(b"this is not json at all\n")
        polled(lambda: any(r["reason"] == "malformed" for r in a.rf_rejects), "malformed reject")
    assert {r["reason"] for r in a.rf_rejects} == {"bad-signature", "malformed"}
    assert a.channel.rejected == {"bad-signature": 1, "malformed": 1}
    # the pair is still talking on its own connection: heartbeats keep arriving after the attack
    after = time.monotonic()
    polled(lambda: a.channel._conn is conn and conn.last_rx > after + 0.2, "heartbeats after the rejects")
    assert a.channel.up and b.channel is not None and b.channel.up
    assert a.role == "active" and b.role == "standby" and b.rf_state == "STANDBY HOT"
    assert a.peer_state == "STANDBY HOT" and b.switchovers == 0 and a.standby_failures == 0
    assert "MSG_REJECTED" in term(a).output("show logging")


# ---------------------------------------------------------------------------------------------- (h) switchover


def test_forced_switchover_and_the_old_active_returns_as_standby(pair):
    a, b = pair(V3, V1)
    t = ScriptedTerminal(a, user="admin")
    t.read()
    out = t.cmd("redundancy force-switchover")
    assert "Proceed with switchover to standby RP? [confirm]" in out
    t.cmd("")
    assert t.closed_by_device                                      # the old Active reloads
    polled(lambda: b.role == "active" and b.rf_state == "ACTIVE", "the standby takes over")
    assert b.switchovers == 1 and b.last_switchover_reason == "user forced switchover"
    assert b.gate.open and not a.gate.open
    assert (INTF, "ip address 10.1.0.1 255.255.255.0") in config_set(b.render_body())
    assert b.interfaces["eth1"].address is not None and str(b.interfaces["eth1"].address[0]) == "10.1.0.1"
    # the old Active comes back as the Standby, synced from its peer (15.0 -> 15.2: upgraded)
    polled(lambda: a.role == "standby" and a.rf_state == "STANDBY HOT" and b.peer_state == "STANDBY HOT",
           "the old active STANDBY HOT")
    got = config_set(a.render_body())
    assert {("", "logging server 10.1.0.10"), (INTF, "ip flow ingress"), ("", "ip ssh time-out 100")} <= got
    assert term(a).session.prompt == "rp1-stby#"
    assert "Switchovers system experienced = 1" in squeeze(term(b).output("show redundancy"))


def test_force_switchover_refused_on_the_standby(pair):
    a, b = pair(V3, V3)
    out = term(b).output("redundancy force-switchover")
    assert "% This command can only be run on the active unit" in out
    assert b.role == "standby" and a.role == "active"


# ---------------------------------------------------------------------------------------------- (i) ISSU


def _reload_like_the_daemon(pair: Pair, holder: dict[str, RpUnit], name: str) -> Callable[[], None]:
    """What the device host does on a reload: close the device and boot a new one from its state
    directory (which holds the new boot image)."""
    def reload() -> None:
        old = holder[name]

        def reboot() -> None:
            old.close()
            new = RpUnit(name, state_dir=old.state_dir, users={"admin": "admin"}, enable_secret="e", apply=False,
                         hw=old.hw, version=old.image.version, initial_config=old.initial_config)
            if pair.closed:                    # the test is over: boot nothing more
                return
            pair.units.append(new)
            new.on_reload = reload
            holder[name] = new
            new.start()
        threading.Thread(target=reboot, name=f"{name}-reboot", daemon=True).start()
    return reload


def test_issu_loadversion_of_an_incompatible_image_stops_before_runversion(pair):
    a, b = pair(V3, V3)
    holder = {"rpb": b}
    b.on_reload = _reload_like_the_daemon(pair, holder, "rpb")
    t = term(a)
    out = t.output(f"issu loadversion {V4}")
    assert f"Standby is being reloaded with {V4}" in out
    polled(lambda: holder["rpb"] is not b and holder["rpb"].image.version == V4, "the standby reloaded with 15.4")
    nb = holder["rpb"]
    polled(lambda: nb.role == "standby" and nb.operating_mode == "rpr" and a.operating_mode == "rpr",
           "negotiation with the 15.4 standby")
    assert nb.rf_state == "STANDBY COLD" and "incompatible" in a.mode_reason
    out = t.output("issu runversion")
    assert "not in STANDBY HOT" in out and "incompatible" in out
    assert a.role == "active" and a.issu["state"] == "Load Version"
    assert "ISSU State = Load Version" in squeeze(t.output("show issu state"))


def test_issu_rollback_timer_returns_the_pair_to_the_old_image(pair):
    a, b = pair(V2, V2)
    units = {"rpa": a, "rpb": b}
    a.on_reload = _reload_like_the_daemon(pair, units, "rpa")
    b.on_reload = _reload_like_the_daemon(pair, units, "rpb")
    t = term(a)
    assert "Rollback timer set to 1 seconds" in t.output("issu set rollback-timer 1")
    assert f"Standby is being reloaded with {V3}" in t.output(f"issu loadversion {V3}")
    polled(lambda: units["rpb"] is not b and units["rpb"].image.version == V3
           and units["rpb"].rf_state == "STANDBY HOT" and a.peer_state == "STANDBY HOT",
           "the 15.2 standby HOT (a newer standby upgrades the bulk sync)")
    assert ("", "logging server 10.1.0.10") in config_set(units["rpb"].render_body())
    assert "[confirm]" in t.cmd("issu runversion")
    t.cmd("")
    b2 = units["rpb"]
    polled(lambda: b2.role == "active" and b2.issu["state"] == "Run Version", "the new image active")
    assert b2.issu["rollback_at"] is not None
    # nobody accepts: after a second the pair rolls back to the old image, on the unit that kept it
    polled(lambda: units["rpb"] is not b2 and units["rpb"].image.version == V2, "the 15.2 unit reloaded with 15.1")
    a2, b3 = units["rpa"], units["rpb"]
    assert a2 is not a and a2.image.version == V2
    polled(lambda: a2.role == "active" and b3.role == "standby" and b3.rf_state == "STANDBY HOT",
           "the pair back on 15.1, HOT")
    assert a2.issu["state"] == "Init" and b3.issu["state"] == "Init"
    assert ("", "logging host 10.1.0.10") in config_set(b3.render_body())


def test_issu_loadversion_unknown_image_lists_the_known_ones(pair):
    a, b = pair(V3, V3)
    out = term(a).output("issu loadversion 16.1(1)SY")
    assert "unknown image version '16.1(1)SY'" in out and V4 in out
    assert a.issu["state"] == "Init" and b.image.version == V3


def test_an_issu_order_lost_on_the_channel_is_sent_again_when_the_standby_says_hello(pair):
    """The Active said "executed successfully" but the channel dropped the load-image order (a peer
    lost for a moment): the Standby's next hello shows it never reloaded, so it gets the order again;
    a repeat of an order it already obeyed is ignored."""
    a, b = pair(V3, V3)
    real_send = a.channel.send
    dropped: list[dict[str, Any]] = []

    def lossy(body: dict[str, Any], conn: Any = None) -> bool:
        if body.get("type") == "load-image" and not dropped:
            dropped.append(body)
            return False
        return real_send(body, conn)

    a.channel.send = lossy
    booted = b.boot_time
    assert "Standby is being reloaded with" in term(a).output(f"issu loadversion {V4}")
    assert dropped and b.image.version == V3 and b.boot_time == booted
    b._send_hello()                                  # as after the channel comes back
    polled(lambda: b.image.version == V4 and b.boot_time != booted, "the standby reloaded with 15.4")
    assert any("%ISSU-4-RESEND" in line for line in a.log.buffer), "the resend is logged"
    again = b.boot_time
    b._rx_load_image({"type": "load-image", "image": V4, "order": dropped[0]["order"]})
    assert b.boot_time == again, "a repeated order reloaded the standby twice"
    polled(lambda: a._image_order is None, "the order cleared once the standby's hello shows its new boot")


@pytest.mark.parametrize("how", ["issu-loadversion", "reload-peer"])
def test_in_process_reload_of_the_standby_renegotiates(pair, how):
    a, b = pair(V3, V3)
    t = term(a)
    booted = b.boot_time
    if how == "issu-loadversion":
        assert "Standby is being reloaded" in t.output(f"issu loadversion {V4}")
        polled(lambda: b.image.version == V4, "the standby reloaded with 15.4")
    else:
        assert "[confirm]" in t.cmd("redundancy reload peer")
        t.cmd("")
    polled(lambda: b.boot_time != booted, "the standby reloading")
    # (a short deadline: a working pair renegotiates in a few tens of milliseconds)
    wait_for(lambda: b.role == "standby" and b.rf_state.startswith("STANDBY")
             and (b.rf_state == "STANDBY HOT" or b.operating_mode == "rpr"), 2, "negotiation after the reload")
