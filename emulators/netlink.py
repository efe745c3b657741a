"""The router's view of Linux networking in its own namespace: links, IPv4 addresses, routes,
forwarding - through pyroute2, plus an in-memory stand-in with the same interface for unit tests.

pyroute2's synchronous `IPRoute` drives its own asyncio loop and refuses to run on a thread that
already runs one (the emulator daemon's), so every call goes to one private worker thread that owns
the socket. Routes the router installs are tagged `proto static`, so reconciling never touches
routes someone else (the lab) put there.
"""
from __future__ import annotations

import concurrent.futures
import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

RTPROT_KERNEL = 2
RTPROT_STATIC = 4
MAIN_TABLE = 254
LOCAL_TABLE = 255


@dataclass
class Link:
    name: str
    index: int
    admin_up: bool
    carrier: bool
    mac: str = "00:00:00:00:00:00"
    mtu: int = 1500
    kind: str = "ether"
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    dst: str             # network address ("0.0.0.0" for default)
    plen: int
    gateway: str | None
    dev: str | None
    proto: int
    table: int = MAIN_TABLE
    type: int = 1        # 1 unicast, 2 local, 3 broadcast
    prefsrc: str | None = None


class NetBackend(Protocol):
    def links(self) -> list[Link]: ...
    def addresses(self) -> dict[str, list[tuple[str, int]]]: ...
    def set_address(self, name: str, address: tuple[str, int] | None) -> None: ...
    def set_up(self, name: str, up: bool) -> None: ...
    def routes(self) -> list[Route]: ...
    def add_route(self, dst: str, plen: int, gateway: str) -> None: ...
    def del_route(self, dst: str, plen: int, gateway: str | None) -> None: ...
    def set_forwarding(self, on: bool) -> None: ...
    def set_hostname(self, name: str) -> None: ...
    def set_mac(self, name: str, mac: str) -> None: ...
    def close(self) -> None: ...


class Netlink:
    """pyroute2 in the current network namespace, all calls on one worker thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._ipr: Any = None

    def _call(self, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            if self._ipr is None:
                from pyroute2 import IPRoute
                self._ipr = IPRoute()
            return fn(self._ipr)
        return self._pool.submit(run).result(timeout=30)

    def close(self) -> None:
        def shut() -> None:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
        try:
            self._pool.submit(shut).result(timeout=10)
        except Exception:
            pass
        self._pool.shutdown(wait=False)

    def _index(self, ipr: Any, name: str) -> int:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            raise OSError(errno.ENODEV, f"no interface {name}")
        return int(idx[0])

    def links(self) -> list[Link]:
        def get(ipr: Any) -> list[Link]:
            out = []
            for m in ipr.get_links():
                st = m.get("stats64") or m.get("stats")
                stats = {k: int(st[k]) for k in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors",
                                                 "tx_errors", "rx_dropped", "tx_dropped", "multicast",
                                                 "collisions", "rx_crc_errors", "rx_frame_errors",
                                                 "rx_over_errors")} if st else {}
                info = m.get("linkinfo")
                kind = info.get("kind") if info else None
                flags = int(m["flags"])
                out.append(Link(name=m.get("ifname"), index=int(m["index"]), admin_up=bool(flags & 1),
                                carrier=bool(m.get("carrier")) and bool(flags & 0x10000),
                                mac=m.get("address") or "00:00:00:00:00:00", mtu=int(m.get("mtu") or 1500),
                                kind=kind or "ether", stats=stats))
            return out
        return self._call(get)

    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        def get(ipr: Any) -> dict[str, list[tuple[str, int]]]:
            names = {int(m["index"]): m.get("ifname") for m in ipr.get_links()}
            out: dict[str, list[tuple[str, int]]] = {}
            for a in ipr.get_addr(family=socket.AF_INET):
                name = names.get(int(a["index"]))
                if name:
                    out.setdefault(name, []).append((a.get("address"), int(a["prefixlen"])))
            return out
        return self._call(get)

    def set_address(self, name: str, address: tuple[str, int] | None) -> None:
        """Make `address` the interface's only IPv4 address (None: remove them all)."""
        def do(ipr: Any) -> None:
            idx = self._index(ipr, name)
            current = [(a.get("address"), int(a["prefixlen"])) for a in ipr.get_addr(family=socket.AF_INET, index=idx)]
            for ip, plen in current:
                if address is None or (ip, plen) != address:
                    ipr.addr("del", index=idx, address=ip, prefixlen=plen)
            if address is not None and address not in current:
                ipr.addr("add", index=idx, address=address[0], prefixlen=address[1])
        self._call(do)

    def set_up(self, name: str, up: bool) -> None:
        self._call(lambda ipr: ipr.link("set", index=self._index(ipr, name), state="up" if up else "down"))

    def set_mac(self, name: str, mac: str) -> None:
        self._call(lambda ipr: ipr.link("set", index=self._index(ipr, name), address=mac))

    def routes(self) -> list[Route]:
        def get(ipr: Any) -> list[Route]:
            names = {int(m["index"]): m.get("ifname") for m in ipr.get_links()}
            out = []
            for table in (MAIN_TABLE, LOCAL_TABLE):
                for r in ipr.get_routes(family=socket.AF_INET, table=table):
                    gw = r.get("gateway")
                    oif = r.get("oif")
                    if gw is None and r.get("multipath"):
                        hop = r.get("multipath")[0]
                        gw = hop.get("gateway")
                        oif = hop.get("oif")
                    out.append(Route(dst=r.get("dst") or "0.0.0.0", plen=int(r["dst_len"]), gateway=gw,
                                     dev=names.get(int(oif)) if oif is not None else None,
                                     proto=int(r["proto"]), table=table, type=int(r["type"]),
                                     prefsrc=r.get("prefsrc")))
            return out
        return self._call(get)

    def add_route(self, dst: str, plen: int, gateway: str) -> None:
        self._call(lambda ipr: ipr.route("add", dst=dst, dst_len=plen, gateway=gateway, proto=RTPROT_STATIC))

    def del_route(self, dst: str, plen: int, gateway: str | None) -> None:
        kw: dict[str, Any] = {"dst": dst, "dst_len": plen}
        if gateway:
            kw["gateway"] = gateway
        self._call(lambda ipr: ipr.route("del", **kw))

    def set_forwarding(self, on: bool) -> None:
        """`/proc/sys/net` is per network namespace: this changes only our node."""
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1\n" if on else "0\n")

    def set_hostname(self, name: str) -> None:
        """Only when the process has a UTS namespace of its own: Mininet nodes share the machine's,
        and renaming the machine from a lab device would be a leak."""
        try:
            if os.stat("/proc/self/ns/uts").st_ino == os.stat("/proc/1/ns/uts").st_ino:
                return
            socket.sethostname(name)
        except OSError:
            pass


