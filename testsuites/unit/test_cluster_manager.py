"""The cluster manager's logic with fakes for the bus and the controller: failure detection,
substitute selection, the clone handshake, cross-connect rewrites, pool commands, bus rejections
and resuming an open failover after a restart."""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from emulators.cluster.bus import Message, Sequencer
from emulators.cluster.manager import ClusterManager, default_config, select_substitute
from emulators.cluster.plan import ClusterPlan, ElementPorts
from emulators.cluster.store import Store
from twin.polling import wait_for

pytestmark = pytest.mark.unit

ROLES = ["ne1", "ne2", "ne3"]
SPARES = ["sp1", "sp2"]
CONFIG_URL = "http://172.20.0.2:8080"


def make_plan(**kw: Any) -> ClusterPlan:
    """ne1-3 and sp1-2 on sw1:eth1-5 (access) and sw2:eth1-5 (network); customers on sw1:eth11-13,
    servers on sw2:eth11-12; heartbeats every 100 ms, dead after 3 (0.3 s)."""
    names = ROLES + SPARES
    elements = {n: ElementPorts(n, f"172.20.0.{10 + i}", "eth1", f"eth{i + 1}", "eth2", f"eth{i + 1}")
                for i, n in enumerate(names)}
    plan = ClusterPlan(name="agg", secret="s", manager="cm", manager_ip="172.20.0.2", api_socket="/tmp/api",
                       access_switch="sw1", network_switch="sw2", elements=elements, members=list(ROLES),
                       pool=list(SPARES), circuits={"ne1": ["eth11"], "ne2": ["eth12"], "ne3": ["eth13"]},
                       server_ports=["eth11", "eth12"])
    return dataclasses.replace(plan, **kw)


PLAN = make_plan()


