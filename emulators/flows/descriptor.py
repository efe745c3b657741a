"""The flow descriptor (seed 003 [0070]-[0076], Table 2) as a wire format: every packet inside the grid
carries it appended after its IPv4 packet (Ethernet + exactly IP-total-length bytes + descriptor), so
nodes share flow ID, route and flags in band instead of re-classifying each packet.

Layout, big-endian, 34 fixed bytes + 2 per assignment:

    marker 0xFD | version 1 | length | checksum(2) | signature(8) | orig dst MAC(6) | orig src MAC(6)
    | flags | topology ID | flow type(2) | flow ID(4) | count | count x (cluster byte, node byte)

The checksum (RFC 1071, over the descriptor with the field zero) catches corruption cheaply without the
key; the signature (keyed BLAKE2b-64 over the descriptor with checksum and signature zeroed, then the
IPv4 packet) binds descriptor and packet to the grid's shared secret, so a spoofed descriptor or a packet
changed by a node that did not re-sign is refused.

This runs per packet in a Python forwarder: precompiled structs, table look-ups and no scapy here
(emulators/flows/scapy_layer.py is the readable view of the same bytes, for probes and tests).
"""
from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b
from hmac import compare_digest
from typing import Any

MARKER = 0xFD
VERSION = 1
FIXED_LEN = 34
MAX_ASSIGNMENTS = 110                   # length is one byte: 34 + 2 * 110 = 254
SIG_LEN = 8
PROCESSED_BIT = 0x80                    # cluster byte: that cluster has processed the packet ([0076])
RESERVED_BIT = 0x40                     # cluster byte: reserved off the flow's path ([0082])
CLUSTER_MASK = 0x3F
ETH_LEN = 14
REASONS = frozenset({"truncated", "bad-marker", "bad-version", "bad-length", "bad-checksum",
                     "bad-signature", "no-descriptor", "not-ip", "invalid"})


class Flags(enum.IntFlag):
    """Per-packet flow bits. SOF/EOF are hints only ([0071]): nodes must not rely on seeing them."""
    SOF = 0x01          # start of flow
    EOF = 0x02          # end of flow
    REVERSE = 0x04      # travels server -> client
    REPLICA = 0x08      # replicated clone of a flow
    BACKUP = 0x10       # shadow copy for a backup node: process, never forward
    COPY = 0x20         # copy of an original packet sent to a recorder


_KNOWN_FLAGS = 0x3F
_FLAGS = tuple(Flags(i) for i in range(_KNOWN_FLAGS + 1))    # decode looks flags up, no enum call

# marker, version, length, checksum, signature, orig dst, orig src, flags, topology, flow type, flow ID, count
_HEAD = struct.Struct(">BBBH8s6s6sBBHIB")
assert _HEAD.size == FIXED_LEN
_LISTS = tuple(struct.Struct(f">{n}H") for n in range(MAX_ASSIGNMENTS + 1))
_NOSIG = bytes(SIG_LEN)
_ZERO_CS = bytes(2)
_ZERO_CS_SIG = bytes(2 + SIG_LEN)
_MAC0 = bytes(6)


class DescriptorError(ValueError):
    """A descriptor or frame to drop (or, with "invalid", to refuse to build); `reason` is one word from
    REASONS for counters and logs, `detail` says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Assignment:
    """One route element: the node chosen in a cluster (node 0 = chosen hop by hop, [0077])."""
    cluster: int
    node: int = 0
    processed: bool = False
    reserved: bool = False


@dataclass(frozen=True, slots=True)
class Descriptor:
    """The decoded descriptor. `signature` is what was on the wire (decode) and is ignored by encode,
    which always signs afresh: a node that changes the packet or the descriptor must re-sign."""
    flow_id: int
    flow_type: int = 0
    topology: int = 0
    flags: Flags = Flags(0)
    assignments: tuple[Assignment, ...] = ()
    orig_dst: bytes = _MAC0
    orig_src: bytes = _MAC0
    signature: bytes = _NOSIG

    def with_(self, **changes: Any) -> "Descriptor":
        """A copy with some fields changed (the descriptor is immutable so it can be shared safely)."""
        return dataclasses.replace(self, **changes)

    def node_for(self, cluster: int) -> int:
        """The node assigned in `cluster`, 0 when the cluster is unlisted or left to hop-by-hop choice."""
        for a in self.assignments:
            if a.cluster == cluster:
                return a.node
        return 0


# ------------------------------------------------------------------ helpers
def checksum(data: bytes) -> int:
    """RFC 1071 internet checksum. A ones-complement sum of 16-bit words is the big-endian integer
    modulo 0xFFFF (2**16 == 1 mod 0xFFFF), so one C-level conversion replaces a Python word loop."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big")
    if not n:
        return 0xFFFF                       # sum +0 -> checksum 0xFFFF, as a folding loop gives
    return 0xFFFF - (n % 0xFFFF or 0xFFFF)  # a non-zero sum == 0 mod 0xFFFF is -0 (0xFFFF)


