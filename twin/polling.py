"""Waiting for a condition with a deadline, never a fixed sleep: what tests, benchmarks and the lab
engine do whenever something happens "soon" (a failover, a route, a reconnect)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(cond: Callable[[], T], timeout: float = 5.0, what: str = "condition", interval: float = 0.02) -> T:
    """The first truthy value `cond()` returns; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {got!r})")
        time.sleep(interval)
