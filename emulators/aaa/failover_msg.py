"""The failover and reconnect messages an AAA server sends its clients (claims 1, 12-15, 19-25).

One binary format for both transports (a UDP datagram, or the payload of an ICMP Echo, claim 3):

    magic "TWAF" | version 1 | type | seq u64 | time_ms u64 | server ip | client ip |
    n alternates u8 | alternates (4 bytes each) | HMAC-SHA256 (32 bytes)

The HMAC is keyed with the secret the server and client share (their RADIUS shared secret) and covers
every byte before it, which includes the server's and the client's IP addresses (claim 14): a message
replayed towards another client, or sent from another address, fails. `seq` and `time_ms` let the
receiver drop replays (see `ReplayGuard`).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import time
from dataclasses import dataclass, field

from ..wire import MessageError  # noqa: F401 - raised here, caught by importers

MAGIC = b"TWAF"
VERSION = 1
FAILOVER, RECONNECT = 1, 2
TYPE_NAMES = {FAILOVER: "failover", RECONNECT: "reconnect"}
UDP_PORT = 1814          # next to RADIUS auth (1812) and accounting (1813)
DIGEST_LEN = 32
_HEAD = struct.Struct("!4sBBQQ4s4sB")
MAX_ALTERNATES = 16
MAX_AGE_S = 30.0          # older (or further in the future) than this is a replay or a broken clock


@dataclass(frozen=True)
class FailoverMessage:
    type: int
    server: str
    client: str
    seq: int
    time_ms: int
    alternates: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, str(self.type))


def _ip4(text: str, what: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise MessageError("malformed", f"{what} {text!r} is not an IPv4 address") from None


def encode(msg: FailoverMessage, secret: bytes) -> bytes:
    if msg.type not in TYPE_NAMES:
        raise MessageError("malformed", f"unknown message type {msg.type}")
    if len(msg.alternates) > MAX_ALTERNATES:
        raise MessageError("malformed", f"{len(msg.alternates)} alternates (at most {MAX_ALTERNATES})")
    body = _HEAD.pack(MAGIC, VERSION, msg.type, msg.seq, msg.time_ms, _ip4(msg.server, "server"),
                      _ip4(msg.client, "client"), len(msg.alternates))
    body += b"".join(_ip4(a, "alternate") for a in msg.alternates)
    return body + hmac.new(secret, body, hashlib.sha256).digest()


def peek_server(data: bytes) -> str:
    """The claimed sender, read before authentication so the receiver can pick the secret."""
    if len(data) < _HEAD.size + DIGEST_LEN or data[:4] != MAGIC:
        raise MessageError("malformed", f"not a failover message ({len(data)} bytes)")
    return str(ipaddress.IPv4Address(data[22:26]))


def decode(data: bytes, secret: bytes, *, src_ip: str, dst_ip: str) -> FailoverMessage:
    """Parse and authenticate a message received from `src_ip` on local address `dst_ip`."""
    if len(data) < _HEAD.size + DIGEST_LEN:
        raise MessageError("malformed", f"{len(data)} bytes, a message has at least {_HEAD.size + DIGEST_LEN}")
    magic, version, mtype, seq, time_ms, server, client, n_alt = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise MessageError("malformed", f"bad magic {magic!r}")
    if version != VERSION:
        raise MessageError("malformed", f"unsupported version {version}")
    if mtype not in TYPE_NAMES:
        raise MessageError("malformed", f"unknown message type {mtype}")
    if n_alt > MAX_ALTERNATES or len(data) != _HEAD.size + 4 * n_alt + DIGEST_LEN:
        raise MessageError("malformed", f"length {len(data)} does not match {n_alt} alternates")
    body, digest = data[:-DIGEST_LEN], data[-DIGEST_LEN:]
    if not hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).digest(), digest):
        raise MessageError("bad-hmac", f"HMAC does not verify (message claims server {ipaddress.IPv4Address(server)})")
    msg = FailoverMessage(mtype, str(ipaddress.IPv4Address(server)), str(ipaddress.IPv4Address(client)), seq,
                          time_ms, tuple(str(ipaddress.IPv4Address(data[_HEAD.size + 4 * i:_HEAD.size + 4 * i + 4]))
                                         for i in range(n_alt)))
    if msg.server != src_ip:
        raise MessageError("spoofed", f"message from {msg.server} arrived from {src_ip}")
    if msg.client != dst_ip:
        raise MessageError("misdirected", f"message for {msg.client} arrived on {dst_ip}")
    return msg


@dataclass
class ReplayGuard:
    """Accepts each server's messages only with a rising sequence number and a fresh timestamp."""

    max_age_s: float = MAX_AGE_S
    last_seq: dict[str, int] = field(default_factory=dict)

    def check(self, msg: FailoverMessage, now: float | None = None) -> None:
        now_ms = int((time.time() if now is None else now) * 1000)
        if abs(now_ms - msg.time_ms) > self.max_age_s * 1000:
            raise MessageError("replay", f"timestamp {(now_ms - msg.time_ms) / 1000:.1f} s old")
        if msg.seq <= self.last_seq.get(msg.server, -1):
            raise MessageError("replay", f"sequence {msg.seq} from {msg.server} already seen "
                                         f"(last {self.last_seq[msg.server]})")
        self.last_seq[msg.server] = msg.seq


def icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def icmp_echo(payload: bytes, ident: int, seq: int) -> bytes:
    """An ICMP Echo Request carrying the message (claim 3), for a raw IPPROTO_ICMP socket."""
    head = struct.pack("!BBHHH", 8, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    csum = icmp_checksum(head + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident & 0xFFFF, seq & 0xFFFF) + payload


def icmp_payload(packet: bytes) -> tuple[str, bytes] | None:
    """(source ip, payload) of an IPv4 packet holding an ICMP Echo Request with our magic, else None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8 + 4 or icmp[0] != 8 or icmp[8:12] != MAGIC:
        return None
    return str(ipaddress.IPv4Address(packet[12:16])), icmp[8:]
