"""UDP probe agent that runs inside a lab node's namespace (stdlib only, started with the venv's python).

Two roles:

* ``echo --port P``: a UDP echo responder. It returns every datagram unchanged, so the sender can match
  echoes to sequence numbers without trusting the responder's clock.
* ``send --target IP --port P --interval-ms 5 --out FILE``: sends sequence-numbered, timestamped
  datagrams on a fixed schedule and records, per sequence number, the send time and the time the echo
  came back (or nothing). The records are written once, when the sender gets SIGTERM/SIGINT or its
  ``--duration`` ends, as JSON lines (see ``write_records``). While running it rewrites a small status
  file (``--status``, default ``FILE.status``) a few times per second so the harness can tell when
  echoes flow or stop without waiting for the end.

Times are ``time.monotonic_ns`` (immune to wall-clock steps) relative to the start; the header also
carries the wall time taken next to the monotonic start, so results can be lined up with fault
timestamps that the harness records with ``time.time()``.

Sending is paced against an absolute schedule (start + seq * interval), not by sleeping an interval
after each send, so scheduling jitter does not accumulate into drift and a 1 ms interval still sends
about 1000 probes a second.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence

FORMAT = "twin-probe/1"
MAGIC = b"TWPB"
# magic, sequence number, sender's monotonic send time (ns). Padded to a fixed size on the wire.
PACKET = struct.Struct("!4sQq")
STATUS_EVERY_NS = 50_000_000


class _Stop:
    """Set by SIGTERM/SIGINT; the main loops poll it so the records are always written out.

    It also trips when the process that started us goes away (the harness crashed or was killed):
    an orphaned agent would otherwise probe a lab forever.
    """

    def __init__(self) -> None:
        self._stop = False
        self._ppid = os.getppid()

    @property
    def stop(self) -> bool:
        return self._stop or os.getppid() != self._ppid

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        self._stop = True


def run_echo(port: int, bind: str = "0.0.0.0", ready_file: str | None = None) -> int:
    stopper = _Stop()
    stopper.install()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except (OSError, OverflowError) as exc:
        print(f"probe_agent echo: cannot bind UDP {bind}:{port}: {exc}", file=sys.stderr)
        return 2
    sock.setblocking(False)
    if ready_file:
        _atomic_write(ready_file, json.dumps({"listening": True, "port": port, "pid": os.getpid()}))
    while not stopper.stop:
        try:
            readable, _, _ = select.select([sock], [], [], 0.2)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for old kernels
            continue
        if not readable:
            continue
        # Drain everything queued, so a burst after an outage is answered at once.
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            try:
                sock.sendto(data, addr)
            except OSError:
                pass  # link down or no route back: the sender will count the probe as lost
    sock.close()
    return 0


def run_send(target: str, port: int, interval_ms: float, out: str, status: str | None,
             duration_s: float | None, timeout_ms: float, drain_ms: float, size: int) -> int:
    stopper = _Stop()
    stopper.install()
    status = status or out + ".status"
    interval_ns = max(1, int(round(interval_ms * 1_000_000)))
    size = max(size, PACKET.size)
    pad = b"\0" * (size - PACKET.size)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    dest = (target, port)

    send_ns: list[int] = []          # index = seq, value = monotonic send time
    recv_ns: dict[int, int] = {}     # seq -> monotonic time of the first echo
    send_errors = 0
    last_rx_ns: int | None = None

    start_wall = time.time()
    start_ns = time.monotonic_ns()
    end_send_ns = start_ns + int(duration_s * 1e9) if duration_s is not None else None
    next_status_ns = start_ns

    def receive_all() -> None:
        nonlocal last_rx_ns
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # A queued ICMP error (port unreachable while the responder starts) is reported once;
                # select() wakes us again for any echo behind it.
                return
            now = time.monotonic_ns()
            if len(data) < PACKET.size:
                continue
            magic, seq, sent = PACKET.unpack_from(data)
            if magic != MAGIC or seq >= len(send_ns) or send_ns[seq] != sent:
                continue  # a stray datagram or an echo of another run
            if seq not in recv_ns:
                recv_ns[seq] = now
                last_rx_ns = now

    def write_status(now: int) -> None:
        _atomic_write(status, json.dumps({
            "sent": len(send_ns),
            "received": len(recv_ns),
            "send_errors": send_errors,
            "last_rx_age_ms": None if last_rx_ns is None else (now - last_rx_ns) / 1e6,
            "elapsed_ms": (now - start_ns) / 1e6,
            "wall": time.time(),
        }))

    seq = 0
    while not stopper.stop:
        now = time.monotonic_ns()
        if end_send_ns is not None and now >= end_send_ns:
            break
        due = start_ns + seq * interval_ns
        if now >= due:
            # If the process was descheduled for longer than an interval, the missed slots are sent
            # now rather than skipped: each slot is a probe the analysis expects to see.
            stamp = time.monotonic_ns()
            send_ns.append(stamp)
            try:
                sock.sendto(PACKET.pack(MAGIC, seq, stamp) + pad, dest)
            except (BlockingIOError, InterruptedError):
                send_errors += 1
            except OSError:
                send_errors += 1  # e.g. ENETUNREACH while the link is down: the probe is lost
            seq += 1
            continue
        if now >= next_status_ns:
            write_status(now)
            next_status_ns = now + STATUS_EVERY_NS
        wait_ns = due - now
        try:
            readable, _, _ = select.select([sock], [], [], wait_ns / 1e9)
        except InterruptedError:  # pragma: no cover
            readable = []
        if readable:
            receive_all()

    # Give echoes of the last probes a short chance to arrive. Unanswered probes sent within the
    # timeout of the end are treated as "pending" by the analysis, not as lost.
    end_send = time.monotonic_ns()
    drain_until = end_send + int(drain_ms * 1e6)
    while True:
        now = time.monotonic_ns()
        if now >= drain_until:
            break
        readable, _, _ = select.select([sock], [], [], (drain_until - now) / 1e9)
        if readable:
            receive_all()
    end_ns = time.monotonic_ns()
    sock.close()

    header = {
        "format": FORMAT,
        "target": target,
        "port": port,
        "interval_ms": interval_ms,
        "timeout_ms": timeout_ms,
        "size": size,
        "start_wall": start_wall,
        "start_mono_ns": start_ns,
        "end_send_ns": end_send - start_ns,
        "end_ns": end_ns - start_ns,
        "sent": len(send_ns),
        "received": len(recv_ns),
        "send_errors": send_errors,
    }
    write_records(out, header, send_ns, recv_ns, start_ns)
    write_status(end_ns)
    return 0


def write_records(path: str, header: dict, send_ns: Sequence[int], recv_ns: dict[int, int],
                  start_ns: int) -> None:
    """One header line, then one ``[seq, send_ns, recv_ns|null]`` line per probe (ns since start).

    A line per probe keeps the file greppable and streamable; at 1 ms for ten minutes it is about
    20 MB, which is acceptable for an artefact of a test run.
    """
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(json.dumps(header) + "\n")
        for seq, sent in enumerate(send_ns):
            got = recv_ns.get(seq)
            rel_recv = "null" if got is None else str(got - start_ns)
            fh.write(f"[{seq},{sent - start_ns},{rel_recv}]\n")
    os.replace(tmp, path)


def _atomic_write(path: str, text: str) -> None:
    # The harness reads these files while we write them; a rename means it never sees half a file.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin.traffic.probe_agent",
                                     description="UDP probe stream agent (echo responder or sender)")
    sub = parser.add_subparsers(dest="role", required=True)
    echo = sub.add_parser("echo", help="UDP echo responder")
    echo.add_argument("--port", type=int, required=True)
    echo.add_argument("--bind", default="0.0.0.0")
    echo.add_argument("--ready-file", default=None, help="written once the socket is bound")
    send = sub.add_parser("send", help="probe sender")
    send.add_argument("--target", required=True)
    send.add_argument("--port", type=int, required=True)
    send.add_argument("--interval-ms", type=float, default=5.0)
    send.add_argument("--out", required=True)
    send.add_argument("--status", default=None)
    send.add_argument("--duration", type=float, default=None, help="seconds; default: until signalled")
    send.add_argument("--timeout-ms", type=float, default=1000.0,
                      help="echoes later than this count as lost (recorded in the header)")
    send.add_argument("--drain-ms", type=float, default=250.0,
                      help="how long to keep reading echoes after the last probe")
    send.add_argument("--size", type=int, default=64, help="UDP payload bytes")
    args = parser.parse_args(argv)
    if args.role == "echo":
        return run_echo(args.port, args.bind, args.ready_file)
    if args.interval_ms < 1.0:
        parser.error("--interval-ms must be at least 1")
    return run_send(args.target, args.port, args.interval_ms, args.out, args.status, args.duration,
                    args.timeout_ms, args.drain_ms, args.size)


if __name__ == "__main__":
    sys.exit(main())
