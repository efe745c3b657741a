"""The cluster manager's archive (SQLite): element states and the pool's order, each role's holder,
MACs and configuration (the initial config and the partial accumulated config since, claim 7),
failovers step by step, the cross-connects installed, and a timeline of every decision.

Everything the manager decides is written here before it acts on it, so a manager restarted in the
middle of a failover finds the substitute it had chosen and finishes with that one: never a second.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS elements (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, role TEXT, pool_seq INTEGER NOT NULL DEFAULT 0,
    since REAL NOT NULL, detail TEXT NOT NULL DEFAULT '', failures INTEGER NOT NULL DEFAULT 0,
    reload_at REAL);
CREATE TABLE IF NOT EXISTS roles (
    role TEXT PRIMARY KEY, holder TEXT, macs TEXT NOT NULL DEFAULT '{}', initial TEXT,
    digest TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS accumulated (
    role TEXT NOT NULL, seq INTEGER NOT NULL, context TEXT NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (role, seq));
CREATE TABLE IF NOT EXISTS failovers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, role TEXT NOT NULL, failed TEXT NOT NULL, substitute TEXT,
    reason TEXT NOT NULL, state TEXT NOT NULL, started REAL NOT NULL, finished REAL, steps TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS rules (key TEXT PRIMARY KEY, rule TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL, element TEXT,
    text TEXT NOT NULL);
"""

# Element states: active (holds a role), spare (in the pool), cloning (chosen as a substitute),
# failed (lost its role, waiting to be reachable), rebooting (told to reload with the cluster's
# default config), removed (taken out of the pool by the operator), offline (a spare not heard from).
STATES = ("active", "spare", "cloning", "failed", "rebooting", "removed", "offline")
OPEN_FAILOVER = ("detected", "waiting", "selected", "cloned")


