"""A scapy view of the flow descriptor (emulators/flows/descriptor.py is the wire format): for probes
([0074]: the descriptor "may be visible with a virtual probe"), pcap reading and tests that check the
two agree byte for byte. Never used in the forwarding path: scapy is far too slow per packet."""
from __future__ import annotations

from pathlib import Path

from scapy.fields import (BitField, ByteField, FieldLenField, FlagsField, MACField,
                          PacketListField, ShortField, XByteField, XIntField, XShortField,
                          XStrFixedLenField)
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import rdpcap

from emulators.flows.descriptor import MARKER, VERSION, DescriptorError, Flags, checksum, split_frame

FLAG_NAMES = [f.name for f in Flags]      # bit 0 first, as FlagsField wants
assert [f.value for f in Flags] == [1 << i for i in range(len(FLAG_NAMES))]


class FlowAssignment(Packet):
    """One (cluster byte, node byte) route element."""
    name = "FlowAssignment"
    fields_desc = [
        BitField("processed", 0, 1),
        BitField("reserved", 0, 1),
        BitField("cluster", 1, 6),
        ByteField("node", 0),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return self.sprintf("%cluster%:%node%")


class FlowDescriptor(Packet):
    """Table 2. length and chksum left None are filled on build (signature is not: it needs the key and
    the IPv4 packet, see descriptor.encode)."""
    name = "FlowDescriptor"
    fields_desc = [
        XByteField("marker", MARKER),
        ByteField("version", VERSION),
        ByteField("length", None),
        XShortField("chksum", None),
        XStrFixedLenField("signature", b"\0" * 8, 8),
        MACField("orig_dst", "00:00:00:00:00:00"),
        MACField("orig_src", "00:00:00:00:00:00"),
        FlagsField("flags", 0, 8, FLAG_NAMES),
        ByteField("topology", 0),
        ShortField("flow_type", 0),
        XIntField("flow_id", 0),
        FieldLenField("count", None, fmt="B", count_of="assignments"),
        PacketListField("assignments", [], FlowAssignment, count_from=lambda pkt: pkt.count),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.length is None:
            p = p[:2] + bytes([len(p) & 0xFF]) + p[3:]
        if self.chksum is None:
            p = p[:3] + checksum(p[:3] + b"\0\0" + p[5:]).to_bytes(2, "big") + p[5:]
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s                     # the count already ended the list: the rest is not ours

    def mysummary(self) -> str:
        return fd_text(self)


def fd_text(fd: FlowDescriptor) -> str:
    """'fd flow=0x... type=.. topo=.. flags=SOF|EOF route=3:2,5:0*' (a '*' after a processed cluster,
    a '~' before a reserved-only one), the line a probe prints."""
    flags = "|".join(n for i, n in enumerate(FLAG_NAMES) if int(fd.flags) >> i & 1) or "-"
    route = ",".join(f"{'~' if a.reserved else ''}{a.cluster}:{a.node}{'*' if a.processed else ''}"
                     for a in fd.assignments) or "-"
    return f"fd flow=0x{fd.flow_id:08x} type={fd.flow_type} topo={fd.topology} flags={flags} route={route}"


def dissect(frame: bytes) -> tuple[Ether, FlowDescriptor | None]:
    """(Ether of the frame without its trailer, the descriptor if one follows the IPv4 packet). Frames
    that are not untagged IPv4 (ARP, VLAN...) come back whole with None: they cannot carry one."""
    try:
        head, trailer = split_frame(frame)
    except DescriptorError:
        return Ether(frame), None
    if not trailer or trailer[0] != MARKER:
        return Ether(head), None
    return Ether(head), FlowDescriptor(trailer)


def describe_pcap(path: str | Path) -> list[str]:
    """One line per frame of a capture: the Ether/IP summary, then ' | fd ...' when it carries one."""
    lines = []
    for pkt in rdpcap(str(path)):
        eth, fd = dissect(bytes(pkt))
        lines.append(eth.summary() + (f" | {fd_text(fd)}" if fd is not None else ""))
    return lines
