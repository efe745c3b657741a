"""Authentications at a fixed offered rate through a NAS's server selection, and what each one
turned out to be (accepted, rejected, failed, late): what users of the NAS would have seen."""
from __future__ import annotations

import array
import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .radius_client import AuthResult

log = logging.getLogger(__name__)

LATE_S = 1.0                  # a load request answered later than this counts as late


@dataclass(frozen=True)
class AuthOutcome:
    """One user authentication through the selection logic (possibly several servers)."""

    code: str                     # accept | reject | failed
    server: str | None            # who answered
    latency_s: float              # start to answer (or to giving up), fallbacks included
    tried: tuple[str, ...]
    results: tuple[AuthResult, ...]

    def text(self) -> str:
        if self.code == "accept":
            return f"User successfully authenticated via {self.server} in {self.latency_s * 1000:.0f} ms"
        if self.code == "reject":
            return f"User rejected by {self.server}"
        if not self.tried:
            return "% No RADIUS servers configured"
        return f"% No response from RADIUS servers (tried {', '.join(self.tried)})"


@dataclass
class LoadStats:
    offered: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    late: int = 0
    skipped: int = 0              # not sent: the backlog was over its bound
    pending: int = 0
    per_server: dict[str, Counter] = field(default_factory=dict)
    latencies: array.array = field(default_factory=lambda: array.array("d"))


class LoadGenerator:
    """Authentications at a fixed offered rate, each through the NAS's server selection.

    A scheduler thread releases request i at start + i/rate whatever happened to earlier ones, and
    a pool of daemon worker threads (grown on demand up to `max_workers`) runs them, so a silent
    server does not lower the offered rate. Latency is measured from the time a request was due,
    so time spent queued behind slow requests counts: that is what a user would see. Each request is
    recorded (time due, result, latency, server) and streamed to `records_path` as JSON lines."""

    def __init__(self, rate: int, user: str, request: Callable[[], AuthOutcome], *,
                 records_path: Any = None, max_workers: int = 512,
                 on_done: Callable[["LoadGenerator"], None] | None = None) -> None:
        self.rate = rate
        self.user = user
        self.request = request
        self.records_path = records_path
        self.max_workers = max_workers
        self.on_done = on_done
        self.stats = LoadStats()
        self.records: deque[tuple[float, str, float, str]] = deque(maxlen=100_000)
        self.lock = threading.Lock()
        self.started = time.time()
        self.stopped_at: float | None = None
        self.max_backlog = max(1000, rate * 60)
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[float | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._unwritten: list[tuple[float, str, float, str]] = []
        self._thread = threading.Thread(target=self._schedule, name="aaa-load", daemon=True)

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def start(self) -> None:
        if self.records_path is not None:
            try:
                open(self.records_path, "w").close()
            except OSError:
                self.records_path = None
        self._thread.start()

    def stop(self) -> None:
        """Stop offering; requests already offered finish in the background."""
        if not self._stop.is_set():
            self.stopped_at = time.time()
            self._stop.set()

    def _schedule(self) -> None:
        t0 = time.monotonic()
        wall0 = time.time()
        i = 0
        next_flush = t0 + 0.5
        while not self._stop.is_set():
            due = t0 + i / self.rate
            now = time.monotonic()
            if now >= next_flush:
                self._flush()
                next_flush = now + 0.5
            if due > now:
                self._stop.wait(min(due - now, 0.5))
                continue
            i += 1
            with self.lock:
                self.stats.offered += 1
                if self.stats.pending >= self.max_backlog:
                    self.stats.skipped += 1
                    continue
                self.stats.pending += 1
                spawn = self._idle == 0 and len(self._workers) < self.max_workers
                if spawn:
                    self._idle += 1          # counted idle until it takes its first item
            self._queue.put(due - t0 + wall0)
            if spawn:
                w = threading.Thread(target=self._work, args=(t0, wall0), name="aaa-load-worker", daemon=True)
                self._workers.append(w)
                w.start()
        for _ in self._workers:
            self._queue.put(None)
        for w in self._workers:
            w.join()
        self._flush()
        if self.on_done is not None:
            self.on_done(self)

    def _work(self, t0: float, wall0: float) -> None:
        while True:
            item = self._queue.get()
            with self.lock:
                self._idle -= 1
            if item is None:
                return
            try:
                outcome = self.request()
            except Exception:
                log.exception("load request failed")
                outcome = AuthOutcome("failed", None, 0.0, (), ())
            latency = time.monotonic() - (item - wall0 + t0)
            self._record(item, outcome, latency)
            with self.lock:
                self._idle += 1

    def _record(self, sent: float, outcome: AuthOutcome, latency: float) -> None:
        server = outcome.server or ""
        rec = (sent, outcome.code, latency, server)
        with self.lock:
            st = self.stats
            st.pending -= 1
            if outcome.code == "accept":
                st.accepted += 1
            elif outcome.code == "reject":
                st.rejected += 1
            else:
                st.failed += 1
            if outcome.code != "failed":
                st.latencies.append(latency)
                if latency > LATE_S:
                    st.late += 1
            st.per_server.setdefault(server or "(none)", Counter())[outcome.code] += 1
            self.records.append(rec)
            if self.records_path is not None:
                self._unwritten.append(rec)

    def _flush(self) -> None:
        with self.lock:
            rows, self._unwritten = self._unwritten, []
        if not rows or self.records_path is None:
            return
        try:
            with open(self.records_path, "a", encoding="utf-8") as f:
                for sent, result, latency, server in rows:
                    f.write(json.dumps({"sent": round(sent, 6), "result": result,
                                        "latency_ms": round(latency * 1000, 3), "server": server}) + "\n")
        except OSError:
            log.warning("cannot write %s", self.records_path)

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles (answered requests only), as `show aaa load` prints them."""
        with self.lock:
            st = self.stats
            lat = st.latencies[:]
            out = {"running": self.running, "rate": self.rate, "user": self.user,
                   "offered": st.offered, "accepted": st.accepted, "rejected": st.rejected,
                   "failed": st.failed, "late": st.late, "skipped": st.skipped, "pending": st.pending,
                   "per_server": {k: dict(v) for k, v in st.per_server.items()},
                   "duration_s": (self.stopped_at or time.time()) - self.started}
        ordered = sorted(lat)
        out["p50_ms"] = ordered[len(ordered) // 2] * 1000 if ordered else None
        out["max_ms"] = ordered[-1] * 1000 if ordered else None
        return out
