"""Many concurrent flows between two lab nodes, for a stateful flow-routing system.

A flow classifier keeps state per 5-tuple, so one probe stream tests only one entry of its table.
``FlowStream`` runs N flows at once (flow ``i`` = source port ``sport_base + i``), each analysed as its
own probe stream with ``twin.traffic.probe.analyze``, so a test can say *which* flows lost traffic
when a stage failed over, and that the others did not. ``burst`` measures what a classifier pays for
new flows: setup latency (first packet's round trip, or TCP connect time) and setup rate.

The agents (``flows_agent.py``) run inside the nodes' namespaces through ``NodeExec``; nothing here
sends a packet from the root namespace.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twin.nodeexec import NodeExec
from twin.traffic.probe import (DEFAULT_TIMEOUT_MS, ProbeError, ProbeProgress, ProbeRecord,
                                ProbeRecords, ProbeResult, _terminate, analyze)

__all__ = ["BurstResult", "FlowError", "FlowStream", "FlowsResult", "burst", "parse_flow_records",
           "serve"]

FORMAT = "twin-flows/1"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class FlowError(ProbeError):
    """The flows could not be started, some never got echoes, or an agent failed."""


# --------------------------------------------------------------------------------------------------
# Records and results
# --------------------------------------------------------------------------------------------------

def parse_flow_records(text: str) -> tuple[dict[str, Any], dict[int, ProbeRecords]]:
    """The agent's header and, per flow, records in the form ``probe.analyze`` takes."""
    lines = text.splitlines()
    if not lines:
        raise FlowError("flow records are empty (the sender wrote nothing)")
    h = json.loads(lines[0])
    if h.get("format") != FORMAT:
        raise FlowError(f"unknown flow record format: {h.get('format')!r}")
    info = h.get("flow_info") or [{} for _ in range(int(h["flows"]))]
    rows: dict[int, list[ProbeRecord]] = {i: [] for i in range(int(h["flows"]))}
    for line in lines[1:]:
        if line.strip():
            flow, seq, sent, recv = map(int, line.split())
            rows.setdefault(flow, []).append(ProbeRecord(seq, sent, None if recv < 0 else recv))
    per_flow = {i: ProbeRecords(
        start_wall=float(h["start_wall"]), interval_ms=float(h["interval_ms"]), end_ns=int(h["end_ns"]),
        end_send_ns=int(h["end_send_ns"]), records=recs,
        timeout_ms=float(h.get("timeout_ms", DEFAULT_TIMEOUT_MS)), target=str(h.get("target", "")),
        port=int(h.get("port", 0)),
        send_errors=int(info[i].get("send_errors", 0)) if i < len(info) else 0)
        for i, recs in rows.items()}
    return h, per_flow


@dataclass
class FlowsResult:
    """Per-flow probe results, keyed by flow index (source port ``sport_base + index``)."""

    per_flow: dict[int, ProbeResult]
    sport_base: int
    proto: str = "udp"
    src: str = ""
    dst: str = ""
    dst_ip: str = ""
    port: int = 0
    max_lag_ms: float = 0.0  # the sender's worst lag behind its schedule; >> interval: too many flows

    def sport(self, i: int) -> int:
        return self.sport_base + i

    def lossless(self) -> list[int]:
        """Flows that got echoes and lost none (a flow that never flowed is not lossless)."""
        return [i for i, r in sorted(self.per_flow.items()) if r.received > 0 and r.lost == 0]

    def with_outage(self, min_ms: float = 0.0) -> dict[int, float]:
        """Flow index -> its longest outage in ms, for flows with an outage of at least ``min_ms``."""
        return {i: r.max_outage_ms for i, r in sorted(self.per_flow.items())
                if r.outages and r.max_outage_ms >= min_ms}

    @property
    def total_sent(self) -> int:
        return sum(r.sent for r in self.per_flow.values())

    @property
    def total_received(self) -> int:
        return sum(r.received for r in self.per_flow.values())

    def to_dict(self) -> dict[str, Any]:
        return {"proto": self.proto, "src": self.src, "dst": self.dst, "dst_ip": self.dst_ip,
                "port": self.port, "sport_base": self.sport_base, "max_lag_ms": self.max_lag_ms,
                "total_sent": self.total_sent,
                "total_received": self.total_received, "lossless": self.lossless(),
                "with_outage": self.with_outage(),
                "per_flow": {str(i): r.to_dict() for i, r in sorted(self.per_flow.items())}}

    def __str__(self) -> str:
        out = self.with_outage()
        worst = f", worst {max(out.values()):.1f} ms" if out else ""
        return (f"{len(self.per_flow)} {self.proto} flows {self.src}->{self.dst} "
                f"({self.dst_ip}:{self.port}): sent {self.total_sent}, received {self.total_received}, "
                f"{len(self.lossless())} lossless, {len(out)} with outages{worst}")


