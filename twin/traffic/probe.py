"""Probe streams that measure how long traffic between two lab nodes was interrupted.

A failover test needs one number above all: for how long did packets stop? Ping at one-second
intervals cannot see a 40 ms failover, so a small agent (``probe_agent.py``) sends sequence-numbered
UDP probes every few milliseconds from the source node and an echo responder in the destination node
returns them. Everything after the raw per-probe records (classifying probes, cutting outage windows,
percentiles) is done by pure functions in this module, so it can be unit-tested without a lab.

Definitions the numbers rest on:

* A probe is **received** when its echo came back within ``timeout_ms``; an echo that arrives later
  counts as **lost** (it is also counted in ``late``): for a user a reply after a second is an outage.
* An **outage** is a maximal run of consecutive lost probes. It lasts from the send time of the first
  lost probe to the send time of the first probe that got through again ("first lost to first
  recovered"), so a single lost probe is an outage of about one interval.
* Lost probes before the first echo ever seen are **startup** loss (responder not bound yet, ARP):
  they are excluded from sent/lost and outages because the stream was never established.
* Unanswered probes at the very end, sent less than ``timeout_ms`` before the agent stopped, are
  **pending**: their fate is unknown, so they are excluded too. An outage still going on when the
  stream stops is reported with ``recovered=False``, lasting until the last probe was sent.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twin.nodeexec import NodeExec

__all__ = [
    "Outage", "ProbeError", "ProbeProgress", "ProbeRecord", "ProbeRecords", "ProbeResult",
    "ProbeStream", "analyze", "classify", "compute_outages", "parse_records", "percentile",
]

DEFAULT_TIMEOUT_MS = 1000.0
DEFAULT_TOLERANCE_MS = 50.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

OK, LOST, STARTUP, PENDING = "ok", "lost", "startup", "pending"


class ProbeError(RuntimeError):
    """The probe stream could not be started, did not flow, or its agent failed."""


# --------------------------------------------------------------------------------------------------
# Records and pure analysis
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeRecord:
    """One probe: nanoseconds since the stream's start (monotonic clock)."""

    seq: int
    send_ns: int
    recv_ns: int | None = None

    @property
    def rtt_ns(self) -> int | None:
        return None if self.recv_ns is None else self.recv_ns - self.send_ns


@dataclass
class ProbeRecords:
    """The sender's raw output: per-probe records plus what is needed to put them on the wall clock."""

    start_wall: float
    interval_ms: float
    end_ns: int
    records: list[ProbeRecord]
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    end_send_ns: int | None = None
    target: str = ""
    port: int = 0
    send_errors: int = 0

    def wall(self, t_ns: int) -> float:
        return self.start_wall + t_ns / 1e9


@dataclass(frozen=True)
class Outage:
    """A window with no echoes: first lost probe's send time to first recovered probe's send time."""

    start_wall: float
    end_wall: float
    duration_ms: float
    lost: int
    first_seq: int
    recovered: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProbeProgress:
    """Live counters from a running sender, for polling (flowing? stopped? resumed?)."""

    sent: int
    received: int
    send_errors: int
    last_rx_age_ms: float | None
    elapsed_ms: float
    wall: float


