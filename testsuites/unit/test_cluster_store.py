"""The cluster manager's archive: pool order, roles and their configuration, failovers step by
step, and everything surviving a restart of the manager (a new Store on the same file)."""
from __future__ import annotations

import threading

import pytest

from emulators.cluster.store import OPEN_FAILOVER, Store

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "cluster.db")
    s.seed(["ne1", "ne2", "ne3"], ["sp1", "sp2"])
    yield s
    s.close()


def test_seed_makes_members_active_holders_and_spares_a_pool(store):
    els = store.elements()
    assert {n: (e["state"], e["role"]) for n, e in els.items()} == {
        "ne1": ("active", "ne1"), "ne2": ("active", "ne2"), "ne3": ("active", "ne3"),
        "sp1": ("spare", None), "sp2": ("spare", None)}
    assert {r: v["holder"] for r, v in store.roles().items()} == {"ne1": "ne1", "ne2": "ne2", "ne3": "ne3"}
    assert store.pool() == ["sp1", "sp2"]
    assert not store.is_empty()
    assert all(e["failures"] == 0 for e in els.values())


def test_seed_twice_changes_nothing(store):
    store.set_state("sp1", "cloning", role="ne1")
    store.seed(["ne1", "ne2", "ne3"], ["sp1", "sp2"])
    assert store.element("sp1")["state"] == "cloning"
    assert store.pool() == ["sp2"]


def test_empty_store(tmp_path):
    s = Store(tmp_path / "x.db")
    try:
        assert s.is_empty() and s.pool() == [] and s.roles() == {} and s.failovers() == []
    finally:
        s.close()


def test_pool_keeps_the_labs_order_and_returned_elements_go_last(store):
    store.set_state("ne1", "failed", "power off", failed=True)
    store.set_state("ne1", "spare", "rebooted", to_pool=True)
    assert store.pool() == ["sp1", "sp2", "ne1"]
    assert store.element("ne1")["failures"] == 1
    # sp1 leaves the pool (becomes a substitute) and comes back later: behind ne1
    store.set_state("sp1", "cloning", role="ne2")
    assert store.pool() == ["sp2", "ne1"]
    store.set_state("sp1", "spare", "back", to_pool=True)
    assert store.pool() == ["sp2", "ne1", "sp1"]
    # a state change without to_pool keeps the element's place
    store.set_state("sp2", "offline")
    store.set_state("sp2", "spare", "heard from again")
    assert store.pool() == ["sp2", "ne1", "sp1"]


def test_set_state_records_role_detail_and_reload_time(store):
    store.set_state("ne2", "rebooting", "told to reload", reload_at=123.0)
    e = store.element("ne2")
    assert (e["state"], e["role"], e["detail"], e["reload_at"]) == ("rebooting", None, "told to reload", 123.0)
    store.set_state("ne2", "spare", "rebooted")
    assert store.element("ne2")["reload_at"] == 123.0, "kept unless given"
    with pytest.raises(AssertionError):
        store.set_state("ne2", "exploded")


def test_add_element_is_outside_the_pool(store):
    store.add_element("r9")
    assert store.element("r9")["state"] == "removed"
    assert "r9" not in store.pool()
    assert store.element("nope") is None


def test_holder_and_macs(store):
    store.set_holder("ne1", None)
    store.set_macs("ne1", {"eth2": "02:00:00:00:00:01", "eth1": "02:00:00:00:00:02"})
    r = store.roles()["ne1"]
    assert r["holder"] is None and r["macs"] == {"eth1": "02:00:00:00:00:02", "eth2": "02:00:00:00:00:01"}
    store.set_holder("ne1", "sp1")
    assert store.roles()["ne1"]["holder"] == "sp1"


def test_accumulate_numbers_changes_per_role_and_snapshot_clears_them(store):
    store.snapshot("ne1", "hostname ne1\nend\n", "d0")
    assert store.roles()["ne1"]["initial"] == "hostname ne1\nend\n"
    assert store.accumulate("ne1", ["interface eth1"], " description a", "d1") == 1
    assert store.accumulate("ne1", [], "ip route 0.0.0.0 0.0.0.0 10.0.0.9", "d2") == 2
    assert store.accumulate("ne2", [], "hostname x", "e1") == 1, "numbered per role"
    assert store.accumulated("ne1") == [
        {"seq": 1, "context": ["interface eth1"], "line": " description a"},
        {"seq": 2, "context": [], "line": "ip route 0.0.0.0 0.0.0.0 10.0.0.9"}]
    assert store.roles()["ne1"]["digest"] == "d2"
    store.snapshot("ne1", "hostname ne1\ninterface eth1\n description a\nend\n", "d3")
    r = store.roles()["ne1"]
    assert store.accumulated("ne1") == [] and r["digest"] == "d3" and "description a" in r["initial"]
    assert len(store.accumulated("ne2")) == 1, "another role's changes stay"
    assert store.accumulate("ne1", [], "hostname y", "d4") == 1, "numbering starts again"


