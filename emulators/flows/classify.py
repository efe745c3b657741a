"""Stateful flow classification (seed 003 [0057]-[0067], [0077]): turns the multiplexed packet
stream of an INODE (or a flow-originating ANODE) into flows, each with a flow type and a 32-bit
flow ID (origin node in the top 8 bits), so later stages route on the ID instead of re-classifying.

It runs on every packet of a Python forwarder, so the path for a packet of a known flow is kept
to one parse, one dict lookup and a few attribute updates (its verdict object is cached on the
entry); everything else (new flows, TCP teardown, FTP inspection, expiry) is off that path.
Expiry uses a lazy heap of deadlines rather than scanning the table every ~100 ms.
"""
from __future__ import annotations

import heapq
import itertools
import re
import socket
import struct
import time
import zlib
from enum import IntEnum
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple

from emulators.flows.packet import (PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST,
                                    TCP_SYN, parse_l3, reject_reason)

OPEN, CLOSING, ENDED = "open", "closing", "ended"
_SYN_MASK = TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN  # a flow starts on SYN alone: no ACK/RST/FIN


class FlowType(IntEnum):
    """The 2-byte flow type code of [0059]; generic codes equal the IP protocol number."""

    OTHER = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    FTP = 21
    SSH = 22
    DNS = 53
    HTTP = 80
    HTTPS = 443
    IPERF = 5201

    @classmethod
    def name_of(cls, code: int) -> str:
        """Name for a code, also for caller-defined codes outside the enum (shown as hex)."""
        try:
            return cls(code).name
        except ValueError:
            return f"0x{code:04x}"


#: Well-known server port -> flow type, for TCP and UDP alike; extend with `app_ports=`.
APP_PORTS: Mapping[int, int] = MappingProxyType({
    21: FlowType.FTP, 22: FlowType.SSH, 53: FlowType.DNS, 80: FlowType.HTTP,
    8080: FlowType.HTTP, 443: FlowType.HTTPS, 5201: FlowType.IPERF,
})

_KEY = struct.Struct("!B4sH4sH")


def flow_hash(key: tuple) -> int:
    """24-bit hash of a canonical key; module-level so tests can force collisions."""
    return zlib.crc32(_KEY.pack(*key)) & 0xFFFFFF


class FiveTuple(NamedTuple):
    """A directed 5-tuple (addresses as 4 raw bytes; ports are echo identifiers for ICMP echo)."""

    proto: int
    src: bytes
    sport: int
    dst: bytes
    dport: int


class Verdict(NamedTuple):
    """Result of `classify`. `reason` is "" for a classified packet, else why it was refused
    ("not-ip", "malformed", "tcp-no-syn", "fragment"; then entry is None and direction "")."""

    entry: "FlowEntry | None"
    new: bool
    end: bool
    direction: str
    reason: str


class FlowEntry:
    """One connection's state. FTP data connections have their own entry (own key, own TCP
    state) but share the control connection's `flow_id`, with `parent` = the control's key.
    `data` is free for the caller (route assignment, next hops, ...)."""

    __slots__ = ("flow_id", "flow_type", "key", "fwd", "created", "last_seen", "state",
                 "packets_fwd", "packets_rev", "bytes_fwd", "bytes_rev", "parent", "end_reason",
                 "data", "adopted", "deadline", "_timeout", "_fsrc", "_fsport", "_fin",
                 "_ftp", "_expects", "_vf", "_vr")

    def __init__(self, flow_id: int, flow_type: int, key: tuple, fwd: FiveTuple, now: float,
                 timeout: float, parent: tuple | None = None, adopted: bool = False) -> None:
        self.flow_id, self.flow_type, self.key, self.fwd = flow_id, flow_type, key, fwd
        self.created = self.last_seen = now
        self.state, self.end_reason, self.parent, self.adopted = OPEN, "", parent, adopted
        self.packets_fwd = self.packets_rev = self.bytes_fwd = self.bytes_rev = 0
        self.data: dict = {}
        self.deadline, self._timeout = now + timeout, timeout
        self._fsrc, self._fsport = fwd.src, fwd.sport
        self._fin = 0  # bit 1: FIN seen fwd, bit 2: FIN seen rev
        self._ftp = False  # an FTP control connection: its payloads are inspected
        self._expects: list[tuple[bytes, int]] | None = None
        self._vf = Verdict(self, False, False, "fwd", "")
        self._vr = Verdict(self, False, False, "rev", "")

    def __repr__(self) -> str:
        f = self.fwd
        return (f"FlowEntry({self.flow_id:#010x} {FlowType.name_of(self.flow_type)} {f.proto} "
                f"{socket.inet_ntoa(f.src)}:{f.sport}->{socket.inet_ntoa(f.dst)}:{f.dport} "
                f"{self.state}{' ' + self.end_reason if self.end_reason else ''})")