@dataclass
class ProbeResult:
    sent: int
    received: int
    lost: int
    loss_pct: float
    outages: list[Outage]
    rtt_p50_ms: float | None
    rtt_p99_ms: float | None
    interval_ms: float
    timeout_ms: float
    start_wall: float
    end_wall: float
    late: int = 0
    startup_lost: int = 0
    pending: int = 0
    send_errors: int = 0
    src: str = ""
    dst: str = ""
    dst_ip: str = ""
    port: int = 0
    records_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_outage_ms(self) -> float:
        return max((o.duration_ms for o in self.outages), default=0.0)

    def outage_after(self, t_wall: float, tolerance_ms: float = DEFAULT_TOLERANCE_MS,
                     min_lost: int = 1) -> Outage | None:
        """The first outage starting at or after a fault time.

        The tolerance exists because the first lost probe can have been sent a little before the
        harness's ``time.time()`` stamp of the fault (it was in flight when the link went down, or the
        stamp was taken after the command that caused the fault returned). ``min_lost`` lets a caller
        skip isolated single drops that precede the fault's real outage.
        """
        limit = t_wall - tolerance_ms / 1000.0
        for outage in self.outages:
            if outage.start_wall >= limit and outage.lost >= min_lost:
                return outage
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outages"] = [o.to_dict() for o in self.outages]
        d["max_outage_ms"] = self.max_outage_ms
        return d

    def __str__(self) -> str:
        p50 = "-" if self.rtt_p50_ms is None else f"{self.rtt_p50_ms:.3f}"
        p99 = "-" if self.rtt_p99_ms is None else f"{self.rtt_p99_ms:.3f}"
        return (f"probe {self.src}->{self.dst} ({self.dst_ip}:{self.port}) every {self.interval_ms:g} ms: "
                f"sent {self.sent}, received {self.received}, lost {self.lost} ({self.loss_pct:.2f}%), "
                f"{len(self.outages)} outage(s), max {self.max_outage_ms:.1f} ms, rtt p50 {p50} ms "
                f"p99 {p99} ms")


def parse_records(text: str) -> ProbeRecords:
    """Parse the agent's JSON-lines output (header line, then ``[seq, send_ns, recv_ns|null]``)."""
    lines = text.splitlines()
    if not lines:
        raise ProbeError("probe records are empty (the sender wrote nothing)")
    header = json.loads(lines[0])
    if header.get("format") != "twin-probe/1":
        raise ProbeError(f"unknown probe record format: {header.get('format')!r}")
    records = []
    for line in lines[1:]:
        if not line.strip():
            continue
        seq, send_ns, recv_ns = json.loads(line)
        records.append(ProbeRecord(int(seq), int(send_ns), None if recv_ns is None else int(recv_ns)))
    return ProbeRecords(
        start_wall=float(header["start_wall"]),
        interval_ms=float(header["interval_ms"]),
        end_ns=int(header["end_ns"]),
        end_send_ns=int(header["end_send_ns"]),
        records=records,
        timeout_ms=float(header.get("timeout_ms", DEFAULT_TIMEOUT_MS)),
        target=str(header.get("target", "")),
        port=int(header.get("port", 0)),
        send_errors=int(header.get("send_errors", 0)),
    )


def classify(records: Sequence[ProbeRecord], timeout_ms: float, end_ns: int) -> list[str]:
    """Label each probe ``ok``, ``lost``, ``startup`` or ``pending`` (see the module docstring)."""
    timeout_ns = int(timeout_ms * 1e6)
    states = []
    for r in records:
        rtt = r.rtt_ns
        states.append(OK if rtt is not None and rtt <= timeout_ns else LOST)
    ok_idx = [i for i, s in enumerate(states) if s == OK]
    if not ok_idx:
        # Never established: nothing to call startup; only the unknown tail is pending.
        first_ok, last_ok = len(states), -1
    else:
        first_ok, last_ok = ok_idx[0], ok_idx[-1]
        for i in range(first_ok):
            states[i] = STARTUP
    for i in range(len(states) - 1, last_ok, -1):
        r = records[i]
        if r.recv_ns is None and end_ns - r.send_ns < timeout_ns:
            states[i] = PENDING
        else:
            break
    return states


def compute_outages(records: Sequence[ProbeRecord], states: Sequence[str], start_wall: float,
                    end_send_ns: int) -> list[Outage]:
    """Cut runs of consecutive lost probes into outage windows ("first lost to first recovered").

    ``end_send_ns`` closes an outage that never recovered: the stream stopped sending then, so the
    outage lasted at least that long.
    """
    outages: list[Outage] = []
    run_start: int | None = None
    for i, state in enumerate(states):
        if state == LOST:
            if run_start is None:
                run_start = i
        elif state == OK and run_start is not None:
            outages.append(_outage(records, run_start, i - run_start, records[i].send_ns, True,
                                   start_wall))
            run_start = None
    if run_start is not None:
        lost = sum(1 for s in states[run_start:] if s == LOST)
        end = max(end_send_ns, records[-1].send_ns)
        outages.append(_outage(records, run_start, lost, end, False, start_wall))
    return outages


