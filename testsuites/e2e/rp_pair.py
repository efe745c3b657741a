"""Helpers for the redundant-pair suites (labs/configsync.yaml): who is Active, waiting for the
Standby to reach HOT, running show commands on a unit, a switchover from the console."""
from __future__ import annotations

import re
import time

from emulators.rp.configsync import config_set
from twin.polling import wait_for
from twin.state import pid_alive

UNITS = ("rpa", "rpb")
HOT_DEADLINE_S = 30.0       # a reload and a bulk sync take about a second; generous on 2 busy cores


def last_state(lab, node: str) -> dict:
    """The unit's latest redundancy state, from the events it publishes."""
    evs = lab.device_events(node, "rf-state")
    return evs[-1] if evs else {}


def _alive(lab, node: str) -> bool:
    pid = lab.state.nodes[node].emulator_pid
    return bool(pid) and pid_alive(pid)


def pair_roles(lab) -> tuple[str, str] | None:
    """(active, standby) once one unit is ACTIVE and the other STANDBY HOT, else None."""
    st = {n: last_state(lab, n).get("state") for n in UNITS if _alive(lab, n)}
    act = [n for n, s in st.items() if s == "ACTIVE"]
    hot = [n for n, s in st.items() if s == "STANDBY HOT"]
    if len(act) == 1 and len(hot) == 1:
        return act[0], hot[0]
    return None


def wait_hot(lab, timeout: float = HOT_DEADLINE_S) -> tuple[str, str]:
    return wait_for(lambda: pair_roles(lab), timeout=timeout, what="an ACTIVE unit and a STANDBY HOT unit")


def show(lab, node: str, *cmds: str) -> str:
    with lab.device(node).console() as s:
        s.enable()
        return "\n".join(s.run(c) for c in cmds)


def running_set(lab, node: str) -> set[tuple[str, str]]:
    return config_set(show(lab, node, "show running-config"))


def image_of(lab, node: str) -> str:
    m = re.search(r"Current Version = (\S+)", show(lab, node, "show issu state"))
    assert m, "show issu state prints no current version"
    return m.group(1)


def force_switchover(lab, active: str) -> float:
    """`redundancy force-switchover` on the Active's console, confirmed; returns when confirmed
    (the Active then reloads, which ends the console session)."""
    with lab.device(active).console() as s:
        s.enable()
        out, i = s.channel.command("redundancy force-switchover", 10, expect_extra=[r"\[confirm\] *\Z"])
        assert i != 0, f"no confirmation asked: {out}"
        t = time.time()
        s.send_raw(b"\r")
        assert s.channel.wait_closed(15), "the old Active's console session survived its reload"
    return t
