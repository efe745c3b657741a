"""Config sync decisions between images, without I/O: negotiation over the real CLI dumps of every
pair of images, the Active's per-line outcome (sync / transform down / don't-care / policy), the
Standby's upgrade, and a property: whatever syncs losslessly comes back unchanged."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.rp import images
from emulators.rp.clidump import TemplateMatcher, cli_dump
from emulators.rp.configsync import (LineSync, Negotiation, config_set, downgrade_text, negotiate, pair_dcl,
                                     pair_tft, to_level, upgrade, verify)
from emulators.rp.images import Rewrite, features_at
from emulators.rp.unit import RpUnit, grammar

pytestmark = pytest.mark.unit

LEVELS = (1, 2, 3, 4)
DUMPS: dict[int, list[str]] = {lvl: cli_dump(grammar(RpUnit, lvl)) for lvl in LEVELS}
MATCHERS: dict[int, TemplateMatcher] = {lvl: TemplateMatcher(DUMPS[lvl]) for lvl in LEVELS}
PAIRS = [(a, s) for a in LEVELS for s in LEVELS]


def neg(a: int, s: int) -> Negotiation:
    return negotiate(DUMPS[a], DUMPS[s], a, s)


_SYNCS: dict[tuple[int, int], LineSync] = {}


def line_sync(a: int, s: int) -> LineSync:
    if (a, s) not in _SYNCS:
        _SYNCS[(a, s)] = LineSync(neg(a, s), DUMPS[a], DUMPS[s])
    return _SYNCS[(a, s)]


# ---------------------------------------------------------------------------------------------- dumps


@pytest.mark.parametrize("level", LEVELS)
def test_dump_is_sorted_unique_normalized_and_versioned(level):
    dump = DUMPS[level]
    assert dump == sorted(set(dump))
    assert all(images.normalize(t) == t for t in dump)
    assert "end" not in dump and "exit" not in dump             # navigation is not configuration
    for f in images.FEATURES:
        assert (images.normalize(f.syntax) in dump) is f.at(level), f.syntax
    # the router's own commands are in every image
    assert "hostname <word>" in dump or any(t.startswith("hostname ") for t in dump)


# ---------------------------------------------------------------------------------------------- negotiate


def _compat_case(a: int, s: int):
    marks = []
    return pytest.param(a, s, id=f"L{a}->L{s}", marks=marks)


@pytest.mark.parametrize("a, s", [_compat_case(a, s) for a, s in PAIRS])
def test_compatibility_matrix(a, s):
    n = neg(a, s)
    expected = a == s or 4 not in (a, s)
    assert n.compatible is expected, (n.sdl_unregistered, n.adl_verdicts)
    assert (n.reason() == "") is expected
    if not expected:
        assert n.reason().startswith("images incompatible: no transformation registered for ")


def test_same_image_has_no_diff_lists():
    for lvl in LEVELS:
        n = neg(lvl, lvl)
        assert n.adl == n.sdl == [] and n.adl_verdicts == {} and n.compatible


def test_lists_l3_active_l1_standby():
    n = neg(3, 1)
    assert n.active_level == 3 and n.standby_level == 1
    assert set(n.adl) == set(DUMPS[3]) - set(DUMPS[1])
    assert set(n.sdl) == set(DUMPS[1]) - set(DUMPS[3])
    v = n.adl_verdicts
    assert set(v) == set(n.adl)
    assert v["logging server <ipv4>"] == "transform"
    assert v["no logging server <ipv4>"] == "transform"
    assert v["ip ssh time-out <int:1-300>"] == "transform"
    assert v["ip flow ingress"] == "transform"
    assert v["spanning-tree portfast edge default"] == "transform"
    assert v["license boot level <word>"] == "dont-care"
    assert v["no license boot level"] == "dont-care"
    assert "logging <ipv4>" in n.sdl and "ip route-cache flow" in n.sdl
    assert "scheduler allocate <int:3000-60000> <int:1000-4000>" in n.sdl      # obsolete, on L3's DCL
    assert n.sdl_unregistered == []


def test_lists_l1_active_l3_standby():
    n = neg(1, 3)
    v = n.adl_verdicts
    assert v["logging <ipv4>"] == "transform" and v["ip route-cache flow"] == "transform"
    assert v["ip ssh timeout <int:1-120>"] == "transform"
    assert v["scheduler allocate <int:3000-60000> <int:1000-4000>"] == "dont-care"
    assert {"logging server <ipv4>", "license boot level <word>", "ip flow ingress"} <= set(n.sdl)
    assert n.compatible


def test_lists_l3_active_l4_standby_incompatible():
    n = neg(3, 4)
    assert set(n.sdl_unregistered) >= {"platform hardware profile <word>"}
    assert all("platform hardware profile" in t for t in n.sdl_unregistered)
    assert "'platform hardware profile <word>'" in n.reason()
    # 15.4 dropped `ip ssh time-out` with no transformation: the Active's lines go to the policy
    assert n.adl_verdicts["ip ssh time-out <int:1-300>"] == "policy"


def test_lists_l4_active_l2_standby_verdicts():
    v = neg(4, 2).adl_verdicts
    assert v["platform hardware profile <word>"] == "policy"
    assert v["logging server <ipv4>"] == "transform"
    assert "license boot level <word>" not in v      # common to both: not on the ADL


def test_negotiation_survives_the_wire():
    n = neg(3, 1)
    back = Negotiation.from_dict(n.to_dict())
    assert back == n and back.compatible
    n4 = neg(3, 4)
    assert Negotiation.from_dict(n4.to_dict()).reason() == n4.reason()


def test_pair_tft_and_dcl_are_the_levels_between():
    assert pair_tft(1, 1) == []
    assert [r.level for r in pair_tft(1, 2)] == [2]
    assert {r.level for r in pair_tft(3, 1)} == {2, 3} and pair_tft(3, 1) == pair_tft(1, 3)
    assert {r.level for r in pair_tft(2, 3)} == {3}
    assert pair_tft(3, 4) == []
    assert "license boot level <word>" in pair_dcl(2, 1)
    assert "scheduler allocate <int:3000-60000> <int:1000-4000>" in pair_dcl(1, 3)
    assert pair_dcl(1, 1) == ()


# ---------------------------------------------------------------------------------------------- LineSync


def test_two_level_downgrade_of_logging():
    oc = line_sync(3, 1).outcome("logging server 10.9.9.9")
    assert (oc.action, oc.line, oc.original, oc.steps) == ("sync", "logging 10.9.9.9", "logging server 10.9.9.9", 2)
    oc = line_sync(3, 2).outcome("logging server 10.9.9.9")
    assert (oc.action, oc.line, oc.steps) == ("sync", "logging host 10.9.9.9", 1)
    oc = line_sync(3, 1).outcome("no logging server 10.9.9.9")
    assert (oc.action, oc.line, oc.steps) == ("sync", "no logging 10.9.9.9", 2)


def test_sub_mode_line_keeps_its_indentation():
    oc = line_sync(3, 1).outcome(" ip flow ingress")
    assert (oc.action, oc.line, oc.steps) == ("sync", " ip route-cache flow", 1)
    oc = line_sync(3, 2).outcome(" no ip flow ingress")
    assert (oc.action, oc.line) == ("sync", " no ip route-cache flow")


@pytest.mark.parametrize("line", ["hostname rp1", "ntp server 10.2.0.10", "snmp-server community twin ro",
                                  "interface eth1", " ip address 10.1.0.1 255.255.255.0",
                                  "snmp-server location rack 4 row 2", "ip route 0.0.0.0 0.0.0.0 10.1.0.254"])
@pytest.mark.parametrize("a, s", [(3, 1), (3, 2), (2, 1), (1, 3)])
def test_common_lines_pass_through(a, s, line):
    oc = line_sync(a, s).outcome(line)
    assert (oc.action, oc.line, oc.steps) == ("sync", line, 0)


def test_dont_care_is_not_synced():
    for line in ("license boot level adventerprise", "no license boot level"):
        oc = line_sync(3, 1).outcome(line)
        assert oc.action == "dont-care" and oc.line == line and "don't-care" in oc.reason
    oc = line_sync(1, 3).outcome("scheduler allocate 4000 2000")      # obsolete on the newer Standby
    assert oc.action == "dont-care"
    oc = line_sync(2, 1).outcome("license boot level ipbase")
    assert oc.action == "dont-care"


def test_lossy_value_goes_to_the_policy():
    oc = line_sync(3, 2).outcome("ip ssh time-out 200")
    assert oc.action == "policy" and oc.line == "ip ssh time-out 200"
    assert "no equivalent before 15.2(1)SY" in oc.reason
    ok = line_sync(3, 2).outcome("ip ssh time-out 120")
    assert (ok.action, ok.line, ok.steps) == ("sync", "ip ssh timeout 120", 1)
    assert line_sync(3, 1).outcome("ip ssh time-out 300").action == "policy"


@pytest.mark.parametrize("s", [1, 2])
def test_no_form_with_a_value_too_big_for_the_older_image_still_removes(s):
    oc = line_sync(3, s).outcome("no ip ssh time-out 200")
    assert oc.action == "sync", oc
    assert oc.line.startswith("no ip ssh timeout") and MATCHERS[s].match(oc.line) is not None


def test_no_transformation_means_policy():
    oc = line_sync(4, 2).outcome("platform hardware profile big-fib")
    assert oc.action == "policy" and oc.reason == "no transformation to the Standby's syntax"


def test_newer_standby_gets_the_line_as_is_and_upgrades_it():
    oc = line_sync(1, 3).outcome("logging 10.9.9.9")
    assert (oc.action, oc.line, oc.steps) == ("sync", "logging 10.9.9.9", 0)
    assert upgrade("logging 10.9.9.9", 1, 3) == ("logging server 10.9.9.9", 2)
    assert upgrade("logging 10.9.9.9", 1, 2) == ("logging host 10.9.9.9", 1)
    assert upgrade(" ip route-cache flow", 1, 3) == (" ip flow ingress", 1)
    assert upgrade("ip ssh timeout 120", 1, 3) == ("ip ssh time-out 120", 1)
    assert upgrade("no ip ssh timeout", 2, 3) == ("no ip ssh time-out", 1)
    assert upgrade("spanning-tree portfast default", 1, 3) == ("spanning-tree portfast edge default", 1)
    assert upgrade("hostname rp1", 1, 3) == ("hostname rp1", 0)
    assert upgrade("logging 10.9.9.9", 1, 1) == ("logging 10.9.9.9", 0)


def test_downgrade_text_and_to_level():
    assert downgrade_text("logging server 10.1.1.1", 3, 1) == "logging 10.1.1.1"
    assert downgrade_text(" ip flow ingress", 4, 2) == " ip route-cache flow"
    assert downgrade_text("ip ssh time-out 200", 3, 2) is None
    assert to_level("ip ssh time-out 200", 3, 3) == "ip ssh time-out 200"
    assert to_level("logging 10.1.1.1", 1, 3) == "logging server 10.1.1.1"
    assert to_level("logging server 10.1.1.1", 3, 2) == "logging host 10.1.1.1"


class _Exploding(Rewrite):
    def down(self, line: str) -> str | None:
        if "logging server" in line:
            raise RuntimeError("kaboom in the TFT")
        return super().down(line)

    def up(self, line: str) -> str | None:
        raise RuntimeError("kaboom in the TFT")


def test_a_failing_transformation_is_a_policy_decision_not_a_crash(monkeypatch):
    broken = tuple(_Exploding(r.level, r.old, r.new, r.down_ok) if r.new.startswith("logging server") else r
                   for r in images.TFT)
    monkeypatch.setattr(images, "TFT", broken)
    ls = LineSync(neg(3, 1), DUMPS[3], DUMPS[1])
    oc = ls.outcome("logging server 10.9.9.9")
    assert oc.action == "policy" and oc.line == "logging server 10.9.9.9"
    assert "RuntimeError" in oc.reason and "kaboom in the TFT" in oc.reason
    assert "'logging server 10.9.9.9'" in oc.reason
    # the other lines still transform
    assert ls.outcome(" ip flow ingress").line == " ip route-cache flow"
    assert ls.outcome("hostname rp1").action == "sync"


# ---------------------------------------------------------------------------------------------- verify


def test_config_set_and_verify():
    expected = "!\nversion 15.2\n!\nhostname rp1\ninterface eth1\n ip flow ingress\n!\nend\nhostname junk\n"
    actual = "Building configuration...\nversion 15.0\nhostname rp1\ninterface eth1\n ip route-cache flow\nend\n"
    assert config_set(expected) == {("", "hostname rp1"), ("", "interface eth1"), ("interface eth1", "ip flow ingress")}
    v = verify(expected, actual)
    assert not v.ok
    assert v.missing == [("interface eth1", "ip flow ingress")]
    assert v.extra == [("interface eth1", "ip route-cache flow")]
    assert "missing interface eth1 / 'ip flow ingress'" in v.describe()
    assert verify(expected, expected.replace("15.2", "15.0")).ok       # the version line differs on purpose


# ---------------------------------------------------------------------------------------------- property


COMPATIBLE = [(a, s) for a, s in PAIRS if neg(a, s).compatible]
WORD = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


def _arg(spec: str) -> st.SearchStrategy[str]:
    if spec == "ipv4":
        return st.ip_addresses(v=4).map(str)
    if spec.startswith("int:"):
        lo, hi = (int(x) for x in spec[4:].split("-"))
        return st.integers(lo, hi).map(str)
    if spec == "word":
        return WORD
    if spec == "line":
        return st.lists(WORD, min_size=1, max_size=4).map(" ".join)
    raise AssertionError(f"no strategy for <{spec}>")


@st.composite
def feature_line(draw, level: int) -> str:
    f = draw(st.sampled_from(features_at(level)))
    words = [draw(_arg(images.arg_spec(w))) if w.startswith("<") else w for w in f.syntax.split()]
    line = " ".join(words)
    if draw(st.integers(0, 4)) == 0:                   # now and then, the `no` form
        has_args = any(w.startswith("<") for w in f.syntax.split())
        if f.multi or not has_args or draw(st.booleans()):
            line = "no " + line
        else:
            line = "no " + f.keywords
    return (" " if f.mode == "config-if" else "") + line


@st.composite
def config_for_pair(draw):
    a, s = draw(st.sampled_from(COMPATIBLE))
    lines = draw(st.lists(feature_line(a), min_size=1, max_size=12))
    return a, s, lines


def _lossy(line: str, a: int, s: int) -> bool:
    m = re.fullmatch(r"ip ssh time-out (\d+)", line.strip())
    return bool(m) and int(m.group(1)) > 120 and s < 3 <= a


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_for_pair())
def test_lossless_sync_round_trips(case):
    a, s, lines = case
    ls = line_sync(a, s)
    for line in lines:
        oc = ls.outcome(line)
        assert oc.original == line
        assert oc.action in ("sync", "dont-care", "policy"), oc
        if _lossy(line, a, s):
            assert oc.action == "policy", oc
            continue
        if oc.action != "sync":
            continue
        standby_line = oc.line if s <= a else upgrade(oc.line, a, s)[0]
        # what the Standby ends up with is a command of its own grammar ...
        assert MATCHERS[s].match(standby_line.strip()) is not None, (a, s, line, standby_line)
        # ... and comes back unchanged to the Active's syntax
        assert to_level(standby_line, s, a) == line, (a, s, line, standby_line)
