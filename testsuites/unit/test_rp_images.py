"""The `rp` image catalogue: image lookup, versioned features, command templates, the
transformation function table (one level at a time, up and down) and the don't-care lists."""
from __future__ import annotations

import pytest

from emulators.rp import images
from emulators.rp.images import (DCL, FEATURES, IMAGES, TFT, NotTransformable, Rewrite, UnknownImage, arg_spec,
                                 dcl_of, features_at, fill, image, image_at, in_dcl, match_template, normalize,
                                 strip_no, tft_of)

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------------------------------------- catalogue


def test_catalogue_has_four_levels_in_order():
    assert [(i.version, i.level) for i in IMAGES] == [
        ("15.0(1)SY", 1), ("15.1(2)SY", 2), ("15.2(1)SY", 3), ("15.4(1)SY", 4)]
    assert images.DEFAULT_IMAGE == "15.2(1)SY"
    assert [image_at(n).version for n in (1, 2, 3, 4)] == [i.version for i in IMAGES]
    assert image("15.4(1)SY").train == "15.4"


@pytest.mark.parametrize("im", IMAGES, ids=lambda i: i.version)
def test_image_is_found_by_version_file_name_and_boot_path(im):
    assert image(im.version) is im
    assert image(im.name) is im
    assert image(f"bootflash:{im.name}") is im


@pytest.mark.parametrize("bad", ["16.1(1)SY", "15.2", "", "bootflash:15.2(1)SY"])
def test_unknown_image_names_every_known_version(bad):
    with pytest.raises(UnknownImage) as exc:
        image(bad)
    msg = str(exc.value)
    assert repr(bad) in msg
    assert "known: 15.0(1)SY, 15.1(2)SY, 15.2(1)SY, 15.4(1)SY" in msg
    assert isinstance(exc.value, ValueError)


def test_features_per_level():
    def syntaxes(level):
        return {f.syntax for f in features_at(level)}

    assert "logging <host:ipv4>" in syntaxes(1) and "logging host <host:ipv4>" not in syntaxes(1)
    assert "logging host <host:ipv4>" in syntaxes(2) and "license boot level <level:word>" in syntaxes(2)
    assert "logging server <host:ipv4>" in syntaxes(3) and "ip ssh time-out <seconds:int:1-300>" in syntaxes(3)
    assert "scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>" in syntaxes(2)
    assert "scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>" not in syntaxes(3)
    assert not any(s.startswith("ip ssh") for s in syntaxes(4))          # 15.4 dropped it
    assert "platform hardware profile <name:word>" in syntaxes(4)
    assert not any(s.startswith("platform") for lvl in (1, 2, 3) for s in syntaxes(lvl))
    # the unchanged commands are everywhere
    for lvl in (1, 2, 3, 4):
        assert {"ntp server <peer:ipv4>", "snmp-server location <text:line>"} <= syntaxes(lvl)


def test_feature_keywords_no_syntax_and_render():
    ssh = next(f for f in FEATURES if f.syntax.startswith("ip ssh timeout"))
    assert ssh.keywords == "ip ssh timeout"
    assert ssh.no_syntax == "no ip ssh timeout [<seconds:int:1-120>]"
    assert ssh.render({"seconds": 42}) == "ip ssh timeout 42"
    log3 = next(f for f in FEATURES if f.syntax.startswith("logging server"))
    assert log3.multi and log3.no_syntax == "no logging server <host:ipv4>"
    sched = next(f for f in FEATURES if f.syntax.startswith("scheduler"))
    assert sched.render({"busy": 4000, "idle": 2000}) == "scheduler allocate 4000 2000"
    flow = next(f for f in FEATURES if f.syntax == "ip flow ingress")
    assert flow.mode == "config-if" and flow.no_syntax == "no ip flow ingress"


# ---------------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize("template, expected", [
    ("logging server <host:ipv4>", "logging server <ipv4>"),
    ("ip ssh timeout <seconds:int:1-120>", "ip ssh timeout <int:1-120>"),
    ("scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>",
     "scheduler allocate <int:3000-60000> <int:1000-4000>"),
    ("snmp-server location <text:line>", "snmp-server location <line>"),
    ("ip ssh timeout <int:1-120>", "ip ssh timeout <int:1-120>"),        # already normalized
    ("logging <ipv4>", "logging <ipv4>"),
    ("spanning-tree portfast edge default", "spanning-tree portfast edge default"),
])
def test_normalize_drops_argument_names_and_is_idempotent(template, expected):
    assert normalize(template) == expected
    assert normalize(normalize(template)) == expected


