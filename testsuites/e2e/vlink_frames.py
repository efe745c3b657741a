"""Raw Ethernet test frames for the virtual link suites: send them from inside a node, read who got them.

Frames use the IEEE local experimental EtherType 0x88B5 and carry a tag string in their payload, so a
capture filtered on the EtherType holds only the test's own frames, and each received frame says
which send it came from whatever its destination MAC became on the way (clustered links rewrite it).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from twin.polling import wait_for

ETHERTYPE = 0x88B5
BPF = "ether proto 0x88b5"
BROADCAST = "ff:ff:ff:ff:ff:ff"
MULTICAST = "01:00:5e:00:00:fb"

_SENDER = r"""
import json, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
src = s.getsockname()[4]
for dst, tag in json.loads(sys.argv[2]):
    frame = bytes.fromhex(dst.replace(":", "")) + src + b"\x88\xb5" + tag.encode()
    s.send(frame.ljust(60, b"\0"))
"""


@dataclass(frozen=True)
class Seen:
    src: str
    dst: str
    tag: str


def send(lab, node: str, intf: str, frames: list[tuple[str, str]]) -> None:
    """Send (destination MAC, tag) frames out of node:intf, in order."""
    lab.nodes.run(node, [sys.executable, "-c", _SENDER, intf, json.dumps(frames)], check=True, timeout=20)


def mac(lab, node: str, intf: str) -> str:
    out = lab.nodes.run(node, ["ip", "-o", "link", "show", "dev", intf], check=True).stdout
    return out.split("link/ether ", 1)[1].split()[0]


def read(path) -> list[Seen]:
    from scapy.utils import rdpcap

    out = []
    try:
        packets = rdpcap(str(path))
    except Exception:   # not written yet, or tcpdump is mid-packet: the caller polls again
        return []
    for p in packets:
        raw = bytes(p)
        if len(raw) >= 14 and int.from_bytes(raw[12:14], "big") == ETHERTYPE:
            tag = raw[14:].rstrip(b"\0").decode(errors="replace")
            out.append(Seen(_mac(raw[6:12]), _mac(raw[0:6]), tag))
    return out


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class Captures:
    """tcpdump on many node interfaces at once; `tags(ep)` lists what each one received."""

    def __init__(self, lab, endpoints: list[str], name: str) -> None:
        self.lab = lab
        self.own = {ep: mac(lab, *ep.split(":")) for ep in endpoints}
        self.caps = {ep: lab.capture(ep.split(":")[0], ep.split(":")[1], BPF, name=f"{name}-{ep.replace(':', '-')}.pcap")
                     for ep in endpoints}

    def __enter__(self) -> Captures:
        started = []
        try:
            for cap in self.caps.values():
                cap.start()
                started.append(cap)
        except BaseException:
            for cap in started:
                cap.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for cap in self.caps.values():
            cap.stop()

    def seen(self, ep: str) -> list[Seen]:
        """Frames the interface received (tcpdump also shows what it sent: those are left out)."""
        return [s for s in read(self.caps[ep].path) if s.src != self.own[ep]]

    def tags(self, ep: str) -> list[str]:
        return sorted(s.tag for s in self.seen(ep))

    def wait(self, expected: dict[str, list[str]], timeout: float = 10.0) -> None:
        """Until every endpoint has at least the expected tags (the barrier before checking the rest)."""
        def done() -> bool:
            return all(all(t in self.tags(ep) for t in tags) for ep, tags in expected.items())

        try:
            wait_for(done, timeout, f"test frames to arrive: {expected}", interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nreceived so far:\n{self.table()}") from None

    def table(self) -> str:
        return "\n".join(f"{ep:12} {', '.join(self.tags(ep)) or '-'}" for ep in self.caps)
