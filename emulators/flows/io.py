"""Real packets in and out of a flow node: one AF_PACKET socket per interface (IPv4 frames addressed to
this node only), and a raw IP socket for the external side, so the kernel's routing and ARP deliver
what leaves the grid exactly as a router's output would. Kernel forwarding stays off in flow nodes:
everything that crosses a node crosses this loop.
"""
from __future__ import annotations

import errno
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

ETH_P_IP = 0x0800
PACKET_OTHERHOST, PACKET_OUTGOING = 3, 4
RCVBUF = 4 << 20
Handler = Callable[[str, bytes], None]


class PacketIO:
    def __init__(self, grid_intfs: Iterable[str], ext_intfs: Iterable[str]) -> None:
        self.grid = list(grid_intfs)
        self.ext = list(ext_intfs)
        self.socks: dict[str, socket.socket] = {}
        self.errors: dict[str, int] = {}
        self._raw: socket.socket | None = None
        self._stop = threading.Event()

    def open(self, deadline_s: float = 10.0) -> list[str]:
        """Bind every interface (they may still be coming up); returns those that could not be."""
        end = time.monotonic() + deadline_s
        missing = [i for i in self.grid + self.ext if i not in self.socks]
        while missing:
            for intf in list(missing):
                try:
                    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                    s.bind((intf, ETH_P_IP))
                    s.setblocking(False)
                except OSError as exc:
                    log.debug("cannot bind %s yet: %s", intf, exc)
                    continue
                self.socks[intf] = s
                missing.remove(intf)
            if not missing or time.monotonic() > end:
                break
            time.sleep(0.1)
        if self.ext and self._raw is None:
            self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        return missing

    def send_grid(self, intf: str, frame: bytes) -> None:
        s = self.socks.get(intf)
        if s is None:
            self._error("no-socket")
            return
        try:
            s.send(frame)
        except OSError as exc:
            self._error(errno.errorcode.get(exc.errno or 0, "error"))

    def send_ext(self, l3: bytes) -> None:
        if self._raw is None:
            self._error("no-raw-socket")
            return
        try:
            self._raw.sendto(l3, (socket.inet_ntoa(l3[16:20]), 0))
        except OSError as exc:
            self._error(errno.errorcode.get(exc.errno or 0, "error"))

    def _error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def run(self, on_grid: Handler, on_ext: Handler, tick: Callable[[], None]) -> None:
        """The packet loop: drain ready sockets in bursts, call `tick` at least every 100 ms."""
        ep = select.epoll()
        names: dict[int, tuple[str, socket.socket, Handler]] = {}
        for intf, s in self.socks.items():
            ep.register(s.fileno(), select.EPOLLIN)
            names[s.fileno()] = (intf, s, on_ext if intf in self.ext else on_grid)
        try:
            while not self._stop.is_set():
                for fd, _ in ep.poll(0.1):
                    intf, s, handler = names[fd]
                    for _ in range(64):
                        try:
                            data, addr = s.recvfrom(65535)
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            self._error(errno.errorcode.get(exc.errno or 0, "error"))
                            break
                        if addr[2] in (PACKET_OUTGOING, PACKET_OTHERHOST):
                            continue
                        try:
                            handler(intf, data)
                        except Exception:
                            log.exception("flow engine failed on a frame from %s", intf)
                            self._error("engine-exception")
                try:
                    tick()
                except Exception:           # housekeeping must not stop the packet loop
                    log.exception("flow engine housekeeping failed")
                    self._error("tick-exception")
        finally:
            ep.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        for s in self.socks.values():
            s.close()
        self.socks.clear()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