_REFUSED = {r: Verdict(None, False, False, "", r)
            for r in ("not-ip", "malformed", "tcp-no-syn", "fragment")}


class FlowClassifier:
    """Flow table of one classifying node (`origin` 0..255 = top byte of its flow IDs)."""

    def __init__(self, origin: int = 0, *, clock: Callable[[], float] = time.monotonic,
                 app_ports: Mapping[int, int] | None = None, tcp_idle_s: float = 300.0,
                 udp_idle_s: float = 30.0, icmp_idle_s: float = 10.0, linger_s: float = 2.0,
                 expect_s: float = 30.0) -> None:
        if not 0 <= origin <= 255:
            raise ValueError(f"origin {origin} out of range 0..255")
        self.origin = origin
        self._clock = clock
        self._ports = {**APP_PORTS, **(app_ports or {})}
        self._idle = {PROTO_TCP: tcp_idle_s, PROTO_UDP: udp_idle_s, PROTO_ICMP: icmp_idle_s}
        self._other_idle, self._linger, self._expect_s = udp_idle_s, linger_s, expect_s
        self._flows: dict[tuple, FlowEntry] = {}
        self._by_id: dict[int, list[FlowEntry]] = {}
        self._expect: dict[tuple[bytes, int], list[tuple]] = {}  # (dst, dport) -> expectations
        self._heap: list[tuple[float, int, FlowEntry]] = []
        self._seq = itertools.count()
        self._pending: list[FlowEntry] = []  # removed on the packet path, reported by expire()
        self._stats = {"new": 0, "adopted": 0, "joined": 0, "ended": 0, "expired": 0}
        self._refused: dict[str, int] = {}

    # ---- per-packet path -------------------------------------------------------------------

    def classify(self, l3: bytes, now: float | None = None) -> Verdict:
        """Classify one IPv4 packet, creating, updating or ending its flow entry."""
        info = parse_l3(l3)
        if info is None:
            return self._refuse(reject_reason(l3))
        proto, src, dst, sport, dport, flags, _it, poff, plen, total, _frag, frag_off = info
        if frag_off:
            return self._refuse("fragment")
        if src < dst or (src == dst and sport <= dport):
            key = (proto, src, sport, dst, dport)
        else:
            key = (proto, dst, dport, src, sport)
        if now is None:
            now = self._clock()
        e = self._flows.get(key)
        if e is not None and (now >= e.deadline or (
                proto == PROTO_TCP and e.state is ENDED and flags & _SYN_MASK == TCP_SYN)):
            # stale, or a new connection reusing a finished one's tuple: the next expire() says so
            self._pending.append(self._retire(e, "idle"))
            e = None
        if e is None:
            if proto == PROTO_TCP and flags & _SYN_MASK != TCP_SYN:
                return self._refuse("tcp-no-syn")
            e = self._create(key, FiveTuple(proto, src, sport, dst, dport), total, now)
            return Verdict(e, True, False, "fwd", "")
        fwd = src == e._fsrc and sport == e._fsport
        if fwd:
            e.packets_fwd += 1
            e.bytes_fwd += total
        else:
            e.packets_rev += 1
            e.bytes_rev += total
        e.last_seen = now
        if e.state is not ENDED:
            e.deadline = now + e._timeout
        if proto == PROTO_TCP and (flags & (TCP_FIN | TCP_RST) or (e._ftp and plen)):
            if self._tcp_extra(e, fwd, flags, l3, poff, plen, src, dst, now):
                return Verdict(e, False, True, "fwd" if fwd else "rev", "")
        return e._vf if fwd else e._vr

    def _refuse(self, reason: str) -> Verdict:
        self._refused[reason] = self._refused.get(reason, 0) + 1
        return _REFUSED[reason]

    def _tcp_extra(self, e: FlowEntry, fwd: bool, flags: int, l3: bytes, poff: int, plen: int,
                   src: bytes, dst: bytes, now: float) -> bool:
        """Teardown tracking and FTP control inspection; True if this packet ended the flow."""
        if e._ftp and plen and e.state is not ENDED:
            self._ftp_inspect(e, l3[poff:poff + plen], src, dst, now)
        if e.state is ENDED:
            return False
        if flags & TCP_RST:
            self._end(e, "rst", now)
            return True
        if flags & TCP_FIN:
            e._fin |= 1 if fwd else 2
            if e._fin == 3:
                self._end(e, "fin", now)
                return True
            e.state = CLOSING
        return False

    # ---- flow creation ---------------------------------------------------------------------

    def _create(self, key: tuple, fwd: FiveTuple, size: int, now: float) -> FlowEntry:
        proto = fwd.proto
        parent = self._match_expectation(fwd, now) if proto == PROTO_TCP and self._expect else None
        if parent is not None:
            fid, ftype = parent.flow_id, FlowType.FTP
            self._stats["joined"] += 1
        else:
            fid, ftype = self._alloc_id(key), self._type_of(proto, fwd.sport, fwd.dport)
        e = FlowEntry(fid, ftype, key, fwd, now, self._idle.get(proto, self._other_idle),
                      parent.key if parent is not None else None)
        e.packets_fwd, e.bytes_fwd = 1, size
        self._register(e)
        self._stats["new"] += 1
        return e

    def _type_of(self, proto: int, sport: int, dport: int) -> int:
        """Flow type from the server port: the first packet's destination, else its source."""
        if proto == PROTO_TCP or proto == PROTO_UDP:
            t = self._ports.get(dport)
            if t is None:
                t = self._ports.get(sport)
            return t if t is not None else (FlowType.TCP if proto == PROTO_TCP else FlowType.UDP)
        return FlowType.ICMP if proto == PROTO_ICMP else FlowType.OTHER

    def _alloc_id(self, key: tuple) -> int:
        """origin<<24 | 24-bit key hash, probing upward (skipping 0) past IDs of live flows."""
        low = flow_hash(key) & 0xFFFFFF or 1
        base = self.origin << 24
        for _ in range(0xFFFFFF):
            if base | low not in self._by_id:
                return base | low
            low = low % 0xFFFFFF + 1
        raise RuntimeError("flow ID space of this origin is exhausted")

    def _register(self, e: FlowEntry) -> None:
        f = e.fwd
        e._ftp = (f.proto == PROTO_TCP and e.parent is None
                  and self._ports.get(f.dport) == FlowType.FTP)
        self._flows[e.key] = e
        self._by_id.setdefault(e.flow_id, []).append(e)
        heapq.heappush(self._heap, (e.deadline, next(self._seq), e))

    # ---- adoption (egress / downstream nodes) ----------------------------------------------

    def adopt(self, l3: bytes, flow_id: int, flow_type: int, direction: str = "fwd",
              now: float | None = None) -> FlowEntry:
        """Learn (or refresh) the flow of a packet that arrived with a flow descriptor, keeping the
        upstream flow ID, so reverse packets classify to the same ID ([0065], [0077]). The packet
        is accounted like `classify` would (call one or the other per packet, not both);
        `direction` says whether it travels client->server ("fwd") or back ("rev")."""
        if not 0 < flow_id <= 0xFFFFFFFF:
            raise ValueError(f"flow ID {flow_id:#x} out of range")
        if direction not in ("fwd", "rev"):
            raise ValueError(f"direction must be 'fwd' or 'rev', not {direction!r}")
        info = parse_l3(l3)
        if info is None or info.frag_offset:
            raise ValueError(f"cannot adopt: {reject_reason(l3) or 'fragment'}")
        proto, src, dst, sport, dport, flags = info[:6]
        pkt = FiveTuple(proto, src, sport, dst, dport)
        rev = FiveTuple(proto, dst, dport, src, sport)
        key = tuple(pkt) if (src, sport) <= (dst, dport) else tuple(rev)
        if now is None:
            now = self._clock()
        e = self._flows.get(key)
        if e is not None and (now >= e.deadline or e.flow_id != flow_id or (
                proto == PROTO_TCP and e.state is ENDED and flags & _SYN_MASK == TCP_SYN)):
            self._pending.append(self._retire(e, "idle" if now >= e.deadline else "replaced"))
            e = None
        if e is None:
            e = FlowEntry(flow_id, flow_type, key, pkt if direction == "fwd" else rev, now,
                          self._idle.get(proto, self._other_idle), adopted=True)
            self._register(e)
            self._stats["adopted"] += 1
        else:
            e.flow_type = flow_type
            e.last_seen = now
            if e.state is not ENDED:
                e.deadline = now + e._timeout
        fwd = src == e._fsrc and sport == e._fsport  # an existing entry knows its direction
        if fwd:
            e.packets_fwd += 1
            e.bytes_fwd += info.total_len
        else:
            e.packets_rev += 1
            e.bytes_rev += info.total_len
        if proto == PROTO_TCP:
            self._tcp_extra(e, fwd, flags, l3, info.payload_off, info.payload_len, src, dst,
                            now)
        return e

    # ---- FTP data connections ([0059]) -----------------------------------------------------

    def _ftp_inspect(self, e: FlowEntry, payload: bytes, src: bytes, dst: bytes,
                     now: float) -> None:
        """Register the data connection announced by PORT/EPRT (active) or 227/229 (passive).
        The connecting side must be the other party of the control connection (`dst`)."""
        target = parse_ftp_data_target(payload, src)
        if target is None:
            return
        lst = self._expect.setdefault(target, [])
        lst[:] = [x for x in lst if x[0] is not e]  # a repeated PORT/PASV replaces the old one
        lst.append((e, dst, now + self._expect_s))
        if e._expects is None:
            e._expects = []
        e._expects.append(target)

    def _match_expectation(self, fwd: FiveTuple, now: float) -> FlowEntry | None:
        lst = self._expect.get((fwd.dst, fwd.dport))
        if not lst:
            return None
        for i, (ctl, src, until) in enumerate(lst):
            if (src == fwd.src and now < until and ctl.state is not ENDED
                    and self._flows.get(ctl.key) is ctl):
                del lst[i]
                if not lst:
                    del self._expect[(fwd.dst, fwd.dport)]
                return ctl
        return None

    def _drop_expectations(self, e: FlowEntry) -> None:
        if not e._expects:
            return
        for target in e._expects:
            lst = self._expect.get(target)
            if lst is not None:
                lst[:] = [x for x in lst if x[0] is not e]
                if not lst:
                    del self._expect[target]
        e._expects = None

    # ---- teardown and expiry ---------------------------------------------------------------

    def _end(self, e: FlowEntry, reason: str, now: float) -> None:
        e.state, e.end_reason, e.deadline = ENDED, reason, now + self._linger
        self._stats["ended"] += 1
        self._drop_expectations(e)
        heapq.heappush(self._heap, (e.deadline, next(self._seq), e))

    def _unlink(self, e: FlowEntry) -> None:
        del self._flows[e.key]
        lst = self._by_id[e.flow_id]
        lst.remove(e)
        if not lst:
            del self._by_id[e.flow_id]
        self._drop_expectations(e)
        e._vf = e._vr = None  # break the entry<->verdict cycle so refcounting frees it

    def _retire(self, e: FlowEntry, reason: str) -> FlowEntry:
        """Remove an expired (or superseded) entry; `reason` applies unless it already ended."""
        self._unlink(e)
        if e.state is not ENDED:
            e.state, e.end_reason = ENDED, reason
        self._stats["expired"] += 1
        return e

    def expire(self, now: float | None = None) -> list[FlowEntry]:
        """Remove and return entries idle past their timeout or done lingering after FIN/RST
        (also those the packet path already replaced), so the caller can free their routes."""
        if now is None:
            now = self._clock()
        out, self._pending = self._pending, []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, e = heapq.heappop(heap)
            if self._flows.get(e.key) is not e:
                continue
            if e.deadline > now:
                heapq.heappush(heap, (e.deadline, next(self._seq), e))
                continue
            out.append(self._retire(e, "idle"))
        for target in [t for t, lst in self._expect.items() if any(x[2] <= now for x in lst)]:
            lst = [x for x in self._expect[target] if x[2] > now]
            if lst:
                self._expect[target] = lst
            else:
                del self._expect[target]
        return out

    # ---- table access ----------------------------------------------------------------------

    def entries(self) -> list[FlowEntry]:
        """Entries in the table (including ended ones still lingering)."""
        return list(self._flows.values())

    def get(self, flow_id: int) -> list[FlowEntry]:
        """All entries of a flow: an FTP control connection and its data connections."""
        return list(self._by_id.get(flow_id, ()))

    def lookup(self, key: tuple) -> FlowEntry | None:
        """The entry of a canonical key, if any."""
        return self._flows.get(key)

    def remove(self, key: tuple) -> FlowEntry | None:
        """Drop an entry now (`expire` will not report it); the flow ID is freed with its last
        entry."""
        e = self._flows.get(key)
        if e is not None:
            self._unlink(e)
        return e

    def stats(self) -> dict:
        """Counters: new, adopted, joined (FTP data), ended (FIN/RST), expired, live, refused."""
        return {**self._stats, "live": len(self._flows), "refused": dict(self._refused)}

    def __len__(self) -> int:
        return len(self._flows)


