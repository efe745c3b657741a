"""Lab file validation: each kind of bad input gets its own clear message with file, line and path."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.errors import LabFileError
from twin.lab import load_lab, parse_lab

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
nodes:
  s1: {kind: switch}
  r1: {kind: router}
  h1: {}
  h2: {}
links:
  - endpoints: [r1:eth1, s1:eth1]
  - endpoints: [h1:eth1, s1:eth2]
  - endpoints: [h2:eth1, s1:eth3]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(LabFileError) as exc:
        parse_lab(text, "lab.yaml")
    return [str(p) for p in exc.value.problems]


def one(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_good_lab_parses_and_adds_the_station():
    m = parse_lab(GOOD, "lab.yaml")
    assert set(m.spec.nodes) == {"s1", "r1", "h1", "h2", "mgmt"}
    assert m.spec.switches() == ["s1"]


def test_unknown_node_in_link_names_line_path_and_known_nodes():
    msg = one(GOOD.replace("[h2:eth1, s1:eth3]", "[h9:eth1, s1:eth3]"))
    assert msg.startswith("lab.yaml:10: links[2].endpoints[0]:"), msg
    assert "unknown node 'h9'" in msg and "s1, r1, h1, h2" in msg


def test_duplicate_node_name():
    msg = one(GOOD.replace("  h2: {}\n", "  h2: {}\n  h1: {kind: router}\n"))
    assert "lab.yaml:7: nodes.h1: duplicate name 'h1' (first defined at line 5)" == msg


def test_interface_name_too_long_for_linux():
    msg = one(GOOD.replace("h1:eth1", "h1:averyveryverylongname"))
    assert "links[1].endpoints[0]" in msg and "Linux allows 15" in msg


def test_switch_port_name_too_long_with_prefix():
    text = GOOD.replace("s1", "sp1").replace("sp1:eth3", "sp1:eth12345")
    msg = one(text)
    assert "links[2].endpoints[1]" in msg and "too long for a Linux interface" in msg


def test_switch_name_too_long_for_a_bridge():
    text = GOOD.replace("s1", "switch_abcd")
    found = problems(text)
    assert any("nodes.switch_abcd:" in p and "too long for a Linux interface" in p for p in found), found


@pytest.mark.parametrize("vlan", [0, 4095, 5000])
def test_vlan_out_of_range(vlan):
    msg = one(GOOD.replace("[h1:eth1, s1:eth2]", f"[h1:eth1, s1:eth2]\n    vlan: {vlan}"))
    assert f"links[1].vlan: VLAN {vlan} is outside 1-4094" in msg and msg.startswith("lab.yaml:10:")


def test_vlan_without_a_switch():
    msg = one(GOOD + "  - endpoints: [r1:eth2, h1:eth2]\n    vlan: 10\n")
    assert "links[3].vlan" in msg and "needs a switch" in msg


def test_address_clash():
    text = GOOD.replace("  h1: {}", "  h1: {interfaces: {eth1: {ipv4: 10.1.0.5/24}}}").replace(
        "  h2: {}", "  h2: {interfaces: {eth1: {ipv4: 10.1.0.5/24}}}")
    msg = one(text)
    assert "nodes.h2.interfaces.eth1.ipv4" in msg and "address clash: 10.1.0.5 is also given to h1:eth1" in msg


def test_endpoint_used_twice_and_bad_endpoint_format():
    assert "already used by links[1]" in one(GOOD + "  - endpoints: [h1:eth1, s1:eth4]\n")
    assert "expected 'node:interface'" in one(GOOD.replace("[h2:eth1, s1:eth3]", "[h2eth1, s1:eth3]"))


def test_unknown_field_and_kind_and_missing_name():
    assert "unknown field 'bogus'" in one(GOOD.replace("  h1: {}", "  h1: {bogus: 1}"))
    assert "unknown kind 'routr'" in one(GOOD.replace("kind: router", "kind: routr"))
    assert "name: required field is missing" in one(GOOD.replace("name: t\n", ""))


def test_every_problem_is_reported_not_just_the_first():
    text = GOOD.replace("[h2:eth1, s1:eth3]", "[h9:eth1, s1:eth3]") + "  - endpoints: [h1:eth1, s1:eth9]\n"
    assert len(problems(text)) == 2


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in one("name: [unclosed\n")
    with pytest.raises(LabFileError) as exc:
        load_lab(tmp_path / "nope.yaml")
    assert "cannot read lab file" in str(exc.value)


def test_group_member_unknown():
    msg = one(GOOD + "groups:\n  pool: {type: pool, members: [h1, h7]}\n")
    assert "groups.pool.members[1]: unknown node 'h7'" in msg


def test_cli_validate_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("h2:eth1", "h9:eth1"))
    res = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2, res
    assert f"{bad}:10: links[2].endpoints[0]: unknown node 'h9'" in res.stderr
    ok = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(ROOT / "labs/default.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "ok (12 nodes, 12 links)" in ok.stdout


def test_cli_up_with_bad_file_starts_nothing(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("vlan", "x") + "  - endpoints: [h1:eth1, s1:eth4]\n")
    monkeypatch.setenv("TWIN_STATE_DIR", str(tmp_path / "state"))
    res = subprocess.run([sys.executable, "-m", "twin.cli", "up", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "nothing started" in res.stderr
    assert list((tmp_path / "state" / "labs").iterdir()) == [] if (tmp_path / "state" / "labs").exists() else True


def test_json_schema_export():
    res = subprocess.run([sys.executable, "-m", "twin.cli", "schema"], capture_output=True, text=True)
    schema = json.loads(res.stdout)
    assert "nodes" in schema["properties"] and "links" in schema["properties"]


def test_every_lab_in_labs_dir_validates():
    for f in sorted((ROOT / "labs").glob("*.yaml")):
        load_lab(f)


def test_yaml_merge_keys_share_node_settings_and_local_keys_win():
    model = parse_lab("""
name: merge
nodes:
  s1: {kind: switch}
  r1: &rtr {kind: router, version: "15.2(4)", routes: [{to: default, via: 10.0.0.9}]}
  r2: {<<: *rtr, version: "16.9(1)"}
links:
  - endpoints: [r1:eth1, s1:eth1]
  - endpoints: [r2:eth1, s1:eth2]
""")
    r2 = model.spec.nodes["r2"]
    assert r2.kind == "router" and r2.version == "16.9(1)" and str(r2.routes[0].via) == "10.0.0.9"
    assert "`<<:` must merge a mapping" in one("name: m\nnodes:\n  h1: {<<: 5}\n")


def test_startup_config_lands_in_the_initial_config_and_needs_a_device_cli():
    from twin.devconfig import initial_config

    model = parse_lab("""
name: sc
nodes:
  s1: {kind: switch}
  r1:
    kind: router
    startup-config: |
      radius-server host 10.1.0.11 key k
      end
links:
  - endpoints: [r1:eth1, s1:eth1]
""")
    text = initial_config(model, "r1")
    assert "radius-server host 10.1.0.11 key k\n!\nend\n" in text and text.count("end\n") == 1
    assert "kind 'host' has no device CLI" in one("name: sc\nnodes:\n  h1: {startup-config: 'hostname x'}\n")
