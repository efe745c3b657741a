"""Where running labs are recorded, shared by every process on the machine (all xdist workers).

Everything is under one directory (default /run/twin, a tmpfs: labs do not survive a reboot and
neither should their records) and changed only while holding one file lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def state_dir() -> Path:
    d = Path(os.environ.get("TWIN_STATE_DIR", "/run/twin"))
    (d / "labs").mkdir(parents=True, exist_ok=True)
    return d


def labs_dir() -> Path:
    return state_dir() / "labs"


def lab_dir(prefix: str) -> Path:
    return labs_dir() / prefix


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    """Serialise allocations across processes; the lock is released even if the holder dies."""
    d = state_dir()
    with open(d / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield d
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
