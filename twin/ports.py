"""TCP port allocation on 127.0.0.1 shared by every parallel lab (Faucet's proven practice).

Ports come from below the kernel's ephemeral range, so no outgoing connection can take one between
allocation and bind; a port is checked free by binding it, recorded against its lab, and not handed
out again for a cooling-off period after release.
"""
from __future__ import annotations

import json
import socket
import time
import zlib

from twin.registry import locked

PORT_MIN, PORT_MAX = 16000, 31999
COOL_OFF_S = 60.0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def allocate_port(owner: str, now: float | None = None) -> int:
    now = time.time() if now is None else now
    with locked() as d:
        reg_file = d / "ports.json"
        try:
            reg = json.loads(reg_file.read_text())
        except (OSError, ValueError):
            reg = {}
        # forget releases older than the cool-off
        reg = {p: r for p, r in reg.items() if r.get("released") is None or now - r["released"] < COOL_OFF_S}
        start = PORT_MIN + zlib.crc32(owner.encode()) % (PORT_MAX - PORT_MIN)
        span = PORT_MAX - PORT_MIN + 1
        for i in range(span):
            port = PORT_MIN + (start - PORT_MIN + i) % span
            if str(port) in reg:
                continue
            if not _bindable(port):
                continue
            reg[str(port)] = {"owner": owner, "at": now, "released": None}
            reg_file.write_text(json.dumps(reg))
            return port
    raise RuntimeError(f"no free TCP port in {PORT_MIN}-{PORT_MAX} on 127.0.0.1")


def release_ports(owner: str, now: float | None = None) -> list[int]:
    now = time.time() if now is None else now
    released = []
    with locked() as d:
        reg_file = d / "ports.json"
        try:
            reg = json.loads(reg_file.read_text())
        except (OSError, ValueError):
            return []
        for port, rec in reg.items():
            if rec.get("owner") == owner and rec.get("released") is None:
                rec["released"] = now
                released.append(int(port))
        reg_file.write_text(json.dumps(reg))
    return released
