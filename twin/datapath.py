"""Who may reconfigure the machine's one Open vSwitch datapath, and when.

Every lab's bridges live in ovs-vswitchd's single userspace datapath (LAB-NOTES: no kernel
datapath here), and its main thread forwards packets for every port of every lab. While it adds or
removes ports (another lab booting or being torn down) it forwards nothing: traffic in a running
lab is held up for hundreds of milliseconds and, at a few hundred packets per second, dropped
(measured: 70-85 ms of loss at 500 pps during each teardown of a second lab, 0.5 s of delay during
each boot). Nothing in the lab under test caused that loss.

So a lab's boot and teardown reconfigure the datapath under a shared lock (`reconfiguring`, any
number of labs at once), and a measurement that claims "nothing was lost" holds it exclusively
(`quiet`): while it does, no lab on the machine adds or removes switch ports. The lock is a
`flock` on a file in the registry directory, released by the kernel if its holder dies.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator

from twin.errors import LabError
from twin.registry import state_dir

log = logging.getLogger(__name__)

LOCK_FILE = "datapath.lock"
RECONFIGURE_WAIT_S = 120.0   # a quiet measurement lasts seconds; past this, reconfigure anyway
QUIET_WAIT_S = 180.0         # a boot or teardown lasts seconds; past this, something is stuck

_local = threading.local()
_exclusive = 0               # quiet sections this process holds (reconfiguring inside one must not wait on itself)
_guard = threading.Lock()


def _acquire(fh, mode: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


@contextlib.contextmanager
def reconfiguring(what: str = "a lab", timeout: float = RECONFIGURE_WAIT_S) -> Iterator[None]:
    """Around adding or removing switch ports: waits while a quiet measurement runs elsewhere.

    Never blocks a boot or teardown for good: after `timeout` it goes ahead (and says so), since a
    lab left half torn down is worse than a disturbed measurement."""
    if _exclusive or getattr(_local, "depth", 0):
        yield                # this process holds the lock already (quiet, or an outer reconfiguring)
        return
    with open(state_dir() / LOCK_FILE, "a+") as fh:
        got = _acquire(fh, fcntl.LOCK_SH, timeout)
        if not got:
            log.warning("%s reconfigures the datapath although a quiet measurement still holds it after %.0f s",
                        what, timeout)
        _local.depth = 1
        try:
            yield
        finally:
            _local.depth = 0
            if got:
                fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet(timeout: float = QUIET_WAIT_S) -> Iterator[float]:
    """Hold the datapath still: no lab on this machine boots or is torn down until the block ends.
    Yields how long it waited (s). For measurements that must see zero loss; keep them short."""
    global _exclusive
    t0 = time.monotonic()
    fh = open(state_dir() / LOCK_FILE, "a+")
    try:
        with _guard:
            nested = _exclusive > 0
        if not nested and not _acquire(fh, fcntl.LOCK_EX, timeout):
            raise LabError(f"the switch datapath did not become quiet within {timeout:.0f} s: other labs kept "
                           f"booting or tearing down (lock {state_dir() / LOCK_FILE}, pid {os.getpid()} waiting)")
        with _guard:
            _exclusive += 1
        try:
            yield time.monotonic() - t0
        finally:
            with _guard:
                _exclusive -= 1
                last = _exclusive == 0
            if last:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
