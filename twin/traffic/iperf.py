"""iperf3 throughput between two lab nodes, both ends inside the lab's namespaces.

The server is a one-off (``-s -1``) so it exits by itself after the test and no daemon is left behind;
readiness is polled with ``ss -ltn`` in the server's namespace instead of sleeping, because a client
started before the server listens fails with "connection refused" on a slow or loaded machine.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from twin.nodeexec import NodeExec

__all__ = ["BackgroundIperf", "IperfError", "IperfResult", "iperf3", "parse_iperf_json", "tcp_established"]


class IperfError(RuntimeError):
    """iperf3 could not run or reported an error (the message carries iperf3's own words)."""


@dataclass
class IperfResult:
    bits_per_second: float
    retransmits: int | None
    bytes: int
    seconds: float
    udp: bool = False
    lost_percent: float | None = None
    jitter_ms: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def mbps(self) -> float:
        return self.bits_per_second / 1e6

    def __str__(self) -> str:
        extra = (f", lost {self.lost_percent:.2f}%, jitter {self.jitter_ms:.3f} ms" if self.udp
                 else f", {self.retransmits} retransmits")
        return f"iperf3 {'UDP' if self.udp else 'TCP'}: {self.mbps:.1f} Mbit/s, {self.bytes} bytes in {self.seconds:.2f} s{extra}"


def parse_iperf_json(text: str, udp: bool = False) -> IperfResult:
    """Pick the numbers a test asserts on out of ``iperf3 -J`` output.

    For TCP the receiver's view is used for throughput (what actually arrived), and the sender's for
    retransmits (only the sender knows them). For UDP the ``sum`` block carries the receiver's loss
    and jitter as reported back to the client.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IperfError(f"iperf3 printed no JSON ({exc}): {text.strip()[:500]!r}") from None
    if data.get("error"):
        raise IperfError(f"iperf3 failed: {data['error']}")
    end = data.get("end") or {}
    if udp:
        s = end.get("sum") or {}
        if not s:
            raise IperfError(f"iperf3 JSON has no end.sum block: {text.strip()[:500]!r}")
        return IperfResult(bits_per_second=float(s.get("bits_per_second", 0.0)), retransmits=None,
                           bytes=int(s.get("bytes", 0)), seconds=float(s.get("seconds", 0.0)), udp=True,
                           lost_percent=float(s.get("lost_percent", 0.0)),
                           jitter_ms=float(s.get("jitter_ms", 0.0)), raw=data)
    recv = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    if not recv and not sent:
        raise IperfError(f"iperf3 JSON has no end.sum_received/sum_sent: {text.strip()[:500]!r}")
    main = recv or sent
    return IperfResult(bits_per_second=float(main.get("bits_per_second", 0.0)),
                       retransmits=int(sent["retransmits"]) if "retransmits" in sent else None,
                       bytes=int(main.get("bytes", 0)), seconds=float(main.get("seconds", 0.0)),
                       udp=False, raw=data)


def iperf3(nodes: NodeExec, client: str, server: str, server_ip: str, seconds: float = 2,
           udp: bool = False, bitrate: str | None = None, port: int = 5201,
           listen_timeout_s: float = 10.0) -> IperfResult:
    """Run one iperf3 test from ``client`` to ``server`` (iperf3 3.12 takes whole seconds: rounded up)."""
    duration = max(1, math.ceil(seconds))
    # A file, not a pipe: a long test's per-second reports must never block the server on a full pipe.
    log = tempfile.TemporaryFile()
    srv = nodes.popen(server, ["iperf3", "-s", "-1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    grace = 0.0
    try:
        _wait_listening(nodes, server, port, srv, log, listen_timeout_s)
        argv = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(duration), "-J",
                "--connect-timeout", "3000"]
        if udp:
            argv.append("-u")
        if bitrate is not None:
            argv += ["-b", str(bitrate)]
        try:
            proc = nodes.run(client, argv, timeout=duration + 30)
        except subprocess.TimeoutExpired:
            raise IperfError(f"iperf3 client in {client} -> {server_ip}:{port} did not finish within "
                             f"{duration + 30} s") from None
        grace = 3.0  # the client ran: let the one-off server finish its side and exit by itself
        try:
            result = parse_iperf_json(proc.stdout, udp=udp)
        except IperfError as exc:
            stderr = proc.stderr.strip()
            code = f" exit {proc.returncode}" if proc.returncode else ""
            raise IperfError(f"iperf3 {client} -> {server} ({server_ip}:{port}, "
                             f"{'UDP' if udp else 'TCP'}){code}: {exc}"
                             + (f"; stderr: {stderr[:500]}" if stderr else "")) from None
        if proc.returncode != 0:
            raise IperfError(f"iperf3 {client} -> {server} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
        return result
    finally:
        _stop_server(srv, grace)
        log.close()


def _wait_listening(nodes: NodeExec, server: str, port: int, srv: subprocess.Popen, log: Any,
                    timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pattern = re.compile(rf"[:\]]{port}\s")
    while True:
        if srv.poll() is not None:
            log.seek(0)
            out = log.read().decode(errors="replace").strip()
            raise IperfError(f"iperf3 server in {server} (port {port}) exited with {srv.returncode} "
                             f"before listening: {out[:500] or '(no output)'}")
        ss = nodes.run(server, ["ss", "-Hltn", f"sport = :{port}"], timeout=10)
        if ss.returncode == 0 and pattern.search(ss.stdout + "\n"):
            return
        if time.monotonic() > deadline:
            raise IperfError(f"iperf3 server in {server} not listening on TCP port {port} after "
                             f"{timeout_s:g} s (ss: {ss.stdout.strip() or ss.stderr.strip() or 'nothing'})")
        time.sleep(0.02)


def _stop_server(srv: subprocess.Popen, grace: float) -> None:
    """The one-off server normally exits after the test; end it by PID if the client never came."""
    try:
        srv.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    srv.terminate()
    try:
        srv.wait(timeout=3)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def tcp_established(nodes: NodeExec, node: str, port: int) -> bool:
    """True once `node` has an established TCP connection on local port `port` (an iperf3 server's)."""
    out = nodes.run(node, ["ss", "-Htn", "state", "established", f"( sport = :{port} )"], timeout=10).stdout
    return bool(out.strip())


class BackgroundIperf:
    """A rate-limited iperf3 TCP test in a thread, so a fault can happen while it runs; iperf3 fails
    if its connection resets, so `result()["ok"]` says whether the session survived."""

    def __init__(self, nodes: NodeExec, client: str, server: str, ip: str, seconds: int, bitrate: str = "20M") -> None:
        import threading

        self._out: dict[str, Any] = {}

        def run() -> None:
            try:
                r = iperf3(nodes, client, server, ip, seconds=seconds, bitrate=bitrate)
                self._out.update({"ok": True, "result": r})
            except Exception as exc:
                self._out.update({"ok": False, "error": str(exc)})
        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()

    def result(self, timeout: float) -> dict[str, Any]:
        self._t.join(timeout)
        return self._out or {"ok": False, "error": "iperf3 did not finish"}