def _outage(records: Sequence[ProbeRecord], first: int, lost: int, end_ns: int, recovered: bool,
            start_wall: float) -> Outage:
    start_ns = records[first].send_ns
    return Outage(start_wall=start_wall + start_ns / 1e9, end_wall=start_wall + end_ns / 1e9,
                  duration_ms=(end_ns - start_ns) / 1e6, lost=lost, first_seq=records[first].seq,
                  recovered=recovered)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), without needing numpy in the harness."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    k = (len(xs) - 1) * pct / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


def analyze(recs: ProbeRecords, **meta: Any) -> ProbeResult:
    """Turn raw records into the result a test asserts on. ``meta`` fills src/dst/... fields."""
    records = sorted(recs.records, key=lambda r: r.seq)
    states = classify(records, recs.timeout_ms, recs.end_ns)
    end_send_ns = recs.end_send_ns if recs.end_send_ns is not None else (
        records[-1].send_ns if records else 0)
    outages = compute_outages(records, states, recs.start_wall, end_send_ns) if records else []
    counted = [s for s in states if s in (OK, LOST)]
    sent = len(counted)
    received = counted.count(OK)
    lost = sent - received
    timeout_ns = recs.timeout_ms * 1e6
    late = sum(1 for r, s in zip(records, states)
               if s == LOST and r.rtt_ns is not None and r.rtt_ns > timeout_ns)
    rtts = [r.rtt_ns / 1e6 for r, s in zip(records, states) if s == OK and r.rtt_ns is not None]
    return ProbeResult(
        sent=sent, received=received, lost=lost,
        loss_pct=(100.0 * lost / sent) if sent else 0.0,
        outages=outages,
        rtt_p50_ms=percentile(rtts, 50), rtt_p99_ms=percentile(rtts, 99),
        interval_ms=recs.interval_ms, timeout_ms=recs.timeout_ms,
        start_wall=recs.start_wall, end_wall=recs.wall(recs.end_ns),
        late=late, startup_lost=states.count(STARTUP), pending=states.count(PENDING),
        send_errors=recs.send_errors,
        dst_ip=meta.pop("dst_ip", recs.target), port=meta.pop("port", recs.port),
        **meta,
    )


# --------------------------------------------------------------------------------------------------
# Running the agents in lab nodes
# --------------------------------------------------------------------------------------------------