@dataclass
class BurstResult:
    """New-flow setup: how many flows came up, how fast, and their setup latency."""

    proto: str
    count: int
    ok: int
    failed: int
    elapsed_s: float
    flows_per_s: float
    rtt_p50_ms: float | None
    rtt_p90_ms: float | None
    rtt_p99_ms: float | None
    rtt_max_ms: float | None
    window: int = 1
    sport_base: int = 0
    port_range: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    flows: list[list[Any]] = field(default_factory=list, repr=False)  # [sport, rtt_ms|None, error|None]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BurstResult:
        rtt = d.get("rtt_ms") or {}
        return cls(proto=d["proto"], count=d["count"], ok=d["ok"], failed=d["failed"],
                   elapsed_s=d["elapsed_s"], flows_per_s=d["flows_per_s"], rtt_p50_ms=rtt.get("p50"),
                   rtt_p90_ms=rtt.get("p90"), rtt_p99_ms=rtt.get("p99"), rtt_max_ms=rtt.get("max"),
                   window=d.get("window", 1), sport_base=d.get("sport_base", 0),
                   port_range=d.get("port_range", 0), errors=d.get("errors", {}), flows=d.get("flows", []))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        p = {k: "-" if v is None else f"{v:.3f}" for k, v in
             (("50", self.rtt_p50_ms), ("99", self.rtt_p99_ms), ("max", self.rtt_max_ms))}
        return (f"burst {self.count} {self.proto} flows (window {self.window}): {self.ok} ok, "
                f"{self.failed} failed in {self.elapsed_s:.3f} s = {self.flows_per_s:.0f} flows/s, "
                f"setup p50 {p['50']} p99 {p['99']} max {p['max']} ms")


# --------------------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------------------

def _popen(nodes: NodeExec, node: str, python: str | None, args: list[str], log: Path) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYTHONPATH": str(_PROJECT_ROOT), "LANG": "C.UTF-8"}
    with open(log, "wb") as fh:
        return nodes.popen(node, [python or sys.executable, "-m", "twin.traffic.flows_agent", *args],
                           stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _tail(log: Path, limit: int = 800) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no output)"
    return text[-limit:] if text else "(no output)"


def _start_serve(nodes: NodeExec, node: str, port: int, python: str | None, workdir: Path,
                 timeout_s: float = 10.0) -> subprocess.Popen:
    ready, log = workdir / f"serve-{port}.ready", workdir / f"serve-{port}.log"
    ready.unlink(missing_ok=True)
    proc = _popen(nodes, node, python, ["serve", "--port", str(port), "--ready-file", str(ready)], log)
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None:
            raise FlowError(f"flow echo server in {node} (port {port}) exited with {proc.returncode}: "
                            f"{_tail(log)}")
        if time.monotonic() > deadline:
            _terminate(proc, 5.0)
            raise FlowError(f"flow echo server in {node} did not bind port {port} within "
                            f"{timeout_s:g} s: {_tail(log)}")
        time.sleep(0.01)
    return proc


