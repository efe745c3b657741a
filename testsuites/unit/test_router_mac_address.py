"""The router's `mac-address` interface command (what a cluster substitute uses to take over the
failed element's MACs): it reaches the (in-memory) kernel, shows in the running-config, refuses
bad and multicast addresses, and `no mac-address` restores the burned-in address kept on NVRAM."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulators.cli.testing import ScriptedTerminal
from emulators.netlink import FakeNetlink
from emulators.router import Router, cisco_mac, parse_mac

pytestmark = pytest.mark.unit


def make(state_dir: Path, netlink: FakeNetlink | None = None) -> Router:
    state_dir.mkdir(parents=True, exist_ok=True)
    d = Router("r1", state_dir=state_dir, users={}, enable_secret="", apply=False, netlink=netlink)
    d.tick_interval = 0
    d.start()
    return d


def terminal(d: Router) -> ScriptedTerminal:
    d.lines["con"].privilege = 15
    t = ScriptedTerminal(d)
    t.cmd("terminal length 0")
    return t


def configure(d: Router, *lines: str) -> list[str]:
    """Type the lines in config mode; returns every error line the router printed."""
    t = terminal(d)
    t.cmd("configure terminal")
    errors = []
    for line in lines:
        out = t.cmd(line)
        errors += [ln for ln in out.split("\r\n")[1:] if ln.startswith("%")]
    t.cmd("end")
    return errors


def kernel_mac(d: Router, name: str = "eth1") -> str:
    return {l.name: l.mac for l in d.net.links()}[name]


def interface_block(d: Router, name: str = "eth1") -> list[str]:
    lines = d.running_config().splitlines()
    start = lines.index(f"interface {name}")
    block = [lines[start]]
    for ln in lines[start + 1:]:
        if not ln.startswith(" "):
            break
        block.append(ln)
    return block


@pytest.fixture
def router(tmp_path):
    d = make(tmp_path / "r1")
    yield d
    d.close()


def test_parse_mac_forms():
    assert parse_mac("0200.0a01.0001") == "02:00:0a:01:00:01"
    assert parse_mac("200.A01.1") == "02:00:0a:01:00:01", "IOS pads each group"
    assert parse_mac("02:00:0A:01:00:01") == "02:00:0a:01:00:01"
    for bad in ("0200.0a01", "zzzz.0a01.0001", "02:00:0a:01:00", "02-00-0a-01-00-01", "", "0200.0a01.00011"):
        assert parse_mac(bad) is None, bad
    assert cisco_mac("02:00:0a:01:00:01") == "0200.0a01.0001"


def test_mac_address_sets_the_kernels_mac_and_shows_in_the_running_config(router):
    bia = kernel_mac(router)
    assert bia != "02:00:0a:01:00:01"
    assert configure(router, "interface eth1", "mac-address 0200.0a01.0001") == []
    assert kernel_mac(router) == "02:00:0a:01:00:01"
    assert " mac-address 0200.0a01.0001" in interface_block(router)
    assert router.interfaces["eth1"].mac == "02:00:0a:01:00:01"
    # the burned-in address is kept on NVRAM so it can be restored
    assert json.loads((router.state_dir / "bia.json").read_text()) == {"eth1": bia}
    assert router.burned_in() == {"eth1": bia}
    # other interfaces are untouched
    assert not any("mac-address" in ln for ln in interface_block(router, "eth2"))


def test_the_colon_form_is_accepted_and_shown_the_ios_way(router):
    assert configure(router, "interface eth2", "mac-address 02:00:0A:01:00:02") == []
    assert kernel_mac(router, "eth2") == "02:00:0a:01:00:02"
    assert " mac-address 0200.0a01.0002" in interface_block(router, "eth2")


def test_a_second_mac_address_replaces_the_first_and_keeps_the_bia(router):
    bia = kernel_mac(router)
    configure(router, "interface eth1", "mac-address 0200.0a01.0001", "mac-address 0200.0a01.0009")
    assert kernel_mac(router) == "02:00:0a:01:00:09"
    assert [ln for ln in interface_block(router) if "mac-address" in ln] == [" mac-address 0200.0a01.0009"]
    assert router.burned_in() == {"eth1": bia}, "the original address, not the first override"


@pytest.mark.parametrize("text", ["zzzz.0a01.0001", "0200.0a01", "02:00:0a:01:00", "hello"])
def test_invalid_text_is_refused_and_changes_nothing(router, text):
    before = kernel_mac(router)
    errors = configure(router, "interface eth1", f"mac-address {text}")
    assert len(errors) == 1 and errors[0].startswith("%") and "not a MAC address" in errors[0], errors
    assert kernel_mac(router) == before
    assert not any("mac-address" in ln for ln in interface_block(router))
    assert not (router.state_dir / "bia.json").exists()


def test_a_multicast_mac_is_refused_and_keeps_the_current_one(router):
    configure(router, "interface eth1", "mac-address 0200.0a01.0001")
    errors = configure(router, "interface eth1", "mac-address 0100.5e00.0001")
    assert len(errors) == 1 and errors[0].startswith("%") and "multicast" in errors[0], errors
    assert kernel_mac(router) == "02:00:0a:01:00:01"
    assert " mac-address 0200.0a01.0001" in interface_block(router)


def test_no_mac_address_restores_the_burned_in_address(router):
    bia = kernel_mac(router)
    configure(router, "interface eth1", "mac-address 0200.0a01.0001")
    assert configure(router, "interface eth1", "no mac-address") == []
    assert kernel_mac(router) == bia
    assert not any("mac-address" in ln for ln in interface_block(router))
    assert router.burned_in() == {}
    assert router.interfaces["eth1"].mac is None


def test_show_interfaces_shows_the_address_and_the_bia(router):
    bia = kernel_mac(router)
    t = terminal(router)
    out = t.output("show interfaces eth1")
    assert f"address is {cisco_mac(bia)} (bia {cisco_mac(bia)})" in out
    configure(router, "interface eth1", "mac-address 0200.0a01.0001")
    out = t.output("show interfaces eth1")
    assert f"Hardware is veth, address is 0200.0a01.0001 (bia {cisco_mac(bia)})" in out
    assert " mac-address 0200.0a01.0001" in t.output("show running-config interface eth1")


def test_a_reload_without_the_override_restores_the_bia(tmp_path):
    """A clone returned to the pool reloads with a config that no longer sets the role's MAC: the
    burned-in address (kept in bia.json) comes back on the same kernel."""
    net = FakeNetlink()
    bia = {l.name: l.mac for l in net.links()}["eth1"]
    d = make(tmp_path / "r1", net)
    configure(d, "interface eth1", "mac-address 0200.0a01.0001")
    assert kernel_mac(d) == "02:00:0a:01:00:01"
    d.close()
    assert {l.name: l.mac for l in net.links()}["eth1"] == "02:00:0a:01:00:01", "the kernel keeps it meanwhile"
    d2 = make(tmp_path / "r1", net)           # no startup-config saved: the override is gone
    try:
        assert d2.interfaces.get("eth1") is None or d2.interfaces["eth1"].mac is None
        assert kernel_mac(d2) == bia
        assert d2.burned_in() == {}
    finally:
        d2.close()


def test_a_saved_override_comes_back_after_a_restart(tmp_path):
    d = make(tmp_path / "r1")
    t = terminal(d)
    configure(d, "interface eth1", "mac-address 0200.0a01.0001")
    t.cmd("write memory")
    assert " mac-address 0200.0a01.0001" in (tmp_path / "r1" / "startup-config").read_text()
    d.close()
    d2 = make(tmp_path / "r1")                 # a new kernel with its own burned-in address
    try:
        assert kernel_mac(d2) == "02:00:0a:01:00:01"
        assert " mac-address 0200.0a01.0001" in interface_block(d2)
    finally:
        d2.close()
