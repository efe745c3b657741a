"""The stateful flow classifier (seed 003 [0057]-[0067], [0077]) and its raw IPv4 parser:
TCP lifecycle (SYN .. FIN/FIN or RST, linger, refusal of mid-stream packets), UDP/ICMP/other
idle expiry on an injected clock, flow types by server port, FTP data connections joining
their control connection's flow, flow ID layout and collision probing, adopt() on egress
nodes, fragments and malformed input, DSCP rewrite with a valid checksum.

Packets are built with scapy; nothing touches the network and no test sleeps."""
from __future__ import annotations

import socket
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, GRE, IPOption_RR, Raw, fragment

from emulators.flows import classify as classify_mod
from emulators.flows.classify import (APP_PORTS, FlowClassifier, FlowType,
                                      parse_ftp_data_target)
from emulators.flows.packet import (ip_checksum_ok, ip_str, parse_l3, reject_reason,
                                    set_dscp)

pytestmark = pytest.mark.unit

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class Clock:
    """Injected time source: tests move `t` instead of sleeping."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: bytes = b"") -> bytes:
    pkt = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    return bytes(pkt / Raw(payload) if payload else pkt)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    return bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def echo(src: str, dst: str, ident: int, reply: bool = False) -> bytes:
    return bytes(IP(src=src, dst=dst) / ICMP(type=0 if reply else 8, id=ident, seq=1) / b"ping")


def a(addr: str) -> bytes:
    return socket.inet_aton(addr)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fc(clock: Clock) -> FlowClassifier:
    return FlowClassifier(origin=1, clock=clock)


def handshake(fc: FlowClassifier, client: str = A, server: str = B, cport: int = 40000,
              sport: int = 80):
    v = fc.classify(tcp(client, server, cport, sport, "S"))
    assert v.new and v.direction == "fwd" and v.reason == ""
    v2 = fc.classify(tcp(server, client, sport, cport, "SA"))
    v3 = fc.classify(tcp(client, server, cport, sport, "A"))
    assert v2.entry is v.entry is v3.entry
    assert (v2.direction, v3.direction) == ("rev", "fwd")
    assert not (v2.new or v3.new or v2.end or v3.end)
    return v.entry


# ---- packet parsing -----------------------------------------------------------------------

def test_parse_tcp_fields():
    raw = tcp(A, B, 40000, 80, "PA", b"GET / HTTP/1.0\r\n\r\n")
    info = parse_l3(raw)
    assert info is not None
    assert (info.proto, info.src, info.dst, info.sport, info.dport) == (6, a(A), a(B), 40000, 80)
    assert info.tcp_flags == 0x18 and not info.is_fragment and info.frag_offset == 0
    assert raw[info.payload_off:info.payload_off + info.payload_len] == b"GET / HTTP/1.0\r\n\r\n"
    assert info.total_len == len(raw) and ip_str(info.src) == A


def test_parse_tcp_options_udp_icmp_and_padding():
    raw = bytes(IP(src=A, dst=B, options=[IPOption_RR()]) /
                TCP(sport=1, dport=2, flags="S", options=[("MSS", 1460)]) / b"zz")
    info = parse_l3(raw)
    assert raw[info.payload_off:info.payload_off + info.payload_len] == b"zz"
    u = parse_l3(udp(A, B, 5353, 53, b"query") + b"\x00" * 6)  # Ethernet padding is ignored
    assert (u.sport, u.dport, u.payload_len) == (5353, 53, 5)
    e = parse_l3(echo(A, B, 0x1234))
    assert (e.proto, e.sport, e.dport, e.icmp_type) == (1, 0x1234, 0x1234, 8)
    unreach = parse_l3(bytes(IP(src=A, dst=B) / ICMP(type=3, code=1) / b"orig"))
    assert (unreach.icmp_type, unreach.sport, unreach.dport) == (3, 0, 0)


def test_parse_fragments():
    frags = fragment(IP(src=A, dst=B) / UDP(sport=7, dport=53) / (b"x" * 3000), fragsize=1000)
    first, *rest = (parse_l3(bytes(f)) for f in frags)
    assert first.is_fragment and first.frag_offset == 0 and first.dport == 53
    assert rest and all(r.is_fragment and r.frag_offset > 0 and r.sport == r.dport == 0
                        for r in rest)


@pytest.mark.parametrize("raw,reason", [
    (b"", "malformed"),
    (b"\x45\x00", "malformed"),
    (bytes(40), "not-ip"),
    (bytes([0x60]) + bytes(59), "not-ip"),  # IPv6
    (bytes([0x44]) + tcp(A, B, 1, 2, "S")[1:], "malformed"),  # IHL 4 < 5
    (bytes([0x4F]) + tcp(A, B, 1, 2, "S")[1:], "malformed"),  # IHL 60 > total
    (bytes(IP(src=A, dst=B, proto=6) / b"abcd"), "malformed"),  # L4 shorter than a TCP header
    (bytes(IP(src=A, dst=B, proto=17) / b"abcd"), "malformed"),
    (bytes(IP(src=A, dst=B, proto=1) / b"\x08\x00"), "malformed"),
])
def test_reject_reasons(raw, reason):
    assert parse_l3(raw) is None
    assert reject_reason(raw) == reason
    assert FlowClassifier().classify(raw).reason == reason


def test_bad_tcp_data_offset_and_truncation_are_malformed():
    raw = bytearray(tcp(A, B, 1, 2, "S"))
    raw[32] = 0x40  # data offset 4 words < 5
    assert reject_reason(bytes(raw)) == "malformed"
    fc = FlowClassifier()
    for pkt in (tcp(A, B, 1, 2, "S", b"abc"), udp(A, B, 1, 2), echo(A, B, 1)):
        assert reject_reason(pkt) == ""
        for n in range(len(pkt)):
            v = fc.classify(pkt[:n])
            assert v.reason == "malformed" and v.entry is None, n
    assert fc.stats()["refused"]["malformed"] > 0 and len(fc) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\x45", b"\x45\x00\x00\x28", b"\x46"]))
def test_random_bytes_never_raise(data, prefix):
    fc = FlowClassifier()
    v = fc.classify(prefix + data, now=1.0)
    assert v.reason in ("", "not-ip", "malformed", "tcp-no-syn", "fragment")
    assert (v.entry is None) == bool(v.reason)
    fc.expire(now=1e6)


# ---- checksum and DSCP ----------------------------------------------------------------------

def scapy_checksum(raw: bytes) -> int:
    p = IP(raw)
    del p.chksum
    return IP(bytes(p)).chksum


@pytest.mark.parametrize("pkt", [
    IP(src=A, dst=B, tos=0x03) / TCP(sport=1, dport=2),
    IP(src="192.168.255.254", dst="172.31.0.9", id=0xFFFF, ttl=255, tos=0xFC) / UDP() / b"x",
    IP(src=B, dst=C, ttl=1, id=7, options=[IPOption_RR()]) / ICMP(),
])
def test_set_dscp_keeps_checksum_valid(pkt):
    raw = bytes(pkt)
    assert ip_checksum_ok(raw)
    for dscp in range(64):
        out = set_dscp(raw, dscp)
        assert ip_checksum_ok(out), dscp
        assert IP(out).chksum == scapy_checksum(out), dscp
        assert out[1] >> 2 == dscp and out[1] & 3 == raw[1] & 3  # ECN kept
        assert out[:1] + out[2:10] + out[12:] == raw[:1] + raw[2:10] + raw[12:]


def test_checksum_detects_corruption_and_set_dscp_rejects_bad_input():
    raw = bytearray(tcp(A, B, 1, 2, "S"))
    raw[8] ^= 0x01  # TTL
    assert not ip_checksum_ok(bytes(raw))
    assert not ip_checksum_ok(set_dscp(bytes(raw), 46))  # incremental: a bad header stays bad
    assert not ip_checksum_ok(b"\x45")
    with pytest.raises(ValueError):
        set_dscp(tcp(A, B, 1, 2, "S"), 64)
    with pytest.raises(ValueError):
        set_dscp(bytes(40), 10)


# ---- TCP lifecycle -------------------------------------------------------------------------

def test_tcp_fin_fin_close_linger_and_expiry(fc, clock):
    e = handshake(fc)
    assert e.state == "open" and e.flow_type == FlowType.HTTP
    v = fc.classify(tcp(A, B, 40000, 80, "FA"))
    assert not v.end and e.state == "closing"
    v = fc.classify(tcp(A, B, 40000, 80, "FA"))  # retransmitted FIN: still one side
    assert not v.end and e.state == "closing"
    v = fc.classify(tcp(B, A, 80, 40000, "FA"))
    assert v.end and v.entry is e and v.direction == "rev"
    assert (e.state, e.end_reason) == ("ended", "fin")
    clock.t += 1.0
    v = fc.classify(tcp(A, B, 40000, 80, "A"))  # the final ACK still matches, end not repeated
    assert v.entry is e and not v.end and not v.new and v.reason == ""
    assert not fc.classify(tcp(B, A, 80, 40000, "FA")).end
    assert fc.expire() == [] and fc.lookup(e.key) is e
    clock.t += 1.01  # linger (2 s) counts from the end, not from the last ACK
    assert fc.expire() == [e] and len(fc) == 0 and e.end_reason == "fin"
    assert fc.classify(tcp(A, B, 40000, 80, "A")).reason == "tcp-no-syn"
    s = fc.stats()
    assert (s["new"], s["ended"], s["expired"], s["live"]) == (1, 1, 1, 0)
    assert s["refused"] == {"tcp-no-syn": 1}


@pytest.mark.parametrize("rst_from_server", [False, True])
def test_tcp_rst_ends_flow_once(fc, clock, rst_from_server):
    e = handshake(fc)
    rst = tcp(B, A, 80, 40000, "R") if rst_from_server else tcp(A, B, 40000, 80, "RA")
    v = fc.classify(rst)
    assert v.end and v.entry is e and v.direction == ("rev" if rst_from_server else "fwd")
    assert (e.state, e.end_reason) == ("ended", "rst")
    assert not fc.classify(rst).end
    clock.t += 2.5
    assert fc.expire() == [e]


def test_tcp_counts_per_direction(fc):
    e = handshake(fc)
    fwd = tcp(A, B, 40000, 80, "PA", b"x" * 100)
    rev = tcp(B, A, 80, 40000, "PA", b"y" * 1000)
    fc.classify(fwd)
    fc.classify(rev)
    fc.classify(rev)
    syn_len = len(tcp(A, B, 40000, 80, "S"))
    assert (e.packets_fwd, e.packets_rev) == (3, 3)
    assert e.bytes_fwd == 2 * syn_len + len(fwd)
    assert e.bytes_rev == syn_len + 2 * len(rev)
    assert e.fwd == (6, a(A), 40000, a(B), 80) and e.fwd.src == a(A)
    assert e.key == (6, a(A), 40000, a(B), 80)  # canonical: lower (address, port) first
    assert fc.classify(tcp(B, A, 80, 40000, "A")).entry.key == e.key


@pytest.mark.parametrize("flags", ["A", "SA", "R", "PA", "FA", "SF"])
def test_tcp_without_syn_is_refused(fc, flags):
    v = fc.classify(tcp(A, B, 40000, 80, flags))
    assert v.entry is None and v.reason == "tcp-no-syn" and not v.new
    assert fc.stats()["refused"] == {"tcp-no-syn": 1} and len(fc) == 0


def test_new_syn_on_lingering_key_starts_new_flow(fc, clock):
    old = handshake(fc)
    fc.classify(tcp(A, B, 40000, 80, "R"))
    v = fc.classify(tcp(A, B, 40000, 80, "S"))
    assert v.new and v.entry is not old and v.entry.state == "open"
    assert fc.lookup(old.key) is v.entry
    assert fc.expire() == [old] and old.end_reason == "rst"
    assert fc.classify(tcp(B, A, 80, 40000, "SA")).entry is v.entry


def test_tcp_idle_expiry(clock):
    fc = FlowClassifier(clock=clock, tcp_idle_s=50.0)
    e = handshake(fc)
    clock.t += 49.0
    fc.classify(tcp(B, A, 80, 40000, "A"))  # activity pushes the deadline
    clock.t += 49.0
    assert fc.expire() == []
    clock.t += 1.5
    assert fc.expire() == [e] and (e.state, e.end_reason) == ("ended", "idle")


def test_tcp_idle_default_is_300s(fc, clock):
    e = handshake(fc)
    clock.t += 299.0
    assert fc.expire() == []
    clock.t += 2.0
    assert fc.expire() == [e]


# ---- UDP, ICMP, other protocols ------------------------------------------------------------

def test_udp_idle_expiry_with_injected_clock(fc, clock):
    v = fc.classify(udp(A, B, 5000, 6000))
    assert v.new and v.entry.flow_type == FlowType.UDP
    clock.t += 29.0
    r = fc.classify(udp(B, A, 6000, 5000))
    assert r.entry is v.entry and r.direction == "rev" and not r.new
    clock.t += 29.9
    assert fc.expire() == []
    clock.t += 0.2
    assert fc.expire() == [v.entry] and v.entry.end_reason == "idle"
    assert fc.classify(udp(A, B, 5000, 6000)).new


def test_udp_stale_entry_replaced_on_packet_path_is_reported_by_expire(fc, clock):
    old = fc.classify(udp(A, B, 5000, 6000)).entry
    clock.t += 31.0
    v = fc.classify(udp(A, B, 5000, 6000))  # expire() not called in between
    assert v.new and v.entry is not old
    assert fc.expire() == [old] and old.end_reason == "idle"
    assert fc.entries() == [v.entry]


def test_icmp_echo_by_identifier(fc, clock):
    req = fc.classify(echo(A, B, 7))
    assert req.new and req.entry.flow_type == FlowType.ICMP
    rep = fc.classify(echo(B, A, 7, reply=True))
    assert rep.entry is req.entry and rep.direction == "rev"
    other = fc.classify(echo(A, B, 8))
    assert other.new and other.entry is not req.entry
    assert other.entry.flow_id != req.entry.flow_id
    clock.t += 10.5
    assert {id(e) for e in fc.expire()} == {id(req.entry), id(other.entry)}


def test_other_protocol_flow_per_address_pair(fc):
    gre = bytes(IP(src=A, dst=B) / GRE() / b"inner")
    v = fc.classify(gre)
    assert v.new and v.entry.flow_type == FlowType.OTHER and v.entry.key[0] == 47
    back = fc.classify(bytes(IP(src=B, dst=A) / GRE() / b"x"))
    assert back.entry is v.entry and back.direction == "rev"
    assert fc.classify(bytes(IP(src=A, dst=C) / GRE())).new


def test_fragments(fc):
    frags = [bytes(f) for f in
             fragment(IP(src=A, dst=B) / UDP(sport=7, dport=53) / (b"x" * 3000), fragsize=1000)]
    first = fc.classify(frags[0])
    assert first.new and first.entry.flow_type == FlowType.DNS
    for f in frags[1:]:
        v = fc.classify(f)
        assert v.reason == "fragment" and v.entry is None
    assert fc.stats()["refused"] == {"fragment": len(frags) - 1}


# ---- flow types ----------------------------------------------------------------------------

@pytest.mark.parametrize("make,expected", [
    (lambda: tcp(A, B, 40000, 80, "S"), FlowType.HTTP),
    (lambda: tcp(A, B, 40000, 8080, "S"), FlowType.HTTP),
    (lambda: tcp(A, B, 40000, 443, "S"), FlowType.HTTPS),
    (lambda: tcp(A, B, 40000, 53, "S"), FlowType.DNS),
    (lambda: udp(A, B, 40000, 53), FlowType.DNS),
    (lambda: udp(B, A, 53, 40000), FlowType.DNS),  # a reply seen first: source port decides
    (lambda: tcp(A, B, 40000, 5201, "S"), FlowType.IPERF),
    (lambda: udp(A, B, 40000, 5201), FlowType.IPERF),
    (lambda: tcp(A, B, 40000, 22, "S"), FlowType.SSH),
    (lambda: tcp(A, B, 40000, 21, "S"), FlowType.FTP),
    (lambda: tcp(A, B, 40000, 1234, "S"), FlowType.TCP),
    (lambda: udp(A, B, 40000, 1234), FlowType.UDP),
    (lambda: echo(A, B, 1), FlowType.ICMP),
])
def test_flow_type_by_server_port(fc, make, expected):
    assert fc.classify(make()).entry.flow_type == expected


def test_flow_type_table_is_extensible_and_names(clock):
    assert APP_PORTS[8080] == FlowType.HTTP
    with pytest.raises(TypeError):
        APP_PORTS[1] = 1  # the shared table is read-only; extend per classifier
    fc = FlowClassifier(clock=clock, app_ports={8443: FlowType.HTTPS, 9000: 0x1234})
    assert fc.classify(tcp(A, B, 40000, 8443, "S")).entry.flow_type == FlowType.HTTPS
    custom = fc.classify(udp(A, B, 40000, 9000)).entry.flow_type
    assert custom == 0x1234 and FlowType.name_of(custom) == "0x1234"
    assert FlowType.name_of(80) == "HTTP" and FlowType.name_of(0) == "OTHER"
    assert FlowClassifier(clock=clock).classify(udp(A, B, 1, 9000)).entry.flow_type == FlowType.UDP


# ---- FTP data connections ------------------------------------------------------------------

def ftp_control(fc: FlowClassifier):
    ctl = handshake(fc, A, B, 40000, 21)
    assert ctl.flow_type == FlowType.FTP and ctl.parent is None
    fc.classify(tcp(B, A, 21, 40000, "PA", b"220 Service ready\r\n"))
    return ctl


def assert_joined(fc: FlowClassifier, ctl, v) -> None:
    assert v.new and v.reason == ""
    assert v.entry is not ctl and v.entry.key != ctl.key
    assert v.entry.flow_id == ctl.flow_id and v.entry.flow_type == FlowType.FTP
    assert v.entry.parent == ctl.key
    assert {id(e) for e in fc.get(ctl.flow_id)} == {id(ctl), id(v.entry)}


def test_ftp_passive_227(fc):
    ctl = ftp_control(fc)
    fc.classify(tcp(A, B, 40000, 21, "PA", b"PASV\r\n"))
    fc.classify(tcp(B, A, 21, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"))
    stranger = fc.classify(tcp(C, B, 40001, 50000, "S"))  # a third address does not join
    assert stranger.new and stranger.entry.flow_id != ctl.flow_id
    assert stranger.entry.parent is None and stranger.entry.flow_type == FlowType.TCP
    data = fc.classify(tcp(A, B, 40001, 50000, "S"))
    assert_joined(fc, ctl, data)
    back = fc.classify(tcp(B, A, 50000, 40001, "SA"))  # data connection has its own TCP state
    assert back.entry is data.entry and back.direction == "rev"
    assert fc.classify(tcp(A, B, 40001, 50000, "R")).end  # ends the data connection only
    assert ctl.state == "open" and data.entry.state == "ended"
    assert fc.stats()["joined"] == 1


def test_ftp_passive_229(fc):
    ctl = ftp_control(fc)
    fc.classify(tcp(B, A, 21, 40000, "PA",
                    b"229 Entering Extended Passive Mode (|||50001|)\r\n"))
    assert not fc.classify(tcp(C, B, 40002, 50001, "S")).entry.parent
    assert_joined(fc, ctl, fc.classify(tcp(A, B, 40002, 50001, "S")))


def test_ftp_active_port(fc):
    ctl = ftp_control(fc)
    fc.classify(tcp(A, B, 40000, 21, "PA", b"PORT 10,0,0,1,156,66\r\n"))  # 156*256+66 = 40002
    assert fc.classify(tcp(C, A, 20, 40002, "S")).entry.flow_id != ctl.flow_id
    data = fc.classify(tcp(B, A, 20, 40002, "S"))  # the server connects out
    assert_joined(fc, ctl, data)
    assert data.entry.fwd == (6, a(B), 20, a(A), 40002)


def test_ftp_active_eprt(fc):
    ctl = ftp_control(fc)
    fc.classify(tcp(A, B, 40000, 21, "PA", b"EPRT |1|10.0.0.1|40003|\r\n"))
    assert fc.classify(tcp(C, A, 20, 40003, "S")).entry.parent is None
    assert_joined(fc, ctl, fc.classify(tcp(B, A, 20, 40003, "S")))


def test_ftp_expectation_is_one_shot_and_expires(fc, clock):
    ctl = ftp_control(fc)
    fc.classify(tcp(B, A, 21, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,80)\r\n"))
    assert_joined(fc, ctl, fc.classify(tcp(A, B, 40001, 50000, "S")))
    assert fc.classify(tcp(A, B, 40009, 50000, "S")).entry.flow_id != ctl.flow_id
    fc.classify(tcp(B, A, 21, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,81)\r\n"))
    clock.t += 30.5
    fc.expire()
    late = fc.classify(tcp(A, B, 40010, 50001, "S"))
    assert late.entry.flow_id != ctl.flow_id and late.entry.parent is None
    fc.classify(tcp(B, A, 21, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,82)\r\n"))
    clock.t += 30.5  # timed out even if expire() has not run since
    late = fc.classify(tcp(A, B, 40011, 50002, "S"))
    assert late.entry.flow_id != ctl.flow_id and late.entry.parent is None


def test_ftp_data_cannot_join_ended_control(fc):
    ctl = ftp_control(fc)
    fc.classify(tcp(B, A, 21, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,80)\r\n"))
    fc.classify(tcp(A, B, 40000, 21, "FA"))
    assert fc.classify(tcp(B, A, 21, 40000, "FA")).end
    data = fc.classify(tcp(A, B, 40001, 50000, "S"))
    assert data.new and data.entry.flow_id != ctl.flow_id and data.entry.parent is None


def test_ftp_data_payload_is_not_inspected_and_non_ftp_ignored(fc):
    handshake(fc, A, B, 40000, 80)
    fc.classify(tcp(B, A, 80, 40000, "PA", b"227 Entering Passive Mode (10,0,0,2,195,80)\r\n"))
    assert fc.classify(tcp(A, B, 40001, 50000, "S")).entry.parent is None


def test_parse_ftp_data_target_rejects_bad_numbers():
    peer = a(B)
    assert parse_ftp_data_target(b"PORT 10,0,0,1,195,80\r\n", peer) == (a(A), 50000)
    assert parse_ftp_data_target(b"229 Extended (|||6446|)\r\n", peer) == (peer, 6446)
    for bad in (b"PORT 300,0,0,1,1,1", b"PORT 1,2,3,4,256,0", b"EPRT |2|::1|5|",
                b"EPRT |1|1.2.3|5|", b"229 (|||0|)", b"200 PORT command successful"):
        assert parse_ftp_data_target(bad, peer) is None, bad


# ---- flow IDs ------------------------------------------------------------------------------

def test_flow_id_layout(clock):
    fc = FlowClassifier(origin=0xAB, clock=clock)
    e = fc.classify(udp(B, A, 6000, 5000)).entry
    packed = socket.inet_aton(A) + (5000).to_bytes(2, "big") + socket.inet_aton(B)
    expected_low = zlib.crc32(bytes([17]) + packed + (6000).to_bytes(2, "big")) & 0xFFFFFF
    assert e.flow_id >> 24 == 0xAB and e.flow_id & 0xFFFFFF == (expected_low or 1)
    assert fc.get(e.flow_id) == [e]
    with pytest.raises(ValueError):
        FlowClassifier(origin=256)


def test_flow_ids_unique_with_forced_collisions(monkeypatch, clock):
    monkeypatch.setattr(classify_mod, "flow_hash", lambda key: 0xFFFFFE)
    fc = FlowClassifier(origin=9, clock=clock)
    ids = [fc.classify(udp(A, B, 1000 + i, 53)).entry.flow_id for i in range(3)]
    assert ids == [0x09FFFFFE, 0x09FFFFFF, 0x09000001]  # probes wrap and skip 0
    gone = fc.remove(fc.classify(udp(A, B, 1001, 53)).entry.key)
    assert gone.flow_id == 0x09FFFFFF and fc.get(0x09FFFFFF) == []
    assert fc.classify(udp(A, B, 2000, 53)).entry.flow_id == 0x09FFFFFF  # freed ID is reused


def test_flow_hash_zero_is_never_used(monkeypatch, clock):
    monkeypatch.setattr(classify_mod, "flow_hash", lambda key: 0x5000000)  # low 24 bits zero
    fc = FlowClassifier(origin=0, clock=clock)
    assert fc.classify(udp(A, B, 1, 2)).entry.flow_id == 1
    assert fc.classify(udp(A, B, 3, 4)).entry.flow_id == 2


def test_flow_ids_unique_among_many_live_flows(monkeypatch, clock):
    monkeypatch.setattr(classify_mod, "flow_hash", lambda key: key[2] % 7)
    fc = FlowClassifier(origin=3, clock=clock)
    entries = [fc.classify(udp(A, B, 1000 + i, 9)).entry for i in range(200)]
    ids = [e.flow_id for e in entries]
    assert len(set(ids)) == 200 and all(i >> 24 == 3 and i & 0xFFFFFF for i in ids)


# ---- adopt (egress learns the upstream flow ID) ---------------------------------------------

def test_adopt_then_reverse_classify_and_tcp_end(clock):
    ingress = FlowClassifier(origin=1, clock=clock)
    egress = FlowClassifier(origin=2, clock=clock)
    syn = tcp(A, B, 40000, 80, "S")
    fid = ingress.classify(syn).entry.flow_id
    e = egress.adopt(syn, fid, FlowType.HTTP)
    assert e.adopted and e.flow_id == fid and e.flow_id >> 24 == 1
    v = egress.classify(tcp(B, A, 80, 40000, "SA"))
    assert v.entry is e and v.direction == "rev" and not v.new and v.entry.flow_id == fid
    assert egress.adopt(tcp(A, B, 40000, 80, "A"), fid, FlowType.HTTP) is e
    assert egress.adopt(tcp(A, B, 40000, 80, "FA"), fid, FlowType.HTTP).state == "closing"
    v = egress.classify(tcp(B, A, 80, 40000, "FA"))
    assert v.end and (e.state, e.end_reason) == ("ended", "fin")
    assert (e.packets_fwd, e.packets_rev) == (3, 2)
    assert egress.stats()["adopted"] == 1 and egress.stats()["new"] == 0


def test_adopt_reverse_direction_and_replacement(fc, clock):
    fid = 0x05000042
    e = fc.adopt(udp(B, A, 53, 40000), fid, FlowType.DNS, direction="rev")
    assert e.fwd == (17, a(A), 40000, a(B), 53) and e.packets_rev == 1
    v = fc.classify(udp(A, B, 40000, 53))
    assert v.entry is e and v.direction == "fwd" and fc.get(fid) == [e]
    e2 = fc.adopt(udp(A, B, 40000, 53), 0x05000043, FlowType.DNS)  # upstream re-classified
    assert e2 is not e and fc.get(fid) == [] and fc.get(0x05000043) == [e2]
    assert fc.expire() == [e] and e.end_reason == "replaced"
    with pytest.raises(ValueError):
        fc.adopt(udp(A, B, 1, 2), 0, FlowType.UDP)
    with pytest.raises(ValueError):
        fc.adopt(b"\x45garbage", 1, FlowType.UDP)
    with pytest.raises(ValueError):
        fc.adopt(udp(A, B, 1, 2), 1, FlowType.UDP, direction="up")


def test_adopted_ids_are_avoided_by_local_allocation(monkeypatch, clock):
    monkeypatch.setattr(classify_mod, "flow_hash", lambda key: 0x10)
    fc = FlowClassifier(origin=4, clock=clock)
    fc.adopt(udp(A, B, 1, 2), 0x04000010, FlowType.UDP)
    assert fc.classify(udp(A, B, 3, 4)).entry.flow_id == 0x04000011


# ---- table API -----------------------------------------------------------------------------

def test_entries_remove_and_stats(fc):
    e1 = fc.classify(udp(A, B, 1, 2)).entry
    e2 = handshake(fc)
    assert {id(e) for e in fc.entries()} == {id(e1), id(e2)}
    e1.data["next_hop"] = "AA-1"
    assert fc.lookup(e1.key).data == {"next_hop": "AA-1"}
    assert fc.remove(e1.key) is e1 and fc.remove(e1.key) is None
    assert fc.entries() == [e2] and fc.expire(now=1e9) == [e2]
    fc.classify(b"")
    fc.classify(bytes(40))
    s = fc.stats()
    assert (s["new"], s["expired"], s["live"]) == (2, 1, 0)
    assert s["refused"] == {"malformed": 1, "not-ip": 1}
    assert "FTP" not in repr(e2) and "HTTP" in repr(e2) and "10.0.0.1:40000" in repr(e2)
