"""The data store every element-management server exports to (spec 001: the federated service
provides element, nodal-alarm and event-log data to a data store; peered services and clients read it).

One SQLite file on the shared file system: the servers run in separate network namespaces but see the
same files, so the store needs no server of its own. WAL mode lets readers run while one process
writes; `busy_timeout` plus `BEGIN IMMEDIATE` makes concurrent writers queue instead of failing with
"database is locked" (a deferred transaction that upgrades to a write lock would not wait).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    id INTEGER PRIMARY KEY, address TEXT, role TEXT, master INTEGER, term INTEGER,
    elements INTEGER, updated REAL);
CREATE TABLE IF NOT EXISTS elements (
    name TEXT PRIMARY KEY, mgmt_ip TEXT, server_id INTEGER, reachable INTEGER, polled REAL,
    detail TEXT);
CREATE TABLE IF NOT EXISTS interfaces (
    element TEXT, name TEXT, address TEXT, up INTEGER, PRIMARY KEY (element, name));
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT, element TEXT, server_id INTEGER, time REAL,
    severity INTEGER, mnemonic TEXT, text TEXT);
CREATE INDEX IF NOT EXISTS alarms_element_time ON alarms (element, time);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_unique ON alarms (element, time, mnemonic, text);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, server_id INTEGER, type TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE TABLE IF NOT EXISTS circuits (
    id TEXT PRIMARY KEY, src TEXT, dst TEXT, path TEXT, servers TEXT, state TEXT,
    created REAL, updated REAL, server_id INTEGER);
"""


class StoreError(Exception):
    pass


