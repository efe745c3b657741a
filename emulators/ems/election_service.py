"""The bully election (`bully.BullyNode`) over a real UDP socket, on its own daemon thread.

Everything that can be forged is checked here, before the state machine sees it, and every drop is
counted by reason and reported as a "message-dropped" event: a cluster that silently ignores
forged or replayed elections would hide an attack (or a misconfigured secret) from its operators.
Order of checks: well-formed and HMAC (`messages.decode`), not our own id, a configured peer, from
that peer's configured IP address (one shared secret authenticates the cluster, not the member),
then fresh and not a replay (`messages.ReplayGuard`).
"""
from __future__ import annotations

import collections
import logging
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from emulators.ems.bully import BullyNode, Out, Timing
from emulators.ems.messages import MAX_DATAGRAM, Message, MessageError, ReplayGuard, decode, encode

log = logging.getLogger(__name__)
MAX_WAIT_S = 0.01          # the loop wakes at least this often (stop, pause, clock jumps)
MAX_BATCH = 256            # datagrams read per wake-up, so timers still fire under a flood


class ElectionService:
    """One election member; `status()` is safe from any thread."""

    def __init__(self, my_id: int, bind_ip: str, port: int, peers: dict[int, tuple[str, int]], secret: bytes,
                 elements: list[str], timing: Timing | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.my_id = my_id
        self.bind_ip = bind_ip
        self.secret = secret
        self.elements = list(elements)
        self.timing = timing or Timing()
        self.on_event = on_event
        self.peers = dict(peers)
        self.boot = secrets.randbits(63)
        self.dropped: collections.Counter[str] = collections.Counter()
        self.send_errors = 0
        self._seq = 0
        self._guard = ReplayGuard()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._node = BullyNode(my_id, self.peers, self.timing, self.elements)
        # Bound now, so `port` is known (port 0) before the peers' addresses are all settled.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.bind((bind_ip, port))
        self.port: int = self._sock.getsockname()[1]
        self._closed = False

    # ---- lifecycle -------------------------------------------------------------------------------
    def set_peers(self, peers: dict[int, tuple[str, int]]) -> None:
        """Replace the peer table before `start()` (tests bind every service to port 0 first)."""
        if self._thread is not None:
            raise RuntimeError("set_peers() after start()")
        self.peers = dict(peers)
        self._node = BullyNode(self.my_id, self.peers, self.timing, self.elements)

    def start(self) -> None:
        if self._thread is not None:
            return
        if self._closed:
            raise RuntimeError("start() after stop()")
        with self._lock:
            outs = self._node.start(time.monotonic())
            self._send(outs)
        self._thread = threading.Thread(target=self._run, name=f"ems-election-{self.my_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if not self._closed:
            self._closed = True
            self._sock.close()

    def pause(self) -> None:
        """Neither send nor read (datagrams queue in the kernel): a hung process, not a dead one."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    # ---- queries ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            node = self._node
            now = time.monotonic()
            return {"id": self.my_id, "role": node.role, "master": node.master, "term": node.term,
                    "live_peers": sorted(node.live_peers(now)), "assignment": dict(node.assignment),
                    "assignment_version": node.assignment_version, "counters": dict(node.counters),
                    "dropped": dict(self.dropped), "send_errors": self.send_errors,
                    "paused": self._paused.is_set(), "port": self.port}

    # ---- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._paused.is_set():
                    self._stop.wait(MAX_WAIT_S)
                    continue
                events: list[dict[str, Any]] = []
                with self._lock:
                    now = time.monotonic()
                    self._send(self._node.tick(now))
                    events += self._node.drain_events()
                    wait = min(MAX_WAIT_S, self._node.next_deadline(now) - now)
                self._emit(events)
                try:
                    readable, _, _ = select.select([self._sock], [], [], max(0.0, wait))
                except (OSError, ValueError):
                    if self._stop.is_set():
                        return
                    raise
                if readable:
                    self._read_batch()
        except Exception:  # noqa: BLE001 - a dead election thread must be loud, not silent
            log.exception("ems %s: election loop died", self.my_id)

    def _read_batch(self) -> None:
        for _ in range(MAX_BATCH):
            try:
                data, src = self._sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:          # ICMP errors surfacing on the socket, or closed under us
                return
            self._handle(data, src)

    def _handle(self, data: bytes, src: tuple[str, int]) -> None:
        events: list[dict[str, Any]] = []
        try:
            msg = decode(data, self.secret)
        except MessageError as e:
            self._drop(e.reason, None, src, e.detail)
            return
        if msg.sender == self.my_id:
            self._drop("self", msg.sender, src, "message claims our own id")
            return
        peer = self.peers.get(msg.sender)
        if peer is None:
            self._drop("unknown-sender", msg.sender, src, "id not in the peer table")
            return
        if src[0] != peer[0]:
            self._drop("spoofed", msg.sender, src, f"peer {msg.sender} is configured at {peer[0]}")
            return
        with self._lock:
            reason = self._guard.check(msg, time.time())
            if reason is None:
                self._send(self._node.receive(msg.type, msg.sender, msg.term, msg.data, time.monotonic()))
                events = self._node.drain_events()
        if reason is not None:
            self._drop(reason, msg.sender, src, f"{msg.type} seq {msg.seq} ts {msg.ts:.3f}")
            return
        self._emit(events)

    def _send(self, outs: list[Out]) -> None:
        """Under the lock (the sequence number is shared); UDP sendto does not block for long."""
        if self._paused.is_set():
            return
        for out in outs:
            addr = self.peers.get(out.dst_id)
            if addr is None:
                continue
            self._seq += 1
            msg = Message(type=out.msg_type, sender=self.my_id, boot=self.boot, seq=self._seq, ts=time.time(),
                          term=out.term, data=out.data)
            try:
                self._sock.sendto(encode(msg, self.secret), addr)
            except MessageError as e:
                self.send_errors += 1
                log.error("ems %s: cannot encode %s for %s: %s", self.my_id, out.msg_type, out.dst_id, e)
            except OSError as e:
                self.send_errors += 1
                log.debug("ems %s: send %s to %s %s failed: %s", self.my_id, out.msg_type, out.dst_id, addr, e)

    def _drop(self, reason: str, sender: int | None, src: tuple[str, int], detail: str) -> None:
        with self._lock:
            self.dropped[reason] += 1
        log.warning("ems %s: dropped a datagram from %s:%s (claimed sender %s): %s: %s",
                    self.my_id, src[0], src[1], sender, reason, detail)
        self._emit([{"type": "message-dropped", "reason": reason, "sender": sender, "src": f"{src[0]}:{src[1]}",
                     "time": time.monotonic()}])

    def _emit(self, events: list[dict[str, Any]]) -> None:
        """Outside the lock, so a callback may call `status()`; a failing callback must not kill elections."""
        if self.on_event is None:
            return
        for ev in events:
            try:
                self.on_event({**ev, "node": self.my_id})
            except Exception:  # noqa: BLE001
                log.exception("ems %s: on_event callback failed for %s", self.my_id, ev.get("type"))
