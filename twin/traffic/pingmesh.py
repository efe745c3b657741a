"""Ping every ordered pair of lab nodes: the quickest "is the whole fabric reachable?" check.

Pings run inside each source node's namespace via ``NodeExec``. A failed pair is retried once before
it is reported, because the very first packet towards a neighbour can be lost while ARP resolves or a
reactive controller installs the flow; a second failure is a real one.
"""
from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from twin.nodeexec import NodeExec

__all__ = ["MeshResult", "PingPair", "format_matrix", "ping_mesh"]

_RTT_AVG = re.compile(r"= [\d.]+/([\d.]+)/")  # "rtt min/avg/max/mdev = 0.05/0.07/0.09/0.01 ms"


@dataclass(frozen=True)
class PingPair:
    src: str
    dst: str
    ip: str
    ok: bool
    attempts: int = 1
    rtt_ms: float | None = None
    detail: str = ""


@dataclass
class MeshResult:
    nodes: list[str]
    pairs: list[PingPair] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pairs)

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        return [(p.src, p.dst, p.ip) for p in self.pairs if not p.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return format_matrix(self.nodes, self.pairs)


def format_matrix(nodes: Sequence[str], pairs: Sequence[PingPair]) -> str:
    """A src-by-dst table (``ok``, ``ok*`` = passed on the retry, ``FAIL``) plus a summary line.

    Meant for assertion messages: a glance shows whether one node is cut off (a row and a column of
    FAIL) or one direction of one link is broken (a single cell).
    """
    cells = {(p.src, p.dst): ("ok" if p.attempts == 1 else "ok*") if p.ok else "FAIL" for p in pairs}
    names = list(nodes)
    width = max([len("src\\dst"), *(len(n) for n in names), 4]) + 1
    col = max([*(len(n) for n in names), 4]) + 1
    lines = ["src\\dst".ljust(width) + "".join(n.rjust(col) for n in names)]
    for src in names:
        row = src.ljust(width)
        for dst in names:
            row += ("-" if src == dst else cells.get((src, dst), "?")).rjust(col)
        lines.append(row)
    failed = [p for p in pairs if not p.ok]
    lines.append(f"{len(pairs) - len(failed)}/{len(pairs)} pairs ok"
                 + (" (ok* = passed on retry)" if any(p.ok and p.attempts > 1 for p in pairs) else ""))
    for p in failed:
        lines.append(f"FAIL {p.src} -> {p.dst} ({p.ip})" + (f": {p.detail}" if p.detail else ""))
    return "\n".join(lines)


def _ping_once(nodes: NodeExec, src: str, ip: str, count: int, timeout_s: float) -> tuple[bool, float | None, str]:
    argv = ["ping", "-n", "-q", "-c", str(count), "-W", f"{timeout_s:g}"]
    if count > 1:
        argv += ["-i", "0.2"]
    argv.append(ip)
    try:
        proc = nodes.run(src, argv, timeout=timeout_s * count + 0.2 * count + 5)
    except subprocess.TimeoutExpired:
        return False, None, "ping did not exit"
    m = _RTT_AVG.search(proc.stdout)
    if proc.returncode == 0:
        return True, float(m.group(1)) if m else None, ""
    last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return False, None, last[-1] if last else f"exit {proc.returncode}"


def _ping_pair(nodes: NodeExec, src: str, dst: str, ip: str, count: int, timeout_s: float) -> PingPair:
    ok, rtt, detail = _ping_once(nodes, src, ip, count, timeout_s)
    if ok:
        return PingPair(src, dst, ip, True, 1, rtt)
    ok, rtt, detail = _ping_once(nodes, src, ip, count, timeout_s)
    return PingPair(src, dst, ip, ok, 2, rtt, "" if ok else detail)


def ping_mesh(nodes: NodeExec, targets: Mapping[str, str], count: int = 1, timeout_s: float = 2,
              max_parallel: int = 32) -> MeshResult:
    """Ping all ordered pairs; at most ``max_parallel`` pings run at once so big labs don't fork-bomb."""
    names = list(targets)
    work = [(src, dst, targets[dst]) for src in names for dst in names if src != dst]
    result = MeshResult(nodes=names)
    if not work:
        return result
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(work)))) as pool:
        futures = [pool.submit(_ping_pair, nodes, src, dst, ip, count, timeout_s) for src, dst, ip in work]
        result.pairs = [f.result() for f in futures]
    return result