class FakeSwitches:
    """The controller's northbound API: records what the manager asks of it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.added: list[tuple[str, dict[str, Any], list[dict[str, Any]], int, int]] = []
        self.deleted: list[tuple[str, dict[str, Any] | None, int | None, bool]] = []

    def add_flow(self, switch, match, actions, priority=0, cookie=0):
        with self.lock:
            self.added.append((switch, dict(match), list(actions), priority, cookie))

    def delete_flows(self, switch, match=None, priority=None, cookie=None, strict=False):
        with self.lock:
            self.deleted.append((switch, None if match is None else dict(match), priority, strict))

    def flows(self, switch):
        return []

    def ports(self, switch):
        return []

    def reset(self) -> None:
        with self.lock:
            self.added.clear()
            self.deleted.clear()


class Rig:
    """A manager on a store file, a mutable clock, the trigger channel recorded, and elements that
    answer a clone trigger with clone-done (directly, or from a thread of their own)."""

    def __init__(self, path: Path, plan: ClusterPlan = PLAN, answer: str | None = "direct") -> None:
        self.plan = plan
        self.t = [1000.0]
        self.switches = FakeSwitches()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.reports: list[tuple[str, str, dict[str, Any]]] = []
        self.answer = answer
        self.seqs: dict[str, Sequencer] = {}
        self.rec_lock = threading.Lock()
        self.store = Store(path)
        self.m = ClusterManager(plan, self.store, self.switches, send=self.send, report=self.report,
                                config_url=CONFIG_URL, token="tok", clock=lambda: self.t[0])

    def close(self) -> None:
        self.m.stopped.set()
        for w in list(self.m._workers.values()):
            w.join(5)
        self.store.close()

    # the fakes
    def report(self, kind: str, text: str, fields: dict[str, Any]) -> None:
        with self.rec_lock:
            self.reports.append((kind, text, fields))

    def send(self, target: str, type: str, body: dict[str, Any]) -> None:
        with self.rec_lock:
            self.sent.append((target, type, dict(body)))
        if type == "clone" and self.answer:
            done = self.seq(target).make("clone-done", failover=body["failover"], role=body["role"],
                                         config=f"hostname {body['role']}\n!\nend\n", digest="x", lines=3)
            if self.answer == "thread":
                threading.Thread(target=self.m.on_message, args=(done, self.mgmt(target)), daemon=True).start()
            else:
                self.m.on_message(done, self.mgmt(target))

    # helpers
    def seq(self, name: str) -> Sequencer:
        return self.seqs.setdefault(name, Sequencer(name))

    def mgmt(self, name: str) -> str:
        return self.plan.elements[name].mgmt

    def hear(self, *names: str) -> None:
        for n in names:
            self.m.on_message(self.seq(n).make("heartbeat"), self.mgmt(n))

    def advance(self, dt: float) -> None:
        self.t[0] += dt

    def kinds(self, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self.rec_lock:
            return [r for r in self.reports if r[0] == kind]

    def triggers(self, type: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self.rec_lock:
            return [s for s in self.sent if s[1] == type]

    def failover_in(self, fid: int, *states: str):
        f = self.store.failover(fid)
        return f if f.state in states else None

    def wait_state(self, fid: int, *states: str, timeout: float = 5.0):
        return wait_for(lambda: self.failover_in(fid, *states), timeout, f"failover {fid} in {states}", 0.01)

    def wait_workers(self) -> None:
        wait_for(lambda: not any(w.is_alive() for w in list(self.m._workers.values())), 5.0,
                 "failover workers to finish", 0.01)

    def no_errors(self) -> None:
        assert not self.kinds("error"), self.kinds("error")


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path / "cluster.db")
    yield r
    r.close()


def all_heard(rig: Rig, *, but: tuple[str, ...] = ()) -> None:
    rig.hear(*[n for n in ROLES + SPARES if n not in but])


def flow_matches(calls, switch: str) -> list[dict[str, Any]]:
    return [c[1] for c in calls if c[0] == switch]


# ------------------------------------------------------------------ detection by heartbeats
def test_heartbeats_keep_elements_alive_and_silence_fails_one(rig):
    all_heard(rig)
    for _ in range(10):            # 1 s in total, far more than the 0.3 s dead interval
        rig.advance(0.1)
        all_heard(rig)
        rig.m.check()
    assert rig.store.failovers() == []
    assert all(e["state"] == "active" for n, e in rig.store.elements().items() if n in ROLES)
    # ne1 falls silent; the others go on
    for _ in range(2):
        rig.advance(0.1)
        all_heard(rig, but=("ne1",))
        rig.m.check()
    assert rig.store.failovers() == [], "0.2 s of silence is within the dead interval"
    rig.advance(0.15)
    all_heard(rig, but=("ne1",))
    rig.m.check()
    fos = rig.store.failovers()
    assert [(f.role, f.failed) for f in fos] == [("ne1", "ne1")]
    assert "missed" in fos[0].reason and "heartbeats" in fos[0].reason
    el = rig.store.element("ne1")
    assert el["state"] == "failed" and el["failures"] == 1
    assert rig.wait_state(fos[0].id, "done").substitute == "sp1"
    assert rig.store.element("ne1")["state"] == "failed", "a silent element is not told to reload"
    assert not rig.triggers("reload-default")
    rig.no_errors()


def test_an_active_element_never_heard_from_fails_after_the_boot_grace(rig):
    rig.advance(PLAN.boot_grace_s - 1)
    rig.hear("ne2", "ne3", "sp1", "sp2")
    rig.m.check()
    assert rig.store.failovers() == []
    rig.advance(2)
    rig.hear("ne2", "ne3", "sp1", "sp2")
    rig.m.check()
    (f,) = rig.store.failovers()
    assert f.failed == "ne1" and "never heard from" in f.reason
    rig.wait_state(f.id, "done")


# ------------------------------------------------------------------ a whole failover
def test_failover_clones_onto_the_first_spare_and_rewrites_the_cross_connects(rig):
    rig.store.set_macs("ne1", {"eth1": "02:00:0a:01:00:11", "eth2": "02:00:0a:01:00:01"})
    rig.m.sync_xconnect()                     # what the running manager installed at boot
    rig.switches.reset()
    all_heard(rig)
    f = rig.m.fail("ne1", "power off")
    assert f is not None and f.state == "detected"
    assert rig.m.fail("ne1", "again") is None, "a second report of the same failure is ignored"
    f = rig.wait_state(f.id, "done")
    rig.no_errors()

    assert f.substitute == "sp1"
    assert list(f.steps) == ["detected", "selected", "cloned", "done"] and f.finished is not None
    # the clone trigger carries the role's config URLs
    (clone,) = rig.triggers("clone")
    target, _, body = clone
    assert target == "sp1"
    assert body["failover"] == f.id and body["role"] == "ne1" and body["failed"] == "ne1"
    assert body["initial"] == f"{CONFIG_URL}/roles/ne1/initial"
    assert body["accumulated"] == f"{CONFIG_URL}/roles/ne1/accumulated"
    assert body["token"] == "tok" and body["macs"]["eth2"] == "02:00:0a:01:00:01"
    # the role moved, the archive took the clone's config
    role = rig.store.roles()["ne1"]
    assert role["holder"] == "sp1" and role["initial"] == "hostname ne1\n!\nend\n" and role["digest"] == "x"
    assert rig.store.element("sp1")["state"] == "active" and rig.store.element("sp1")["role"] == "ne1"
    # ne1 has not been heard from since it failed: no reload order yet (it could not obey)
    assert rig.store.element("ne1")["state"] == "failed" and not rig.triggers("reload-default")
    # heard again (it only lost its data links), it is told to reload into the pool
    rig.advance(0.01)
    rig.hear("ne1")
    assert rig.store.element("ne1")["state"] == "rebooting"
    (reload,) = rig.triggers("reload-default")
    assert reload[0] == "ne1" and reload[2]["url"] == f"{CONFIG_URL}/elements/ne1/default"
    assert rig.store.pool() == ["sp2"]
    # sp1's ports were wired in, ne1's ingress rules removed, nothing else touched
    added = rig.switches.added
    assert {"in_port": "eth11"} in flow_matches(added, "sw1")
    assert {"in_port": "eth4"} in flow_matches(added, "sw1")
    assert {"in_port": "eth4"} in flow_matches(added, "sw2")
    assert ("sw1", {"in_port": "eth11"}, [{"type": "OUTPUT", "port": "eth4"}], 110, PLAN.cookie) in added
    mac_rule = [a for a in added if a[1].get("eth_dst") == "02:00:0a:01:00:01"]
    assert mac_rule and all(a[2] == [{"type": "OUTPUT", "port": "eth4"}] for a in mac_rule)
    assert all(a[4] == PLAN.cookie for a in added)
    assert sorted((d[0], tuple(d[1].items()), d[2], d[3]) for d in rig.switches.deleted) == [
        ("sw1", (("in_port", "eth1"),), 110, True), ("sw2", (("in_port", "eth1"),), 110, True)]
    assert not any(d[1].get("eth_dst") for d in rig.switches.deleted), "the MAC rule is replaced, not deleted"
    # the store now holds the new rules, so a second sync changes nothing
    assert rig.m.sync_xconnect() == []
    done = rig.kinds("done")
    assert len(done) == 1 and done[0][2]["substitute"] == "sp1" and done[0][2]["failed"] == "ne1"


def test_selection_follows_the_pools_order_not_the_names(tmp_path):
    r = Rig(tmp_path / "c.db", plan=make_plan(pool=["sp2", "sp1"]))
    try:
        assert r.store.pool() == ["sp2", "sp1"]
        all_heard(r)
        f = r.m.fail("ne2", "link down")
        f = r.wait_state(f.id, "done")
        assert f.substitute == "sp2"
        assert [t[0] for t in r.triggers("clone")] == ["sp2"]
        assert r.store.roles()["ne2"]["holder"] == "sp2"
    finally:
        r.close()


def test_a_spare_not_heard_from_is_not_selected(rig):
    rig.hear("ne2", "ne3", "sp2")            # sp1 is silent
    f = rig.m.fail("ne1", "power off")
    assert rig.wait_state(f.id, "done").substitute == "sp2"


def test_select_substitute_policies():
    assert select_substitute("ordered", ["b", "a"], {"b": 5}) == "b"
    assert select_substitute("least-failed", ["b", "a", "c"], {"b": 5, "a": 1, "c": 1}) == "a"
    assert select_substitute("ordered", [], {}) is None


# ------------------------------------------------------------------ pool exhausted
def test_pool_exhausted_waits_with_an_alarm_until_a_spare_is_added(rig):
    all_heard(rig)
    rig.m.pool_remove("sp1")
    rig.m.pool_remove("sp2")
    assert rig.store.pool() == []
    f = rig.m.fail("ne1", "power off")
    rig.wait_state(f.id, "waiting")
    (alarm,) = wait_for(lambda: rig.kinds("alarm"), 5, "the pool-exhausted alarm", 0.01)
    assert "POOL EXHAUSTED" in alarm[1] and "eth11" in alarm[1]
    assert alarm[2]["role"] == "ne1" and alarm[2]["circuits"] == ["eth11"]
    assert rig.m.alarms == {"ne1": "pool exhausted"}
    assert rig.store.roles()["ne1"]["holder"] is None
    assert not rig.triggers("clone")
    # the worker has given up for now; the operator adds sp2 back (it is still heard from)
    rig.wait_workers()
    rig.advance(0.1)
    all_heard(rig)
    assert rig.m.pool_add("sp2") == "sp2 added to the pool"
    f = rig.wait_state(f.id, "done")
    assert f.substitute == "sp2"
    assert rig.store.roles()["ne1"]["holder"] == "sp2"
    assert rig.m.alarms == {}
    assert len(rig.kinds("alarm")) == 1, "one alarm, not one per retry"
    rig.no_errors()


def test_check_resumes_a_waiting_failover_when_a_spare_is_heard_again(rig):
    rig.hear("ne2", "ne3")               # spares never heard: nothing selectable
    f = rig.m.fail("ne1", "power off")
    rig.wait_state(f.id, "waiting")
    rig.wait_workers()
    rig.m.check()
    assert rig.store.failover(f.id).state == "waiting"
    rig.hear("sp2")                      # sp2 comes up
    rig.m.check()
    assert rig.wait_state(f.id, "done").substitute == "sp2"


# ------------------------------------------------------------------ concurrent failures
def test_two_concurrent_failures_get_two_different_spares(tmp_path):
    r = Rig(tmp_path / "c.db", answer="thread")
    try:
        all_heard(r)
        r.advance(0.5)
        r.hear("ne3", "sp1", "sp2")
        r.m.check()                       # ne1 and ne2 both silent for 0.5 s
        fos = r.store.failovers()
        assert sorted(f.failed for f in fos) == ["ne1", "ne2"]
        done = [r.wait_state(f.id, "done") for f in fos]
        assert sorted(f.substitute for f in done) == ["sp1", "sp2"]
        holders = {k: v["holder"] for k, v in r.store.roles().items()}
        assert {holders["ne1"], holders["ne2"]} == {"sp1", "sp2"} and holders["ne3"] == "ne3"
        assert r.store.pool() == []
        assert sorted(t[0] for t in r.triggers("clone")) == ["sp1", "sp2"]
        r.no_errors()
    finally:
        r.close()


# ------------------------------------------------------------------ the bus: strangers and replays
def test_a_non_member_is_rejected_and_reported(rig):
    rig.m.on_message(Sequencer("intruder").make("failing", reason="x"), "172.20.0.99")
    assert rig.m.counters["non-member"] == 1 and rig.m.counters["accepted"] == 0
    (rej,) = rig.kinds("rejected")
    assert rej[2]["reason"] == "non-member" and "intruder" in rej[1] and "172.20.0.99" in rej[1]
    assert "intruder" not in rig.m.last_seen


def test_a_member_name_from_the_wrong_address_is_rejected(rig):
    rig.m.on_message(Sequencer("ne1").make("failing", reason="forged"), "172.20.0.99")
    assert rig.m.counters["wrong-address"] == 1
    (rej,) = rig.kinds("rejected")
    assert rej[2]["reason"] == "wrong-address" and rej[2]["peer"] == "172.20.0.99"
    assert rig.store.failovers() == [], "a forged `failing` does not fail ne1"
    assert "ne1" not in rig.m.last_seen


def test_a_replayed_heartbeat_does_not_keep_a_dead_element_alive(rig):
    hb = rig.seq("ne1").make("heartbeat")
    all_heard(rig, but=("ne1",))
    rig.m.on_message(hb, rig.mgmt("ne1"))
    assert rig.m.last_seen["ne1"] == 1000.0
    rig.advance(0.2)
    rig.m.on_message(hb, rig.mgmt("ne1"))     # captured and sent again
    assert rig.m.counters["replay"] == 1
    assert rig.m.last_seen["ne1"] == 1000.0
    assert any(r[2].get("reason") == "replay" for r in rig.kinds("rejected"))
    rig.advance(0.2)
    all_heard(rig, but=("ne1",))
    rig.m.check()
    assert [f.failed for f in rig.store.failovers()] == ["ne1"]


def test_a_clone_done_from_the_wrong_element_is_ignored(tmp_path):
    r = Rig(tmp_path / "c.db", answer=None)
    try:
        all_heard(r)
        f = r.m.fail("ne1", "power off")
        wait_for(lambda: r.triggers("clone"), 5, "the clone trigger", 0.01)
        assert r.store.failover(f.id).substitute == "sp1"
        r.m.on_message(r.seq("sp2").make("clone-done", failover=f.id, role="ne1", config="x", digest="x"),
                       r.mgmt("sp2"))
        assert r.store.failover(f.id).state == "selected", "only the chosen substitute can finish it"
        r.m.on_message(r.seq("sp1").make("clone-done", failover=f.id, role="ne1", config="y\n", digest="y",
                                         lines=1), r.mgmt("sp1"))
        assert r.wait_state(f.id, "done").substitute == "sp1"
    finally:
        r.close()


def test_a_failed_clone_names_the_substitutes_reason_and_the_next_spare_is_tried(tmp_path):
    r = Rig(tmp_path / "c.db", answer=None)
    try:
        all_heard(r)
        f = r.m.fail("ne1", "power off")
        wait_for(lambda: r.triggers("clone"), 5, "the clone trigger", 0.01)
        r.m.on_message(r.seq("sp1").make("clone-failed", failover=f.id, error="HTTPError: HTTP Error 404: Not Found"),
                       r.mgmt("sp1"))
        wait_for(lambda: r.store.failover(f.id).substitute == "sp2", 5, "the next spare", 0.01)
        (note,) = [t for k, t, _ in r.kinds("clone") if "did not become a clone" in t]
        assert "sp1 did not become a clone (HTTPError: HTTP Error 404: Not Found)" in note, note
        assert "HTTP Error 404" in r.store.element("sp1")["detail"]
    finally:
        r.close()


# ------------------------------------------------------------------ an element whose hello was lost
def test_a_lost_hello_is_asked_for_again_and_its_snapshot_archives_config_and_macs(rig):
    """An element that joined the bus after its hellos (a slow management switch at boot) is only
    heard by its heartbeats: the manager asks it for its config, which the failover will need."""
    rig.hear("ne1")
    (ask,) = rig.triggers("resync")
    assert ask[0] == "ne1" and "no configuration archived for role ne1" in ask[2]["reason"]
    rig.hear("ne1")
    assert len(rig.triggers("resync")) == 1, "asked again only after a retry interval"
    rig.advance(1.1)
    rig.hear("ne1")
    assert len(rig.triggers("resync")) == 2
    macs = {"eth1": "02:00:0a:01:00:11", "eth2": "02:00:0a:01:00:01", "mgmt0": "02:99:00:00:00:01"}
    rig.m.on_message(rig.seq("ne1").make("config-snapshot", config="hostname ne1\n!\nend\n", digest="d1", macs=macs),
                     rig.mgmt("ne1"))
    role = rig.store.roles()["ne1"]
    assert role["initial"] == "hostname ne1\n!\nend\n" and role["digest"] == "d1"
    assert role["macs"] == {"eth1": "02:00:0a:01:00:11", "eth2": "02:00:0a:01:00:01"}, "data interfaces only"
    assert any("role ne1: configuration archived from ne1" in t for _, t, _ in rig.kinds("archive"))
    rig.advance(1.1)
    rig.m.on_message(rig.seq("ne1").make("heartbeat", digest="d1"), rig.mgmt("ne1"))
    assert len(rig.triggers("resync")) == 2, "archived now: no more questions"
    rig.no_errors()


# ------------------------------------------------------------------ restart in the middle of a failover
def test_a_restarted_manager_resumes_with_the_substitute_it_had_chosen(tmp_path):
    path = tmp_path / "cluster.db"
    first = Rig(path)
    first.m.hold_after_select = True
    all_heard(first)
    f = first.m.fail("ne1", "power off")
    first.wait_state(f.id, "selected")
    first.wait_workers()
    assert first.store.failover(f.id).substitute == "sp1"
    assert not first.triggers("clone"), "held before the clone trigger"
    first.close()                       # the manager dies here

    second = Rig(path)
    try:
        # only sp2 is heard by the new manager: a fresh selection would pick it
        second.hear("ne2", "ne3", "sp2")
        assert second.store.failover(f.id).state == "selected"
        second.m.resume()
        done = second.wait_state(f.id, "done")
        assert done.substitute == "sp1"
        assert [t[0] for t in second.triggers("clone")] == ["sp1"]
        assert second.store.roles()["ne1"]["holder"] == "sp1"
        assert second.store.element("sp2")["state"] == "spare"
        assert len([t for t in second.store.timeline() if t["kind"] == "select"]) == 1, "never a second selection"
        assert any(r[0] == "resume" and "sp1" in r[1] for r in second.reports)
        second.no_errors()
    finally:
        second.close()


def test_a_restarted_manager_keeps_the_pool(tmp_path):
    path = tmp_path / "cluster.db"
    first = Rig(path)
    all_heard(first)
    first.m.pool_remove("sp1")
    first.close()
    second = Rig(path)
    try:
        assert second.store.pool() == ["sp2"]
        assert second.store.element("sp1")["state"] == "removed"
        assert any(r[0] == "boot" and "restarted" in r[1] for r in second.reports)
    finally:
        second.close()


# ------------------------------------------------------------------ operator commands
def test_pool_add_of_an_unknown_element_names_the_switches(rig):
    with pytest.raises(ValueError) as exc:
        rig.m.pool_add("r9")
    msg = str(exc.value)
    assert "r9" in msg and "not wired to both cluster switches" in msg and "sw1" in msg and "sw2" in msg
    assert rig.store.pool() == ["sp1", "sp2"]


def test_pool_add_and_remove_rules(rig):
    with pytest.raises(ValueError, match=r"ne1 is active \(role ne1\)"):
        rig.m.pool_add("ne1")
    with pytest.raises(ValueError, match="not in the pool .it is active"):
        rig.m.pool_remove("ne2")
    with pytest.raises(ValueError, match="not an element of cluster agg"):
        rig.m.pool_remove("r9")
    assert rig.m.pool_add("sp1") == "sp1 is already in the pool"
    assert rig.m.pool_remove("sp1") == "sp1 removed from the pool"
    assert rig.store.pool() == ["sp2"]
    assert rig.m.pool_add("sp1") == "sp1 added to the pool"
    assert rig.store.pool() == ["sp2", "sp1"], "a returned element goes to the end"
    assert rig.m.status()["pool"] == ["sp2", "sp1"]


def test_default_config_is_the_elements_own_name_with_bare_interfaces():
    text = default_config(PLAN, "sp1")
    assert text.startswith("hostname sp1\n") and text.endswith("end\n")
    assert "interface eth1\n no ip address\n no shutdown\n" in text
    assert "interface eth2\n no ip address\n no shutdown\n" in text


def test_message_dataclass_used_by_the_rig():
    m = Sequencer("sp1").make("clone-done", failover=1, role="ne1", config="c", digest="x", lines=3)
    assert isinstance(m, Message) and m.body["lines"] == 3
