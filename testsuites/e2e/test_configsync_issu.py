"""The version matrix and in-service upgrades of the redundant pair (spec 004), in a lab of its own
(labs/configsync.yaml: rpa 15.2(1)SY Active, rpb 15.1(2)SY Standby at boot). `issu loadversion`
puts any image on the Standby, which is how an operator tries a pair of versions:

  same version, Standby newer (upgrade path), Standby older (downgrade path), two levels apart
  (multi-step transformation) and an incompatible image (non-stateful mode, never STANDBY HOT);

then a whole ISSU in IOS's order, and a rollback when nobody commits in time."""
from __future__ import annotations

import re
import time

import pytest

from rp_pair import HOT_DEADLINE_S, force_switchover, image_of, last_state, pair_roles, show, wait_hot
from twin.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.configsync, pytest.mark.lab("labs/configsync.yaml")]


def issu(lab, node: str, cmd: str, confirm: bool = False) -> str:
    with lab.device(node).console() as s:
        s.enable()
        if not confirm:
            return s.run(cmd)
        out, i = s.channel.command(cmd, 10, expect_extra=[r"\[confirm\] *\Z"])
        assert i == 1, f"{cmd}: no confirmation asked: {out}"
        s.send_raw(b"\r")
        s.channel.wait_closed(15)       # the Active reloads as the Standby
        return out


def load_on_standby(lab, active: str, standby: str, version: str, hot: bool = True) -> float:
    """`issu loadversion`, returning once the Standby runs `version` (and is STANDBY HOT again,
    if `hot`: it may already run that version, so the image alone does not show the reload is over)."""
    t = time.time()
    out = issu(lab, active, f"issu loadversion {version}")
    assert "executed successfully" in out, out
    wait_for(lambda: any(e.get("image") == version and (not hot or e.get("state") == "STANDBY HOT")
                         for e in lab.device_events(standby, "rf-state", since=t)),
             HOT_DEADLINE_S, f"{standby} to come back with {version}" + (" and be STANDBY HOT" if hot else ""))
    return t


def abort_load(lab, active: str, standby: str) -> None:
    """`issu abortversion` after a loadversion, returning once the Standby is HOT again on its old
    image: until it reloads, its last state is still the one from before the abort, so waiting for
    "HOT" alone could return before the reload began."""
    t = time.time()
    out = issu(lab, active, "issu abortversion")
    m = re.search(r"reloaded with (\S+)", out)
    assert "executed successfully" in out and m, out
    old = m.group(1)
    wait_for(lambda: any(e.get("image") == old and e.get("state") == "STANDBY HOT"
                         for e in lab.device_events(standby, "rf-state", since=t)),
             HOT_DEADLINE_S, f"{standby} to be STANDBY HOT again on {old} after the abort")


def test_version_matrix_through_loadversion(lab):
    active, standby = wait_hot(lab)
    assert (active, standby) == ("rpa", "rpb")
    # Standby older by one level (boot): logging server -> logging host
    assert "logging host 10.1.0.10" in show(lab, standby, "show running-config")

    # two levels apart: 15.2 -> 15.0, logging server -> logging host -> logging
    load_on_standby(lab, active, standby, "15.0(1)SY")
    assert wait_hot(lab) == (active, standby)
    cfg = show(lab, standby, "show running-config")
    assert "logging 10.1.0.10" in cfg and "logging host" not in cfg and "logging server" not in cfg, cfg
    assert "spanning-tree portfast default" in cfg and " ip route-cache flow" in cfg, cfg
    abort_load(lab, active, standby)

    # same version
    load_on_standby(lab, active, standby, "15.2(1)SY")
    assert wait_hot(lab) == (active, standby)
    lists = show(lab, active, "show redundancy config-sync lists")
    assert "(ADL), 0 commands" in lists and "(SDL), 0 commands" in lists, lists
    assert "logging server 10.1.0.10" in show(lab, standby, "show running-config")
    abort_load(lab, active, standby)

    # incompatible image: non-stateful mode, the Standby never reaches HOT, runversion refused
    t = load_on_standby(lab, active, standby, "15.4(1)SY", hot=False)
    wait_for(lambda: "Operating Redundancy Mode = rpr" in show(lab, active, "show redundancy"), 15, "RPR mode")
    red = show(lab, active, "show redundancy")
    assert "images incompatible" in red and "STANDBY COLD" in red, red
    assert "platform hardware profile" in red, red               # names the command with no transformation
    states = [e["state"] for e in lab.device_events(standby, "rf-state", since=t)]
    assert "STANDBY HOT" not in states, states
    refused = issu(lab, active, "issu runversion")
    assert "not in STANDBY HOT" in refused and "incompatible" in refused, refused
    abort_load(lab, active, standby)
    assert wait_hot(lab) == (active, standby)


def test_issu_in_order_then_rollback_when_not_committed(lab, timings):
    active, standby = wait_hot(lab)
    # start from an Active on the older image: 15.1 Active, 15.2 Standby
    if image_of(lab, active) != "15.1(2)SY":
        force_switchover(lab, active)
        wait_for(lambda: pair_roles(lab) == (standby, active), 30, "the switchover")
        active, standby = standby, active
    assert image_of(lab, active) == "15.1(2)SY" and image_of(lab, standby) == "15.2(1)SY"

    # 1. load the new version on the Standby (it already has it: it reloads with it and syncs up,
    #    Standby newer: the upgrade path)
    load_on_standby(lab, active, standby, "15.2(1)SY")
    assert wait_hot(lab) == (active, standby)
    assert "ISSU State = Load Version" in show(lab, active, "show issu state detail")
    # 2. run it: switch over to the new image
    t = time.time()
    issu(lab, active, "issu runversion", confirm=True)
    wait_for(lambda: pair_roles(lab) == (standby, active), 30, "the runversion switchover")
    new_active, new_standby = standby, active
    timings.record("issu runversion to standby hot again", (time.time() - t) * 1000, "ms")
    st = show(lab, new_active, "show issu state detail")
    assert "ISSU State = Run Version" in st and "remaining" in st, st
    # 3. accept (stop the rollback timer), 4. commit (the other unit gets the new image)
    assert "Rollback timer stopped" in issu(lab, new_active, "issu acceptversion")
    assert "executed successfully" in issu(lab, new_active, "issu commitversion")
    wait_for(lambda: last_state(lab, new_standby).get("image") == "15.2(1)SY", 20, "the commit reload")
    assert wait_hot(lab) == (new_active, new_standby)
    assert image_of(lab, new_standby) == "15.2(1)SY" == image_of(lab, new_active)
    assert "ISSU State = Init" in show(lab, new_active, "show issu state")

    # rollback: go to 15.1 but never accept; the timer brings both units back to 15.2
    active, standby = new_active, new_standby
    load_on_standby(lab, active, standby, "15.1(2)SY")
    assert wait_hot(lab) == (active, standby)
    issu(lab, active, "issu set rollback-timer 3")
    t = time.time()
    issu(lab, active, "issu runversion", confirm=True)
    wait_for(lambda: lab.device_events(standby, "issu-rollback", since=t), 30, "the rollback timer to expire")
    wait_for(lambda: last_state(lab, standby).get("image") == "15.2(1)SY" and pair_roles(lab), 30,
             "both units back on 15.2(1)SY")
    assert image_of(lab, "rpa") == image_of(lab, "rpb") == "15.2(1)SY"
