"""A blocking RADIUS authentication client (RFC 2865 PAP with an RFC 2869 Message-Authenticator).

The router's NAS logic (nas.py) decides which server to ask; this module only asks one server once,
with the NAS's timeout and retransmit count, and says what came back. It opens one UDP socket per
request, connected to the server, so the kernel drops datagrams from other sources and the Identifier
space never runs out under load. Retransmissions resend the very same packet (same Identifier and
Request Authenticator), as RFC 2865 requires, so a late answer to the first copy still counts.

A reply whose Response Authenticator or Message-Authenticator does not verify (a wrong shared
secret, a forged or corrupted packet) is ignored and the client keeps waiting; if nothing valid
arrives the result is "bad-reply" rather than "timeout", which tells a misconfigured key from a
silent server.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from pyrad.packet import AccessAccept, AccessChallenge, AccessReject, AccessRequest, AuthPacket

from .radius_dict import dictionary

AUTH_PORT = 1812
MAX_PACKET = 4096
RESULTS = ("accept", "reject", "timeout", "bad-reply")


@dataclass(frozen=True)
class AuthResult:
    code: str            # one of RESULTS
    server: str
    latency_s: float     # first send to the valid reply (or to giving up)
    attempts: int        # datagrams sent, first transmission included
    message: str = ""    # the reply's Reply-Message, if any

    @property
    def answered(self) -> bool:
        """The server gave a verdict (accept or reject), so it is alive."""
        return self.code in ("accept", "reject")


def build_request(secret: bytes, user: str, password: str, *, nas_ip: str, nas_id: str = "") -> AuthPacket:
    """An Access-Request with User-Name, hidden User-Password, NAS-IP-Address, NAS-Identifier and a
    Message-Authenticator (first attribute, the BlastRADIUS countermeasure)."""
    pkt = AuthPacket(code=AccessRequest, secret=secret, dict=dictionary())
    pkt["User-Name"] = user
    pkt["User-Password"] = pkt.PwCrypt(password)
    pkt["NAS-IP-Address"] = nas_ip
    if nas_id:
        pkt["NAS-Identifier"] = nas_id
    pkt.add_message_authenticator()
    return pkt


def check_reply(request: AuthPacket, data: bytes) -> tuple[str, str] | None:
    """(result code, Reply-Message) of a reply that belongs to `request` and verifies, else None.
    An Access-Challenge counts as a reject: this client does no challenge-response."""
    try:
        reply = request.CreateReply(packet=data)
    except Exception:          # pyrad raises PacketError, KeyError, struct.error on garbage
        return None
    try:
        if not request.VerifyReply(reply, data):
            return None
    except Exception:
        return None
    try:
        message = "".join(str(m) for m in reply.get("Reply-Message", []))
    except Exception:
        message = ""
    if reply.code == AccessAccept:
        return "accept", message
    if reply.code in (AccessReject, AccessChallenge):
        return "reject", message
    return None


def authenticate(server_ip: str, port: int, secret: bytes | str, user: str, password: str, *,
                 timeout: float = 5.0, retransmit: int = 3, nas_ip: str | None = None, nas_id: str = "",
                 source_ip: str | None = None) -> AuthResult:
    """Ask one server once: send, wait `timeout`, resend up to `retransmit` times.

    `nas_ip` defaults to the local address the kernel picks towards the server (what a NAS without
    `ip radius source-interface` sends). Never raises for network trouble: an unreachable server is a
    "timeout", as it is for a real NAS."""
    key = secret.encode() if isinstance(secret, str) else secret
    start = time.monotonic()
    attempts = 0
    bad = False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            if source_ip:
                sock.bind((source_ip, 0))
            sock.connect((server_ip, port))
            local_ip = sock.getsockname()[0]
        except OSError:
            return AuthResult("timeout", server_ip, time.monotonic() - start, 0)
        request = build_request(key, user, password, nas_ip=nas_ip or local_ip, nas_id=nas_id)
        raw = request.RequestPacket()
        for _ in range(retransmit + 1):
            try:
                sock.send(raw)
            except OSError:        # a pending ICMP error, no route: this copy is lost, wait anyway
                pass
            attempts += 1
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data = sock.recv(MAX_PACKET)
                except TimeoutError:
                    break
                except OSError:    # ECONNREFUSED from an ICMP port unreachable: keep waiting
                    continue
                verdict = check_reply(request, data)
                if verdict is None:
                    bad = True
                    continue
                return AuthResult(verdict[0], server_ip, time.monotonic() - start, attempts, verdict[1])
    return AuthResult("bad-reply" if bad else "timeout", server_ip, time.monotonic() - start, attempts)
