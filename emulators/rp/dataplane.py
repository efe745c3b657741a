"""The pair's data plane: both units are cabled to the same LANs (the chassis' line cards), but only
the Active may drive them.

`GatedNet` wraps the unit's netlink backend: reads pass through, changes are dropped while the gate
is closed, so the Standby's config model follows every synced command without touching the
kernel. Taking over opens the gate and pushes the whole config at once. Both units give each data
interface the same MAC (derived from the pair's name), so hosts' ARP caches stay right across a
switchover and a gratuitous ARP only has to move the MAC on the switches.
"""
from __future__ import annotations

import hashlib
from typing import Any

from emulators.netlink import Link, NetBackend, Route

_MUTATORS = ("set_address", "set_up", "add_route", "del_route", "set_forwarding", "set_hostname")


class GatedNet:
    def __init__(self, inner: NetBackend) -> None:
        self.inner = inner
        self.open = False

    def links(self) -> list[Link]:
        return self.inner.links()

    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        return self.inner.addresses()

    def routes(self) -> list[Route]:
        return self.inner.routes()

    def set_mac(self, name: str, mac: str) -> None:
        self.inner.set_mac(name, mac)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        if name in _MUTATORS:
            fn = getattr(self.inner, name)

            def gated(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs) if self.open else None
            return gated
        raise AttributeError(name)


def disable_ipv6(ifname: str) -> None:
    """A Standby's interfaces must stay silent: with IPv6 on, bringing one up (a lab power-on) sends
    router and neighbour solicitations from the shared MAC, and the switches would move that MAC
    to the Standby's port. The lab's LANs are IPv4."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError:
        pass


def pair_mac(pair: str, ifname: str) -> str:
    """A locally administered unicast MAC, the same on both units for one interface."""
    h = hashlib.sha256(f"{pair}/{ifname}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])
