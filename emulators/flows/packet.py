"""Minimal IPv4 parsing for the flow classifier, which runs on every packet of a Python userspace
forwarder: precompiled `struct` unpackers and no object per layer (scapy costs ~100x more).

Addresses are kept as the 4 raw bytes of the header (`bytes`), not dotted strings: they are
hashable, compare in numeric order and cost nothing to produce; `ip_str` converts for display.
"""
from __future__ import annotations

import socket
import struct
from typing import NamedTuple

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8

# ver/ihl, tos, total length, id, flags/fragment, ttl, proto, (checksum), src, dst
_IP = struct.Struct("!BBHHHBB2x4s4s").unpack_from
_TCP = struct.Struct("!HH8xBB").unpack_from  # sport dport (seq ack) data-offset flags
_PORTS = struct.Struct("!HH").unpack_from
_ICMP = struct.Struct("!B3xH").unpack_from  # type (code csum) identifier
_WORD = struct.Struct("!H")


class PacketInfo(NamedTuple):
    """What the classifier needs from one IPv4 packet. `sport`/`dport` are the TCP/UDP ports, the
    echo identifier (both) for ICMP echo request/reply, else 0 (also for non-first fragments,
    which carry no L4 header). `payload_off`/`payload_len` delimit the L4 payload within `l3`
    (after the IP header when there is no parsed L4 header). `is_fragment` is true for any
    fragment (MF set or offset > 0); `frag_offset` is in bytes, > 0 only for non-first ones."""

    proto: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    tcp_flags: int
    icmp_type: int
    payload_off: int
    payload_len: int
    total_len: int
    is_fragment: bool
    frag_offset: int


_new_info = tuple.__new__  # building the NamedTuple without its generated __new__ is ~2x faster


def parse_l3(l3: bytes) -> PacketInfo | None:
    """Parse an IPv4 packet (bytes-like); None if it is not IPv4 or is malformed/truncated (ask
    `reject_reason` which). Trailing bytes beyond the IP total length (Ethernet padding) are
    ignored. The header checksum is not verified here (see `ip_checksum_ok`): most callers need
    not pay for it on every packet."""
    n = len(l3)
    if n < 20:
        return None
    vihl, _tos, total, _id, ff, _ttl, proto, src, dst = _IP(l3)
    hl = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or hl < 20 or total < hl or total > n:
        return None
    frag_off = (ff & 0x1FFF) << 3
    sport = dport = flags = icmp_type = 0
    off = hl
    if not frag_off:
        if proto == PROTO_TCP:
            if hl + 20 > total:
                return None
            sport, dport, doff, flags = _TCP(l3, hl)
            off = hl + ((doff >> 4) << 2)
            if off < hl + 20 or off > total:
                return None
            flags &= 0x3F
        elif proto == PROTO_UDP:
            off = hl + 8
            if off > total:
                return None
            sport, dport = _PORTS(l3, hl)
        elif proto == PROTO_ICMP:
            off = hl + 8
            if off > total:
                return None
            icmp_type, ident = _ICMP(l3, hl)
            if icmp_type == ICMP_ECHO_REQUEST or icmp_type == ICMP_ECHO_REPLY:
                sport = dport = ident
    return _new_info(PacketInfo, (proto, src, dst, sport, dport, flags, icmp_type, off,
                                  total - off, total, bool(ff & 0x3FFF), frag_off))


def reject_reason(l3: bytes) -> str:
    """Why `parse_l3` refuses `l3`: "not-ip" (IP version is not 4), "malformed" (too short,
    bad header length, truncated L4 header), or "" if it parses. Kept apart so the per-packet
    path does not build reasons for good packets."""
    if parse_l3(l3) is not None:
        return ""
    if len(l3) and l3[0] >> 4 != 4:
        return "not-ip"
    return "malformed"


def ip_str(addr: bytes) -> str:
    """Dotted-quad form of a 4-byte address from `PacketInfo` (for logs and display)."""
    return socket.inet_ntoa(addr)


def _header(l3: bytes) -> bytes:
    """The IPv4 header of `l3`, or ValueError if there is none to work on."""
    if len(l3) < 20 or l3[0] >> 4 != 4:
        raise ValueError("not an IPv4 packet")
    hl = (l3[0] & 0x0F) << 2
    if hl < 20 or hl > len(l3):
        raise ValueError("bad IPv4 header length")
    return l3[:hl]


def ip_checksum_ok(l3: bytes) -> bool:
    """True if the IPv4 header checksum verifies. Uses 2**16 == 1 (mod 0xFFFF): the header read as
    one big integer is congruent to the sum of its 16-bit words, so a valid header (one's
    complement sum 0xFFFF) is a multiple of 0xFFFF -- one C-level operation, no Python loop."""
    try:
        hdr = _header(l3)
    except ValueError:
        return False
    return int.from_bytes(hdr, "big") % 0xFFFF == 0


def _ones_add(a: int, b: int) -> int:
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def set_dscp(l3: bytes, dscp: int) -> bytes:
    """A copy of `l3` with DSCP set to `dscp` (0..63), ECN bits kept, and the header checksum
    updated incrementally (RFC 1624 eqn. 3) like a router does: a header that arrived with a bad
    checksum keeps a bad one instead of being silently "repaired"."""
    if not 0 <= dscp <= 63:
        raise ValueError(f"DSCP {dscp} out of range 0..63")
    _header(l3)
    old_word = (l3[0] << 8) | l3[1]
    new_word = (l3[0] << 8) | (dscp << 2) | (l3[1] & 0x03)
    if new_word == old_word:
        return bytes(l3)
    hc = (l3[10] << 8) | l3[11]
    s = _ones_add(_ones_add(~hc & 0xFFFF, ~old_word & 0xFFFF), new_word)
    s = _ones_add(s, 0)
    out = bytearray(l3)
    out[1] = new_word & 0xFF
    out[10:12] = _WORD.pack(~s & 0xFFFF)
    return bytes(out)