def test_concurrent_accumulate_gives_distinct_sequence_numbers(store):
    seqs: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for j in range(10):
            n = store.accumulate("ne3", [], f"line {i}-{j}", "d")
            with lock:
                seqs.append(n)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(seqs) == list(range(1, 41))


def test_failover_steps(store):
    f = store.open_failover("ne1", "ne1", "missed 3 heartbeats")
    assert (f.role, f.failed, f.substitute, f.state, f.finished) == ("ne1", "ne1", None, "detected", None)
    assert list(f.steps) == ["detected"]
    assert store.open_failover_for("ne1").id == f.id
    f = store.advance(f.id, "selected", substitute="sp1")
    assert (f.state, f.substitute) == ("selected", "sp1")
    f = store.advance(f.id, "cloned")
    assert f.substitute == "sp1", "kept when not given"
    f = store.advance(f.id, "done", finished=True)
    assert f.state == "done" and f.finished == f.steps["done"]
    assert list(f.steps) == ["detected", "selected", "cloned", "done"]
    assert f.steps["detected"] <= f.steps["selected"] <= f.steps["cloned"] <= f.steps["done"]
    assert store.open_failover_for("ne1") is None
    assert f.to_dict()["substitute"] == "sp1"
    with pytest.raises(KeyError):
        store.failover(999)


def test_failovers_open_only(store):
    a = store.open_failover("ne1", "ne1", "x")
    b = store.open_failover("ne2", "ne2", "y")
    c = store.open_failover("ne3", "ne3", "z")
    store.advance(a.id, "done", finished=True)
    store.advance(b.id, "waiting")
    assert [f.id for f in store.failovers()] == [a.id, b.id, c.id]
    assert [f.id for f in store.failovers(open_only=True)] == [b.id, c.id]
    assert [f.id for f in store.failovers(limit=2)] == [b.id, c.id], "the newest, oldest first"
    assert set(OPEN_FAILOVER) >= {"detected", "waiting", "selected", "cloned"} and "done" not in OPEN_FAILOVER


def test_rules_and_timeline(store):
    store.set_rules({"k1": {"switch": "sw1", "priority": 1, "match": [], "outputs": []}})
    store.set_rules({"k2": {"switch": "sw2", "priority": 110, "match": [["in_port", "eth1"]], "outputs": ["eth11"]}})
    assert store.installed_rules() == {"k2": {"switch": "sw2", "priority": 110, "match": [["in_port", "eth1"]],
                                              "outputs": ["eth11"]}}
    store.note("failure", "ne1 failed", "ne1")
    store.note("done", "moved")
    tl = store.timeline()
    assert [(t["kind"], t["element"], t["text"]) for t in tl] == [("failure", "ne1", "ne1 failed"),
                                                                 ("done", None, "moved")]
    assert [t["kind"] for t in store.timeline(limit=1)] == ["done"]


def test_everything_survives_reopening_the_file(tmp_path):
    """A restarted manager keeps the pool's state: order, roles, config, failovers, rules, timeline."""
    path = tmp_path / "cluster.db"
    s = Store(path)
    s.seed(["ne1", "ne2"], ["sp1", "sp2"])
    s.set_state("ne1", "failed", "power off", failed=True)
    s.set_holder("ne1", None)
    f = s.open_failover("ne1", "ne1", "power off")
    s.set_state("sp1", "cloning", "substitute", role="ne1")
    s.advance(f.id, "selected", substitute="sp1")
    s.set_state("ne2", "spare", "returned", to_pool=True)   # (odd, but shows pool order persisting)
    s.set_macs("ne1", {"eth2": "02:00:00:00:00:01"})
    s.snapshot("ne1", "hostname ne1\n", "d0")
    s.accumulate("ne1", ["interface eth1"], " shutdown", "d1")
    s.set_rules({"k": {"switch": "sw1", "priority": 1, "match": [], "outputs": []}})
    s.note("select", "sp1 selected", "sp1")
    before = (s.elements(), s.roles(), s.pool(), s.accumulated("ne1"), s.failovers(), s.installed_rules(),
              s.timeline())
    s.close()

    s2 = Store(path)
    try:
        assert not s2.is_empty()
        after = (s2.elements(), s2.roles(), s2.pool(), s2.accumulated("ne1"), s2.failovers(),
                 s2.installed_rules(), s2.timeline())
        assert after == before
        assert s2.pool() == ["sp2", "ne2"]
        open_f = s2.open_failover_for("ne1")
        assert open_f is not None and (open_f.state, open_f.substitute) == ("selected", "sp1")
        assert s2.element("ne1")["failures"] == 1
        # and it keeps numbering where it left off
        assert s2.accumulate("ne1", [], "hostname z", "d2") == 2
        s2.set_state("sp1", "spare", "back", to_pool=True)
        assert s2.pool() == ["sp2", "ne2", "sp1"]
    finally:
        s2.close()
