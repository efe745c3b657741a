"""Lab validation of redundant `rp` units: pairs that name each other, one primary and one
secondary, known images, cabled alike; every problem names the field path."""
from __future__ import annotations

from pathlib import Path

import pytest

from twin.devconfig import redundancy_hardware
from twin.errors import LabFileError
from twin.lab import load_lab, parse_lab
from lab_problems import problems, with_path

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

PAIR = """\
name: rp
nodes:
  s1: {kind: switch}
  rpa:
    kind: rp
    version: 15.2(1)SY
    config: {peer: rpb, unit: primary}
  rpb:
    kind: rp
    version: 15.1(2)SY
    config: {peer: rpa, unit: secondary}
  h1: {}
links:
  - endpoints: [rpa:eth1, s1:eth1]
  - endpoints: [rpb:eth1, s1:eth2]
  - endpoints: [h1:eth1, s1:eth3]
"""
RPA_CONFIG = "config: {peer: rpb, unit: primary}"
RPB_CONFIG = "config: {peer: rpa, unit: secondary}"


def test_a_pair_that_names_each_other_loads():
    model = parse_lab(PAIR, "lab.yaml")
    assert model.spec.kind_of("rpa") == model.spec.kind_of("rpb") == "rp"
    a = redundancy_hardware(model, "rpa", "t-")
    b = redundancy_hardware(model, "rpb", "t-")
    assert a is not None and b is not None
    assert (a["unit"], b["unit"]) == ("primary", "secondary")
    assert a["pair"] == b["pair"] and a["secret"] == b["secret"] and a["port"] == b["port"]
    assert a["peer_address"] == str(model.plan.mgmt["rpb"].ip)
    assert b["peer_address"] == str(model.plan.mgmt["rpa"].ip)
    assert redundancy_hardware(model, "h1", "t-") is None


def test_every_image_of_the_catalogue_is_accepted():
    for version in ("15.0(1)SY", "15.1(2)SY", "15.2(1)SY", "15.4(1)SY"):
        parse_lab(PAIR.replace("version: 15.1(2)SY", f"version: {version}"), "lab.yaml")


def test_the_shipped_configsync_lab_validates():
    model = load_lab(ROOT / "labs" / "configsync.yaml")
    rps = sorted(n for n in model.spec.nodes if model.spec.kind_of(n) == "rp")
    assert rps == ["rpa", "rpb"]
    assert model.spec.nodes["rpa"].config["peer"] == "rpb" and model.spec.nodes["rpb"].config["peer"] == "rpa"


def test_missing_peer():
    found = problems(PAIR.replace(RPA_CONFIG, "config: {unit: primary}"))
    hits = with_path(found, "nodes.rpa.config.peer")
    assert any("needs its peer unit" in p for p in hits), hits
    assert all("nodes.rpa.config.peer" in p for p in found), found
    assert found[0].startswith("lab.yaml:7: nodes.rpa.config.peer: "), found


def test_peer_that_does_not_name_back():
    rpc = "  rpc:\n    kind: rp\n    version: 15.2(1)SY\n    config: {peer: rpb, unit: primary}\n"
    text = PAIR.replace(RPB_CONFIG, "config: {peer: rpc, unit: secondary}").replace("  h1: {}\n", rpc + "  h1: {}\n")
    text += "  - endpoints: [rpc:eth1, s1:eth4]\n"
    found = problems(text)
    hits = with_path(found, "nodes.rpb.config.peer")
    assert any("rpb must name rpa as its peer (rpa names rpb)" in p for p in hits), hits


def test_peer_that_is_not_an_rp_node_or_itself():
    for peer in ("h1", "s1", "nowhere", "rpa"):
        found = problems(PAIR.replace(RPA_CONFIG, f"config: {{peer: {peer}, unit: primary}}"))
        hits = with_path(found, "nodes.rpa.config.peer")
        assert any(f"peer {peer!r} is not another rp node of this lab" in p for p in hits), (peer, hits)


def test_both_units_primary():
    found = problems(PAIR.replace("unit: secondary", "unit: primary"))
    hits = with_path(found, "nodes.rpa.config.unit")
    assert any("both primary" in p and "one must be primary, one secondary" in p for p in hits), hits
    assert all("config.unit" in p for p in found), found


def test_unit_must_be_primary_or_secondary():
    found = problems(PAIR.replace("unit: secondary", "unit: backup"))
    hits = with_path(found, "nodes.rpb.config.unit")
    assert any("unit must be primary or secondary, not 'backup'" in p for p in hits), hits


def test_unknown_version_names_the_known_images():
    found = problems(PAIR.replace("version: 15.1(2)SY", "version: 16.1(1)SY"))
    assert len(found) == 1, found
    msg = with_path(found, "nodes.rpb.version")[0]
    assert msg.startswith("lab.yaml:10: nodes.rpb.version: ")
    assert "unknown image version '16.1(1)SY'" in msg
    assert "known: 15.0(1)SY, 15.1(2)SY, 15.2(1)SY, 15.4(1)SY" in msg


def test_units_cabled_differently():
    found = problems(PAIR.replace("[rpb:eth1, s1:eth2]", "[rpb:eth2, s1:eth2]"))
    assert len(found) == 1, found
    msg = with_path(found, "nodes.rpa")[0]
    assert "rpa and its peer rpb must be cabled alike" in msg
    assert "rpa has ['eth1'], rpb has ['eth2']" in msg


def test_unknown_rp_setting():
    found = problems(PAIR.replace(RPB_CONFIG, "config: {peer: rpa, unit: secondary, colour: red}"))
    msg = with_path(found, "nodes.rpb.config")[0]
    assert "unknown setting(s) colour" in msg and "peer" in msg and "secret" in msg


def test_rp_units_need_the_management_network():
    found = problems(PAIR + "mgmt: {enabled: false}\n")
    assert any("enable mgmt" in p for p in with_path(found, "nodes.rpa")), found


@pytest.mark.parametrize("peer", ["[rpb]", "{name: rpb}"])
def test_peer_that_is_not_a_name(peer):
    found = problems(PAIR.replace(RPA_CONFIG, f"config: {{peer: {peer}, unit: primary}}"))
    with_path(found, "nodes.rpa.config.peer")


def test_implicit_unit_clashing_with_an_explicit_one():
    text = PAIR.replace(RPA_CONFIG, "config: {peer: rpb}").replace("unit: secondary", "unit: primary")
    try:
        model = parse_lab(text, "lab.yaml")
    except LabFileError as exc:
        assert "nodes.rpa.config.unit" in str(exc) and "both primary" in str(exc), exc
        return
    units = {redundancy_hardware(model, n, "t-")["unit"] for n in ("rpa", "rpb")}  # type: ignore[index]
    assert units == {"primary", "secondary"}, units


def test_units_of_a_pair_with_different_secrets():
    text = PAIR.replace(RPA_CONFIG, "config: {peer: rpb, unit: primary, secret: one}").replace(
        RPB_CONFIG, "config: {peer: rpa, unit: secondary, secret: two}")
    found = problems(text)
    assert any("secret" in p for p in found), found
