"""The inter-unit channel (the chassis backplane): one TCP connection between the two units of a
pair over the management network, carrying signed JSON lines both ways.

The primary unit listens and the secondary dials, whatever their roles, so either can restart and
the pair finds itself again. Every message is `{"m": body, "h": hmac}` with an HMAC-SHA256 over the
body under the pair's secret and a sequence number that must grow on its connection. A connection
only counts once its first message (a hello) is authentic, so a stranger connecting to the port
cannot displace the real peer. Anything malformed, badly signed or replayed is rejected, counted,
reported through `on_reject` and the connection that sent it is closed.

Liveness: both sides send a heartbeat every `hb_s`; a peer is down when its connection closes
(a crashed process: detected at once) or nothing arrives for `dead_s` (a powered-off unit).
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..signing import Rejected, seal, unseal

log = logging.getLogger(__name__)

PORT = 7500
MAX_LINE = 64 << 20           # a bulk sync of a large config is one message
HB_S = 0.1
DEAD_S = 1.5                  # see emulators.rp.unit.DEAD_MS


def sign(body: dict[str, Any], secret: bytes) -> bytes:
    return seal(body, secret) + b"\n"


def verify(line: bytes, secret: bytes) -> dict[str, Any]:
    """The body of a signed line, or Rejected naming what is wrong with it."""
    body = unseal(line, secret, "the pair's")
    if not isinstance(body.get("type"), str) or not isinstance(body.get("seq"), int):
        raise Rejected("malformed", "body needs a string 'type' and an integer 'seq'")
    return body


class _Conn:
    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.send_lock = threading.Lock()
        self.tx_seq = 0
        self.rx_seq = -1
        self.authenticated = False
        self.last_rx = time.monotonic()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class RfChannel:
    """See the module docstring. Callbacks run on the channel's threads: the unit hands them to its
    own thread (`BaseDevice.dispatch`)."""

    def __init__(self, *, secret: bytes, listen: tuple[str, int] | None, dial: tuple[str, int] | None,
                 on_message: Callable[[dict[str, Any]], None], on_up: Callable[[], None],
                 on_down: Callable[[str], None], on_reject: Callable[[str, str, str], None],
                 hb_s: float = HB_S, dead_s: float = DEAD_S, name: str = "rf") -> None:
        self.secret = secret
        self.listen_addr = listen
        self.dial_addr = dial
        self.on_message, self.on_up, self.on_down, self.on_reject = on_message, on_up, on_down, on_reject
        self.hb_s, self.dead_s = hb_s, dead_s
        self.name = name
        self._conn: _Conn | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._srv: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.rejected: dict[str, int] = {}
        self.port: int | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self.listen_addr is not None:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(self.listen_addr)
            srv.listen(8)
            srv.settimeout(0.2)
            self._srv = srv
            self.port = srv.getsockname()[1]
            self._spawn(self._accept_loop, "accept")
        if self.dial_addr is not None:
            self._spawn(self._dial_loop, "dial")
        self._spawn(self._heartbeat_loop, "hb")

    def _spawn(self, fn: Callable[[], None], what: str) -> None:
        t = threading.Thread(target=fn, name=f"{self.name}-{what}", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._srv is not None:
            try:
                self._srv.close()
            except OSError:
                pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)

    @property
    def up(self) -> bool:
        c = self._conn
        return c is not None and c.authenticated and not c.closed

    # ---------------------------------------------------------------- sending
    def send(self, body: dict[str, Any], conn: _Conn | None = None) -> bool:
        """Send one message; False if there is no peer (the caller treats it as a lost peer)."""
        c = conn or self._conn
        if c is None or c.closed:
            return False
        with c.send_lock:
            c.tx_seq += 1
            data = sign({**body, "seq": c.tx_seq}, self.secret)
            try:
                c.sock.sendall(data)
                return True
            except OSError:
                return False

    # ---------------------------------------------------------------- connections
    def _accept_loop(self) -> None:
        assert self._srv is not None
        while not self._stop.is_set():
            try:
                sock, addr = self._srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(lambda s=sock, a=addr[0]: self._serve(s, a), "conn")

    def _dial_loop(self) -> None:
        assert self.dial_addr is not None
        while not self._stop.is_set():
            if self._conn is None:
                try:
                    sock = socket.create_connection(self.dial_addr, timeout=0.5)
                except OSError:
                    self._stop.wait(0.1)
                    continue
                self._serve(sock, self.dial_addr[0], dialed=True)
                self._stop.wait(0.2)      # not a tight loop against a peer that keeps refusing us
            else:
                self._stop.wait(0.1)

    def _serve(self, sock: socket.socket, peer: str, dialed: bool = False) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        conn = _Conn(sock, peer)
        if dialed:
            # the dialer speaks first, so the listener can authenticate the connection
            self.send({"type": "hello-channel"}, conn)
        reader = sock.makefile("rb")
        try:
            while not self._stop.is_set():
                line = reader.readline(MAX_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_LINE:
                    self._reject(conn, "oversized", f"message longer than {MAX_LINE} bytes")
                    break
                try:
                    body = verify(line, self.secret)
                    if body["seq"] <= conn.rx_seq:
                        raise Rejected("replay", f"sequence {body['seq']} after {conn.rx_seq}")
                except Rejected as exc:
                    self._reject(conn, exc.reason, exc.detail)
                    break
                conn.rx_seq = body["seq"]
                conn.last_rx = time.monotonic()
                if not conn.authenticated:
                    self._adopt(conn)
                    if not dialed:
                        self.send({"type": "hello-channel"}, conn)
                if body["type"] in ("hb", "hello-channel"):
                    continue
                try:
                    self.on_message(body)
                except Exception:
                    log.exception("%s: message handler failed for %s", self.name, body.get("type"))
        except OSError:
            pass
        finally:
            self._drop(conn, "connection closed")

    def _adopt(self, conn: _Conn) -> None:
        with self._lock:
            old, self._conn = self._conn, conn
            conn.authenticated = True
        if old is not None and old is not conn:
            old.close()
        self.on_up()

    def _drop(self, conn: _Conn, why: str) -> None:
        was_current = False
        with self._lock:
            if self._conn is conn:
                self._conn = None
                was_current = True
        conn.close()
        if was_current and not self._stop.is_set():
            self.on_down(why)

    def _reject(self, conn: _Conn, reason: str, detail: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        log.warning("%s: rejected a message from %s: %s: %s", self.name, conn.peer, reason, detail)
        try:
            self.on_reject(conn.peer, reason, detail)
        except Exception:
            log.exception("%s: reject handler failed", self.name)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.hb_s):
            c = self._conn
            if c is None or not c.authenticated:
                continue
            if time.monotonic() - c.last_rx > self.dead_s:
                self._drop(c, f"no heartbeat for {self.dead_s * 1000:.0f} ms")
                continue
            self.send({"type": "hb"}, c)
