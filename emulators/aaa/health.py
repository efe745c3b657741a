"""How healthy an AAA server is (claims 4-7, 20-24) and when that crosses its thresholds.

The score is 0-100 and is the server's scarcest resource: free worker threads, idle CPU, free
memory, process headroom; a mandatory service down makes it 0 and each dependent service down costs
a fixed penalty. Below the failover threshold the server tells clients to leave; only above the
(higher) connection threshold does it invite them back, so a server hovering at one value does not
flap its clients back and forth.

The server is one box of the lab, so CPU, memory and processes are those of the processes in its
network namespace (`NamespaceMeter`), not of the whole machine the lab shares.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    threads_available: int
    threads_max: int
    cpu_pct: float
    mem_pct: float
    processes: int
    services: dict[str, bool] = field(default_factory=dict)


@dataclass
class HealthPolicy:
    failover_threshold: int = 30
    connection_threshold: int = 60
    max_processes: int = 64
    memory_mb: int = 512
    mandatory: tuple[str, ...] = ("radius-auth", "user-db")
    dependent: tuple[str, ...] = ("radius-acct", "logging")
    dependent_penalty: int = 25

    def validate(self) -> None:
        if not 0 <= self.failover_threshold < self.connection_threshold <= 100:
            raise ValueError(f"failover threshold {self.failover_threshold} must be below the connection "
                             f"threshold {self.connection_threshold} (both 0-100)")


def health_score(s: Sample, p: HealthPolicy) -> tuple[int, str]:
    """(score, what limits it): the limiting factor is what `show aaa` and the logs name."""
    down = [name for name in p.mandatory if not s.services.get(name, False)]
    if down:
        return 0, f"mandatory service {', '.join(down)} down"
    parts = {
        "threads": 100.0 * s.threads_available / s.threads_max if s.threads_max else 0.0,
        "cpu": 100.0 - s.cpu_pct,
        "memory": 100.0 - s.mem_pct,
        "processes": 100.0 * (1 - s.processes / p.max_processes) if p.max_processes else 100.0,
    }
    worst = min(parts, key=lambda k: parts[k])
    score = parts[worst]
    why = {"threads": f"{s.threads_available}/{s.threads_max} worker threads free",
           "cpu": f"CPU {s.cpu_pct:.0f}%", "memory": f"memory {s.mem_pct:.0f}%",
           "processes": f"{s.processes}/{p.max_processes} processes"}[worst]
    dep_down = [name for name in p.dependent if not s.services.get(name, False)]
    if dep_down:
        score -= p.dependent_penalty * len(dep_down)
        why += f"; dependent service {', '.join(dep_down)} down"
    return max(0, min(100, round(score))), why


@dataclass
class Hysteresis:
    """`update` returns "failover" on crossing below the failover threshold and "reconnect" on
    climbing above the connection threshold after a failover; otherwise None."""

    failed_over: bool = False

    def update(self, score: int, p: HealthPolicy) -> str | None:
        if not self.failed_over and score < p.failover_threshold:
            self.failed_over = True
            return "failover"
        if self.failed_over and score > p.connection_threshold:
            self.failed_over = False
            return "reconnect"
        return None


def _netns_id(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


class NamespaceMeter:
    """CPU % and resident memory of the processes sharing our network namespace: the box the lab
    file describes, which has one CPU. (Measuring against every core of the host made the score
    depend on what else the host runs: two busy loops in a box on a busy 2-core host got well
    under the whole machine and never looked overloaded.)"""

    def __init__(self, only_self: bool = False) -> None:
        # only_self: a device without real effects (unit tests) runs in the machine's namespace,
        # whose processes are not the box's
        self.only_self = only_self
        self.ns = _netns_id("self")
        self.ncpu = 1
        self._last: tuple[float, int] | None = None

    def _members(self) -> list[str]:
        if self.only_self:
            return [str(os.getpid())]
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit() and _netns_id(pid) == self.ns:
                out.append(pid)
        return out

    def measure(self) -> tuple[float, int, int]:
        """(cpu % since the previous call, resident bytes, process count)."""
        ticks = rss = 0
        members = self._members()
        for pid in members:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                # after the comm field: utime, stime are fields 14, 15 (index 11, 12 here); rss is 24
                ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
                rss += int(fields[21]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
        now = time.monotonic()
        cpu = 0.0
        if self._last is not None:
            dt = now - self._last[0]
            if dt > 0:
                cpu = max(0.0, (ticks - self._last[1]) / CLK_TCK / dt / self.ncpu * 100.0)
        self._last = (now, ticks)
        return min(cpu, 100.0), rss, len(members)