def mac_bytes(mac: str) -> bytes:
    """'aa:bb:cc:dd:ee:ff' (or with '-' / '.' separators) -> 6 bytes, for callers holding text MACs."""
    try:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", "").replace(".", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise DescriptorError("invalid", f"mac {mac!r} is not 6 hex bytes")
    return raw


def mac_text(b: bytes) -> str:
    """6 bytes -> 'aa:bb:cc:dd:ee:ff', for logs and probes."""
    return bytes(b).hex(":")


def _word(a: Assignment) -> int:
    c, n = a.cluster, a.node
    if 0 < c <= CLUSTER_MASK and 0 <= n <= 0xFF:
        return (c | (PROCESSED_BIT if a.processed else 0) | (RESERVED_BIT if a.reserved else 0)) << 8 | n
    raise TypeError                         # encode turns this into a named DescriptorError


@lru_cache(maxsize=None)
def _assignment(word: int) -> Assignment:
    """Assignments are immutable and there are at most 2**16 of them: decode shares one object each."""
    c = word >> 8
    if not c & CLUSTER_MASK:
        raise DescriptorError("invalid", "assignment with cluster ID 0")
    return Assignment(c & CLUSTER_MASK, word & 0xFF, bool(c & PROCESSED_BIT), bool(c & RESERVED_BIT))