def serve(nodes: NodeExec, node: str, port: int, *, python: str | None = None) -> subprocess.Popen:
    """A UDP + TCP echo server in ``node``, bound when this returns; stop it with ``.terminate()``."""
    tmp = Path(tempfile.mkdtemp(prefix="twin-serve-"))
    try:
        return _start_serve(nodes, node, port, python, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def burst(nodes: NodeExec, src: str, dst: str, dst_ip: str, port: int, *, count: int,
          proto: str = "udp", window: int = 1, sport_base: int = 30000, timeout_ms: float = 1000,
          port_range: int | None = None, size: int = 64, python: str | None = None) -> BurstResult:
    """Open ``count`` new flows from ``src`` to an echo server in ``dst``; setup latency and rate.

    Source ports run from ``sport_base`` and wrap after ``port_range`` (default 10000, clipped at
    65535). Past the wrap a 5-tuple repeats: a classifier may still hold it as an existing flow, and
    for TCP the kernel may refuse it while in TIME_WAIT (``connect: EADDRNOTAVAIL`` in ``errors``;
    only loopback reuses TIME_WAIT tuples by default). Keep ``count <= port_range`` to measure
    new flows only. A port some other socket in ``src`` holds (the default range crosses into the
    ephemeral ports, 32768-60999) fails that flow with ``bind: EADDRINUSE`` in ``errors``.
    """
    if proto not in ("udp", "tcp"):
        raise ValueError(f"proto must be 'udp' or 'tcp' (got {proto!r})")
    tmp = Path(tempfile.mkdtemp(prefix="twin-burst-"))
    server = None
    try:
        server = _start_serve(nodes, dst, port, python, tmp)
        out, log = tmp / "burst.json", tmp / "burst.log"
        args = ["burst", "--proto", proto, "--target", dst_ip, "--port", str(port), "--count", str(count),
                "--window", str(window), "--sport-base", str(sport_base), "--timeout-ms", repr(timeout_ms),
                "--size", str(size), "--out", str(out)]
        if port_range is not None:
            args += ["--port-range", str(port_range)]
        proc = _popen(nodes, src, python, args, log)
        limit = 30.0 + count * timeout_ms / 1000.0 / max(window, 1)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _terminate(proc, 5.0)
            raise FlowError(f"burst {src}->{dst} did not finish within {limit:g} s: {_tail(log)}") from None
        if rc != 0 or not out.exists():
            raise FlowError(f"burst agent in {src} ended with {rc}: {_tail(log)}")
        return BurstResult.from_dict(json.loads(out.read_text()))
    finally:
        if server is not None:
            _terminate(server, 5.0)
        shutil.rmtree(tmp, ignore_errors=True)


class FlowStream:
    """N concurrent UDP (or TCP) flows from ``src`` to ``dst``; a context manager, or start()/stop().

    ``start()`` waits until every flow has had echoes (``flow_timeout_s``; ``None`` skips the wait)
    and otherwise raises naming the flows that never did: a classifier that drops some new flows
    is exactly what these tests look for, so the failure must say which.
    """

    def __init__(self, nodes: NodeExec, src: str, dst: str, dst_ip: str, port: int, *, flows: int = 10,
                 interval_ms: float = 10, sport_base: int = 20000, proto: str = "udp", size: int = 64,
                 timeout_ms: float = DEFAULT_TIMEOUT_MS, flow_timeout_s: float | None = 10.0,
                 drain_ms: float = 250.0, reconnect: bool = False,
                 workdir: str | os.PathLike[str] | None = None, python: str | None = None) -> None:
        if proto not in ("udp", "tcp"):
            raise ValueError(f"proto must be 'udp' or 'tcp' (got {proto!r})")
        if flows < 1 or interval_ms < 1:
            raise ValueError(f"need flows >= 1 and interval_ms >= 1 (got {flows}, {interval_ms})")
        if not (0 < sport_base and sport_base + flows - 1 <= 65535 and 0 < port < 65536):
            raise ValueError(f"ports out of range: sport {sport_base}..{sport_base + flows - 1}, port {port}")
        self.nodes, self.src, self.dst, self.dst_ip, self.port = nodes, src, dst, dst_ip, int(port)
        self.flows, self.interval_ms, self.sport_base = flows, float(interval_ms), sport_base
        self.proto = proto
        self.size, self.timeout_ms, self.flow_timeout_s = size, timeout_ms, flow_timeout_s
        self.drain_ms, self.reconnect, self.python = drain_ms, reconnect, python
        self._own_workdir = workdir is None
        self.workdir: Path | None = None if workdir is None else Path(workdir)
        self._server: subprocess.Popen | None = None
        self._sender: subprocess.Popen | None = None
        self.result: FlowsResult | None = None

    def _path(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / f"flows-{self.src}-{self.dst}-{self.proto}{self.port}.{name}"

    @property
    def out_path(self) -> Path:
        return self._path("records")

    def _serve_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / f"serve-{self.port}.log"  # named by _start_serve

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> FlowStream:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._sender is None and self._server is None:
            return
        try:
            self.stop()
        except FlowError:
            if exc_type is None:
                raise  # otherwise the body's exception is the one worth seeing

    def start(self) -> FlowStream:
        if self._sender is not None or self._server is not None:
            raise FlowError(f"flows {self.src}->{self.dst} already started")
        if self.workdir is None or self._own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix="twin-flows-"))
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for name in ("records", "status", "send.log"):
            self._path(name).unlink(missing_ok=True)
        try:
            self._server = _start_serve(self.nodes, self.dst, self.port, self.python, workdir)
            args = [self.proto, "--target", self.dst_ip, "--port", str(self.port), "--flows", str(self.flows),
                    "--sport-base", str(self.sport_base), "--interval-ms", repr(self.interval_ms),
                    "--size", str(self.size), "--timeout-ms", repr(self.timeout_ms),
                    "--drain-ms", repr(self.drain_ms), "--out", str(self.out_path),
                    "--status", str(self._path("status"))]
            self._sender = _popen(self.nodes, self.src, self.python,
                                  args + (["--reconnect"] if self.reconnect else []), self._path("send.log"))
            if self.flow_timeout_s is not None:
                self.wait_until_flowing(self.flow_timeout_s)
        except BaseException:
            self._kill_all()
            self._cleanup()
            raise
        return self

    # -- live -------------------------------------------------------------------------------------
    def progress(self) -> dict[int, ProbeProgress]:
        """Per-flow counters the sender publishes about every 100 ms; empty before its first report."""
        if self.workdir is None:
            return {}
        try:
            data = json.loads(self._path("status").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        names = data["fields"]
        out = {}
        for i, row in enumerate(data["flows"]):
            f = dict(zip(names, row))
            out[i] = ProbeProgress(sent=f["sent"], received=f["received"], send_errors=f["send_errors"],
                                   last_rx_age_ms=f["last_rx_age_ms"], elapsed_ms=data["elapsed_ms"],
                                   wall=data["wall"])
        return out

    def wait_until_flowing(self, timeout_s: float = 5.0, flows: list[int] | None = None
                           ) -> dict[int, ProbeProgress]:
        """Block until each flow (default: all) gets new, fresh echoes after this call: the path
        works before a fault is injected, or has recovered for every flow after a repair."""
        from twin.evidence import step

        what = f"{self.flows} flows" if flows is None else f"flows {', '.join(map(str, flows))}"
        with step(f"wait for {what} {self.src} -> {self.dst} ({self.proto}) to flow"):
            return self._wait_until_flowing(timeout_s, flows)

    def _wait_until_flowing(self, timeout_s: float, flows: list[int] | None) -> dict[int, ProbeProgress]:
        want = list(range(self.flows)) if flows is None else list(flows)
        base = {i: p.received for i, p in self.progress().items()}
        fresh_ms = 4 * self.interval_ms + 150  # the status is up to 100 ms old
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.progress()
            missing = [i for i in want if i not in seen or seen[i].received <= base.get(i, 0)
                       or (seen[i].last_rx_age_ms or 0) > fresh_ms]
            if not missing:
                return seen
            self._check_alive()
            if time.monotonic() > deadline:
                never = [i for i in missing if i not in seen or seen[i].received == 0]
                stalled = [i for i in missing if i not in never]
                what = "; ".join(part for part in (
                    self._name_flows("never echoed", never, seen), self._name_flows("stalled", stalled, seen))
                    if part)
                raise FlowError(f"flows {self.src}->{self.dst} ({self.proto} {self.dst_ip}:{self.port}) "
                                f"not flowing after {timeout_s:g} s: {what}")
            time.sleep(0.01)

    def _name_flows(self, what: str, flows: list[int], seen: dict[int, ProbeProgress]) -> str:
        if not flows:
            return ""
        shown = ", ".join(f"flow {i} (sport {self.sport_base + i}, sent {seen[i].sent if i in seen else 0})"
                          for i in flows[:20])
        return f"{len(flows)} {what}: {shown}{' ...' if len(flows) > 20 else ''}"

    def _check_alive(self) -> None:
        for proc, what, log in ((self._sender, f"sender in {self.src}", self._path("send.log")),
                                (self._server, f"echo server in {self.dst}", self._serve_log())):
            if proc is not None and proc.poll() is not None:
                raise FlowError(f"flows {self.src}->{self.dst}: {what} exited with {proc.returncode}: "
                                f"{_tail(log)}")

    # -- stop -------------------------------------------------------------------------------------
    def stop(self, timeout_s: float = 10.0) -> FlowsResult:
        """Stop the sender (it drains and writes its records), then the server; analyse per flow."""
        if self._sender is None and self._server is None:
            if self.result is not None:
                return self.result
            raise FlowError(f"flows {self.src}->{self.dst} were not started")
        try:
            sender, self._sender = self._sender, None
            if sender is not None:
                rc = _terminate(sender, timeout_s + self.drain_ms / 1000.0)
                if rc not in (0, -signal.SIGTERM) or not self.out_path.exists():
                    raise FlowError(f"flow sender in {self.src} ended with {rc} and "
                                    f"{'wrote' if self.out_path.exists() else 'did not write'} its records: "
                                    f"{_tail(self._path('send.log'))}")
            header, per_flow = parse_flow_records(self.out_path.read_text())
            info = header.get("flow_info", [])
            results = {}
            for i, recs in per_flow.items():
                r = analyze(recs, src=self.src, dst=self.dst, dst_ip=self.dst_ip, port=self.port,
                            records_path=None if self._own_workdir else str(self.out_path))
                r.extra = dict(info[i]) if i < len(info) else {"sport": self.sport_base + i}
                results[i] = r
            self.result = FlowsResult(per_flow=results, sport_base=self.sport_base, proto=self.proto,
                                      src=self.src, dst=self.dst, dst_ip=self.dst_ip, port=self.port,
                                      max_lag_ms=float(header.get("max_lag_ms", 0.0)))
            return self.result
        finally:
            self._kill_all()
            self._cleanup()

    def _kill_all(self) -> None:
        for attr in ("_sender", "_server"):
            proc = getattr(self, attr)
            setattr(self, attr, None)
            if proc is not None:
                _terminate(proc, 5.0)

    def _cleanup(self) -> None:
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
