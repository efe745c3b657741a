"""The wire of the peered service (claims 1, 9-15): newline-delimited JSON requests over TCP.

Clients and other servers send `{"op": ..., ...}` and get one JSON line back, `{"ok": true, ...}` or
`{"ok": false, "error": "..."}`. One connection may carry many requests. A line that is not a JSON
object, or larger than MAX_LINE, gets an error reply naming what was wrong; the server never dies
of what a client sends.
"""
from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PORT = 7401
MAX_LINE = 1 << 20


class PeerError(Exception):
    """A request could not be answered: the server is unreachable, or it said why not."""


class PeerUnreachable(PeerError):
    """Nobody answered at that address: a client tries another server (claims 14-15)."""


Handler = Callable[[dict[str, Any], str], dict[str, Any]]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: Handler) -> None:
        self.handler = handler
        super().__init__(addr, _Conn)


class _Conn(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        peer = self.client_address[0]
        while True:
            try:
                line = self.rfile.readline(MAX_LINE + 1)
            except OSError:
                return
            if not line:
                return
            if len(line) > MAX_LINE:
                self._reply({"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                return
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                    raise ValueError("a request is a JSON object with an \"op\" string")
            except ValueError as exc:
                self._reply({"ok": False, "error": f"malformed request: {exc}"})
                continue
            try:
                rep = self.server.handler(req, peer)  # type: ignore[attr-defined]
            except PeerError as exc:
                rep = {"ok": False, "error": str(exc)}
            except Exception as exc:  # a bug in one request must not take the service down
                log.exception("peer request %r failed", req.get("op"))
                rep = {"ok": False, "error": f"internal error: {exc!r}"}
            if not self._reply(rep):
                return

    def _reply(self, rep: dict[str, Any]) -> bool:
        try:
            self.wfile.write(json.dumps(rep, default=str).encode() + b"\n")
            self.wfile.flush()
            return True
        except OSError:
            return False


class PeerServer:
    """The listening side, on its own threads."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self._srv = _Server((host, port), handler)
        self.port: int = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ems-peer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(2)


def call(host: str, port: int, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request, one answer. PeerError says which server and why (unreachable, or its error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > 64 * MAX_LINE:
                    raise PeerError(f"{host}:{port}: reply too long")
    except OSError as exc:
        raise PeerUnreachable(f"{host}:{port} unreachable: {exc}") from None
    try:
        rep = json.loads(buf)
    except ValueError:
        raise PeerUnreachable(f"{host}:{port}: no valid reply to {request.get('op')!r}") from None
    if not rep.get("ok"):
        raise PeerError(f"{host}:{port}: {rep.get('error', 'request failed')}")
    return rep
