"""Gratuitous ARP: how a unit that takes over an address tells its LAN (hosts refresh their ARP
entry for it, switches learn the MAC on the new port) without waiting for anyone to ask."""
from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806


def garp_frame(ip: str, mac: str) -> bytes:
    """A broadcast ARP request whose sender and target are both `ip` (RFC 5227's announcement)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    if len(hw) != 6:
        raise ValueError(f"bad MAC address {mac!r}")
    addr = ipaddress.IPv4Address(ip).packed
    eth = b"\xff" * 6 + hw + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, hw, addr, b"\x00" * 6, addr)
    return eth + arp


def send_garp(ifname: str, ip: str, mac: str, count: int = 1) -> None:
    """Send `count` announcements on `ifname` (raw socket: needs CAP_NET_RAW, as the lab has)."""
    frame = garp_frame(ip, mac)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((ifname, 0))
        for _ in range(count):
            s.send(frame)