class ProbeStream:
    """A running probe stream from ``src`` to ``dst``; a context manager, or ``start()``/``stop()``.

    Both agents run inside the nodes' namespaces through ``NodeExec``; the root namespace never sends
    a probe. ``start()`` waits until echoes flow (``flow_timeout_s``; ``None`` skips the wait), so an
    outage seen later belongs to the test, not to a slow start.
    """

    def __init__(self, nodes: NodeExec, src: str, dst: str, dst_ip: str, port: int = 7777,
                 interval_ms: float = 5, *, timeout_ms: float = DEFAULT_TIMEOUT_MS,
                 drain_ms: float = 250.0, flow_timeout_s: float | None = 5.0,
                 workdir: str | os.PathLike[str] | None = None, python: str | None = None) -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be at least 1 (got {interval_ms})")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be 1..65535 (got {port})")
        self.nodes, self.src, self.dst, self.dst_ip = nodes, src, dst, dst_ip
        self.port, self.interval_ms = int(port), float(interval_ms)
        self.timeout_ms, self.drain_ms, self.flow_timeout_s = timeout_ms, drain_ms, flow_timeout_s
        self.python = python or sys.executable
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self._echo: subprocess.Popen | None = None
        self._sender: subprocess.Popen | None = None
        self.result: ProbeResult | None = None

    # -- paths ------------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{self.src}-{self.dst}-{self.port}.{name}"

    @property
    def out_path(self) -> Path:
        return self._path("jsonl")

    @property
    def status_path(self) -> Path:
        return self._path("status")

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> ProbeStream:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._sender is None and self._echo is None:
            return
        if exc_type is None:
            self.stop()
            return
        try:  # the body's exception is the one worth seeing; still stop the agents
            self.stop()
        except ProbeError:
            pass

    def start(self) -> ProbeStream:
        if self._sender is not None or self._echo is not None:
            raise ProbeError(f"probe {self.src}->{self.dst} already started")
        if self._own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix="twin-probe-"))
        else:
            self.workdir = Path(self._workdir_arg)  # type: ignore[arg-type]
            self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("jsonl", "status", "echo-ready"):
            self._path(name).unlink(missing_ok=True)
        try:
            self._start_echo()
            self._start_sender()
            if self.flow_timeout_s is not None:
                self.wait_until_flowing(self.flow_timeout_s)
        except BaseException:
            self._kill_all()
            self._cleanup_workdir()
            raise
        return self

    def _agent(self, node: str, role_args: list[str], log: str) -> subprocess.Popen:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "PYTHONPATH": str(_PROJECT_ROOT), "LANG": "C.UTF-8"}
        with open(self._path(log), "wb") as fh:
            return self.nodes.popen(node, [self.python, "-m", "twin.traffic.probe_agent", *role_args],
                                    stdout=fh, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)

    def _start_echo(self) -> None:
        ready = self._path("echo-ready")
        self._echo = self._agent(self.dst, ["echo", "--port", str(self.port), "--ready-file", str(ready)],
                                 "echo.log")
        deadline = time.monotonic() + 10.0
        while not ready.exists():
            if self._echo.poll() is not None:
                raise ProbeError(f"probe echo responder in {self.dst} (port {self.port}) exited with "
                                 f"{self._echo.returncode}: {self._log_tail('echo.log')}")
            if time.monotonic() > deadline:
                raise ProbeError(f"probe echo responder in {self.dst} did not bind UDP port {self.port} "
                                 f"within 10 s: {self._log_tail('echo.log')}")
            time.sleep(0.01)

    def _start_sender(self) -> None:
        self._sender = self._agent(self.src, [
            "send", "--target", self.dst_ip, "--port", str(self.port),
            "--interval-ms", repr(self.interval_ms), "--out", str(self.out_path),
            "--status", str(self.status_path), "--timeout-ms", repr(self.timeout_ms),
            "--drain-ms", repr(self.drain_ms)], "send.log")

    # -- live -------------------------------------------------------------------------------------
    def progress(self) -> ProbeProgress | None:
        """Latest counters the sender published (about every 50 ms); None before its first report."""
        if self.workdir is None:
            return None
        try:
            data = json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return ProbeProgress(sent=data["sent"], received=data["received"],
                             send_errors=data.get("send_errors", 0),
                             last_rx_age_ms=data.get("last_rx_age_ms"),
                             elapsed_ms=data.get("elapsed_ms", 0.0), wall=data.get("wall", 0.0))

    def wait_until_flowing(self, timeout_s: float = 5.0) -> ProbeProgress:
        from twin.evidence import step

        with step(f"wait for traffic {self.src} -> {self.dst} to flow"):
            return self._wait_until_flowing(timeout_s)

    def _wait_until_flowing(self, timeout_s: float = 5.0) -> ProbeProgress:
        """Block until new echoes come back (more than when called), so the caller knows the path
        works before injecting a fault, or has recovered after repairing one."""
        deadline = time.monotonic() + timeout_s
        first = self.progress()
        base = first.received if first is not None else 0
        seen: ProbeProgress | None = None
        while True:
            seen = self.progress()
            if seen is not None and seen.received > base and (seen.last_rx_age_ms or 0) < 4 * self.interval_ms + 60:
                return seen
            for proc, what, log in ((self._sender, f"sender in {self.src}", "send.log"),
                                    (self._echo, f"echo responder in {self.dst}", "echo.log")):
                if proc is not None and proc.poll() is not None:
                    raise ProbeError(f"probe {self.src}->{self.dst} ({self.dst_ip}:{self.port}): {what} "
                                     f"exited with {proc.returncode}: {self._log_tail(log)}")
            if time.monotonic() > deadline:
                if seen is None:
                    what = "the sender reported nothing yet"
                else:
                    what = (f"sent {seen.sent} probes, received {seen.received} echoes, "
                            f"{seen.send_errors} send errors")
                raise ProbeError(f"probe {self.src}->{self.dst} ({self.dst_ip}:{self.port}) not flowing "
                                 f"after {timeout_s:g} s: {what}")
            time.sleep(0.01)

    def wait_until_lost(self, timeout_s: float = 5.0, gap_ms: float | None = None) -> ProbeProgress:
        """Block until no echo has come back for `gap_ms` (default 10 intervals): the outage began."""
        gap = gap_ms if gap_ms is not None else max(10 * self.interval_ms, 50.0)
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.progress()
            if seen is not None and seen.last_rx_age_ms is not None and seen.last_rx_age_ms >= gap:
                return seen
            if time.monotonic() > deadline:
                raise ProbeError(f"probe {self.src}->{self.dst} ({self.dst_ip}) still flowing after {timeout_s:g} s: "
                                 f"{seen}")
            time.sleep(0.005)

    # -- stop -------------------------------------------------------------------------------------
    def stop(self, timeout_s: float = 10.0) -> ProbeResult:
        """Stop the sender (it writes its records), then the responder; analyse the records."""
        if self._sender is None and self._echo is None:
            if self.result is not None:
                return self.result
            raise ProbeError(f"probe {self.src}->{self.dst} was not started")
        try:
            sender, self._sender = self._sender, None
            if sender is not None:
                rc = _terminate(sender, timeout_s + self.drain_ms / 1000.0)
                if rc not in (0, -signal.SIGTERM) or not self.out_path.exists():
                    raise ProbeError(f"probe sender in {self.src} ended with {rc} and "
                                     f"{'wrote' if self.out_path.exists() else 'did not write'} its "
                                     f"records: {self._log_tail('send.log')}")
            records = parse_records(self.out_path.read_text())
            self.result = analyze(records, src=self.src, dst=self.dst, dst_ip=self.dst_ip,
                                  port=self.port,
                                  records_path=None if self._own_workdir else str(self.out_path))
            return self.result
        finally:
            echo, self._echo = self._echo, None
            if echo is not None:
                _terminate(echo, 5.0)
            self._cleanup_workdir()

    def _kill_all(self) -> None:
        for attr in ("_sender", "_echo"):
            proc = getattr(self, attr)
            setattr(self, attr, None)
            if proc is not None:
                _terminate(proc, 5.0)

    def _cleanup_workdir(self) -> None:
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self, name: str, limit: int = 800) -> str:
        try:
            text = self._path(name).read_text(errors="replace").strip()
        except (FileNotFoundError, AssertionError):
            return "(no output)"
        return (text[-limit:] if text else "(no output)")


def _terminate(proc: subprocess.Popen, timeout_s: float) -> int:
    """SIGTERM the agent we started (by its PID), then SIGKILL after a deadline."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    return proc.returncode


def outages_summary(outages: Iterable[Outage]) -> str:
    """One line per outage, for test failure messages."""
    return "\n".join(f"  at {o.start_wall:.3f}: {o.duration_ms:.1f} ms, {o.lost} lost"
                     f"{'' if o.recovered else ' (not recovered)'}" for o in outages) or "  (none)"