def test_arg_spec_named_and_unnamed():
    assert arg_spec("<host:ipv4>") == "ipv4"
    assert arg_spec("<ipv4>") == "ipv4"
    assert arg_spec("<int:1-120>") == "int:1-120"
    assert arg_spec("<seconds:int:1-120>") == "int:1-120"
    assert arg_spec("<level:word>") == "word"


@pytest.mark.parametrize("template, line, args", [
    ("logging server <host:ipv4>", "logging server 10.0.0.1", ["10.0.0.1"]),
    ("logging server <ipv4>", "logging server 10.0.0.1", ["10.0.0.1"]),          # normalized template
    ("logging server <host:ipv4>", "logging server 10.0.0.300", None),           # not an address
    ("logging server <host:ipv4>", "logging server host1", None),
    ("logging server <host:ipv4>", "logging server", None),                      # too short
    ("logging server <host:ipv4>", "logging server 10.0.0.1 extra", None),       # too long
    ("logging server <host:ipv4>", "logging host 10.0.0.1", None),               # another keyword
    ("ip ssh timeout <seconds:int:1-120>", "ip ssh timeout 120", ["120"]),
    ("ip ssh timeout <seconds:int:1-120>", "ip ssh timeout 121", None),          # out of range
    ("ip ssh timeout <seconds:int:1-120>", "ip ssh timeout 0", None),
    ("ip ssh timeout <seconds:int:1-120>", "ip ssh timeout ten", None),
    ("ip ssh time-out <int:1-300>", "ip ssh time-out 300", ["300"]),
    ("scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>", "scheduler allocate 4000 2000",
     ["4000", "2000"]),
    ("scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>", "scheduler allocate 2000 4000", None),
    ("license boot level <level:word>", "license boot level adventerprise", ["adventerprise"]),
    ("snmp-server location <text:line>", "snmp-server location rack 4 row 2", ["rack 4 row 2"]),
    ("ip flow ingress", "ip flow ingress", []),
    ("ip flow ingress", "ip flow egress", None),
])
def test_match_template_typed_arguments(template, line, args):
    assert match_template(template, line) == args


def test_strip_no():
    assert strip_no("no logging 10.0.0.1") == (True, "logging 10.0.0.1")
    assert strip_no("  no ip flow ingress ") == (True, "ip flow ingress")
    assert strip_no("no") == (True, "")
    assert strip_no("ntp server 1.2.3.4") == (False, "ntp server 1.2.3.4")
    assert strip_no("notify x") == (False, "notify x")      # a word starting with "no" is not `no`


def test_fill_puts_arguments_in_order():
    assert fill("scheduler allocate <int:3000-60000> <int:1000-4000>", ["4000", "2000"]) == \
        "scheduler allocate 4000 2000"
    assert fill("ip flow ingress", []) == "ip flow ingress"


# ---------------------------------------------------------------------------------------------- TFT


def rewrite(prefix: str) -> Rewrite:
    return next(r for r in TFT if r.new.startswith(prefix))


# (the rewrite, by the start of its new form) -> a line of the older level and of the newer one
ONE_LEVEL = [
    ("logging host", 2, "logging 10.1.0.10", "logging host 10.1.0.10"),
    ("logging server", 3, "logging host 10.1.0.10", "logging server 10.1.0.10"),
    ("ip ssh time-out", 3, "ip ssh timeout 100", "ip ssh time-out 100"),
    ("spanning-tree", 3, "spanning-tree portfast default", "spanning-tree portfast edge default"),
    ("ip flow", 3, "ip route-cache flow", "ip flow ingress"),
    # `no` forms transform with their form
    ("logging host", 2, "no logging 10.1.0.10", "no logging host 10.1.0.10"),
    ("logging server", 3, "no logging host 10.1.0.10", "no logging server 10.1.0.10"),
    ("ip ssh time-out", 3, "no ip ssh timeout", "no ip ssh time-out"),
    ("ip ssh time-out", 3, "no ip ssh timeout 30", "no ip ssh time-out 30"),
    ("spanning-tree", 3, "no spanning-tree portfast default", "no spanning-tree portfast edge default"),
    ("ip flow", 3, "no ip route-cache flow", "no ip flow ingress"),
]


