"""The virtual link store (controllers/vlink/store.py): the manager's memory across restarts."""
from __future__ import annotations

import sqlite3

import pytest

from controllers.vlink.store import VLinkStore, spec_json
from vlink_sim import records

pytestmark = pytest.mark.unit

RECS = records(
    ("cab", {"type": "cable", "members": ["a:e1", "b:e1"], "description": "lab uplink"}),
    ("hub", {"type": "hub", "members": ["a:e2", {"endpoint": "b:e2", "promiscuous": True}]}),
    ("x100", {"type": "external", "vlan": 100, "members": ["c:e1"], "external": {"port": "s3:p14", "tagged": True}}),
    ("pr", {"type": "probe", "members": ["d:e1"], "points": [{"link": "cab"}, {"interface": "b:e2"}]}),
)


@pytest.fixture
def store(tmp_path):
    s = VLinkStore(tmp_path / "sub" / "vlinks.db")
    yield s
    s.close()


def test_links_survive_a_reopen(tmp_path):
    path = tmp_path / "state" / "vlinks.db"
    s = VLinkStore(path)
    assert s.links() == {} and s.next_id() == 1
    for rec in RECS.values():
        s.add(rec, origin="lab" if rec.name == "cab" else "api")
    s.close()
    again = VLinkStore(path)
    try:
        assert again.links() == RECS
        assert list(again.links()) == ["cab", "hub", "x100", "pr"], "in id order"
        assert again.origin("cab") == "lab" and again.origin("pr") == "api" and again.origin("nope") is None
        assert again.next_id() == 5
    finally:
        again.close()


def test_delete_removes_the_link_and_frees_its_id_slot(store):
    for rec in RECS.values():
        store.add(rec)
    store.delete("pr")
    assert list(store.links()) == ["cab", "hub", "x100"] and store.next_id() == 4
    store.delete("cab")
    assert list(store.links()) == ["hub", "x100"] and store.next_id() == 4


def test_names_ids_and_vlans_are_unique(store):
    store.add(RECS["cab"])
    (cab,) = records(("cab", {"type": "cable", "members": ["e:e1", "f:e1"], "vlan": 3999})).values()
    with pytest.raises(sqlite3.IntegrityError):
        store.add(cab)
    (other,) = records(("other", {"type": "cable", "members": ["e:e1", "f:e1"]})).values()  # VLAN 3000 again
    with pytest.raises(sqlite3.IntegrityError):
        store.add(type(other)(other.spec, 7, other.vlan))
    assert list(store.links()) == ["cab"]
    assert [h["event"] for h in store.history()] == ["created"], "a refused add leaves no history"


def test_history_records_every_change_in_order(store):
    store.add(RECS["cab"], origin="lab")
    store.add(RECS["hub"])
    store.log("hub", "learned", "02:00:00:00:00:01 on b:e2")
    store.delete("cab")
    hist = store.history()
    assert [(h["link"], h["event"], h["detail"]) for h in hist] == [
        ("cab", "created", "cable VLAN 3000 (lab)"), ("hub", "created", "hub VLAN 3001 (api)"),
        ("hub", "learned", "02:00:00:00:00:01 on b:e2"), ("cab", "deleted", "")]
    assert [h["seq"] for h in hist] == sorted(h["seq"] for h in hist)
    assert all(isinstance(h["time"], float) for h in hist)
    assert [h["event"] for h in store.history("hub")] == ["created", "learned"]
    assert [h["event"] for h in store.history(limit=2)] == ["learned", "deleted"], "the latest, oldest first"


def test_spec_json_is_the_short_form_that_parses_back():
    assert spec_json(RECS["cab"].spec) == {"name": "cab", "type": "cable", "description": "lab uplink",
                                           "members": [{"endpoint": "a:e1"}, {"endpoint": "b:e1"}]}
    assert spec_json(RECS["x100"].spec)["external"] == {"port": "s3:p14", "tagged": True}
    assert "revertive" not in spec_json(RECS["hub"].spec)
