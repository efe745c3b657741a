"""The EMS data store: several processes and threads write one SQLite file at once without losing
rows or failing with "database is locked"; exports replace an element's interfaces atomically;
readers return plain dicts; an unusable file is a clear StoreError."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from emulators.ems.element_client import Alarm
from emulators.ems.store import SCHEMA_VERSION, EmsStore, StoreError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
THREADS, ROWS = 4, 200

WRITER = textwrap.dedent("""
    import sys, threading
    from emulators.ems.store import EmsStore
    path, sid, threads, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = EmsStore(path, timeout=30)
    def work(t):
        for i in range(rows):
            store.log_event(sid, "tick", {"thread": t, "i": i})
            store.add_alarms(f"e{sid}", sid, [{"time": t * 1000 + i, "severity": 3,
                                               "mnemonic": "LINK-3-UPDOWN", "text": f"x{i}"}])
            store.export_element(f"e{sid}-{t}", "10.0.0.1", sid, True, [("eth1", "10.0.0.1", True)], now=i)
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    store.record_server(sid, f"10.0.{sid}.1", "member", 1, 1, threads)
""")


def test_concurrent_processes_and_threads_lose_nothing(tmp_path):
    db = tmp_path / "ems.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(sid), str(THREADS), str(ROWS)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for sid in (1, 2, 3)]
    # and threads of this process at the same time
    store = EmsStore(db)
    ts = [threading.Thread(target=lambda t=t: [store.log_event(9, "local", {"t": t}) for _ in range(ROWS)])
          for t in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert len(store.events(type="tick", limit=10_000)) == 3 * THREADS * ROWS
    assert len(store.events(type="local", limit=10_000)) == THREADS * ROWS
    assert len(store.alarms(limit=10_000)) == 3 * THREADS * ROWS
    assert len(store.alarms("e2", limit=10_000)) == THREADS * ROWS
    assert [s["id"] for s in store.servers()] == [1, 2, 3]
    assert len(store.elements()) == 3 * THREADS and len(store.interfaces()) == 3 * THREADS
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_export_element_replaces_its_interfaces(tmp_path):
    store = EmsStore(tmp_path / "ems.db")
    store.export_element("r1", "172.20.0.11", 1, True,
                         [("eth1", "10.1.0.1", True), ("eth2", "", False)], now=100, detail={"model": "x"})
    store.export_element("r2", "172.20.0.12", 2, True, [("eth1", "10.2.0.1", True)], now=100)
    store.export_element("r1", "172.20.0.11", 2, False, [("eth3", "10.3.0.1", True)], now=200)
    assert store.interfaces("r1") == [{"element": "r1", "name": "eth3", "address": "10.3.0.1", "up": True}]
    assert [(i["element"], i["name"]) for i in store.interfaces()] == [("r1", "eth3"), ("r2", "eth1")]
    r1 = store.elements()[0]
    assert r1 == {"name": "r1", "mgmt_ip": "172.20.0.11", "server_id": 2, "reachable": False, "polled": 200,
                  "detail": {}}
    store.export_element("r2", "172.20.0.12", 2, False, None, now=300)  # unreachable: keeps the last known
    assert store.interfaces("r2")[0]["name"] == "eth1" and not store.elements()[1]["reachable"]
    store.remove_element("r2")
    assert [e["name"] for e in store.elements()] == ["r1"] and not store.interfaces("r2")


def test_readers_filters_and_limits(tmp_path):
    store = EmsStore(tmp_path / "ems.db")
    alarms = [Alarm("r1", float(t), 3, "LINK-3-UPDOWN", f"eth{t}") for t in range(1, 6)]
    assert store.add_alarms("r1", 1, alarms) == 5
    assert store.add_alarms("r1", 2, alarms[:2]) == 0  # a re-read buffer adds no duplicates
    store.add_alarms("r2", 1, [{"time": 3.5, "severity": 1, "mnemonic": "SYS-1-X", "text": "t"}])
    assert [a["text"] for a in store.alarms("r1", since=2, limit=2)] == ["eth4", "eth5"]  # newest, oldest first
    assert [a["element"] for a in store.alarms()] == ["r1", "r1", "r1", "r2", "r1", "r1"]
    last = max(a["id"] for a in store.alarms())
    store.add_alarms("r2", 1, [Alarm("r2", 0.5, 0, "SYS-0-Y", "late")])
    assert [a["text"] for a in store.alarms(after_id=last)] == ["late"]

    first = store.log_event(1, "election", {"master": 3, "term": 2}, now=10)
    store.log_event(3, "assign", {"r1": 3}, now=11)
    assert store.events(type="election") == [{"id": first, "time": 10, "server_id": 1, "type": "election",
                                               "detail": {"master": 3, "term": 2}}]
    assert [e["type"] for e in store.events(since=10.5)] == ["assign"]

    store.record_server(3, "10.0.0.3", "master", 3, 2, 4, now=12)
    store.record_server(3, "10.0.0.3", "master", 3, 2, 5, now=13)
    assert store.servers() == [{"id": 3, "address": "10.0.0.3", "role": "master", "master": 3, "term": 2,
                                "elements": 5, "updated": 13}]

    store.save_circuit("c1", "r1", "r4", ["r1", "r2", "r4"], [1, 2], "computed", 1, now=20)
    store.save_circuit("c1", "r1", "r4", ["r1", "r3", "r4"], [1, 3], "provisioned", 3, now=25)
    (c,) = store.circuits()
    assert c == {"id": "c1", "src": "r1", "dst": "r4", "path": ["r1", "r3", "r4"], "servers": [1, 3],
                 "state": "provisioned", "created": 20, "updated": 25, "server_id": 3}
    assert store.delete_circuit("c1") and not store.circuits() and not store.delete_circuit("c1")

    assert store.prune(before=4) == 5  # r1's alarms at 1, 2, 3 and r2's two; the events are newer
    assert len(store.alarms()) == 2 and len(store.events()) == 2


def test_reopen_keeps_data_and_a_newer_schema_is_refused(tmp_path):
    db = tmp_path / "ems.db"
    EmsStore(db).log_event(1, "boot", {})
    assert [e["type"] for e in EmsStore(db).events()] == ["boot"]
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        EmsStore(db)


def test_corrupt_file_is_a_store_error_naming_the_path(tmp_path):
    db = tmp_path / "broken.db"
    db.write_bytes(b"this is not an sqlite database, just garbage " * 200)
    with pytest.raises(StoreError, match=str(db)):
        EmsStore(db)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        EmsStore(tmp_path / "a-file" / "ems.db")
