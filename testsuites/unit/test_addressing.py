"""Address plan: pools fill what the file leaves out, explicit addresses win, gateways follow routers."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from twin.errors import LabFileError
from twin.lab import load_lab, parse_lab

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_default_lab_plan():
    m = load_lab(ROOT / "labs/default.yaml")
    a = {f"{n}:{i}": str(v) for (n, i), v in m.plan.addresses.items()}
    assert a["r1:eth1"] == "10.10.0.1/24" and a["r2:eth1"] == "10.10.0.2/24"
    assert a["h1:eth1"] == "10.10.0.11/24" and a["h4:eth1"] == "10.10.1.11/24"
    assert a["r1:eth3"] == "10.255.0.1/30" and a["r2:eth3"] == "10.255.0.2/30"
    assert str(m.plan.gateways["h1"]) == "10.10.0.1" and str(m.plan.gateways["srv1"]) == "10.10.1.1"
    assert "r1" not in m.plan.gateways  # routers route, they get no default gateway
    assert str(m.plan.mgmt["mgmt"]) == "172.20.0.1/24"
    ips = [v.ip for v in m.plan.addresses.values()] + [v.ip for v in m.plan.mgmt.values()]
    assert len(ips) == len(set(ips)), "no two interfaces share an address"


LAB = """\
name: t
nodes:
  s1: {kind: switch}
  s2: {kind: switch}
  r1: {kind: router}
  h1: {}
  h2: {}
  h3: {gateway: r1}
  h4: {interfaces: {eth1: {ipv4: 192.168.7.9/24}}}
links:
  - endpoints: [r1:eth1, s1:eth1]
  - endpoints: [h1:eth1, s1:eth2]
  - endpoints: [h2:eth1, s1:eth3]
    vlan: 20
  - endpoints: [s1:eth9, s2:eth9]
  - endpoints: [h3:eth1, s2:eth1]
  - endpoints: [r1:eth2, s2:eth2]
    vlan: 20
  - endpoints: [r1:eth3, h4:eth1]
"""


def test_segments_span_trunks_and_split_by_vlan():
    m = parse_lab(LAB)
    seg = {s.key: sorted(s.members) for s in m.plan.segments}
    assert seg["lan:s1"] == [("h1", "eth1"), ("h3", "eth1"), ("r1", "eth1")]
    assert seg["lan:s1:vlan20"] == [("h2", "eth1"), ("r1", "eth2")]
    addr = m.plan.addresses
    assert addr[("h3", "eth1")].network == addr[("r1", "eth1")].network
    assert addr[("h2", "eth1")].network == addr[("r1", "eth2")].network != addr[("h1", "eth1")].network


def test_explicit_address_sets_the_segment_subnet_and_wins():
    m = parse_lab(LAB)
    assert str(m.plan.addresses[("h4", "eth1")]) == "192.168.7.9/24"
    assert m.plan.addresses[("r1", "eth3")].network == ipaddress.IPv4Network("192.168.7.0/24")
    assert str(m.plan.gateways["h4"]) == str(m.plan.addresses[("r1", "eth3")].ip)


def test_trunk_without_the_vlan_splits_the_segment():
    m = parse_lab(LAB.replace("h3: {gateway: r1}", "h3: {}").replace("  - endpoints: [s1:eth9, s2:eth9]\n", "  - endpoints: [s1:eth9, s2:eth9]\n    trunk: [30]\n"))
    keys = {s.key for s in m.plan.segments}
    assert {"lan:s1", "lan:s2", "lan:s1:vlan20", "lan:s2:vlan20"} <= keys


def test_two_subnets_on_one_segment_is_an_error():
    text = LAB.replace("  h1: {}", "  h1: {interfaces: {eth1: {ipv4: 10.9.0.5/24}}}").replace(
        "  r1: {kind: router}", "  r1: {kind: router, interfaces: {eth1: {ipv4: 10.8.0.1/24}}}")
    with pytest.raises(LabFileError) as exc:
        parse_lab(text, "x.yaml")
    assert "given different subnets" in str(exc.value)


def test_gateway_that_shares_no_subnet():
    text = LAB.replace("  h1: {}", "  h1: {gateway: h2}")
    with pytest.raises(LabFileError) as exc:
        parse_lab(text, "x.yaml")
    assert "nodes.h1.gateway: h2 shares no subnet with h1" in str(exc.value)
