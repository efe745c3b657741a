"""`twin vlink`: options and files to link specs (checked with the manager's own model), the client's
/vlinks calls, and the commands against a fake controller: output, refusals and exit codes."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from controllers.vlink.model import LINK_TYPES, parse_link
from twin import cli, vlinkctl
from twin.controller_client import ControllerClient, ControllerError, ControllerUnreachable
from twin.vlinkctl import VLinkInputError, spec_from_options, specs_from_data, specs_from_file

pytestmark = pytest.mark.unit


# ----- spec_from_options ---------------------------------------------------------------------------


def test_cable_from_options_is_the_api_body():
    spec = spec_from_options("c9", "cable", ["h1:eth1", "h2:eth1"])
    assert spec == {"name": "c9", "type": "cable", "members": ["h1:eth1", "h2:eth1"]}
    assert parse_link(spec).role_of(1) == "b"


def test_roles_vlan_and_description():
    spec = spec_from_options("p1", "p2mp", ["h5:eth2=root", "h2:eth3", "h6:eth3=leaf"], vlan=3050,
                             description="video feed", hub_mode=True)
    assert spec["members"] == [{"endpoint": "h5:eth2", "role": "root"}, "h2:eth3",
                               {"endpoint": "h6:eth3", "role": "leaf"}]
    assert spec["vlan"] == 3050 and spec["hub_mode"] is True and spec["description"] == "video feed"


def test_every_link_type_of_the_example_lab_can_be_given_as_options():
    specs = [
        spec_from_options("cable1", "cable", ["h1:eth1", "h2:eth1"]),
        spec_from_options("vsw1", "switch", ["h1:eth2", "h3:eth1", "h4:eth1"]),
        spec_from_options("hub1", "hub", ["h1:eth3", "h4:eth2", "h6:eth2"], promiscuous=["h6:eth2"]),
        spec_from_options("p2mp1", "p2mp", ["h5:eth2=root", "h2:eth3"], hub_mode=True),
        spec_from_options("res1", "resilient", ["h7:eth2=root", "h8:eth1=primary", "h3:eth3=standby"],
                          revertive=False),
        spec_from_options("clu1", "clustered", ["h8:eth2=root", "h4:eth3", "h5:eth3"]),
        spec_from_options("rep1", "replicated", ["h6:eth4"], tap="clu1", source="h8:eth2"),
        spec_from_options("probe1", "probe", ["c1:eth1"], probe_links=["cable1"], probe_interfaces=["h3:eth1"]),
        spec_from_options("ext1", "external", ["h1:eth4"], external="g2:p4"),
        spec_from_options("ext100", "external", ["h4:eth4"], vlan=100, external="g3:p14", tagged=True),
    ]
    assert sorted({s["type"] for s in specs}) == sorted(LINK_TYPES)
    by = {s["name"]: s for s in specs}
    assert by["hub1"]["members"][2] == {"endpoint": "h6:eth2", "promiscuous": True}
    assert by["res1"]["revertive"] is False
    assert by["rep1"]["tap"] == "clu1" and by["rep1"]["source"] == "h8:eth2"
    assert by["probe1"]["points"] == [{"link": "cable1"}, {"interface": "h3:eth1"}]
    assert by["ext1"]["external"] == {"port": "g2:p4", "tagged": False}
    assert by["ext100"]["external"] == {"port": "g3:p14", "tagged": True} and by["ext100"]["vlan"] == 100
    for s in specs:
        parse_link(s)     # what the controller will parse


def test_type_is_case_insensitive():
    assert spec_from_options("c", "Cable", ["h1:eth1", "h2:eth1"])["type"] == "cable"


@pytest.mark.parametrize("bad, says", [
    ("cabel", "--type 'cabel': unknown link type (did you mean cable?); expected one of cable, switch, hub"),
    ("vpn", "--type 'vpn': unknown link type; expected one of cable, switch"),
])
def test_unknown_type_names_the_option_and_the_types(bad, says):
    with pytest.raises(VLinkInputError) as exc:
        spec_from_options("x", bad, ["h1:eth1", "h2:eth1"])
    assert str(exc.value).startswith(says)


def test_member_without_colon():
    with pytest.raises(VLinkInputError) as exc:
        spec_from_options("c9", "cable", ["h1:eth1", "h2"])
    assert str(exc.value) == ("--member 'h2': no ':' in it; expected node:interface[=role], "
                              "like h1:eth1 or h1:eth1=root")


def test_member_without_colon_but_with_a_role():
    with pytest.raises(VLinkInputError, match=r"--member 'h2=b': no ':' in it"):
        spec_from_options("c9", "cable", ["h1:eth1", "h2=b"])


@pytest.mark.parametrize("text", ["h1:", ":eth1", "1h:eth1", "h1:eth1:x", "h-1:eth1"])
def test_malformed_member(text):
    with pytest.raises(VLinkInputError, match=rf"--member {text!r}: expected node:interface\[=role\]"):
        spec_from_options("c9", "cable", ["h2:eth1", text])


def test_role_the_type_does_not_take():
    with pytest.raises(VLinkInputError) as exc:
        spec_from_options("c9", "cable", ["h1:eth1=root", "h2:eth1"])
    assert str(exc.value) == "--member 'h1:eth1=root': a cable link takes roles a, b; got 'root'"


def test_empty_role():
    with pytest.raises(VLinkInputError, match=r"--member 'h1:eth1=': empty role after '='; a p2mp link takes "
                                              r"roles root, leaf"):
        spec_from_options("p", "p2mp", ["h1:eth1=", "h2:eth1"])


def test_role_counts_come_from_the_model_with_the_field_path():
    with pytest.raises(VLinkInputError) as exc:
        spec_from_options("p", "p2mp", ["h1:eth1=root", "h2:eth1=root", "h3:eth1"])
    assert str(exc.value).startswith("link p: members[1]: a p2mp link has one root; h2:eth1 would be a second root")


def test_missing_roles_and_duplicates():
    with pytest.raises(VLinkInputError, match=r"link r: members: a resilient link needs at least 1 standby"):
        spec_from_options("r", "resilient", ["h1:eth1=root", "h2:eth1=primary"])
    with pytest.raises(VLinkInputError, match=r"members\[1\]: h1:eth1 is listed twice"):
        spec_from_options("s", "switch", ["h1:eth1", "h1:eth1"])


def test_bad_name_and_vlan():
    with pytest.raises(VLinkInputError, match=r"link 9c: name: link name '9c': start with a letter"):
        spec_from_options("9c", "cable", ["h1:eth1", "h2:eth1"])
    with pytest.raises(VLinkInputError, match=r"vlan: VLAN 5000 is outside 1-4094"):
        spec_from_options("c", "cable", ["h1:eth1", "h2:eth1"], vlan=5000)


def test_promiscuous_must_be_a_member_and_only_on_a_hub():
    with pytest.raises(VLinkInputError, match=r"--promiscuous h9:eth1: not one of the --member interfaces "
                                              r"\(h1:eth1, h2:eth1\)"):
        spec_from_options("h", "hub", ["h1:eth1", "h2:eth1"], promiscuous=["h9:eth1"])
    with pytest.raises(VLinkInputError, match=r"--promiscuous 'h9': no ':' in it"):
        spec_from_options("h", "hub", ["h1:eth1", "h2:eth1"], promiscuous=["h9"])
    with pytest.raises(VLinkInputError, match=r"members\[0\].promiscuous: only hub members can be promiscuous"):
        spec_from_options("s", "switch", ["h1:eth1", "h2:eth1"], promiscuous=["h1:eth1"])


def test_options_of_other_types_are_refused_by_field():
    with pytest.raises(VLinkInputError, match=r"hub_mode: only point-to-multipoint links have a hub mode"):
        spec_from_options("c", "cable", ["h1:eth1", "h2:eth1"], hub_mode=True)
    with pytest.raises(VLinkInputError, match=r"tap: a replicated link names the link it taps"):
        spec_from_options("r", "replicated", ["h1:eth1"])
    with pytest.raises(VLinkInputError, match=r"points: a probe needs at least one probe point"):
        spec_from_options("p", "probe", ["c1:eth1"])
    with pytest.raises(VLinkInputError, match=r"external: an external link names its external port"):
        spec_from_options("e", "external", ["h1:eth1"])
    with pytest.raises(VLinkInputError, match=r"vlan: a tagged external link needs a user-assigned VLAN"):
        spec_from_options("e", "external", ["h1:eth1"], external="g3:p14", tagged=True)


def test_tagged_needs_external_and_endpoints_are_checked():
    with pytest.raises(VLinkInputError, match=r"--tagged: needs --external switch:port"):
        spec_from_options("e", "external", ["h1:eth1"], vlan=100, tagged=True)
    with pytest.raises(VLinkInputError, match=r"--external 'g3': no ':' in it"):
        spec_from_options("e", "external", ["h1:eth1"], external="g3")
    with pytest.raises(VLinkInputError, match=r"--probe-interface 'h3': no ':' in it"):
        spec_from_options("p", "probe", ["c1:eth1"], probe_interfaces=["h3"])
    with pytest.raises(VLinkInputError, match=r"--source 'h8': no ':' in it"):
        spec_from_options("r", "replicated", ["h6:eth4"], tap="clu1", source="h8")


# ----- files ---------------------------------------------------------------------------------------


def test_one_spec_named_in_the_file_or_on_the_command_line():
    body = {"type": "cable", "members": ["h1:eth1", "h2:eth1"]}
    assert specs_from_data(body, "c9") == [{**body, "name": "c9"}]
    assert specs_from_data({**body, "name": "c9"}) == [{**body, "name": "c9"}]
    with pytest.raises(VLinkInputError, match=r"f: the link has no name: give NAME"):
        specs_from_data(body, None, "f: ")
    with pytest.raises(VLinkInputError, match=r"the file's link is named 'c9', not 'c8'"):
        specs_from_data({**body, "name": "c9"}, "c8")


def test_mapping_of_links_keeps_the_file_order_and_can_pick_one():
    data = {"vsw2": {"type": "switch", "members": ["h2:eth2", "h3:eth2"]},
            "cable1": {"type": "cable", "members": ["h1:eth1", "h2:eth1"]}}
    assert [s["name"] for s in specs_from_data(data)] == ["vsw2", "cable1"]
    assert [s["name"] for s in specs_from_data(data, "cable1")] == ["cable1"]
    with pytest.raises(VLinkInputError, match=r"no link named 'nope' in it \(links: vsw2, cable1\)"):
        specs_from_data(data, "nope")


def test_bad_file_content():
    with pytest.raises(VLinkInputError, match=r"x.yaml: expected one link spec .* got list"):
        specs_from_data(["h1:eth1"], None, "x.yaml: ")
    with pytest.raises(VLinkInputError, match=r"x.yaml: expected one link spec .* got nothing"):
        specs_from_data(None, None, "x.yaml: ")
    with pytest.raises(VLinkInputError, match=r"c9: expected a link spec .* got str; a single spec needs a 'type'"):
        specs_from_data({"c9": "cable"})
    with pytest.raises(VLinkInputError, match=r"x.yaml: link c9: type: Input should be 'cable'"):
        specs_from_data({"c9": {"type": "cabel", "members": []}}, None, "x.yaml: ")
    with pytest.raises(VLinkInputError, match=r"link c9: members\[1\].endpoint: expected 'node:interface'"):
        specs_from_data({"c9": {"type": "cable", "members": ["h1:eth1", "h2"]}})


def test_files_yaml_and_json(tmp_path: Path):
    y = tmp_path / "links.yaml"
    y.write_text("res1:\n  type: resilient\n  members: [{h7:eth2: root}, {h8:eth1: primary}, {h3:eth3: standby}]\n"
                 "rep1: {type: resilient, members: []}\n")
    with pytest.raises(VLinkInputError, match=rf"{y}: link rep1: members: a resilient link needs at least 1 root"):
        specs_from_file(y)
    assert specs_from_file(y, "res1")[0]["members"][1] == {"h8:eth1": "primary"}
    j = tmp_path / "c9.json"
    j.write_text(json.dumps({"name": "c9", "type": "cable", "members": ["h1:eth1", "h2:eth1"]}))
    assert specs_from_file(j) == [{"name": "c9", "type": "cable", "members": ["h1:eth1", "h2:eth1"]}]
    j.write_text('{"name": "c9",\n "type": }')
    with pytest.raises(VLinkInputError, match=rf"{j}:2: not valid JSON"):
        specs_from_file(j)
    y.write_text("c9:\n  type: cable\n members: [a]\n")
    with pytest.raises(VLinkInputError, match=rf"{y}:3: not valid YAML"):
        specs_from_file(y)
    with pytest.raises(VLinkInputError, match=r"--file .*nope.yaml: no such file"):
        specs_from_file(tmp_path / "nope.yaml")


def test_the_example_lab_section_loads_as_a_file(tmp_path: Path):
    import yaml

    lab = yaml.safe_load(Path(__file__).parents[2].joinpath("labs/vlinks.yaml").read_text())
    f = tmp_path / "all.yaml"
    f.write_text(yaml.safe_dump(lab["vlinks"], sort_keys=False))
    assert [s["name"] for s in specs_from_file(f)] == list(lab["vlinks"])


# ----- the client ----------------------------------------------------------------------------------


def test_client_paths(monkeypatch):
    calls = []
    c = ControllerClient("/nonexistent.sock")
    monkeypatch.setattr(c, "request", lambda method, path, body=None: calls.append((method, path, body)) or {})
    c.vlinks()
    c.vlink("a/b c")
    c.create_vlink({"name": "c9", "type": "cable"})
    c.delete_vlink("c9")
    assert calls == [("GET", "/vlinks", None), ("GET", "/vlinks/a%2Fb%20c", None),
                     ("POST", "/vlinks", {"name": "c9", "type": "cable"}), ("DELETE", "/vlinks/c9", {})]


# ----- the commands, against a fake controller -----------------------------------------------------

SUMMARY = {"name": "res1", "type": "resilient", "vlan": 3005, "id": 6, "cookie": "0x7b00000000000600",
           "members": [{"endpoint": "h7:eth2", "role": "root"}, {"endpoint": "h8:eth1", "role": "primary"},
                       {"endpoint": "h3:eth3", "role": "standby"}],
           "switches": ["g1", "g2", "g3"], "programmed": True, "origin": "lab", "active": "h3:eth3"}
DETAIL = {**SUMMARY, "spec": {"name": "res1", "type": "resilient", "revertive": False,
                              "members": [{"endpoint": "h7:eth2", "role": "root"}]},
          "members": [{"endpoint": "h7:eth2", "role": "root", "switch": "g1", "port": "p8", "up": True},
                      {"endpoint": "h8:eth1", "role": "primary", "switch": "g2", "port": "p3", "up": False},
                      {"endpoint": "h3:eth3", "role": "standby", "switch": "g3", "port": "p8", "up": True}],
          "learned": {"02:aa:bb:cc:dd:ee": "h7:eth2"},
          "rules": {"g1": [{}, {}, {}], "g3": [{}, {}]},
          "history": [{"seq": 1, "time": 1700000000.25, "link": "res1", "event": "created",
                       "detail": "resilient VLAN 3005 (lab)"},
                      {"seq": 9, "time": 1700000100.5, "link": "res1", "event": "cutover",
                       "detail": "h8:eth1 -> h3:eth3 after g2:p3 went down"}],
          "cutovers": [{"link": "res1", "from": "h8:eth1", "to": "h3:eth3", "time": 1700000100.5, "program_ms": 3.2}]}


class FakeClient:
    def __init__(self, fail: dict[str, ControllerError] | None = None) -> None:
        self.fail = fail or {}
        self.created: list[dict[str, Any]] = []

    def _maybe(self, what: str) -> None:
        if what in self.fail:
            raise self.fail[what]

    def vlinks(self):
        self._maybe("list")
        return {"links": [SUMMARY], "grid": {"switches": ["g1", "g2", "g3"], "vlan_block": [3000, 3099]}}

    def vlink(self, name):
        self._maybe("show")
        if name != "res1":
            raise ControllerError(404, f"no link named {name!r} (links: res1)", "GET", f"/vlinks/{name}")
        return DETAIL

    def create_vlink(self, spec):
        if spec["name"] in self.fail:
            raise self.fail[spec["name"]]
        self.created.append(dict(spec))
        return {"name": spec["name"], "type": spec["type"], "vlan": 3010 + len(self.created),
                "members": [{"endpoint": "h1:eth1", "role": "a"}, {"endpoint": "h2:eth1", "role": "b"}],
                "switches": ["g1", "g3"], "programmed": True}

    def delete_vlink(self, name):
        self._maybe("delete")
        return {"ok": True, "deleted": name}


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(cli, "_attach", lambda ref: SimpleNamespace(controller=client, name="vlinks"))
    return client


def run(*args: str):
    return CliRunner().invoke(cli.app, ["vlink", *args])


def test_list_and_show(fake):
    r = run("list")
    assert r.exit_code == 0, r.output
    assert "res1" in r.output and "3005" in r.output and "h3:eth3(standby)*" in r.output
    assert "VLAN block 3000-3099" in r.output
    r = run("list", "--json")
    assert json.loads(r.output)["links"][0]["name"] == "res1"
    r = run("show", "res1")
    assert r.exit_code == 0, r.output
    for text in ("link res1: resilient, VLAN 3005", "non-revertive", "active member: h3:eth3", "g2:p3",
                 "down", "02:aa:bb:cc:dd:ee on h7:eth2", "rules per switch: g1 3, g3 2", "h8:eth1 -> h3:eth3 (3.2 ms",
                 "cutover h8:eth1 -> h3:eth3 after g2:p3 went down", "created resilient VLAN 3005 (lab)"):
        assert text in r.output, text
    assert json.loads(run("show", "res1", "--json").output)["learned"] == DETAIL["learned"]


def test_show_unknown_link_prints_the_controllers_message(fake):
    r = run("show", "nope")
    assert r.exit_code == 2
    assert "error: no link named 'nope' (links: res1)" in r.output


def test_create_from_options_and_file(fake, tmp_path: Path):
    r = run("create", "c9", "--type", "cable", "--member", "h1:eth1", "--member", "h2:eth1")
    assert r.exit_code == 0, r.output
    assert fake.created == [{"name": "c9", "type": "cable", "members": ["h1:eth1", "h2:eth1"]}]
    assert "link c9 created: cable, VLAN 3011" in r.output
    f = tmp_path / "ext.yaml"
    f.write_text("type: external\nvlan: 100\nmembers: [h4:eth4]\nexternal: {port: g3:p14, tagged: true}\n")
    r = run("create", "ext100", "--file", str(f))
    assert r.exit_code == 0, r.output
    assert fake.created[-1]["external"] == {"port": "g3:p14", "tagged": True}


def test_create_bad_input_never_reaches_the_controller(fake, tmp_path: Path):
    r = run("create", "c9", "--type", "cable", "--member", "h1:eth1", "--member", "h2")
    assert r.exit_code == 2 and "error: --member 'h2': no ':' in it" in r.output
    r = run("create", "c9", "--type", "wire", "--member", "h1:eth1")
    assert r.exit_code == 2 and "error: --type 'wire': unknown link type" in r.output
    r = run("create", "c9", "--member", "h1:eth1")
    assert r.exit_code == 2 and "give NAME and --type" in r.output
    f = tmp_path / "c.yaml"
    f.write_text("type: cable\nmembers: [h1:eth1, h2:eth1]\n")
    r = run("create", "c9", "--file", str(f), "--type", "cable", "--vlan", "5")
    assert r.exit_code == 2 and "error: --file holds the whole link; drop --type, --vlan" in r.output
    assert fake.created == []


def test_create_refused_by_the_controller(fake, tmp_path: Path):
    fake.fail["c9"] = ControllerError(409, "link c9: members[0]: h1:eth1 already belongs to link cable1; "
                                           "a node interface carries one virtual link", "POST", "/vlinks")
    r = run("create", "c9", "--type", "cable", "--member", "h1:eth1", "--member", "h2:eth1")
    assert r.exit_code == 2
    assert "error: link c9: members[0]: h1:eth1 already belongs to link cable1" in r.output
    assert "HTTP 409" not in r.output
    f = tmp_path / "two.yaml"
    f.write_text("c8: {type: cable, members: [h1:eth2, h2:eth2]}\nc9: {type: cable, members: [h1:eth1, h2:eth1]}\n")
    r = run("create", "--file", str(f))
    assert r.exit_code == 2 and "(created before it: c8)" in r.output


def test_delete_and_its_refusals(fake):
    r = run("delete", "res1")
    assert r.exit_code == 0 and "link res1 deleted" in r.output
    fake.fail["delete"] = ControllerError(409, "link clu1 is copied by rep1; delete it first", "DELETE", "/vlinks/clu1")
    r = run("delete", "clu1")
    assert r.exit_code == 2 and "error: link clu1 is copied by rep1; delete it first" in r.output


def test_lab_without_a_grid_and_unreachable_controller(fake):
    fake.fail["list"] = ControllerError(404, "no such API path: GET /vlinks", "GET", "/vlinks")
    r = run("list")
    assert r.exit_code == 2 and "has no virtual link manager" in r.output
    fake.fail["list"] = ControllerUnreachable(None, "controller API not reachable at /x/api.sock (No such file)")
    r = run("list")
    assert r.exit_code == 1 and "controller API not reachable" in r.output


def test_members_text_marks_the_active_member():
    assert vlinkctl.members_text(SUMMARY) == "h7:eth2(root) h8:eth1(primary) h3:eth3(standby)*"
