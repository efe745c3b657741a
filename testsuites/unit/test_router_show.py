"""Show outputs parse with the standard ntc-templates TextFSM templates for cisco_ios, as Netmiko's
`use_textfsm=True` would parse them."""
from __future__ import annotations


import pytest
from ntc_templates.parse import parse_output

from emulators.cli.testing import ScriptedTerminal
from emulators.router import Router

pytestmark = pytest.mark.unit

CONFIG = """\
hostname core-9
interface eth1
 description to the core
 ip address 10.1.0.1 255.255.255.0
interface eth2
 ip address 192.168.7.1 255.255.255.252
interface eth3
 ip address 10.2.0.1 255.255.0.0
interface eth4
 shutdown
ip route 0.0.0.0 0.0.0.0 10.1.0.254
ip route 172.16.0.0 255.255.0.0 192.168.7.2
ip route 10.9.0.0 255.255.255.0 10.1.0.2
"""


@pytest.fixture(scope="module")
def term(tmp_path_factory) -> ScriptedTerminal:
    d = Router("r1", state_dir=tmp_path_factory.mktemp("show"), users={"admin": "pw"}, enable_secret="",
               apply=False, initial_config=CONFIG)
    d.tick_interval = 0
    d.start()
    t = ScriptedTerminal(d, user="admin", transport="ssh")
    t.read()
    t.cmd("terminal length 0")
    return t


def parse(term: ScriptedTerminal, command: str) -> list[dict]:
    out = term.output(command).replace("\r\n", "\n")
    return parse_output(platform="cisco_ios", command=command, data=out)


def test_show_version(term):
    (v,) = parse(term, "show version")
    assert v["version"] == "15.9(3)M4"
    assert v["hostname"] == "core-9"
    assert v["uptime"] == "0 minutes"
    assert v["running_image"] == "twin-router-mz.159-3.M4.bin"
    assert v["hardware"] == ["TWIN-ROUTER"]
    assert v["serial"] and v["serial"][0].startswith("TWN")
    assert v["config_register"] == "0x2102"
    assert v["software_image"] == "TWIN-ROUTER-M" and v["release"] == "fc1"


def test_show_version_custom_version(tmp_path):
    d = Router("r2", state_dir=tmp_path, users={}, enable_secret="", apply=False, version="17.3(4a)")
    d.tick_interval = 0
    d.start()
    t = ScriptedTerminal(d)
    t.cmd("terminal length 0")
    (v,) = parse(t, "show version")
    assert v["version"] == "17.3(4a)" and v["hostname"] == "r2"


def test_show_ip_interface_brief(term):
    rows = {r["interface"]: r for r in parse(term, "show ip interface brief")}
    assert set(rows) == {"eth1", "eth2", "eth3", "eth4", "mgmt0"}
    assert rows["eth1"]["ip_address"] == "10.1.0.1" and rows["eth1"]["status"] == "up" and rows["eth1"]["proto"] == "up"
    assert rows["eth4"]["ip_address"] == "unassigned"
    assert rows["eth4"]["status"] == "administratively down" and rows["eth4"]["proto"] == "down"
    header = term.output("show ip interface brief").split("\r\n")[0]
    assert header == "Interface              IP-Address      OK? Method Status                Protocol"


def test_show_ip_route(term):
    rows = parse(term, "show ip route")
    got = {(r["protocol"], r["network"], r["prefix_length"], r["nexthop_ip"], r["nexthop_if"]) for r in rows}
    assert ("S", "0.0.0.0", "0", "10.1.0.254", "") in got
    assert ("S", "172.16.0.0", "16", "192.168.7.2", "") in got
    assert ("S", "10.9.0.0", "24", "10.1.0.2", "") in got
    assert ("C", "10.1.0.0", "24", "", "eth1") in got
    assert ("L", "10.1.0.1", "32", "", "eth1") in got
    assert ("C", "192.168.7.0", "30", "", "eth2") in got
    assert ("C", "10.2.0.0", "16", "", "eth3") in got
    default = next(r for r in rows if r["network"] == "0.0.0.0")
    assert default["flag"] == "*" and default["distance"] == "1" and default["metric"] == "0"
    out = term.output("show ip route")
    assert "Gateway of last resort is 10.1.0.254 to network 0.0.0.0" in out
    assert "      10.0.0.0/8 is variably subnetted, 5 subnets, 3 masks\r\n" in out
    assert "C        10.1.0.0/24 is directly connected, eth1\r\n" in out
    assert "S*    0.0.0.0/0 [1/0] via 10.1.0.254\r\n" in out


def test_show_interfaces(term):
    rows = {r["interface"]: r for r in parse(term, "show interfaces")}
    assert set(rows) == {"eth1", "eth2", "eth3", "eth4", "mgmt0"}
    e1 = rows["eth1"]
    assert e1["link_status"] == "up" and e1["protocol_status"] == "up"
    assert e1["ip_address"] == "10.1.0.1" and e1["prefix_length"] == "24"
    assert e1["description"] == "to the core"
    assert e1["mtu"] == "1500" and e1["bandwidth"] == "10000000 Kbit" and e1["delay"] == "10 usec"
    assert e1["mac_address"].count(".") == 2 and e1["mac_address"] == e1["bia"]
    assert int(e1["input_packets"]) > 0 and int(e1["output_packets"]) > 0
    assert e1["duplex"] == "Full Duplex" and e1["speed"] == "10Gbps"
    assert rows["eth4"]["link_status"] == "administratively down"
    (one,) = parse(term, "show interfaces eth2")
    assert one["interface"] == "eth2" and one["ip_address"] == "192.168.7.1"


def test_show_clock(term):
    (c,) = parse(term, "show clock")
    assert c["timezone"] == "UTC" and len(c["year"]) == 4 and c["time"].count(":") == 2


def test_show_logging_users_history(term):
    out = term.output("show logging")
    assert out.startswith("Syslog logging: enabled")
    assert "Log Buffer (4096 bytes):" in out and "%SYS-5-RESTART: System restarted --" in out
    out = term.output("show users")
    assert out.startswith("    Line       User       Host(s)              Idle       Location")
    assert "*  2 vty 0     admin" in out
    assert "  show users" in term.output("show history")


def test_show_running_config_interface(term):
    out = term.output("show running-config interface eth1")
    assert out.split("\r\n")[3:] == ["!", "interface eth1", " description to the core",
                                     " ip address 10.1.0.1 255.255.255.0", "end", ""]
