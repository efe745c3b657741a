"""Master election among element-management servers with the bully algorithm (spec 001, claims 6-8).

Garcia-Molina's bully algorithm: the live server with the highest id is master. This module is the
state machine only ("sans-IO"): every method takes the current time and returns the messages to
send as `Out` records, so tests drive a whole cluster on a virtual clock with loss, delay and
partitions, and `election_service` runs the very same code over UDP.

Rules beyond the textbook, and why:

* `start()` (a process boot) also sends ELECTION to every *lower* server and, even when nobody is
  higher, waits `answer_timeout` before declaring. A lower master that hears ELECTION from a higher
  id steps down at once without answering, so a rejoining higher server never overlaps with the
  master it replaces (the old one is gone before the new one declares). Elections started later
  (master lost, a lower server asked) go to higher ids only, which keeps the worst case at
  n(n-1)/2 ELECTION messages.
* Heartbeats go to every configured peer, dead or not: they are how a healed partition notices two
  masters (the lower one steps down when it hears the higher one's heartbeat).
* Terms only ever grow. A master that sees a term above its own (from the other side of a healed
  partition) re-declares with a higher one ("became-master" with redeclared=True), so "newest (term, assignment_version)" is a total order
  members can rely on when they adopt the master's element assignment.
* Only the master computes the assignment (`assignment.assign`, sticky) and it does so whenever the
  set of live servers changes; members copy it from COORDINATOR and HEARTBEAT messages.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from emulators.ems import assignment as assign_mod
from emulators.ems.messages import ANSWER, COORDINATOR, ELECTION, HEARTBEAT

ELECTING, MASTER, MEMBER = "electing", "master", "member"
# Every message type is an election message or a heartbeat: all of them may go to peers believed
# dead (that is how a dead peer is found alive again). Anything added later must go only to live ones.
_ALWAYS_SENT = frozenset({ELECTION, ANSWER, COORDINATOR, HEARTBEAT})


@dataclass
class Timing:
    """Seconds. `dead_after` spans three heartbeats so one lost datagram is not a failure."""

    heartbeat: float = 0.05
    dead_after: float = 0.15
    answer_timeout: float = 0.05
    coordinator_timeout: float = 0.15


@dataclass(frozen=True)
class Out:
    """A message to send; the runner adds sender, incarnation, sequence number, time and HMAC."""

    dst_id: int
    msg_type: str
    term: int
    data: dict[str, Any] = field(default_factory=dict)


class BullyNode:
    """One server's view of the election; not thread-safe (the runner holds a lock around it)."""

    def __init__(self, my_id: int, peers: dict[int, tuple[str, int]], timing: Timing | None = None,
                 elements: list[str] | None = None) -> None:
        if my_id in peers:
            raise ValueError(f"server {my_id} lists itself as a peer")
        self.my_id = my_id
        self.peers = dict(peers)
        self.timing = timing or Timing()
        self.elements = sorted(set(elements or []))
        self.role = ELECTING
        self.master: int | None = None
        self.term = 0
        self.assignment: dict[str, int] = {}
        self.assignment_version = 0
        self.counters: collections.Counter[str] = collections.Counter()
        self.events: list[dict[str, Any]] = []
        self._started = False
        self._max_term = 0
        self._last_heard: dict[int, float] = {}
        self._alive: set[int] = set()          # peers whose "peer-alive" was the last event
        self._phase: str | None = None         # "answer" | "coordinator" while electing
        self._deadline = 0.0
        self._next_hb = 0.0
        self._announced_master: int | None = None
        self._assignment_key: tuple[int, int] | None = None   # (term, version) of the adopted map
        self._assigned_for: frozenset[int] | None = None     # live servers the master's map covers

    # ---- queries ---------------------------------------------------------------------------------
    def live_peers(self, now: float) -> set[int]:
        """Peers heard (any authenticated message) within `dead_after`."""
        return {p for p, t in self._last_heard.items() if now - t <= self.timing.dead_after}

    @property
    def electing(self) -> bool:
        return self._phase is not None

    def next_deadline(self, now: float) -> float:
        """When `tick` next has something to do, so a runner can sleep exactly that long."""
        times = [self._next_hb]
        if self._phase is not None:
            times.append(self._deadline)
        times += [self._last_heard[p] + self.timing.dead_after for p in self._alive]
        return max(now, min(times))

    def drain_events(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out

    # ---- inputs ----------------------------------------------------------------------------------
    def start(self, now: float) -> list[Out]:
        """Boot: announce to everyone and elect (see the module docstring for why lower ones too)."""
        self._started = True
        self._next_hb = now
        return self._elect(now, announce=True)

    def tick(self, now: float) -> list[Out]:
        """All the timers; timeouts are only as precise as the tick rate (see `next_deadline`)."""
        if not self._started:
            return []
        outs: list[Out] = []
        for p in sorted(self._alive):
            if now - self._last_heard[p] > self.timing.dead_after:
                self._alive.discard(p)
                self._event(now, "peer-dead", peer=p)
        if self.role == MEMBER and self.master not in self._alive:
            outs += self._elect(now)
        if self._phase == "answer" and now >= self._deadline:
            outs += self._become_master(now)
        elif self._phase == "coordinator" and now >= self._deadline:
            outs += self._elect(now)
        if self.role == MASTER:
            self._maybe_reassign(now)
        if now >= self._next_hb:
            self._next_hb += self.timing.heartbeat
            if self._next_hb <= now:
                self._next_hb = now + self.timing.heartbeat
            data = {"role": self.role, "master": self.master, "term": self.term,
                    "assignment_version": self.assignment_version}
            if self.role == MASTER:
                data["assignment"] = dict(self.assignment)
            outs += [self._out(p, HEARTBEAT, data) for p in sorted(self.peers)]
        return outs

    def receive(self, msg_type: str, sender_id: int, term: int, data: dict[str, Any], now: float) -> list[Out]:
        """A message the runner has already authenticated (HMAC, source address, replay).

        Ignored before `start()`: a node that is not running yet has no timers to finish an election.
        """
        if not self._started or sender_id not in self.peers:
            return []
        self.counters[f"received:{msg_type}"] += 1
        self._last_heard[sender_id] = now
        if sender_id not in self._alive:
            self._alive.add(sender_id)
            self._event(now, "peer-alive", peer=sender_id)
        self._max_term = max(self._max_term, term)
        outs: list[Out] = []
        if msg_type == ELECTION:
            outs += self._on_election(sender_id, now)
        elif msg_type == ANSWER:
            if self._phase == "answer" and sender_id > self.my_id:
                self._phase, self._deadline = "coordinator", now + self.timing.coordinator_timeout
        elif msg_type == COORDINATOR:
            outs += self._on_coordinator(sender_id, term, data, now)
        elif msg_type == HEARTBEAT:
            outs += self._on_heartbeat(sender_id, term, data, now)
        if self.role == MASTER and term > self.term:
            outs += self._redeclare(now)
        if self.role == MASTER:
            self._maybe_reassign(now)
        return outs

    # ---- message handlers ------------------------------------------------------------------------
    def _on_election(self, sender: int, now: float) -> list[Out]:
        if sender < self.my_id:
            outs = [self._out(sender, ANSWER, {})]
            if self.role == MASTER:
                outs.append(self._out(sender, COORDINATOR, self._coordinator_data()))
            elif not self.electing:
                outs += self._elect(now)
            return outs
        # A higher server (re)joining: yield before it can declare, and do not answer it.
        if self.role == MASTER:
            self._step_down(now, "bullied", sender)
            self._phase, self._deadline = "coordinator", now + self.timing.coordinator_timeout
        elif self._phase == "answer":
            # It is alive and above us, so it runs its own election: as good as an ANSWER.
            self._phase, self._deadline = "coordinator", now + self.timing.coordinator_timeout
        return []

    def _on_coordinator(self, sender: int, term: int, data: dict[str, Any], now: float) -> list[Out]:
        if sender > self.my_id:
            self._accept(sender, term, now, "coordinator")
            self._maybe_adopt(sender, term, data, now)
            return []
        if self.role == MASTER:
            return [self._out(sender, COORDINATOR, self._coordinator_data())]
        return [] if self.electing else self._elect(now)

    def _on_heartbeat(self, sender: int, term: int, data: dict[str, Any], now: float) -> list[Out]:
        claims_master = data.get("role") == MASTER
        if self.role == MASTER:
            if claims_master and sender > self.my_id:
                self._accept(sender, term, now, "higher-master")
                self._maybe_adopt(sender, term, data, now)
            elif sender < self.my_id and _follows_lower(data.get("master"), self.my_id):
                # A lower master (healed partition), or a server following one or none: bully it.
                # Not one following a higher master: that one will bully us, and flapping helps nobody.
                return [self._out(sender, COORDINATOR, self._coordinator_data())]
            return []
        if not claims_master:
            return []
        if self.role == MEMBER:
            if sender == self.master:
                self.term = max(self.term, term)
                self._maybe_adopt(sender, term, data, now)
            elif self.master is None or sender > self.master:
                self._accept(sender, term, now, "higher-master")
                self._maybe_adopt(sender, term, data, now)
        elif sender > self.my_id:
            self._accept(sender, term, now, "higher-master")
            self._maybe_adopt(sender, term, data, now)
        return []

    # ---- transitions -----------------------------------------------------------------------------
    def _elect(self, now: float, announce: bool = False) -> list[Out]:
        if self.role == MASTER:
            self._step_down(now, "election", self.my_id)
        self.role = ELECTING
        self._set_master(None, now)
        self._event(now, "election-started")
        higher = sorted(p for p in self.peers if p > self.my_id)
        targets = sorted(self.peers) if announce else higher
        outs = [self._out(p, ELECTION, {}) for p in targets]
        if not higher and not (announce and targets):
            return outs + self._become_master(now)
        self._phase, self._deadline = "answer", now + self.timing.answer_timeout
        return outs

    def _become_master(self, now: float) -> list[Out]:
        self._phase = None
        self.role = MASTER
        self.term = max(self.term, self._max_term) + 1
        self._max_term = self.term
        self._event(now, "became-master", term=self.term)
        self._set_master(self.my_id, now)
        self._maybe_reassign(now, force=True)
        data = self._coordinator_data()
        return [self._out(p, COORDINATOR, data) for p in sorted(self.peers)]

    def _redeclare(self, now: float) -> list[Out]:
        """Out-term a master from the other side of a healed partition so members' order holds."""
        self.term = max(self.term, self._max_term) + 1
        self._max_term = self.term
        self._event(now, "became-master", term=self.term, redeclared=True)
        data = self._coordinator_data()
        return [self._out(p, COORDINATOR, data) for p in sorted(self.peers)]

    def _accept(self, master: int, term: int, now: float, reason: str) -> None:
        if self.role == MASTER:
            self._step_down(now, reason, master)
        self.role = MEMBER
        self._phase = None
        self.term = max(self.term, term)
        self._set_master(master, now)

    def _step_down(self, now: float, reason: str, by: int) -> None:
        self.role = ELECTING
        self._set_master(None, now)
        self._assigned_for = None
        self._event(now, "stepped-down", reason=reason, by=by)

    def _set_master(self, master: int | None, now: float) -> None:
        self.master = master
        if master is not None and master != self._announced_master:
            self._announced_master = master
            self._assignment_key = None
            self._event(now, "master-changed", master=master, term=self.term)

    # ---- assignment ------------------------------------------------------------------------------
    def _maybe_reassign(self, now: float, force: bool = False) -> None:
        live = frozenset(self._alive | {self.my_id})
        if not force and live == self._assigned_for:
            return
        self._assigned_for = live
        new = assign_mod.assign(self.elements, sorted(live), self.assignment)
        self._set_assignment(new, self.assignment_version + 1, now)
        self._assignment_key = (self.term, self.assignment_version)

    def _maybe_adopt(self, sender: int, term: int, data: dict[str, Any], now: float) -> None:
        got = data.get("assignment")
        version = data.get("assignment_version")
        if sender != self.master or not isinstance(got, dict) or not isinstance(version, int):
            return
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in got.items()):
            return
        key = (term, version)
        if self._assignment_key is not None and key <= self._assignment_key:
            return
        self._assignment_key = key
        self._set_assignment(dict(got), version, now)

    def _set_assignment(self, new: dict[str, int], version: int, now: float) -> None:
        n_moved = assign_mod.moved(self.assignment, new)
        self.assignment = new
        self.assignment_version = version
        self._event(now, "assignment-changed", version=version, moved=n_moved, assignment=dict(new))

    def _coordinator_data(self) -> dict[str, Any]:
        return {"assignment": dict(self.assignment), "assignment_version": self.assignment_version}

    # ---- plumbing --------------------------------------------------------------------------------
    def _out(self, dst: int, msg_type: str, data: dict[str, Any]) -> Out:
        if msg_type not in _ALWAYS_SENT and dst not in self._alive:
            raise AssertionError(f"{msg_type} to dead peer {dst}")
        self.counters[f"sent:{msg_type}"] += 1
        return Out(dst, msg_type, self.term, data)

    def _event(self, now: float, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "time": now, **fields})


def _follows_lower(master: object, my_id: int) -> bool:
    return master is None or (isinstance(master, int) and master < my_id)