def _is_int(v: Any, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= hi


def _invalid(d: Descriptor) -> DescriptorError:
    """The slow path: which field made the fast pack fail (or would have packed silently wrong)."""
    if not isinstance(d, Descriptor):
        return DescriptorError("invalid", f"descriptor is a {type(d).__name__}")
    for name, hi in (("flow_id", 0xFFFFFFFF), ("flow_type", 0xFFFF), ("topology", 0xFF)):
        v = getattr(d, name)
        if not _is_int(v, hi):
            return DescriptorError("invalid", f"{name}={v!r} not in 0..{hi}")
    if not isinstance(d.flags, int) or not 0 <= d.flags <= _KNOWN_FLAGS:
        return DescriptorError("invalid", f"flags={d.flags!r} has bits outside {Flags(_KNOWN_FLAGS)!r}")
    for name in ("orig_dst", "orig_src"):
        v = getattr(d, name)
        if not isinstance(v, (bytes, bytearray)) or len(v) != 6:
            return DescriptorError("invalid", f"{name}={v!r} is not 6 bytes")
    if len(d.assignments) > MAX_ASSIGNMENTS:
        return DescriptorError("invalid", f"assignments: {len(d.assignments)} elements, at most {MAX_ASSIGNMENTS}")
    for i, a in enumerate(d.assignments):
        if not isinstance(a, Assignment):
            return DescriptorError("invalid", f"assignments[{i}] is a {type(a).__name__}")
        if not _is_int(a.cluster, CLUSTER_MASK) or a.cluster == 0:
            return DescriptorError("invalid", f"assignments[{i}].cluster={a.cluster!r} not in 1..63")
        if not _is_int(a.node, 0xFF):
            return DescriptorError("invalid", f"assignments[{i}].node={a.node!r} not in 0..255")
    return DescriptorError("invalid", "descriptor does not pack")


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or not 0 < len(key) <= 64:
        raise DescriptorError("invalid", "key must be 1..64 bytes (BLAKE2b key); an empty key signs nothing")


# ------------------------------------------------------------------ descriptor bytes
def encode(d: Descriptor, key: bytes, l3: bytes) -> bytes:
    """Descriptor bytes for a packet whose IPv4 bytes are `l3`: signed under `key`, then checksummed.
    Out-of-range fields raise DescriptorError("invalid", ...) naming the field rather than wrapping."""
    _check_key(key)
    try:
        a = d.assignments
        n = len(a)
        if (n > MAX_ASSIGNMENTS or d.flags & ~_KNOWN_FLAGS or len(d.orig_dst) != 6 or len(d.orig_src) != 6):
            raise TypeError
        buf = bytearray(FIXED_LEN + 2 * n)
        _HEAD.pack_into(buf, 0, MARKER, VERSION, FIXED_LEN + 2 * n, 0, _NOSIG, d.orig_dst, d.orig_src,
                        d.flags, d.topology, d.flow_type, d.flow_id, n)
        if n:
            _LISTS[n].pack_into(buf, FIXED_LEN, *map(_word, a))
    except (struct.error, TypeError, AttributeError):
        raise _invalid(d) from None
    h = blake2b(buf, digest_size=SIG_LEN, key=key)
    h.update(l3)
    buf[5:13] = h.digest()
    buf[3:5] = checksum(buf).to_bytes(2, "big")
    return bytes(buf)


def decode(buf: bytes, key: bytes | None = None, l3: bytes | None = None) -> Descriptor:
    """The descriptor in `buf` (exactly its bytes, nothing after). Checks marker, version, length and
    checksum; with `key` also the signature over `l3`, the IPv4 packet it travelled with."""
    size = len(buf)
    if not size:
        raise DescriptorError("truncated", "empty descriptor")
    if buf[0] != MARKER:
        raise DescriptorError("bad-marker", f"first byte 0x{buf[0]:02x}, expected 0x{MARKER:02x}")
    if size > 1 and buf[1] != VERSION:
        raise DescriptorError("bad-version", f"version {buf[1]}, this code speaks {VERSION}")
    if size < FIXED_LEN:
        raise DescriptorError("truncated", f"{size} bytes, the fixed part is {FIXED_LEN}")
    (_, _, length, cs, sig, odst, osrc, flags, topo, ftype, fid, count) = _HEAD.unpack_from(buf)
    if length != FIXED_LEN + 2 * count:
        raise DescriptorError("bad-length", f"length {length} but {count} assignments need {FIXED_LEN + 2 * count}")
    if size != length:
        raise DescriptorError("truncated" if size < length else "bad-length",
                              f"{size} bytes, length field says {length}")
    if checksum(buf[:3] + _ZERO_CS + buf[5:]) != cs:
        raise DescriptorError("bad-checksum", f"checksum 0x{cs:04x} does not match the bytes")
    if key is not None:
        if l3 is None:
            raise TypeError("decode(key=...) needs l3, the packet the signature covers")
        _check_key(key)
        h = blake2b(buf[:3] + _ZERO_CS_SIG + buf[13:], digest_size=SIG_LEN, key=key)
        h.update(l3)
        if not compare_digest(h.digest(), sig):
            raise DescriptorError("bad-signature", "signature does not match the key and packet")
    if flags > _KNOWN_FLAGS:
        raise DescriptorError("invalid", f"flags 0x{flags:02x} has undefined bits")
    assignments = tuple(map(_assignment, _LISTS[count].unpack_from(buf, FIXED_LEN))) if count else ()
    return Descriptor(fid, ftype, topo, _FLAGS[flags], assignments, odst, osrc, sig)


# ------------------------------------------------------------------ frames
def _ip_end(frame: bytes) -> int:
    """Offset just past the IPv4 packet of an untagged Ethernet frame (where a descriptor starts)."""
    size = len(frame)
    if size < ETH_LEN:
        raise DescriptorError("truncated", f"{size}-byte frame has no Ethernet header")
    if frame[12] != 0x08 or frame[13] != 0x00:
        raise DescriptorError("not-ip", f"ethertype 0x{frame[12]:02x}{frame[13]:02x}, need untagged IPv4 0x0800")
    if size < ETH_LEN + 20:
        raise DescriptorError("truncated", f"{size}-byte frame is too short for an IPv4 header")
    vihl = frame[14]
    total = frame[16] << 8 | frame[17]
    if vihl >> 4 != 4 or vihl & 15 < 5 or total < (vihl & 15) * 4:
        raise DescriptorError("not-ip", f"not an IPv4 header (version/IHL 0x{vihl:02x}, total length {total})")
    end = ETH_LEN + total
    if size < end:
        raise DescriptorError("truncated", f"{size}-byte frame, IP total length needs {end}")
    return end


def split_frame(frame: bytes) -> tuple[bytes, bytes]:
    """(Ethernet header + IPv4 packet by its total length, whatever follows: descriptor or padding)."""
    end = _ip_end(frame)
    return frame[:end], frame[end:]


def attach(frame: bytes, d: Descriptor, key: bytes, dst: bytes, src: bytes) -> bytes:
    """`frame` (Ethernet + IPv4; any trailer or padding is dropped) re-addressed to dst/src with `d`
    appended and signed over its IPv4 packet. attach does not fill d.orig_dst/orig_src: the caller
    decides (the ingress node stores the frame's own MACs; a transit node keeps the ones it received)."""
    end = _ip_end(frame)
    if len(dst) != 6 or len(src) != 6:
        raise DescriptorError("invalid", f"dst/src MACs must be 6 bytes, got {len(dst)}/{len(src)}")
    return dst + src + frame[12:end] + encode(d, key, memoryview(frame)[ETH_LEN:end])


def detach(frame: bytes, key: bytes) -> tuple[bytes, Descriptor]:
    """(the plain frame, original MACs restored and descriptor removed, the verified descriptor): what
    a node hands its application ([0075]). Nothing but zero padding after the IP packet: no-descriptor."""
    end = _ip_end(frame)
    trailer = frame[end:]
    if trailer.count(0) == len(trailer):
        raise DescriptorError("no-descriptor", f"{len(trailer)} bytes after the IP packet, all zero padding")
    d = decode(trailer, key, memoryview(frame)[ETH_LEN:end])
    return d.orig_dst + d.orig_src + frame[12:end], d
