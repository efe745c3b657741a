"""A bounded, sequence-numbered event log with long-poll reads.

Tests need to see things that happened in the network (a port went down, a switch reconnected)
without racing: they remember `next` from one read and ask for everything from there on, so an
event that arrives between two reads is never lost, and a long-poll read returns as soon as one
arrives instead of sleeping a fixed time.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

MAX_EVENTS = 10000


class EventLog:
    """Sequence-numbered events; the last `maxlen` are kept.

    Numbering starts from the start time in microseconds, so the numbers of a restarted controller
    are above every cursor a client kept from the previous one: an old cursor reads the new
    process's events from its first, with no race against the switch reconnecting.
    """

    def __init__(self, maxlen: int = MAX_EVENTS) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self._next_seq = int(time.time() * 1_000_000)
        self._first_seq = self._next_seq
        # Identifies this controller process: a client holding a cursor from a previous controller
        # (restart) can tell that the numbering started again.
        self.boot = f"{os.getpid()}-{time.time():.6f}"

    @property
    def next_seq(self) -> int:
        with self._cond:
            return self._next_seq

    def publish(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Append an event and wake every waiting reader; returns the stored event."""
        with self._cond:
            event = {"seq": self._next_seq, "time": round(time.time(), 3), "type": type_, **fields}
            self._next_seq += 1
            self._events.append(event)
            self._cond.notify_all()
            return event

    def read(self, since: int = 0, timeout: float = 0.0) -> dict[str, Any]:
        """Events with seq >= since, waiting up to `timeout` seconds for the first one.

        A cursor beyond the newest event (a client's clock-skewed guess) is treated as 0: the
        reader gets everything this process has. `next` is the cursor for the following read.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if since > self._next_seq:
                since = 0
            while True:
                found = [e for e in self._events if e["seq"] >= since]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    break
                self._cond.wait(remaining)
            next_seq = found[-1]["seq"] + 1 if found else max(since, self._first_seq)
            return {"events": found, "next": next_seq, "boot": self.boot}
