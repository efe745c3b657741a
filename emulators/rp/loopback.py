"""Both units of a pair in one process, talking over 127.0.0.1 with in-memory kernels: what unit
tests and benchmarks run, so they exercise the real channel and sync without a lab."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .unit import RpUnit


def loopback_unit(name: str, state_dir: Path, *, unit: str, port: int, version: str,
                  config: str | None = None, **hw: Any) -> RpUnit:
    """A unit whose peer is on 127.0.0.1:`port` (the primary listens there, the secondary dials);
    `hw` overrides the chassis settings (pair, secret, dead_ms, boot_wait_s...)."""
    settings: dict[str, Any] = {"unit": unit, "pair": "rp1", "peer_address": "127.0.0.1",
                                "listen": "127.0.0.1", "port": port, "secret": "s", "boot_wait_s": 5, **hw}
    return RpUnit(name, state_dir=state_dir, users={"admin": "admin"}, enable_secret="e", apply=False,
                  hw=settings, version=version, initial_config=config)
