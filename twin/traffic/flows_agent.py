"""Many-flow traffic agent that runs inside a lab node's namespace (stdlib and this package only).

A stateful flow classifier keys its state on the 5-tuple, so "many flows" here means many source
ports: flow ``i`` always uses source port ``sport_base + i``. Roles:

* ``udp``: N UDP flows, one connected socket each, probing every ``--interval-ms`` (flows staggered
  evenly within the first interval, so N flows do not hit the classifier in one burst). Records and a
  status file like ``probe_agent send``, per flow.
* ``tcp``: the same over N long-lived TCP connections (length-prefixed frames echoed back). A broken
  connection stays broken (its later slots are recorded as lost) unless ``--reconnect``.
* ``burst``: new-flow setup rate and latency: ``--count`` short flows, one after another with up to
  ``--window`` in flight; UDP = one datagram and its echo, TCP = connect() + one echo + close.
* ``serve``: a UDP echo responder and a TCP echo server on one port (one selector loop, so thousands
  of connections cost no threads).

``probe_agent``'s echo responder does echo any datagram, but it owns the main loop and its own
``select`` on one socket, so it cannot share a loop with the TCP server; its stop logic is reused.

Records (``--out``): one JSON header line (``start_wall`` next to ``start_mono_ns`` puts the
monotonic times on the wall clock), then one line per probe ``flow seq send_ns recv_ns`` with times
in ns since the start and ``-1`` for no echo. Analysis lives in ``twin.traffic.flows``.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence

from twin.traffic.probe import percentile
from twin.traffic.probe_agent import _atomic_write, _Stop

FORMAT = "twin-flows/1"
BURST_FORMAT = "twin-burst/1"
MAGIC = b"TWFL"
PROBE = struct.Struct("!4sIQq")   # magic, flow index, seq, sender's monotonic send time (ns)
LEN = struct.Struct("!H")          # TCP frame length prefix
STATUS_EVERY_NS = 100_000_000
DEFAULT_PORT_RANGE = 10000         # burst: sport_base .. sport_base+9999 (clipped at 65535), then wrap
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
FIELDS = ["sent", "received", "send_errors", "last_rx_age_ms", "state"]


def payload(flow: int, seq: int, t_ns: int, size: int) -> bytes:
    """A probe padded to ``size`` bytes (never shorter than the header)."""
    body = PROBE.pack(MAGIC, flow, seq, t_ns)
    return body + b"\0" * (size - len(body)) if size > len(body) else body


def unframe(buf: bytearray) -> list[bytes]:
    """Cut complete length-prefixed frames off the front of a TCP receive buffer."""
    out = []
    while len(buf) >= LEN.size:
        (n,) = LEN.unpack_from(buf)
        if len(buf) < LEN.size + n:
            break
        out.append(bytes(buf[LEN.size:LEN.size + n]))
        del buf[:LEN.size + n]
    return out


def _code(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc))


def _raise_nofile() -> None:
    # One socket per flow: a thousand flows would hit the usual soft limit of 1024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------------------------------
# udp / tcp: long-lived flows
# --------------------------------------------------------------------------------------------------

class _Flow:
    def __init__(self, index: int, sport: int) -> None:
        self.index, self.sport = index, sport
        self.sock: socket.socket | None = None
        self.events = 0
        self.state = "idle"               # udp: up; tcp: idle, connecting, up, broken
        self.send_ns: list[int] = []      # index = seq
        self.recv_ns: dict[int, int] = {}
        self.send_errors = 0
        self.last_rx_ns: int | None = None
        self.inbuf, self.outbuf = bytearray(), bytearray()
        self.connect_started = 0
        self.connect_ms: list[float] = []
        self.breaks: list[dict] = []      # established connections lost (and a first failed connect)
        self.error: str | None = None     # the latest failure, e.g. of a reconnect attempt
        self.reconnects = 0               # reconnect attempts (--reconnect)

    def echoed(self, data: bytes, now: int) -> None:
        if len(data) < PROBE.size:
            return
        magic, flow, seq, sent = PROBE.unpack_from(data)
        if magic != MAGIC or flow != self.index or seq >= len(self.send_ns) or self.send_ns[seq] != sent:
            return  # a stray datagram or an echo of an earlier run
        if seq not in self.recv_ns:
            self.recv_ns[seq] = now
            self.last_rx_ns = now

    def info(self) -> dict:
        d: dict = {"sport": self.sport, "send_errors": self.send_errors, "state": self.state}
        if self.connect_ms or self.breaks or self.state != "up":
            d.update(connect_ms=self.connect_ms, breaks=self.breaks, reconnects=self.reconnects,
                     error=self.error)
        return d


class _Flows:
    """The paced send loop, drain, status and records shared by the udp and tcp roles."""

    proto = ""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.flows = [_Flow(i, a.sport_base + i) for i in range(a.flows)]
        self.dest = (a.target, a.port)
        self.start_wall, self.start_ns = time.time(), time.monotonic_ns()
        self.max_lag_ns = 0

    def open(self) -> None:
        """Create what must exist before the first slot."""

    def fire(self, f: _Flow, now: int) -> None:
        raise NotImplementedError

    def on_event(self, f: _Flow, mask: int) -> None:
        raise NotImplementedError

    def poll(self, timeout_ns: int) -> None:
        for key, mask in self.sel.select(max(timeout_ns, 0) / 1e9):
            self.on_event(key.data, mask)

    def run(self, stopper: _Stop) -> int:
        a, flows = self.a, self.flows
        interval_ns, n = max(1, round(a.interval_ms * 1e6)), len(flows)
        self.open()
        self.start_wall, self.start_ns = time.time(), time.monotonic_ns()
        start = self.start_ns
        end_send = start + int(a.duration_s * 1e9) if a.duration_s is not None else None
        slot, next_status = 0, start
        while not stopper.stop:
            now = time.monotonic_ns()
            if end_send is not None and now >= end_send:
                break
            if now >= next_status:
                self.write_status(now)
                next_status = now + STATUS_EVERY_NS
            # Slot g belongs to flow g % n: the flows' schedules are spread evenly over an interval.
            # Missed slots (descheduled) are sent late rather than skipped, as in probe_agent, but
            # at most one round at a time before reading echoes, so a lagging sender does not let
            # echoes overflow the socket buffers and count as loss.
            fired = 0
            while (due := start + slot * interval_ns // n) <= now and fired < n:
                if not fired:  # how late the oldest due slot is: past an interval, it cannot keep up
                    self.max_lag_ns = max(self.max_lag_ns, now - due)
                self.fire(flows[slot % n], time.monotonic_ns())
                slot, fired = slot + 1, fired + 1
            self.poll(0 if fired else due - now)
        end_send_ns = time.monotonic_ns()
        drain_until = end_send_ns + int(a.drain_ms * 1e6)
        while (now := time.monotonic_ns()) < drain_until:
            self.poll(drain_until - now)
        end_ns = time.monotonic_ns()
        for f in flows:
            self._close(f)
        header = {"format": FORMAT, "proto": self.proto, "target": a.target, "port": a.port,
                  "flows": n, "sport_base": a.sport_base, "interval_ms": a.interval_ms,
                  "timeout_ms": a.timeout_ms, "size": a.size, "start_wall": self.start_wall,
                  "start_mono_ns": start, "end_send_ns": end_send_ns - start, "end_ns": end_ns - start,
                  "max_lag_ms": self.max_lag_ns / 1e6, "flow_info": [f.info() for f in flows]}
        write_records(a.out, header, flows, start)
        self.write_status(end_ns, done=True)
        return 0

    def _close(self, f: _Flow) -> None:
        if f.sock is not None:
            try:
                self.sel.unregister(f.sock)
            except (KeyError, ValueError):
                pass
            f.sock.close()
            f.sock, f.events = None, 0

    def write_status(self, now: int, done: bool = False) -> None:
        rows = [[len(f.send_ns), len(f.recv_ns), f.send_errors,
                 None if f.last_rx_ns is None else (now - f.last_rx_ns) / 1e6, f.state] for f in self.flows]
        _atomic_write(self.a.status, json.dumps({
            "format": FORMAT, "proto": self.proto, "start_wall": self.start_wall,
            "start_mono_ns": self.start_ns, "mono_ns": now, "wall": time.time(),
            "elapsed_ms": (now - self.start_ns) / 1e6, "max_lag_ms": self.max_lag_ns / 1e6, "done": done,
            "fields": FIELDS, "flows": rows}))


class _UdpFlows(_Flows):
    proto = "udp"

    def open(self) -> None:
        for f in self.flows:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            f.sock = s
            s.bind((self.a.bind, f.sport))
            s.connect(self.dest)  # the kernel then delivers only this 5-tuple's echoes to it
            s.setblocking(False)
            f.state, f.events = "up", R
            self.sel.register(s, R, f)

    def fire(self, f: _Flow, now: int) -> None:
        f.send_ns.append(now)
        try:
            f.sock.send(payload(f.index, len(f.send_ns) - 1, now, self.a.size))  # type: ignore[union-attr]
        except OSError:
            f.send_errors += 1  # ENETUNREACH while a link is down, a queued ICMP error: probe lost

    def on_event(self, f: _Flow, mask: int) -> None:
        while f.sock is not None:
            try:
                data = f.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP error reported once; select() wakes again for echoes behind it
            f.echoed(data, time.monotonic_ns())


class _TcpFlows(_Flows):
    proto = "tcp"

    def _connect(self, f: _Flow, now: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        try:
            s.bind((self.a.bind, f.sport))
            err = s.connect_ex(self.dest)
        except OSError as exc:
            s.close()
            return self._break(f, now, f"bind: {_code(exc)}")
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return self._break(f, now, f"connect: {errno.errorcode.get(err, err)}")
        f.sock, f.state, f.events, f.connect_started = s, "connecting", W, now
        f.inbuf.clear()
        f.outbuf.clear()
        self.sel.register(s, W, f)

    def _break(self, f: _Flow, now: int, why: str) -> None:
        # Failed reconnect attempts (one per slot while the server refuses) only update `error`,
        # so the header does not grow by hundreds of entries a second during an outage.
        if f.state == "up" or not f.breaks:
            f.breaks.append({"t_ms": (now - self.start_ns) / 1e6, "error": why})
        f.error = why
        self._close(f)
        f.state = "broken"

    def _flush(self, f: _Flow) -> None:
        try:
            sent = f.sock.send(f.outbuf)  # type: ignore[union-attr]
            del f.outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            return self._break(f, time.monotonic_ns(), f"send: {_code(exc)}")
        events = R | (W if f.outbuf else 0)
        if events != f.events:
            self.sel.modify(f.sock, events, f)  # type: ignore[arg-type]
            f.events = events

    def fire(self, f: _Flow, now: int) -> None:
        a = self.a
        if f.state == "idle":
            return self._connect(f, now)  # this flow's first slot opens its connection
        if a.reconnect and f.state == "connecting" and now - f.connect_started > a.timeout_ms * 1e6:
            # Do not wait out the kernel's SYN backoff (1 s, 3 s, 7 s...): recovery after a repair
            # should be measured within about one timeout.
            self._break(f, now, "connect: timed out")
        if a.reconnect and f.state == "broken":
            f.reconnects += 1
            self._connect(f, now)
        if not f.connect_ms:
            return  # never connected: the flow has not started, nothing to count yet
        seq = len(f.send_ns)
        f.send_ns.append(now)
        if f.state != "up":
            f.send_errors += 1  # the connection is down: this slot's probe is lost
            return
        f.outbuf += LEN.pack(self.a.size - LEN.size) + payload(f.index, seq, now, self.a.size - LEN.size)
        self._flush(f)

    def on_event(self, f: _Flow, mask: int) -> None:
        now = time.monotonic_ns()
        if f.state == "connecting":
            err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # type: ignore[union-attr]
            if err:
                return self._break(f, now, f"connect: {errno.errorcode.get(err, err)}")
            f.state = "up"
            f.connect_ms.append((now - f.connect_started) / 1e6)
            return self._flush(f)
        if mask & R:
            try:
                data = f.sock.recv(65536)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as exc:
                return self._break(f, now, f"recv: {_code(exc)}")
            if data == b"":
                return self._break(f, now, "closed by peer")
            if data:
                f.inbuf += data
                for frame in unframe(f.inbuf):
                    f.echoed(frame, now)
        if mask & W and f.state == "up":
            self._flush(f)


def write_records(path: str, header: dict, flows: Sequence[_Flow], start_ns: int) -> None:
    """Header line, then ``flow seq send_ns recv_ns`` per probe (ns since start, -1: no echo)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(json.dumps(header) + "\n")
        for f in flows:
            for seq, sent in enumerate(f.send_ns):
                got = f.recv_ns.get(seq)
                fh.write(f"{f.index} {seq} {sent - start_ns} {-1 if got is None else got - start_ns}\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# burst: new-flow setup
# --------------------------------------------------------------------------------------------------

class _Pending:
    __slots__ = ("k", "sport", "sock", "t0", "deadline", "connected", "inbuf", "done")

    def __init__(self, k: int, sport: int, t0: int, deadline: int) -> None:
        self.k, self.sport, self.t0, self.deadline = k, sport, t0, deadline
        self.sock: socket.socket | None = None
        self.connected = 0
        self.inbuf = bytearray()
        self.done = False


def run_burst(a: argparse.Namespace, stopper: _Stop) -> int:
    """Open ``count`` new flows as fast as the window allows; report setup rate and latency."""
    tcp = a.proto == "tcp"
    port_range = a.port_range or min(DEFAULT_PORT_RANGE, 65536 - a.sport_base)
    timeout_ns = int(a.timeout_ms * 1e6)
    sel = selectors.DefaultSelector()
    pending: deque[_Pending] = deque()
    rows: list[list] = [[a.sport_base + k % port_range, None, None] for k in range(a.count)]
    errors: dict[str, int] = {}
    counts = {"ok": 0, "failed": 0, "live": 0}

    def finish(p: _Pending, rtt_ns: int | None, err: str | None = None) -> None:
        p.done = True
        counts["live"] -= 1
        if p.sock is not None:
            try:
                sel.unregister(p.sock)
            except (KeyError, ValueError):
                pass
            p.sock.close()
        if err is None and rtt_ns is not None:
            counts["ok"] += 1
            rows[p.k][1] = rtt_ns / 1e6
        else:
            counts["failed"] += 1
            errors[err or "?"] = errors.get(err or "?", 0) + 1
            rows[p.k][2] = err

    def launch(k: int) -> None:
        now = time.monotonic_ns()
        p = _Pending(k, rows[k][0], now, now + timeout_ns)
        counts["live"] += 1
        pending.append(p)
        stage = "socket"
        try:
            p.sock = s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
            s.setblocking(False)
            if tcp:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stage = "bind"
            s.bind((a.bind, p.sport))
            stage = "connect"
            if tcp:
                p.t0 = time.monotonic_ns()
                err = s.connect_ex((a.target, a.port))
                if err not in (0, errno.EINPROGRESS):
                    return finish(p, None, f"connect: {errno.errorcode.get(err, err)}")
                sel.register(s, W, p)
            else:
                s.connect((a.target, a.port))
                stage = "send"
                p.t0 = time.monotonic_ns()
                s.send(payload(k, 0, p.t0, a.size))
                sel.register(s, R, p)
        except OSError as exc:
            finish(p, None, f"{stage}: {_code(exc)}")

    def on_event(p: _Pending, mask: int) -> None:
        now = time.monotonic_ns()
        s = p.sock
        assert s is not None
        if tcp and not p.connected:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return finish(p, None, f"connect: {errno.errorcode.get(err, err)}")
            p.connected = now
            body = payload(p.k, 0, now, a.size - LEN.size)
            try:
                s.send(LEN.pack(len(body)) + body)
            except OSError as exc:
                return finish(p, None, f"send: {_code(exc)}")
            sel.modify(s, R, p)
            return
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            return finish(p, None, f"recv: {_code(exc)}")  # e.g. ECONNREFUSED: nobody listens
        if tcp:
            if not data:
                return finish(p, None, "closed by peer")
            p.inbuf += data
            frames = unframe(p.inbuf)
            if not frames:
                return
            data = frames[0]
        if len(data) >= PROBE.size and PROBE.unpack_from(data)[:2] == (MAGIC, p.k):
            finish(p, (p.connected if tcp else now) - p.t0)  # TCP: the connect time is the setup time

    t_start = time.monotonic_ns()
    k = 0
    while not stopper.stop and (k < a.count or counts["live"]):
        while k < a.count and counts["live"] < a.window:
            launch(k)
            k += 1
        now = time.monotonic_ns()
        while pending and (pending[0].done or pending[0].deadline <= now):
            p = pending.popleft()
            if not p.done:
                finish(p, None, "timeout")
        if k < a.count and counts["live"] < a.window:
            continue
        wait = (pending[0].deadline - now) / 1e9 if pending else 0.0
        for key, mask in sel.select(max(wait, 0.0)):
            if not key.data.done:
                on_event(key.data, mask)
    elapsed_s = (time.monotonic_ns() - t_start) / 1e9
    for p in pending:
        if not p.done:
            finish(p, None, "interrupted")
    rtts = [r[1] for r in rows if r[1] is not None]
    result = {
        "format": BURST_FORMAT, "proto": a.proto, "target": a.target, "port": a.port,
        "count": a.count, "launched": k, "ok": counts["ok"], "failed": counts["failed"],
        "elapsed_s": elapsed_s, "flows_per_s": counts["ok"] / elapsed_s if elapsed_s > 0 else 0.0,
        "rtt_ms": {"p50": percentile(rtts, 50), "p90": percentile(rtts, 90),
                   "p99": percentile(rtts, 99), "max": max(rtts, default=None)},
        "window": a.window, "sport_base": a.sport_base, "port_range": port_range,
        "timeout_ms": a.timeout_ms, "errors": errors, "interrupted": stopper.stop,
        "flows": rows[:k],
    }
    text = json.dumps(result)
    if a.out == "-":
        print(text)
    else:
        _atomic_write(a.out, text)
    return 0


# --------------------------------------------------------------------------------------------------
# serve: UDP + TCP echo
# --------------------------------------------------------------------------------------------------

class _DropList:
    """Test-only: source ports whose traffic the server ignores, re-read when the file changes.

    It lets a unit test cut one flow mid-run without a lab. UDP datagrams from a dropped port are
    discarded; TCP connections from it are no longer read (so the stream's framing survives and the
    held bytes are echoed, late, once the port is removed again).
    """

    def __init__(self, path: str | None) -> None:
        self.path, self.ports, self._mtime, self._next = path, frozenset(), None, 0

    def refresh(self, now: int) -> bool:
        if self.path is None or now < self._next:
            return False
        self._next = now + 50_000_000
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self._mtime:
                return False
            with open(self.path, encoding="ascii") as fh:
                ports = frozenset(int(w) for w in fh.read().split())
        except (OSError, ValueError):
            mtime, ports = None, frozenset()
        self._mtime, changed = mtime, ports != self.ports
        self.ports = ports
        return changed


def run_serve(a: argparse.Namespace, stopper: _Stop) -> int:
    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        udp.bind((a.bind, a.port))
        tcp.bind((a.bind, a.port))
    except (OSError, OverflowError) as exc:
        print(f"flows_agent serve: cannot bind {a.bind}:{a.port}: {exc}", file=sys.stderr)
        return 2
    tcp.listen(4096)
    # Thousands of flows converge on this one UDP socket: a deep buffer rides out a scheduling hiccup
    # of the (single-threaded, Python) server instead of dropping echoes it would have sent.
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    for s in (udp, tcp):
        s.setblocking(False)
        sel.register(s, R, None)
    conns: dict[socket.socket, list] = {}   # sock -> [peer sport, pending output, events]
    drop = _DropList(a.drop_file)
    drop.refresh(0)
    if a.ready_file:
        _atomic_write(a.ready_file, json.dumps({"listening": True, "port": a.port, "pid": os.getpid()}))

    def close(s: socket.socket) -> None:
        if conns.pop(s)[2]:
            sel.unregister(s)
        s.close()

    def set_events(s: socket.socket) -> None:
        # Stop reading a dropped port, or a client that does not read its echoes (1 MiB backlog).
        state = conns[s]
        sport, out, current = state
        events = (0 if sport in drop.ports or len(out) > 1 << 20 else R) | (W if out else 0)
        if events == current:
            return
        if not current:
            sel.register(s, events, s)
        elif not events:
            sel.unregister(s)
        else:
            sel.modify(s, events, s)
        state[2] = events

    while not stopper.stop:
        if drop.refresh(time.monotonic_ns()):
            for s in list(conns):
                set_events(s)
        for key, mask in sel.select(0.05):
            s = key.fileobj
            if s is udp:
                while True:  # drain everything queued: a burst after an outage is answered at once
                    try:
                        data, addr = udp.recvfrom(65535)
                    except OSError:
                        break
                    if addr[1] not in drop.ports:
                        try:
                            udp.sendto(data, addr)
                        except OSError:
                            pass  # no route back: the sender counts the probe as lost
            elif s is tcp:
                while True:
                    try:
                        conn, addr = tcp.accept()
                    except OSError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[conn] = [addr[1], bytearray(), 0]
                    set_events(conn)
            else:
                _serve_conn(s, mask, conns[s], close, set_events)  # type: ignore[arg-type]
    for s in list(conns):
        close(s)
    udp.close()
    tcp.close()
    return 0


def _serve_conn(s: socket.socket, mask: int, state: list, close, set_events) -> None:
    out: bytearray = state[1]
    if mask & R:
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            return close(s)
        if data == b"":
            return close(s)  # the client closed; what it did not read back it no longer wants
        if data:
            out += data
    if out:
        try:
            del out[:s.send(out)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return close(s)
    set_events(s)


# --------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin.traffic.flows_agent",
                                     description="many-flow UDP/TCP traffic agent")
    sub = parser.add_subparsers(dest="role", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", required=True)
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--bind", default="0.0.0.0", help="source address")
    common.add_argument("--size", type=int, default=64,
                        help="UDP payload / TCP frame bytes (incl. 2-byte length prefix)")
    common.add_argument("--timeout-ms", type=float, default=1000.0)
    for role in ("udp", "tcp"):
        p = sub.add_parser(role, parents=[common], help=f"N long-lived {role.upper()} flows")
        p.add_argument("--flows", type=int, default=10)
        p.add_argument("--sport-base", type=int, default=20000)
        p.add_argument("--interval-ms", type=float, default=10.0)
        p.add_argument("--out", required=True)
        p.add_argument("--status", default=None)
        p.add_argument("--duration-s", type=float, default=None, help="default: until signalled")
        p.add_argument("--drain-ms", type=float, default=250.0)
        p.add_argument("--reconnect", action="store_true", help="tcp: reopen broken connections")
    b = sub.add_parser("burst", parents=[common], help="new-flow setup rate and latency")
    b.add_argument("--proto", choices=("udp", "tcp"), default="udp")
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--window", type=int, default=1)
    b.add_argument("--sport-base", type=int, default=30000)
    b.add_argument("--port-range", type=int, default=None,
                   help=f"source ports wrap after this many (default {DEFAULT_PORT_RANGE}, clipped at 65535)")
    b.add_argument("--out", default="-")
    s = sub.add_parser("serve", help="UDP and TCP echo on one port")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--ready-file", default=None, help="written once both sockets are bound")
    s.add_argument("--drop-file", default=None, help="test only: source ports to ignore, one per word")
    a = parser.parse_args(argv)
    if a.role != "serve":
        first = a.sport_base
        last = first + (a.flows if a.role != "burst" else (a.port_range or 1)) - 1
        if not 0 < first <= last <= 65535:
            parser.error(f"source ports {first}..{last} are not all within 1..65535")
        a.size = max(a.size, PROBE.size + (LEN.size if getattr(a, "proto", a.role) == "tcp" else 0))
    if a.role in ("udp", "tcp"):
        if a.interval_ms < 1.0:
            parser.error("--interval-ms must be at least 1")
        a.status = a.status or a.out + ".status"
    if a.role == "burst" and (a.count < 0 or a.window < 1):
        parser.error("--count must be >= 0 and --window >= 1")
    _raise_nofile()
    stopper = _Stop()
    stopper.install()
    if a.role == "serve":
        return run_serve(a, stopper)
    if a.role == "burst":
        return run_burst(a, stopper)
    flows = _UdpFlows(a) if a.role == "udp" else _TcpFlows(a)
    try:
        return flows.run(stopper)
    except OSError as exc:
        print(f"flows_agent {a.role}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
