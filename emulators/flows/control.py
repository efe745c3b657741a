"""The control channel between the MNODE and the flow nodes ([0054]: node discovery, status, state
distribution, statistics): signed messages in the cluster bus's envelope (HMAC, boot id, sequence
number; emulators/cluster/bus.py) carried in UDP datagrams over the management network.

Nodes send `hb` (heartbeat, with their load) every heartbeat interval and `stats` (counters and
flow records) every second; the MNODE sends `topo` (the topology history, paths, policies) on every
change and every second. A forged, malformed or replayed datagram is counted by reason and dropped.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import zlib
from collections.abc import Callable
from typing import Any

from emulators.cluster.bus import BusError, Message, ReplayGuard, Sequencer, decode, encode

log = logging.getLogger(__name__)

TYPES = ("hb", "stats", "topo")
MAX_DATAGRAM = 65000
Receiver = Callable[[Message, str], None]


class ControlChannel:
    """One UDP socket: send signed messages, receive and verify them on a thread."""

    def __init__(self, name: str, ip: str, port: int, secret: bytes) -> None:
        self.name, self.secret, self.port = name, secret, port
        self.seq = Sequencer(name)
        self.guard = ReplayGuard()
        self.rejects: dict[str, int] = {}
        self.last_reject = ""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def send(self, ip: str, type_: str, **body: Any) -> None:
        with self._lock:
            frame = encode(self.seq.make(type_, **body), self.secret)
        data = zlib.compress(frame, 1) if len(frame) > 1200 else frame
        if len(data) > MAX_DATAGRAM:
            log.warning("%s: %s message of %d bytes dropped (too large)", self.name, type_, len(data))
            return
        try:
            self.sock.sendto(data, (ip, self.port))
        except OSError as exc:
            log.debug("%s: send %s to %s: %s", self.name, type_, ip, exc)

    def reject(self, reason: str, detail: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        self.last_reject = f"{reason}: {detail}"
        log.warning("%s: control message refused: %s: %s", self.name, reason, detail)

    def serve(self, on_message: Receiver) -> None:
        while not self._stop.is_set():
            try:
                data, (ip, _) = self.sock.recvfrom(MAX_DATAGRAM + 100)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if data[:1] == b"x":
                try:
                    data = zlib.decompress(data)
                except zlib.error:
                    self.reject("malformed", f"bad compressed datagram from {ip}")
                    continue
            try:
                msg = decode(data, self.secret, TYPES)
            except BusError as exc:
                self.reject(exc.reason, f"{exc.detail} (from {ip})")
                continue
            why = self.guard.check(msg)
            if why is not None:
                self.reject("replay", why)
                continue
            try:
                on_message(msg, ip)
            except Exception:
                log.exception("%s: handling %s from %s", self.name, msg.type, msg.sender)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    return t


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
