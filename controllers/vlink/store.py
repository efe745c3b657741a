"""The virtual link data store (SQLite): links with their attributes, and a history of changes.

The controller's only memory across restarts: on start the manager loads every link from here and
reprograms the switches from it. WAL mode, one writer (the manager's worker thread).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from controllers.vlink.compiler import LinkRecord
from controllers.vlink.model import VLinkSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    name TEXT PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    type TEXT NOT NULL,
    vlan INTEGER NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'api',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    link TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""


class VLinkStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def links(self) -> dict[str, LinkRecord]:
        with self._lock:
            rows = self._db.execute("SELECT spec, id, vlan FROM links ORDER BY id").fetchall()
        out = {}
        for spec, link_id, vlan in rows:
            rec = LinkRecord(VLinkSpec.model_validate_json(spec), int(link_id), int(vlan))
            out[rec.name] = rec
        return out

    def origin(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT origin FROM links WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def next_id(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM links").fetchone()
        return int(row[0])

    def add(self, rec: LinkRecord, origin: str = "api") -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO links(name, id, type, vlan, spec, origin, created) VALUES (?,?,?,?,?,?,?)",
                             (rec.name, rec.id, rec.spec.type, rec.vlan, rec.spec.model_dump_json(exclude_none=True),
                              origin, time.time()))
            self._log(rec.name, "created", f"{rec.spec.type} VLAN {rec.vlan} ({origin})")

    def delete(self, name: str) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM links WHERE name=?", (name,))
            self._log(name, "deleted", "")

    def log(self, link: str, event: str, detail: str = "") -> None:
        with self._lock:
            self._log(link, event, detail)

    def _log(self, link: str, event: str, detail: str) -> None:
        self._db.execute("INSERT INTO history(time, link, event, detail) VALUES (?,?,?,?)",
                         (time.time(), link, event, detail))

    def history(self, link: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = "SELECT seq, time, link, event, detail FROM history"
        args: tuple = ()
        if link:
            q += " WHERE link=?"
            args = (link,)
        q += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(q, (*args, limit)).fetchall()
        return [{"seq": s, "time": round(t, 3), "link": l, "event": e, "detail": d} for s, t, l, e, d in reversed(rows)]


def spec_json(spec: VLinkSpec) -> dict[str, Any]:
    return json.loads(spec.model_dump_json(exclude_none=True, exclude_defaults=True)) | {"name": spec.name,
                                                                                        "type": spec.type}