class EmsStore:
    """Thread-safe: one connection per process behind a lock (SQLite serialises writers anyway),
    reopened after a fork because a connection must never cross a process boundary."""

    def __init__(self, path: Path | str, *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        with self._lock:
            self._connection()

    # ------------------------------------------------------------------ plumbing
    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the EMS store: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: schema version {version} is newer than this "
                                     f"code's {SCHEMA_VERSION}")
                if version < SCHEMA_VERSION:
                    for stmt in filter(str.strip, SCHEMA.split(";")):
                        conn.execute(stmt)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable EMS store: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive lock, which the busy handler does not always wait for
        # when another process is opening the same fresh file: retry until the timeout.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: cannot use WAL mode (journal mode {mode})")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc
            try:
                yield conn
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {exc}") from exc
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return [dict(r) for r in self._connection().execute(sql, tuple(args))]
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ writers
    def record_server(self, server_id: int, address: str, role: str, master: int | None, term: int,
                      elements: int, now: float | None = None) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO servers (id, address, role, master, term, elements, updated) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (server_id, address, role, master, term, elements, _now(now)))

    def export_element(self, name: str, mgmt_ip: str, server_id: int, reachable: bool,
                       interfaces: Iterable[tuple[str, str, bool]] | None, now: float | None = None,
                       detail: Mapping[str, Any] | None = None) -> None:
        """Readers must never see half of an element's interfaces, so they are replaced in the same
        transaction that updates the element. `interfaces=None` (an unreachable element: nothing new
        is known) keeps the last exported ones."""
        rows = None if interfaces is None else [(name, n, a, int(bool(up))) for n, a, up in interfaces]
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO elements (name, mgmt_ip, server_id, reachable, polled, detail) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      (name, mgmt_ip, server_id, int(bool(reachable)), _now(now), json.dumps(detail or {})))
            if rows is not None:
                c.execute("DELETE FROM interfaces WHERE element = ?", (name,))
                c.executemany("INSERT INTO interfaces (element, name, address, up) VALUES (?, ?, ?, ?)", rows)

    def remove_element(self, name: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM interfaces WHERE element = ?", (name,))
            c.execute("DELETE FROM elements WHERE name = ?", (name,))

    def add_alarms(self, element: str, server_id: int, alarms: Iterable[Any]) -> int:
        """Alarms already stored (same element, time, mnemonic, text) are skipped: a server that takes
        over an element re-reads its whole logging buffer. Returns how many rows were added."""
        rows = [(element, server_id, float(_field(a, "time")), int(_field(a, "severity")),
                 str(_field(a, "mnemonic")), str(_field(a, "text"))) for a in alarms]
        with self._write() as c:
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO alarms (element, server_id, time, severity, mnemonic, text) "
                          "VALUES (?, ?, ?, ?, ?, ?)", rows)
            return c.total_changes - before

    def log_event(self, server_id: int, type: str, detail: Mapping[str, Any] | None = None,
                  now: float | None = None) -> int:
        with self._write() as c:
            cur = c.execute("INSERT INTO events (time, server_id, type, detail) VALUES (?, ?, ?, ?)",
                            (_now(now), server_id, type, json.dumps(detail or {}, default=str)))
            return int(cur.lastrowid)

    def save_circuit(self, circuit_id: str, src: str, dst: str, path: list[Any], servers: list[Any],
                     state: str, server_id: int, now: float | None = None) -> None:
        """Upsert that keeps the first `created` time, so a re-provisioned circuit keeps its age."""
        t = _now(now)
        with self._write() as c:
            c.execute("INSERT INTO circuits (id, src, dst, path, servers, state, created, updated, server_id) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET src = excluded.src, "
                      "dst = excluded.dst, path = excluded.path, servers = excluded.servers, "
                      "state = excluded.state, updated = excluded.updated, server_id = excluded.server_id",
                      (circuit_id, src, dst, json.dumps(path), json.dumps(servers), state, t, t, server_id))

    def delete_circuit(self, circuit_id: str) -> bool:
        with self._write() as c:
            return c.execute("DELETE FROM circuits WHERE id = ?", (circuit_id,)).rowcount > 0

    def prune(self, before: float) -> int:
        """Alarms and events only grow; the servers call this to bound the file."""
        with self._write() as c:
            n = c.execute("DELETE FROM alarms WHERE time < ?", (before,)).rowcount
            return n + c.execute("DELETE FROM events WHERE time < ?", (before,)).rowcount

    # ------------------------------------------------------------------ readers (plain dicts)
    def servers(self) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM servers ORDER BY id")

    def elements(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM elements ORDER BY name")
        for r in rows:
            r["reachable"] = bool(r["reachable"])
            r["detail"] = _loads(r["detail"], {})
        return rows

    def interfaces(self, element: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE element = ?", [element]) if element is not None else ("", [])
        rows = self._read(f"SELECT * FROM interfaces {where} ORDER BY element, name", args)
        for r in rows:
            r["up"] = bool(r["up"])
        return rows

    def alarms(self, element: str | None = None, since: float = 0, limit: int = 1000,
               after_id: int = 0) -> list[dict[str, Any]]:
        """The newest `limit` alarms at or after `since` (or with id > `after_id`, for tailing),
        oldest first."""
        where, args = ["time >= ?", "id > ?"], [since, after_id]
        if element is not None:
            where.append("element = ?")
            args.append(element)
        return self._newest("alarms", where, args, limit)

    def events(self, since: float = 0, type: str | None = None, limit: int = 1000,
               after_id: int = 0) -> list[dict[str, Any]]:
        """Same selection rules as `alarms`."""
        where, args = ["time >= ?", "id > ?"], [since, after_id]
        if type is not None:
            where.append("type = ?")
            args.append(type)
        rows = self._newest("events", where, args, limit)
        for r in rows:
            r["detail"] = _loads(r["detail"], {})
        return rows

    def circuits(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM circuits ORDER BY created, id")
        for r in rows:
            r["path"] = _loads(r["path"], [])
            r["servers"] = _loads(r["servers"], [])
        return rows

    def _newest(self, table: str, where: list[str], args: list[Any], limit: int) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT * FROM {table} WHERE {' AND '.join(where)} "
                          f"ORDER BY time DESC, id DESC LIMIT ?", [*args, max(0, int(limit))])
        rows.reverse()
        return rows


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default