_PORT_RE = re.compile(rb"(?i)^PORT\s+(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_227_RE = re.compile(rb"^227[ -].*?(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_EPRT_RE = re.compile(rb"(?i)^EPRT\s+(.)1\1(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\1(\d{1,5})\1")
_229_RE = re.compile(rb"^229[ -].*?\((.)\1\1(\d{1,5})\1\)")


def parse_ftp_data_target(payload: bytes, peer: bytes) -> tuple[bytes, int] | None:
    """(address, port) a data connection will be opened to, from one FTP control segment:
    PORT/EPRT (client's address) or 227/229 replies (229 gives only a port: the data goes to
    `peer`, the replying server). Assumes the line is in one segment, as servers send it."""
    if (m := _PORT_RE.match(payload) or _227_RE.match(payload)) is not None:
        nums = [int(x) for x in m.groups()]
        addr, port = nums[:4], nums[4] << 8 | nums[5]
        if max(nums[4:]) > 255:
            return None
    elif (m := _EPRT_RE.match(payload)) is not None:
        nums = [int(x) for x in m.groups()[1:]]
        addr, port = nums[:4], nums[4]
    elif (m := _229_RE.match(payload)) is not None:
        return (peer, int(m.group(2))) if 0 < int(m.group(2)) < 65536 else None
    else:
        return None
    if max(addr) > 255 or not 0 < port < 65536:
        return None
    return bytes(addr), port
