"""Sends failover and reconnect messages to clients (claims 1, 3, 12), over UDP, ICMP Echo or both.

Each message is sent from the address the client uses to reach this server (the client checks
the source against the HMAC'd server address). Sequence numbers start from the wall clock in
microseconds, so a restarted server never reuses one a client has already seen.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

from . import failover_msg as fm

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, port: int = fm.UDP_PORT) -> None:
        self.port = port
        self._seq = time.time_ns() // 1000
        self._lock = threading.Lock()
        self._ident = os.getpid() & 0xFFFF

    def next_seq(self) -> int:
        with self._lock:
            self._seq = max(self._seq + 1, time.time_ns() // 1000)
            return self._seq

    def send(self, mtype: int, *, server_ip: str, client_ip: str, secret: str, alternates: tuple[str, ...] = (),
             transport: str = "udp") -> fm.FailoverMessage:
        """Build, sign and send one message; raises OSError if no transport could send it."""
        msg = fm.FailoverMessage(mtype, server_ip, client_ip, self.next_seq(), int(time.time() * 1000), alternates)
        data = fm.encode(msg, secret.encode())
        errors = []
        if transport in ("udp", "both"):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((server_ip, 0))
                    s.sendto(data, (client_ip, self.port))
            except OSError as exc:
                errors.append(f"udp: {exc}")
        if transport in ("icmp", "both"):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
                    s.bind((server_ip, 0))
                    s.sendto(fm.icmp_echo(data, self._ident, msg.seq), (client_ip, 0))
            except OSError as exc:
                errors.append(f"icmp: {exc}")
        if errors and len(errors) == (2 if transport == "both" else 1):
            raise OSError(f"{msg.type_name} to {client_ip} not sent ({'; '.join(errors)})")
        return msg