class FakeNetlink:
    """An in-memory kernel: enough of links, addresses, connected/local/static routes and their
    interplay (routes via a link that goes down vanish, a gateway must be on a connected subnet)
    for unit tests of the router without touching the machine."""

    def __init__(self, interfaces: list[str] | None = None, mgmt: tuple[str, int] | None = ("172.20.0.2", 24)) -> None:
        names = interfaces if interfaces is not None else ["eth1", "eth2", "eth3", "eth4"]
        self._links: dict[str, Link] = {}
        self._addrs: dict[str, list[tuple[str, int]]] = {}
        self._static: list[Route] = []
        self.forwarding = False
        self.hostname = ""
        self.add_link("lo", kind="loopback")
        if mgmt is not None:
            self.add_link("mgmt0")
            self._addrs["mgmt0"] = [mgmt]
        for n in names:
            self.add_link(n)

    def add_link(self, name: str, kind: str = "veth", up: bool = True, carrier: bool = True) -> None:
        idx = len(self._links) + 1
        mac = "52:54:00:%02x:%02x:%02x" % (idx, idx * 7 % 256, idx * 13 % 256)
        self._links[name] = Link(name, idx, up, carrier, mac=mac, kind=kind,
                                 stats={"rx_packets": 10 * idx, "tx_packets": 20 * idx, "rx_bytes": 1000 * idx,
                                        "tx_bytes": 2000 * idx})

    def remove_link(self, name: str) -> None:
        self._links.pop(name, None)
        self._addrs.pop(name, None)
        self._prune()

    def set_carrier(self, name: str, carrier: bool) -> None:
        """Simulate the far end going away (what the lab's link faults do)."""
        self._links[name].carrier = carrier
        self._prune()

    def _need(self, name: str) -> Link:
        if name not in self._links:
            raise OSError(errno.ENODEV, f"no interface {name}")
        return self._links[name]

    def links(self) -> list[Link]:
        return [Link(**{**vars(l), "stats": dict(l.stats)}) for l in self._links.values()]

    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        return {k: list(v) for k, v in self._addrs.items() if v}

    def set_address(self, name: str, address: tuple[str, int] | None) -> None:
        self._need(name)
        self._addrs[name] = [address] if address else []
        self._prune()

    def set_up(self, name: str, up: bool) -> None:
        self._need(name).admin_up = up
        self._prune()

    def set_mac(self, name: str, mac: str) -> None:
        self._need(name).mac = mac

    def _connected(self) -> list[tuple[ipaddress.IPv4Network, str, str]]:
        out = []
        for name, addrs in self._addrs.items():
            link = self._links.get(name)
            if link is None or not link.admin_up:
                continue
            for ip, plen in addrs:
                out.append((ipaddress.IPv4Interface(f"{ip}/{plen}").network, name, ip))
        return out

    def _prune(self) -> None:
        """The kernel drops a static route once its gateway is no longer on an up connected subnet."""
        self._static = [r for r in self._static if self._dev_for(r.gateway) is not None]

    def _dev_for(self, gateway: str | None) -> str | None:
        if gateway is None:
            return None
        gw = ipaddress.IPv4Address(gateway)
        for net, name, _ in self._connected():
            if gw in net and self._links[name].carrier:
                return name
        return None

    def routes(self) -> list[Route]:
        out = []
        for net, name, ip in self._connected():
            out.append(Route(str(net.network_address), net.prefixlen, None, name, RTPROT_KERNEL, prefsrc=ip))
            out.append(Route(ip, 32, None, name, RTPROT_KERNEL, table=LOCAL_TABLE, type=2))
        out.append(Route("127.0.0.1", 32, None, "lo", RTPROT_KERNEL, table=LOCAL_TABLE, type=2))
        return out + list(self._static)

    def add_route(self, dst: str, plen: int, gateway: str) -> None:
        dev = self._dev_for(gateway)
        if dev is None:
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        if any(r.dst == dst and r.plen == plen for r in self._static):
            raise OSError(errno.EEXIST, "File exists")
        self._static.append(Route(dst, plen, gateway, dev, RTPROT_STATIC))

    def del_route(self, dst: str, plen: int, gateway: str | None) -> None:
        before = len(self._static)
        self._static = [r for r in self._static
                        if not (r.dst == dst and r.plen == plen and (gateway is None or r.gateway == gateway))]
        if len(self._static) == before:
            raise OSError(errno.ESRCH, "No such process")

    def set_forwarding(self, on: bool) -> None:
        self.forwarding = on

    def set_hostname(self, name: str) -> None:
        self.hostname = name

    def close(self) -> None:
        pass
