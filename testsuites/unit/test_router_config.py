"""Router config: the running-config round trip (also property-based), startup-config persistence,
reload, and the effects on the (in-memory) kernel."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.cli.testing import ScriptedTerminal
from emulators.kinds import device_class, register
from emulators.netlink import FakeNetlink
from emulators.router import Router

pytestmark = pytest.mark.unit

SAMPLE = """\
hostname edge-7
enable secret cisco123
username ops privilege 15 secret opspass
username viewer password 0 look
no logging console
logging buffered 16384
no ip domain-lookup
interface eth1
 description uplink to core (primary)
 ip address 10.1.0.1 255.255.255.0
interface eth2
 ip address 192.168.50.1 255.255.255.252
 shutdown
interface eth3
 description spare
ip route 0.0.0.0 0.0.0.0 10.1.0.254
ip route 172.16.0.0 255.240.0.0 10.1.0.2
line con 0
 exec-timeout 0 0
 logging synchronous
line vty 0 4
 exec-timeout 30 0
 login local
 transport input ssh telnet
"""


def make(tmp_path: Path, name: str = "r1", users: dict[str, str] | None = None, secret: str = "",
         **kw) -> Router:
    d = Router(name, state_dir=tmp_path, users=users if users is not None else {}, enable_secret=secret,
               apply=False, **kw)
    d.tick_interval = 0
    d.start()
    return d


def feed_config(d: Router, text: str) -> ScriptedTerminal:
    d.lines["con"].privilege = 15
    t = ScriptedTerminal(d)
    t.cmd("terminal length 0")
    t.cmd("configure terminal")
    for line in text.splitlines():
        out = t.cmd(line)
        errors = [ln for ln in out.split("\r\n")[1:] if ln.startswith(("%", "Bad", "ERROR"))]
        assert not errors, (line, out)
    t.cmd("end")
    return t


def body_lines(running: str) -> list[str]:
    """The lines a person would paste back: everything after the header."""
    lines = running.splitlines()
    return lines[lines.index("!"):]


def round_trip(tmp_path: Path, text: str) -> tuple[str, str]:
    a = make(tmp_path / "a")
    feed_config(a, text)
    first = a.running_config()
    b = make(tmp_path / "b")
    feed_config(b, "\n".join(body_lines(first)))
    return first, b.running_config()


def test_running_config_layout(tmp_path):
    d = make(tmp_path)
    feed_config(d, SAMPLE)
    rc = d.running_config()
    lines = rc.splitlines()
    assert lines[:3] == ["Building configuration...", "", lines[2]]
    body = rc.split("\n", 3)[3]
    assert lines[2] == f"Current configuration : {len(body)} bytes"
    assert "hostname edge-7" in lines and lines[-1] == "end"
    assert any(ln.startswith("enable secret 5 $1$") for ln in lines)
    assert any(ln.startswith("username ops privilege 15 secret 5 $1$") for ln in lines)
    assert "username viewer password 0 look" in lines
    assert "cisco123" not in rc and "opspass" not in rc
    i = lines.index("interface eth1")
    assert lines[i:i + 4] == ["interface eth1", " description uplink to core (primary)",
                              " ip address 10.1.0.1 255.255.255.0", "!"]
    assert lines[lines.index("interface eth2") + 2] == " shutdown"
    assert lines.index("ip route 0.0.0.0 0.0.0.0 10.1.0.254") < lines.index("ip route 172.16.0.0 255.240.0.0 10.1.0.2")
    assert lines.index("line con 0") < lines.index("line vty 0 4") < lines.index("end")


def test_round_trip_of_a_sample_config(tmp_path):
    first, second = round_trip(tmp_path, SAMPLE)
    assert first.replace("hostname r1", "") == second.replace("hostname r1", "")
    assert first == second


def test_feeding_the_running_config_back_is_idempotent(tmp_path):
    d = make(tmp_path)
    feed_config(d, SAMPLE)
    before = d.running_config()
    feed_config(d, "\n".join(body_lines(before)))
    assert d.running_config() == before


# ------------------------------------------------------------------ property-based round trip
names = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
words = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,11}", fullmatch=True)   # "0"/"5" would be a keyword, as on IOS
octet = st.integers(1, 223)


@st.composite
def interface_cfg(draw, idx: int) -> list[str]:
    lines = [f"interface eth{idx}"]
    if draw(st.booleans()):
        lines.append(" description " + " ".join(draw(st.lists(words, min_size=1, max_size=4))))
    if draw(st.booleans()):
        plen = draw(st.integers(8, 30))
        net = ipaddress.IPv4Network(f"{10 + idx}.{draw(st.integers(0, 255))}.0.0/{plen}", strict=False)
        host = net.network_address + draw(st.integers(1, net.num_addresses - 2))
        lines.append(f" ip address {host} {net.netmask}")
    if draw(st.booleans()):
        lines.append(" shutdown")
    return lines


@st.composite
def configs(draw) -> str:
    lines = [f"hostname {draw(names)}"]
    if draw(st.booleans()):
        lines.append(f"enable secret {draw(words)}")
    for user in draw(st.lists(names, max_size=3, unique=True)):
        kind = draw(st.sampled_from(["secret", "password"]))
        priv = draw(st.sampled_from(["", " privilege 15", " privilege 3"]))
        lines.append(f"username {user}{priv} {kind} {draw(words)}")
    if draw(st.booleans()):
        lines.append("no logging console")
    if draw(st.booleans()):
        lines.append("no ip routing")
    for idx in draw(st.lists(st.integers(1, 4), max_size=4, unique=True)):
        lines += draw(interface_cfg(idx))
    for _ in range(draw(st.integers(0, 4))):
        plen = draw(st.integers(0, 32))
        net = ipaddress.IPv4Network(f"{draw(octet)}.{draw(st.integers(0, 255))}.{draw(st.integers(0, 255))}.0/{plen}",
                                    strict=False)
        nh = f"10.{draw(st.integers(0, 255))}.{draw(st.integers(0, 255))}.{draw(st.integers(1, 254))}"
        lines.append(f"ip route {net.network_address} {net.netmask} {nh}")
    lines.append("line con 0")
    if draw(st.booleans()):
        lines.append(f" exec-timeout {draw(st.integers(0, 60))} {draw(st.integers(0, 59))}")
    if draw(st.booleans()):
        lines.append(" login local")
    lines.append(f"line vty 0 {draw(st.integers(0, 15))}")
    if draw(st.booleans()):
        lines.append(" no login")
    if draw(st.booleans()):
        lines.append(f" privilege level {draw(st.integers(0, 15))}")
    return "\n".join(lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_round_trip_property(tmp_path_factory, text):
    base = tmp_path_factory.mktemp("rt")
    first, second = round_trip(base, text)
    assert first == second


# ------------------------------------------------------------------ persistence and reload
def test_write_memory_persists_atomically_and_survives_restart(tmp_path):
    d = make(tmp_path, users={"admin": "pw"}, secret="en")
    t = feed_config(d, "hostname saved1\ninterface eth1\n ip address 10.9.9.1 255.255.255.0")
    out = t.cmd("copy running-config startup-config")
    assert out.endswith("Destination filename [startup-config]? ")
    assert t.feed("\r") == "\r\nBuilding configuration...\r\n[OK]\r\nsaved1#"
    saved = (tmp_path / "startup-config").read_text()
    assert saved == d.render_body()
    assert not list(tmp_path.glob(".startup-config*")), "no temp file left"
    assert t.output("show startup-config").startswith(f"Using {len(saved)} out of 262144 bytes\r\n!\r\nversion 15.9")
    d.close()
    # a new emulator process on the same state dir comes back with the saved config
    d2 = make(tmp_path, users={"admin": "other"}, secret="x", initial_config="hostname ignored\n")
    assert d2.hostname == "saved1"
    assert d2.interfaces["eth1"].address == ("10.9.9.1", "255.255.255.0")
    assert d2.net.addresses()["eth1"] == [("10.9.9.1", 24)]
    assert d2.check_password("admin", "pw") and not d2.check_password("admin", "other")
    t2 = ScriptedTerminal(d2, transport="ssh", user="admin")
    t2.cmd("terminal length 0")
    assert "eth1                   10.9.9.1        YES NVRAM" in t2.cmd("show ip interface brief")


def test_initial_config_and_lab_users_when_no_startup_config(tmp_path):
    d = make(tmp_path, users={"admin": "pw"}, secret="en",
             initial_config="hostname lab-r1\ninterface eth2\n ip address 10.2.0.1 255.255.255.0\n")
    assert d.hostname == "lab-r1"
    assert d.check_password("admin", "pw") and d.users["admin"].privilege == 15
    assert d.check_enable("en") and not d.check_enable("x")
    assert d.startup_config() is None
    assert d.net.addresses()["eth2"] == [("10.2.0.1", 24)]


def test_reload_asks_to_save_and_restarts_from_startup(tmp_path):
    d = make(tmp_path, users={"admin": "pw"})
    t = ScriptedTerminal(d, transport="ssh", user="admin")
    t.cmd("write memory")
    t.cmd("conf t")
    t.cmd("hostname unsaved")
    t.cmd("end")
    out = t.cmd("reload")
    assert out.endswith("System configuration has been modified. Save? [yes/no]: ")
    assert t.cmd("maybe").endswith("% Please answer 'yes' or 'no'.\r\nSystem configuration has been modified. Save? [yes/no]: ")
    assert t.cmd("no").endswith("Proceed with reload? [confirm]")
    t.feed("\r")
    assert t.session.closed, "a reload ends every session"
    assert d.hostname == "r1", "unsaved changes are lost"
    assert any("%SYS-5-RELOAD: Reload requested by admin on vty0" in ln for ln in d.log.buffer)
    t2 = ScriptedTerminal(d, transport="ssh", user="admin")
    assert t2.read().endswith("r1#")


def test_reload_saving_and_on_reload_callback(tmp_path):
    d = make(tmp_path, users={"admin": "pw"})
    calls = []
    d.on_reload = lambda: calls.append(1)
    t = ScriptedTerminal(d, transport="ssh", user="admin")
    t.cmd("conf t")
    t.cmd("hostname keep")
    t.cmd("end")
    t.cmd("reload")
    out = t.cmd("yes")
    assert "Building configuration...\r\n[OK]\r\nProceed with reload? [confirm]" in out
    t.feed("y")
    assert calls == [1] and t.session.closed
    assert "hostname keep" in (d.startup_config() or "")


def test_reload_declined(tmp_path):
    d = make(tmp_path, users={"admin": "pw"})
    t = ScriptedTerminal(d, transport="ssh", user="admin")
    t.cmd("write")
    assert t.cmd("reload").endswith("Proceed with reload? [confirm]"), "no save question when unmodified"
    assert t.feed("n").endswith("\r\nr1#")
    assert not t.session.closed


def test_erase_and_copy_startup_to_running(tmp_path):
    d = make(tmp_path, users={"admin": "pw"})
    t = feed_config(d, "hostname first")
    t.cmd("wr")
    t.cmd("conf t")
    t.cmd("hostname second")
    t.cmd("end")
    t.cmd("copy startup-config running-config")
    out = t.feed("\r")
    assert "bytes copied in" in out and d.hostname == "first"
    t.cmd("erase startup-config")
    assert "Erase of nvram: complete" in t.feed("\r")
    assert d.startup_config() is None
    assert t.output("show startup-config") == "startup-config is not present\r\n"


# ------------------------------------------------------------------ effects on the kernel
def test_interface_config_reaches_the_kernel(tmp_path):
    d = make(tmp_path)
    net = d.net
    assert isinstance(net, FakeNetlink)
    t = feed_config(d, "interface eth1\n ip address 10.0.0.1 255.255.255.0")
    assert net.addresses()["eth1"] == [("10.0.0.1", 24)]
    feed_config(d, "interface eth1\n ip address 10.0.5.1 255.255.0.0")
    assert net.addresses()["eth1"] == [("10.0.5.1", 16)], "a new primary replaces the old one"
    feed_config(d, "ip route 192.168.0.0 255.255.0.0 10.0.9.9")
    assert any(r.dst == "192.168.0.0" and r.gateway == "10.0.9.9" for r in net.routes())
    feed_config(d, "interface eth1\n shutdown")
    assert not net._links["eth1"].admin_up
    assert not any(r.dst == "192.168.0.0" for r in net.routes()), "the kernel drops routes via a down link"
    assert "%LINK-5-CHANGED: Interface eth1, changed state to administratively down" in "\n".join(d.log.buffer)
    feed_config(d, "interface eth1\n no shutdown")
    assert any(r.dst == "192.168.0.0" for r in net.routes()), "the static route comes back with the link"
    feed_config(d, "no ip route 192.168.0.0 255.255.0.0")
    assert not any(r.dst == "192.168.0.0" for r in net.routes())
    feed_config(d, "interface eth1\n no ip address")
    assert "eth1" not in net.addresses()
    feed_config(d, "no ip routing")
    assert net.forwarding is False
    feed_config(d, "ip routing")
    assert net.forwarding is True
    t.cmd("end")


def test_static_route_waits_for_a_reachable_next_hop(tmp_path):
    d = make(tmp_path)
    feed_config(d, "ip route 10.50.0.0 255.255.0.0 10.0.0.2")
    assert not any(r.dst == "10.50.0.0" for r in d.net.routes())
    assert "ip route 10.50.0.0 255.255.0.0 10.0.0.2" in d.running_config()
    feed_config(d, "interface eth2\n ip address 10.0.0.1 255.255.255.0")
    assert any(r.dst == "10.50.0.0" and r.dev == "eth2" for r in d.net.routes())


def test_config_errors_as_ios_prints_them(tmp_path):
    d = make(tmp_path)
    t = ScriptedTerminal(d)
    d.lines["con"].privilege = 15
    t = ScriptedTerminal(d)
    t.cmd("conf t")
    t.cmd("interface eth1")
    assert "Bad mask 0xFF00FF00 for address 10.0.0.1" in t.cmd("ip address 10.0.0.1 255.0.255.0")
    assert "Bad mask /24 for address 10.0.0.0" in t.cmd("ip address 10.0.0.0 255.255.255.0")
    t.cmd("ip address 10.0.0.1 255.255.255.0")
    t.cmd("interface eth2")
    assert "% 10.0.0.0 overlaps with eth1" in t.cmd("ip address 10.0.0.2 255.255.255.0")
    assert "% 172.20.0.0 overlaps with mgmt0" in t.cmd("ip address 172.20.0.9 255.255.255.0")
    t.cmd("exit")
    assert "%Inconsistent address and mask" in t.cmd("ip route 10.1.1.1 255.255.255.0 10.0.0.2")
    assert "%No matching route to delete" in t.cmd("no ip route 10.1.1.0 255.255.255.0")
    assert "illegal characters" in t.cmd("hostname bad_name!")


def test_mgmt0_is_shown_but_not_configurable(tmp_path):
    d = make(tmp_path)
    d.lines["con"].privilege = 15
    t = ScriptedTerminal(d)
    t.cmd("terminal length 0")
    assert "mgmt0                  172.20.0.2      YES other  up                    up" in t.cmd("show ip interface brief")
    t.cmd("conf t")
    out = t.cmd("interface mgmt0")
    assert "Invalid input" in out
    assert "mgmt0" not in d.running_config()
    assert d.net.addresses()["mgmt0"] == [("172.20.0.2", 24)]


def test_link_changes_from_outside_are_logged_and_published(tmp_path):
    d = make(tmp_path)
    events: list[dict] = []
    d.subscribe(events.append)
    d.net.set_carrier("eth3", False)
    d.tick()
    log = "\n".join(d.log.buffer)
    assert "%LINK-3-UPDOWN: Interface eth3, changed state to down" in log
    assert "%LINEPROTO-5-UPDOWN: Line protocol on Interface eth3, changed state to down" in log
    assert [e for e in events if e["type"] == "link-down"][0]["interface"] == "eth3"
    d.net.set_carrier("eth3", True)
    d.tick()
    assert [e for e in events if e["type"] == "link-up"][0]["interface"] == "eth3"
    d.tick()
    assert len([e for e in events if e["type"].startswith("link-")]) == 2, "no repeats without a change"


def test_an_interface_that_appears_later_gets_its_config(tmp_path):
    d = make(tmp_path, initial_config="interface eth7\n ip address 10.7.0.1 255.255.255.0\n")
    assert "interface eth7" in d.running_config(), "kept while the link does not exist yet"
    d.net.add_link("eth7")
    d.tick()
    assert d.net.addresses()["eth7"] == [("10.7.0.1", 24)]


def test_kinds_registry(tmp_path):
    assert device_class("router") is Router
    with pytest.raises(KeyError, match="unknown device kind"):
        device_class("toaster")

    class R2(Router):
        kind = "router2"
    register("router2", R2)
    assert device_class("router2") is R2
    with pytest.raises(TypeError):
        register("bad", dict)  # type: ignore[arg-type]