@dataclass
class Failover:
    id: int
    role: str
    failed: str
    substitute: str | None
    reason: str
    state: str
    started: float
    finished: float | None
    steps: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the manager being killed (the case that matters here); only
        # a kernel crash could lose the last ones, and FULL's fsync per commit stalls a failover.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _tx(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.db.execute(sql, args)

    def _many(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self.db.execute(sql, args)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ first boot
    def is_empty(self) -> bool:
        return self._tx("SELECT COUNT(*) FROM elements").fetchone()[0] == 0

    def seed(self, members: list[str], pool: list[str]) -> None:
        now = time.time()
        stmts = [("INSERT OR IGNORE INTO elements(name, state, role, pool_seq, since) VALUES (?, 'active', ?, 0, ?)",
                  (m, m, now)) for m in members]
        stmts += [("INSERT OR IGNORE INTO elements(name, state, role, pool_seq, since) VALUES (?, 'spare', NULL, ?, ?)",
                   (p, i + 1, now)) for i, p in enumerate(pool)]
        stmts += [("INSERT OR IGNORE INTO roles(role, holder, updated) VALUES (?, ?, ?)", (m, m, now)) for m in members]
        self._many(stmts)

    # ------------------------------------------------------------------ elements and pool
    def elements(self) -> dict[str, dict[str, Any]]:
        rows = self._tx("SELECT name, state, role, pool_seq, since, detail, failures, reload_at FROM elements").fetchall()
        return {r[0]: {"name": r[0], "state": r[1], "role": r[2], "pool_seq": r[3], "since": r[4], "detail": r[5],
                       "failures": r[6], "reload_at": r[7]} for r in rows}

    def element(self, name: str) -> dict[str, Any] | None:
        return self.elements().get(name)

    def set_state(self, name: str, state: str, detail: str = "", role: str | None = None, *,
                  to_pool: bool = False, failed: bool = False, reload_at: float | None = None) -> None:
        assert state in STATES, state
        with self._lock:
            seq = self._tx("SELECT COALESCE(MAX(pool_seq), 0) + 1 FROM elements").fetchone()[0] if to_pool else None
            self._tx("UPDATE elements SET state = ?, role = ?, since = ?, detail = ?, "
                     "pool_seq = COALESCE(?, pool_seq), failures = failures + ?, reload_at = COALESCE(?, reload_at) "
                     "WHERE name = ?", (state, role, time.time(), detail, seq, 1 if failed else 0, reload_at, name))

    def add_element(self, name: str) -> None:
        self._tx("INSERT OR IGNORE INTO elements(name, state, since) VALUES (?, 'removed', ?)", (name, time.time()))

    def pool(self) -> list[str]:
        """Spares in selection order."""
        return [r[0] for r in self._tx("SELECT name FROM elements WHERE state = 'spare' ORDER BY pool_seq, name")]

    # ------------------------------------------------------------------ roles and their config
    def roles(self) -> dict[str, dict[str, Any]]:
        rows = self._tx("SELECT role, holder, macs, initial, digest, updated FROM roles").fetchall()
        return {r[0]: {"role": r[0], "holder": r[1], "macs": json.loads(r[2]), "initial": r[3], "digest": r[4],
                       "updated": r[5]} for r in rows}

    def set_holder(self, role: str, holder: str | None) -> None:
        self._tx("UPDATE roles SET holder = ?, updated = ? WHERE role = ?", (holder, time.time(), role))

    def set_macs(self, role: str, macs: dict[str, str]) -> None:
        self._tx("UPDATE roles SET macs = ? WHERE role = ?", (json.dumps(macs, sort_keys=True), role))

    def snapshot(self, role: str, config: str, digest: str) -> None:
        """A full config of the role replaces the archive: it becomes the initial config and the
        accumulated changes start again from nothing."""
        self._many([("UPDATE roles SET initial = ?, digest = ?, updated = ? WHERE role = ?",
                     (config, digest, time.time(), role)),
                    ("DELETE FROM accumulated WHERE role = ?", (role,))])

    def accumulate(self, role: str, context: list[str], line: str, digest: str) -> int:
        with self._lock:
            seq = self._tx("SELECT COALESCE(MAX(seq), 0) + 1 FROM accumulated WHERE role = ?", (role,)).fetchone()[0]
            self._many([("INSERT INTO accumulated(role, seq, context, line) VALUES (?, ?, ?, ?)",
                         (role, seq, json.dumps(context), line)),
                        ("UPDATE roles SET digest = ?, updated = ? WHERE role = ?", (digest, time.time(), role))])
            return seq

    def accumulated(self, role: str) -> list[dict[str, Any]]:
        return [{"seq": r[0], "context": json.loads(r[1]), "line": r[2]} for r in
                self._tx("SELECT seq, context, line FROM accumulated WHERE role = ? ORDER BY seq", (role,))]

    # ------------------------------------------------------------------ failovers
    def _failover(self, r: tuple) -> Failover:
        return Failover(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))

    def open_failover(self, role: str, failed: str, reason: str) -> Failover:
        now = time.time()
        with self._lock:
            cur = self._tx("INSERT INTO failovers(role, failed, reason, state, started, steps) VALUES (?, ?, ?, 'detected', ?, ?)",
                           (role, failed, reason, now, json.dumps({"detected": now})))
            return self.failover(cur.lastrowid)  # type: ignore[arg-type]

    def failover(self, fid: int) -> Failover:
        r = self._tx("SELECT id, role, failed, substitute, reason, state, started, finished, steps FROM failovers "
                     "WHERE id = ?", (fid,)).fetchone()
        if r is None:
            raise KeyError(f"no failover {fid}")
        return self._failover(r)

    def failovers(self, open_only: bool = False, limit: int = 1000) -> list[Failover]:
        where = f"WHERE state IN ({','.join('?' * len(OPEN_FAILOVER))})" if open_only else ""
        args = OPEN_FAILOVER if open_only else ()
        rows = self._tx(f"SELECT id, role, failed, substitute, reason, state, started, finished, steps FROM failovers "
                        f"{where} ORDER BY id DESC LIMIT {int(limit)}", args).fetchall()
        return [self._failover(r) for r in reversed(rows)]

    def open_failover_for(self, role: str) -> Failover | None:
        for f in self.failovers(open_only=True):
            if f.role == role:
                return f
        return None

    def advance(self, fid: int, state: str, substitute: str | None = None, finished: bool = False) -> Failover:
        with self._lock:
            f = self.failover(fid)
            steps = dict(f.steps)
            steps[state] = time.time()
            self._tx("UPDATE failovers SET state = ?, substitute = COALESCE(?, substitute), steps = ?, "
                     "finished = ? WHERE id = ?",
                     (state, substitute, json.dumps(steps), steps[state] if finished else None, fid))
            return self.failover(fid)

    # ------------------------------------------------------------------ cross-connects
    def installed_rules(self) -> dict[str, dict[str, Any]]:
        return {r[0]: json.loads(r[1]) for r in self._tx("SELECT key, rule FROM rules")}

    def set_rules(self, rules: dict[str, dict[str, Any]]) -> None:
        self._many([("DELETE FROM rules", ())] +
                   [("INSERT INTO rules(key, rule) VALUES (?, ?)", (k, json.dumps(v))) for k, v in rules.items()])

    # ------------------------------------------------------------------ timeline
    def note(self, kind: str, text: str, element: str | None = None) -> dict[str, Any]:
        now = time.time()
        self._tx("INSERT INTO timeline(time, kind, element, text) VALUES (?, ?, ?, ?)", (now, kind, element, text))
        return {"time": now, "kind": kind, "element": element, "text": text}

    def timeline(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._tx("SELECT time, kind, element, text FROM timeline ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{"time": r[0], "kind": r[1], "element": r[2], "text": r[3]} for r in reversed(rows)]
