"""The flow descriptor wire format (emulators/flows/descriptor.py) and its scapy view
(emulators/flows/scapy_layer.py): round trips, every corruption and forgery refused with a named
reason, out-of-range fields refused on encode, frame splitting, and the two codecs agreeing byte for byte."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import checksum as scapy_checksum
from scapy.utils import wrpcap

from emulators.flows.descriptor import (FIXED_LEN, MARKER, MAX_ASSIGNMENTS, REASONS, VERSION, Assignment,
                                        Descriptor, DescriptorError, Flags, attach, checksum, decode,
                                        detach, encode, mac_bytes, mac_text, split_frame)
from emulators.flows.scapy_layer import FlowAssignment, FlowDescriptor, describe_pcap, dissect

pytestmark = pytest.mark.unit

KEY = b"grid-shared-secret"
DST, SRC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
HOP_DST, HOP_SRC = bytes.fromhex("0a0000000101"), bytes.fromhex("0a0000000102")


def ether() -> Ether:
    """Explicit MACs: a bare Ether() makes scapy look the destination MAC up on the host."""
    return Ether(dst=mac_text(DST), src=mac_text(SRC))


assignments = st.builds(Assignment, st.integers(1, 63), st.integers(0, 255), st.booleans(), st.booleans())
macs = st.binary(min_size=6, max_size=6)
descriptors = st.builds(
    Descriptor,
    flow_id=st.integers(0, 2**32 - 1), flow_type=st.integers(0, 0xFFFF), topology=st.integers(0, 255),
    flags=st.integers(0, 0x3F).map(Flags),
    assignments=st.lists(assignments, max_size=MAX_ASSIGNMENTS).map(tuple),
    orig_dst=macs, orig_src=macs)
keys = st.binary(min_size=1, max_size=64)


def ipv4(payload: bytes, rest: bytes = bytes(16)) -> bytes:
    """An IPv4 packet as split_frame sees it: version 4, IHL 5, total length right, the rest anything."""
    return bytes([0x45, 0]) + (20 + len(payload)).to_bytes(2, "big") + rest + payload


def eth(dst: bytes, src: bytes, l3: bytes, ethertype: int = 0x0800) -> bytes:
    return dst + src + ethertype.to_bytes(2, "big") + l3


@st.composite
def frames(draw) -> bytes:
    return eth(draw(macs), draw(macs), ipv4(draw(st.binary(max_size=1480)), draw(st.binary(min_size=16, max_size=16))))


def sample(n: int = 3) -> Descriptor:
    return Descriptor(0xDEADBEEF, 7, 2, Flags.SOF | Flags.REVERSE,
                      tuple(Assignment(c + 1, (c * 5) % 256, processed=c == 0, reserved=c == 2) for c in range(n)),
                      DST, SRC)


def reason(fn, *args, **kw) -> DescriptorError:
    with pytest.raises(DescriptorError) as exc:
        fn(*args, **kw)
    assert exc.value.reason in REASONS
    return exc.value


def rechecksum(buf: bytes | bytearray) -> bytes:
    """What a forger without the key can do: fix the checksum after editing the bytes."""
    buf = bytearray(buf)
    buf[3:5] = b"\0\0"
    buf[3:5] = checksum(bytes(buf)).to_bytes(2, "big")
    return bytes(buf)


# ------------------------------------------------------------------ checksum, MACs
def test_checksum_is_rfc1071():
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D        # RFC 1071 section 3 example
    assert checksum(b"") == checksum(bytes(8)) == 0xFFFF
    assert checksum(b"\xff\xff") == 0 and checksum(b"\x01") == 0xFEFF


@given(st.binary(max_size=300))
def test_checksum_agrees_with_scapy(data):
    assert checksum(data) == scapy_checksum(data)


def test_mac_text_and_bytes():
    assert mac_bytes("02:00:00:00:00:01") == mac_bytes("02-00-00-00-00-01") == DST
    assert mac_text(DST) == "02:00:00:00:00:01"
    for bad in ("02:00:00:00:00", "zz:00:00:00:00:01", ""):
        assert reason(mac_bytes, bad).reason == "invalid"


# ------------------------------------------------------------------ round trips
@given(descriptors, keys, st.binary(max_size=1500))
def test_encode_decode_round_trip(d, key, l3):
    buf = encode(d, key, l3)
    assert len(buf) == FIXED_LEN + 2 * len(d.assignments) == buf[2]
    assert buf[0] == MARKER and buf[1] == VERSION
    got = decode(buf, key, l3)
    assert got == d.with_(signature=got.signature)
    assert decode(buf) == got                               # without a key: same fields, signature unchecked
    assert encode(got, key, l3) == buf                      # deterministic, old signature ignored


@given(descriptors, keys, frames(), st.binary(max_size=20).map(lambda b: bytes(len(b))))
def test_attach_detach_restores_the_frame(d, key, frame, padding):
    d = d.with_(orig_dst=frame[:6], orig_src=frame[6:12])
    out = attach(frame + padding, d, key, HOP_DST, HOP_SRC)
    assert out[:12] == HOP_DST + HOP_SRC and out[12:len(frame)] == frame[12:]
    plain, got = detach(out, key)
    assert plain == frame                                   # original MACs back, padding gone
    assert got == d.with_(signature=got.signature)


def test_attach_keeps_the_callers_original_macs():
    frame = eth(HOP_DST, HOP_SRC, ipv4(b"payload"))
    out = attach(frame, sample(), KEY, HOP_DST, HOP_SRC)
    plain, d = detach(out, KEY)
    assert plain[:12] == DST + SRC and plain[12:] == frame[12:] and d.orig_dst == DST


def test_node_for_and_with():
    d = sample(3)
    assert [d.node_for(c) for c in (1, 2, 3, 4)] == [0, 5, 10, 0]
    e = d.with_(flags=Flags.EOF)
    assert e.flags is Flags.EOF and d.flags == Flags.SOF | Flags.REVERSE and e.assignments is d.assignments


# ------------------------------------------------------------------ corruption and forgery
def expected_flip_reason(byte: int, count_at: int) -> set[str]:
    return {0: {"bad-marker"}, 1: {"bad-version"}, 2: {"bad-length"}, count_at: {"bad-length"}}.get(
        byte, {"bad-checksum"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(descriptors, st.binary(max_size=64))
def test_every_single_bit_flip_is_rejected(d, l3):
    buf = encode(d, KEY, l3)
    for bit in range(len(buf) * 8):
        bad = bytearray(buf)
        bad[bit // 8] ^= 1 << (bit % 8)
        for key in (None, KEY):
            err = reason(decode, bytes(bad), key, l3)
            assert err.reason in expected_flip_reason(bit // 8, FIXED_LEN - 1), (bit, err)


@given(descriptors, keys, st.binary(min_size=1, max_size=200), st.data())
def test_changed_packet_or_wrong_key_is_a_bad_signature(d, key, l3, data):
    buf = encode(d, key, l3)
    i = data.draw(st.integers(0, len(l3) - 1))
    changed = l3[:i] + bytes([l3[i] ^ data.draw(st.integers(1, 255))]) + l3[i + 1:]
    assert reason(decode, buf, key, changed).reason == "bad-signature"
    assert reason(decode, buf, key, l3 + b"\0").reason == "bad-signature"
    other = data.draw(keys.filter(lambda k: k != key))
    assert reason(decode, buf, other, l3).reason == "bad-signature"


def test_forged_descriptor_with_a_good_checksum_is_a_bad_signature():
    l3 = ipv4(b"data")
    buf = bytearray(encode(sample(), KEY, l3))
    struct.pack_into(">I", buf, 29, 0x00C0FFEE)            # the flow ID
    forged = rechecksum(buf)
    assert decode(forged).flow_id == 0x00C0FFEE              # passes the keyless check...
    assert reason(decode, forged, KEY, l3).reason == "bad-signature"
    spoofed = encode(sample(), b"attacker", l3)              # ...and so does one signed with another key
    assert reason(decode, spoofed, KEY, l3).reason == "bad-signature"


def test_a_node_that_changes_the_packet_must_re_sign():
    frame = eth(DST, SRC, ipv4(b"payload", rest=bytes([0, 0, 0, 0, 64]) + bytes(11)))
    out = bytearray(attach(frame, sample(), KEY, HOP_DST, HOP_SRC))
    out[22] -= 1                                             # TTL decremented, descriptor not re-signed
    assert reason(detach, bytes(out), KEY).reason == "bad-signature"
    plain, d = detach(attach(bytes(out[:14 + 27]), sample(), KEY, HOP_DST, HOP_SRC), KEY)
    assert plain[22] == 63


# ------------------------------------------------------------------ malformed descriptors
def test_every_truncation_is_named():
    buf = encode(sample(5), KEY, b"x")
    for n in range(len(buf)):
        assert reason(decode, buf[:n]).reason == "truncated", n


def test_wrong_marker_version_and_length_are_named():
    buf = encode(sample(), KEY, b"x")
    assert reason(decode, b"\x00" + buf[1:]).reason == "bad-marker"
    assert reason(decode, rechecksum(b"\xfd\x02" + buf[2:])).reason == "bad-version"
    assert reason(decode, buf + b"\0").reason == "bad-length"                       # trailing byte
    assert reason(decode, rechecksum(buf[:2] + bytes([buf[2] + 2]) + buf[3:])).reason == "bad-length"
    assert reason(decode, rechecksum(buf[:33] + bytes([buf[33] - 1]) + buf[34:])).reason == "bad-length"
    short = rechecksum(buf[:2] + bytes([buf[2] - 2]) + buf[3:33] + bytes([buf[33] - 1]) + buf[34:])
    assert reason(decode, short).reason == "bad-length"                             # consistent, but 2 extra bytes


def test_checksummed_but_meaningless_fields_are_invalid():
    buf = encode(sample(), KEY, b"x")
    assert reason(decode, rechecksum(buf[:34] + bytes([0x80]) + buf[35:])).reason == "invalid"   # cluster 0
    assert reason(decode, rechecksum(buf[:25] + bytes([0x40]) + buf[26:])).reason == "invalid"   # flag bit 6


def test_decode_with_a_key_needs_the_packet():
    with pytest.raises(TypeError):
        decode(encode(sample(), KEY, b"x"), KEY)


@pytest.mark.parametrize("change, field", [
    (dict(assignments=(Assignment(64, 1),)), "assignments[0].cluster"),
    (dict(assignments=(Assignment(1, 1), Assignment(0, 1))), "assignments[1].cluster"),
    (dict(assignments=(Assignment(1, 256),)), "assignments[0].node"),
    (dict(assignments=(Assignment(1, -1),)), "assignments[0].node"),
    (dict(assignments=tuple(Assignment(1) for _ in range(MAX_ASSIGNMENTS + 1))), "assignments"),
    (dict(flow_id=2**32), "flow_id"),
    (dict(flow_id=-1), "flow_id"),
    (dict(flow_id="1"), "flow_id"),
    (dict(flow_type=0x10000), "flow_type"),
    (dict(topology=256), "topology"),
    (dict(flags=0x40), "flags"),
    (dict(orig_dst=b"\0" * 5), "orig_dst"),
    (dict(orig_src=b"\0" * 7), "orig_src"),
])
def test_encode_refuses_out_of_range_fields_by_name(change, field):
    err = reason(encode, sample().with_(**change), KEY, b"x")
    assert err.reason == "invalid" and err.detail.startswith(field), err.detail


def test_encode_refuses_a_missing_or_oversized_key():
    for key in (b"", b"k" * 65):
        assert reason(encode, sample(), key, b"x").reason == "invalid"


def test_the_largest_descriptor_fits_its_length_byte():
    d = sample().with_(assignments=tuple(Assignment(63, 255, True, True) for _ in range(MAX_ASSIGNMENTS)))
    buf = encode(d, KEY, b"")
    assert len(buf) == buf[2] == 254 and decode(buf, KEY, b"") == d.with_(signature=buf[5:13])


# ------------------------------------------------------------------ frames
def test_split_frame_cuts_at_the_ip_total_length():
    frame = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP(dst="10.0.0.1") / UDP())
    head, trailer = split_frame(frame + b"tail")
    assert head == frame and trailer == b"tail"
    padded = bytes(ether() / IP() / UDP())                   # 42 bytes, scapy pads only on the wire
    assert split_frame(padded + bytes(18)) == (padded, bytes(18))


@pytest.mark.parametrize("frame, why", [
    (bytes(ether() / ARP()), "not-ip"),
    (bytes(ether() / Dot1Q(vlan=10) / IP() / UDP()), "not-ip"),
    (bytes(Ether(dst=mac_text(DST), src=mac_text(SRC), type=0x86DD) / (b"\x60" + bytes(39))), "not-ip"),
    (eth(DST, SRC, b"\x65" + bytes(19)), "not-ip"),            # version 6 under ethertype 0x0800
    (eth(DST, SRC, bytes([0x44, 0, 0, 20]) + bytes(16)), "not-ip"),   # IHL 4
    (eth(DST, SRC, bytes([0x45, 0, 0, 10]) + bytes(16)), "not-ip"),   # total length < header
    (DST + SRC + b"\x08", "truncated"),
    (eth(DST, SRC, bytes([0x45, 0, 0, 20])), "truncated"),
    (eth(DST, SRC, ipv4(b"0123456789"))[:-1], "truncated"),
], ids=["arp", "vlan", "ipv6", "version-6", "ihl-4", "total-lt-header", "no-eth-header", "no-ip-header",
        "short-ip"])
def test_split_frame_refuses_non_ipv4_and_short_frames(frame, why):
    assert reason(split_frame, frame).reason == why
    assert reason(detach, frame, KEY).reason == why
    assert reason(attach, frame, sample(), KEY, HOP_DST, HOP_SRC).reason == why


def test_detach_without_a_descriptor():
    plain = bytes(ether() / IP() / UDP())
    assert reason(detach, plain, KEY).reason == "no-descriptor"
    assert reason(detach, plain + bytes(18), KEY).reason == "no-descriptor"        # Ethernet padding only
    assert reason(detach, plain + b"\x00\x01", KEY).reason == "bad-marker"


def test_attach_refuses_bad_hop_macs():
    frame = eth(DST, SRC, ipv4(b""))
    assert reason(attach, frame, sample(), KEY, b"\0" * 5, HOP_SRC).reason == "invalid"


# ------------------------------------------------------------------ the scapy view
def scapy_fields(d: Descriptor) -> dict:
    return dict(orig_dst=mac_text(d.orig_dst), orig_src=mac_text(d.orig_src), flags=int(d.flags),
                topology=d.topology, flow_type=d.flow_type, flow_id=d.flow_id,
                assignments=[FlowAssignment(processed=int(a.processed), reserved=int(a.reserved),
                                            cluster=a.cluster, node=a.node) for a in d.assignments])


@given(descriptors, st.binary(max_size=100))
def test_scapy_and_encode_agree_byte_for_byte(d, l3):
    buf = encode(d, KEY, l3)
    fd = FlowDescriptor(buf)
    assert (fd.marker, fd.version, fd.length, fd.chksum, fd.count) == (
        MARKER, VERSION, len(buf), int.from_bytes(buf[3:5], "big"), len(d.assignments))
    assert fd.signature == buf[5:13]
    expected = scapy_fields(d)
    assert [(a.processed, a.reserved, a.cluster, a.node) for a in fd.assignments] == [
        (a.processed, a.reserved, a.cluster, a.node) for a in expected.pop("assignments")]
    assert {k: getattr(fd, k) for k in expected} == expected
    assert bytes(fd) == buf
    assert bytes(FlowDescriptor(signature=buf[5:13], **scapy_fields(d))) == buf   # length, chksum filled


def test_a_scapy_built_descriptor_passes_decode():
    assert decode(bytes(FlowDescriptor())) == Descriptor(0)
    fd = FlowDescriptor(flow_id=0x42, flags="SOF+COPY", topology=9,
                        assignments=[FlowAssignment(cluster=3, node=2, processed=1), FlowAssignment(cluster=5)])
    d = decode(bytes(fd))
    assert (d.flow_id, d.flags, d.topology) == (0x42, Flags.SOF | Flags.COPY, 9)
    assert d.assignments == (Assignment(3, 2, processed=True), Assignment(5, 0))


def test_dissect_splits_frame_and_descriptor():
    frame = bytes(Ether(dst=mac_text(DST), src=mac_text(SRC)) / IP(dst="10.0.0.9") / UDP(dport=53))
    eth_pkt, fd = dissect(attach(frame, sample(), KEY, HOP_DST, HOP_SRC))
    assert eth_pkt.dst == mac_text(HOP_DST) and eth_pkt[IP].dst == "10.0.0.9" and not eth_pkt[UDP].payload
    assert fd is not None and fd.flow_id == 0xDEADBEEF and fd.orig_dst == mac_text(DST)
    assert dissect(frame + bytes(10))[1] is None
    arp = bytes(ether() / ARP())
    assert bytes(dissect(arp)[0]) == arp and dissect(arp)[1] is None


def test_describe_pcap(tmp_path):
    frame = bytes(Ether(dst=mac_text(DST), src=mac_text(SRC)) / IP(src="10.0.0.1", dst="10.0.0.9") / UDP())
    path = tmp_path / "grid.pcap"
    wrpcap(str(path), [Ether(frame), Ether(attach(frame, sample(), KEY, HOP_DST, HOP_SRC)), ether() / ARP()])
    lines = describe_pcap(path)
    assert len(lines) == 3
    assert "10.0.0.1" in lines[0] and "10.0.0.9" in lines[0] and "fd " not in lines[0]
    assert lines[1].startswith(lines[0])
    assert lines[1].endswith("| fd flow=0xdeadbeef type=7 topo=2 flags=SOF|REVERSE route=1:0*,2:5,~3:10")
    assert "ARP" in lines[2] and "fd " not in lines[2]
