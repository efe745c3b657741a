"""The sockets a RADIUS client receives failover messages on (UDP with the destination address from
IP_PKTINFO, and a raw ICMP socket for messages carried in Echo Requests), read by one thread."""
from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable

from . import failover_msg as fm

log = logging.getLogger(__name__)

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)   # Linux value; CPython does not always export it

class FailoverListener:
    """The sockets failover messages arrive on and one thread reading them.

    UDP on `bind_ip:port` with IP_PKTINFO, so the local address a datagram was sent to is known even
    on 0.0.0.0 (decode checks it against the message's client address); optionally a raw ICMP socket
    (root only) for messages carried in Echo Requests. `stop()` blocks at most briefly: it closes the sockets
    and wakes the thread, so the port is free when it returns."""

    def __init__(self, port: int, bind_ip: str, icmp: bool,
                 deliver: Callable[[bytes, str, str, str, threading.Event], None]) -> None:
        self.port = port
        self.bind_ip = bind_ip
        self.want_icmp = icmp
        self.deliver = deliver
        self.transports: list[str] = []
        self.errors: list[str] = []
        self.stopped = threading.Event()
        self._socks: dict[str, socket.socket] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    @property
    def params(self) -> tuple[int, str, bool]:
        return (self.port, self.bind_ip, self.want_icmp)

    def open(self) -> list[str]:
        """Open the sockets and start reading; returns what could not be opened (for the log)."""
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            udp.bind((self.bind_ip, self.port))
            self._socks["udp"] = udp
        except OSError as exc:
            udp.close()
            self.errors.append(f"cannot listen on UDP port {self.port}: {exc.strerror or exc}")
        if self.want_icmp:
            try:
                raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                if self.bind_ip != "0.0.0.0":
                    raw.bind((self.bind_ip, 0))
                self._socks["icmp"] = raw
            except OSError as exc:
                self.errors.append(f"cannot receive ICMP: {exc.strerror or exc}")
        self.transports = list(self._socks)
        if self._socks:
            self._thread = threading.Thread(target=self._run, name=f"failover-listener-{self.port}", daemon=True)
            self._thread.start()
        return self.errors

    def stop(self) -> None:
        """Close the sockets and end the thread. Safe under the device lock: the thread waits for
        that lock only in short slices and gives up once stopped. The join matters because the
        kernel frees the port only when the thread's select() has returned."""
        self.stopped.set()
        for s in self._socks.values():
            s.close()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is None:
            self._close_wake()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _close_wake(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        socks = dict(self._socks)
        try:
            while not self.stopped.is_set():
                try:
                    ready, _, _ = select.select([*socks.values(), self._wake_r], [], [])
                except (OSError, ValueError):
                    return
                for s in ready:
                    if self.stopped.is_set() or s is self._wake_r:
                        return
                    try:
                        self._read(s, "udp" if s is socks.get("udp") else "icmp")
                    except Exception:   # one bad packet must not end the listener
                        if self.stopped.is_set():
                            return
                        log.exception("failover listener: receive failed")
        finally:
            self._close_wake()

    def _read(self, s: socket.socket, via: str) -> None:
        if via == "udp":
            data, anc, _flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(12))
            dst = self.bind_ip
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                    dst = socket.inet_ntoa(cdata[8:12])      # in_pktinfo.ipi_addr: header destination
            self.deliver(data, addr[0], dst, "udp", self.stopped)
            return
        packet = s.recv(65535)
        got = fm.icmp_payload(packet)
        if got is not None:
            self.deliver(got[1], got[0], socket.inet_ntoa(packet[16:20]), "icmp", self.stopped)