@pytest.mark.parametrize("which, level, old, new", ONE_LEVEL, ids=[f"{o}->{n}" for _, _, o, n in ONE_LEVEL])
def test_each_rewrite_moves_one_level_up_and_down(which, level, old, new):
    r = rewrite(which)
    assert r.level == level
    assert r.up(old) == new
    assert r.down(new) == old
    # a rewrite only applies to its own side
    assert r.up(new) is None
    assert r.down(old) is None


def test_rewrites_chain_but_do_not_skip_levels():
    two, three = rewrite("logging host"), rewrite("logging server")
    assert three.down(two.up("logging 10.0.0.1")) is None          # L2 form is not L3's `new`
    assert three.up(two.up("logging 10.0.0.1")) == "logging server 10.0.0.1"
    assert two.down(three.down("logging server 10.0.0.1")) == "logging 10.0.0.1"
    assert two.down("logging server 10.0.0.1") is None               # one level at a time


def test_unrelated_lines_are_not_rewritten():
    for r in TFT:
        for line in ("hostname rp1", "ntp server 10.0.0.1", "logging buffered 4096", "ip ssh version 2"):
            assert r.up(line) is None and r.down(line) is None, (r, line)


def test_ssh_time_out_down_is_lossy_above_120():
    r = rewrite("ip ssh time-out")
    assert r.down("ip ssh time-out 120") == "ip ssh timeout 120"
    assert r.down("ip ssh time-out 1") == "ip ssh timeout 1"
    for value in (121, 200, 300):
        with pytest.raises(NotTransformable) as exc:
            r.down(f"ip ssh time-out {value}")
        assert f"'ip ssh time-out {value}'" in str(exc.value) and "before 15.2(1)SY" in str(exc.value)
    # going up never loses anything
    assert r.up("ip ssh timeout 120") == "ip ssh time-out 120"


def test_rewrite_covers_its_dump_entries():
    ssh = rewrite("ip ssh time-out")
    for t in ("ip ssh timeout <int:1-120>", "ip ssh time-out <int:1-300>", "no ip ssh timeout",
              "no ip ssh time-out", "no ip ssh time-out <int:1-300>"):
        assert ssh.covers(t), t
    assert not ssh.covers("ip ssh version <int:1-2>")
    assert not ssh.covers("ip ssh")
    flow = rewrite("ip flow")
    assert flow.covers("ip flow ingress") and flow.covers("no ip route-cache flow")
    assert not flow.covers("ip flow")


def test_tft_of_carries_its_own_and_every_lower_level():
    assert tft_of(1) == []
    assert [r.new for r in tft_of(2)] == ["logging host <host:ipv4>"]
    assert len(tft_of(3)) == len(TFT) == 5
    assert tft_of(4) == list(TFT)                  # 15.4 registers no rewrite of its own
    assert all(r.level <= 3 for r in tft_of(3))


# ---------------------------------------------------------------------------------------------- DCL


def test_dcl_per_image():
    assert dcl_of(1) == ()
    assert dcl_of(2) == ("license boot level <word>",)
    both = {"license boot level <word>", "scheduler allocate <int:3000-60000> <int:1000-4000>"}
    assert both <= set(dcl_of(3)) and both <= set(dcl_of(4))
    assert DCL[3] == dcl_of(3)
    # every entry of a list is a normalized template (what dumps hold)
    for entries in DCL.values():
        assert all(normalize(t) == t for t in entries)


@pytest.mark.parametrize("template, level, expected", [
    ("license boot level <word>", 2, True),
    ("no license boot level", 2, True),                 # the `no` form without its argument
    ("no license boot level <word>", 3, True),
    ("license boot level <word>", 1, False),            # 15.0 lists nothing
    ("scheduler allocate <int:3000-60000> <int:1000-4000>", 2, False),
    ("scheduler allocate <int:3000-60000> <int:1000-4000>", 3, True),
    ("no scheduler allocate", 4, True),
    ("license boot", 3, False),                         # a prefix of words is not the command
    ("license boot level", 3, True),                    # ... but the keywords of a command are
    ("logging server <ipv4>", 3, False),
    ("platform hardware profile <word>", 4, False),     # the reason 15.4 is incompatible
])
def test_in_dcl(template, level, expected):
    assert in_dcl(template, dcl_of(level)) is expected


def test_in_dcl_accepts_any_collection():
    dcl = ["license boot level <word>"]
    assert in_dcl("license boot level <word>", dcl) and in_dcl("license boot level <word>", set(dcl))
    assert not in_dcl("license boot level <word>", ())
