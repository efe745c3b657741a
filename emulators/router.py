"""The `router` device kind (also used as a network access server): interfaces, IPv4 addresses,
static routes, IP forwarding, hostname and users, with real effects on the Linux networking of the
namespace the emulator runs in - so traffic follows the config.

The config model is the truth for what the router owns (its data interfaces, routes it installed,
forwarding); show commands read the kernel, so they show what traffic actually sees. `mgmt0` belongs
to the lab: it is shown but never configured. A ticker notices link changes made from outside (the
lab's link faults), logs them like IOS and publishes `link-up`/`link-down` events.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aaa.nas import RadiusNas
from .cluster.agent import ClusterAgent
from .cli.context import Context
from .cli.tree import Mode, command
from .device import BaseDevice
from .netlink import LOCAL_TABLE, MAIN_TABLE, RTPROT_STATIC, FakeNetlink, Link, NetBackend, Netlink

log = logging.getLogger(__name__)

UNMANAGED = frozenset({"lo", "mgmt0"})
CODES = """\
Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP
       D - EIGRP, EX - EIGRP external, O - OSPF, IA - OSPF inter area 
       N1 - OSPF NSSA external type 1, N2 - OSPF NSSA external type 2
       E1 - OSPF external type 1, E2 - OSPF external type 2
       i - IS-IS, su - IS-IS summary, L1 - IS-IS level-1, L2 - IS-IS level-2
       ia - IS-IS inter area, * - candidate default, U - per-user static route
       o - ODR, P - periodic downloaded static route, H - NHRP, l - LISP
       a - application route
       + - replicated route, % - next hop override, p - overrides from PfR"""


def natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def mask_prefixlen(mask: ipaddress.IPv4Address) -> int | None:
    """Prefix length of a contiguous mask, None for a non-contiguous one."""
    m = int(mask)
    inv = (~m) & 0xFFFFFFFF
    if inv & (inv + 1):
        return None
    return 32 - inv.bit_length()


def cisco_mac(mac: str) -> str:
    h = mac.replace(":", "").lower().rjust(12, "0")
    return f"{h[0:4]}.{h[4:8]}.{h[8:12]}"


def parse_mac(text: str) -> str | None:
    """IOS's H.H.H or the Linux colon form, as lowercase colon form; None if it is neither."""
    t = text.strip().lower()
    if re.fullmatch(r"[0-9a-f]{1,4}\.[0-9a-f]{1,4}\.[0-9a-f]{1,4}", t):
        h = "".join(p.rjust(4, "0") for p in t.split("."))
    elif re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", t):
        h = t.replace(":", "")
    else:
        return None
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


@dataclass
class IfConfig:
    description: str | None = None
    address: tuple[str, str] | None = None    # (ip, mask) dotted
    shutdown: bool = False
    method: str = "unset"                      # how the address was set: "manual" or "NVRAM"
    mac: str | None = None                     # `mac-address`: overrides the burned-in address

    @property
    def prefix(self) -> tuple[str, int] | None:
        if self.address is None:
            return None
        plen = mask_prefixlen(ipaddress.IPv4Address(self.address[1]))
        return (self.address[0], plen if plen is not None else 32)


class Router(ClusterAgent, RadiusNas, BaseDevice):
    kind = "router"
    modes = BaseDevice.modes + (Mode("config-if", "(config-if)#", "config"),)
    hardware = "TWIN"

    def __init__(self, name: str, *, state_dir: Path, users: dict[str, str], enable_secret: str,
                 version: str | None = None, initial_config: str | None = None, apply: bool = True,
                 netlink: NetBackend | None = None) -> None:
        # apply=False: an in-memory kernel, so unit tests exercise the whole router without the machine.
        self.net: NetBackend = netlink if netlink is not None else (Netlink() if apply else FakeNetlink())
        self._status: dict[str, tuple[str, str]] = {}
        self._routes_pending = False
        self._rates: dict[str, tuple[float, dict[str, int], dict[str, float]]] = {}
        super().__init__(name, state_dir=state_dir, users=users, enable_secret=enable_secret, version=version,
                         initial_config=initial_config, apply=apply)

    # ------------------------------------------------------------------ config model
    def reset_config(self) -> None:
        super().reset_config()
        self.interfaces: dict[str, IfConfig] = {}
        self.static_routes: set[tuple[str, str, str]] = set()   # (network, mask, next hop)
        self.ip_routing = True

    def _links(self) -> dict[str, Link]:
        try:
            return {l.name: l for l in self.net.links()}
        except OSError:
            log.exception("%s: cannot read links", self.name)
            return {}

    def interface_names(self, purpose: str) -> list[str]:
        names = [n for n in self._links() if n != "lo"]
        if purpose != "show":
            names = [n for n in names if n not in UNMANAGED]
        return sorted(names, key=natural_key)

    def _config_interfaces(self) -> list[str]:
        names = set(self.interface_names("config")) | set(self.interfaces)
        return sorted(names, key=natural_key)

    def _interface_block(self, name: str) -> list[str]:
        cfg = self.interfaces.get(name) or IfConfig()
        block = [f"interface {name}"]
        if cfg.description:
            block.append(f" description {cfg.description}")
        if cfg.mac:
            block.append(f" mac-address {cisco_mac(cfg.mac)}")
        block.append(f" ip address {cfg.address[0]} {cfg.address[1]}" if cfg.address else " no ip address")
        if cfg.shutdown:
            block.append(" shutdown")
        return block

    def config_sections(self) -> list[list[str]]:
        blocks = [self._interface_block(n) for n in self._config_interfaces()]
        routing = [] if self.ip_routing else ["no ip routing"]
        routing += [f"ip route {p} {m} {n}" for p, m, n in
                    sorted(self.static_routes, key=lambda r: tuple(int(ipaddress.IPv4Address(x)) for x in r))]
        blocks.append(routing)
        return blocks + super().config_sections()      # RADIUS client (aaa/nas.py)

    # ------------------------------------------------------------------ applying to Linux
    def apply_all(self) -> None:
        links = self._links()
        for name in links:
            if name not in UNMANAGED:
                self._apply_interface(name)
        try:
            self.net.set_forwarding(self.ip_routing)
        except OSError:
            log.exception("%s: cannot set ip_forward", self.name)
        self.hostname_changed()
        self._sync_routes()
        self._check_links()
        super().apply_all()                            # RADIUS client: failover listener

    def hostname_changed(self) -> None:
        self.net.set_hostname(self.hostname)

    def _apply_interface(self, name: str) -> None:
        cfg = self.interfaces.get(name) or IfConfig()
        try:
            self._apply_mac(name, cfg.mac)
            self.net.set_address(name, cfg.prefix)
            self.net.set_up(name, not cfg.shutdown)
        except OSError as exc:
            log.warning("%s: cannot apply interface %s: %s", self.name, name, exc)

    # The burned-in addresses of interfaces whose MAC `mac-address` changed, kept on "NVRAM" so a
    # reload with a config that no longer overrides it (a clone returned to its pool) restores it.
    def _bia_file(self) -> Path:
        return self.state_dir / "bia.json"

    def burned_in(self) -> dict[str, str]:
        try:
            return json.loads(self._bia_file().read_text())
        except (OSError, ValueError):
            return {}

    def _apply_mac(self, name: str, mac: str | None) -> None:
        bia = self.burned_in()
        links = self._links()
        if name not in links:
            return
        current = links[name].mac.lower()
        if mac is not None:
            if name not in bia:
                bia[name] = current
                self._bia_file().write_text(json.dumps(bia))
            if current != mac:
                self.net.set_mac(name, mac)
        elif name in bia:
            if current != bia[name]:
                self.net.set_mac(name, bia[name])
            del bia[name]
            self._bia_file().write_text(json.dumps(bia))

    def _sync_routes(self) -> None:
        """Make the kernel's static routes match the config; a route whose next hop is not
        reachable yet stays pending and is retried when links or addresses change."""
        desired = set()
        for p, m, n in self.static_routes:
            plen = mask_prefixlen(ipaddress.IPv4Address(m))
            desired.add((p, plen if plen is not None else 32, n))
        try:
            kernel = [r for r in self.net.routes() if r.table == MAIN_TABLE and r.proto == RTPROT_STATIC]
        except OSError:
            log.exception("%s: cannot read routes", self.name)
            return
        have = {(r.dst, r.plen, r.gateway) for r in kernel}
        for r in kernel:
            if (r.dst, r.plen, r.gateway) not in desired:
                try:
                    self.net.del_route(r.dst, r.plen, r.gateway)
                except OSError:
                    pass
        pending = False
        for d in sorted(desired - have):
            try:
                self.net.add_route(*d)
            except OSError as exc:
                pending = True
                log.debug("%s: route %s pending: %s", self.name, d, exc)
        self._routes_pending = pending

    def _sync_routes_after(self, ctx: Context) -> None:
        """A typed route goes to the kernel at once; while a whole config loads, apply_all syncs
        them once at the end (per line would read the kernel's table n times: quadratic)."""
        if ctx.source in ("startup", "sync"):
            self._routes_pending = True
            return
        self._sync_routes()

    def _link_status(self, name: str, link: Link) -> tuple[str, str]:
        cfg = self.interfaces.get(name)
        managed = name not in UNMANAGED
        if (managed and cfg is not None and cfg.shutdown) or (not managed and not link.admin_up):
            return ("administratively down", "down")
        if link.admin_up and link.carrier:
            return ("up", "up")
        return ("down", "down")

    def _check_links(self, links: dict[str, Link] | None = None) -> bool:
        """Compare interface states with the last look; log and publish what changed."""
        links = self._links() if links is None else links
        changed = False
        for name in sorted(set(links) | set(self._status), key=natural_key):
            if name == "lo":
                continue
            old = self._status.get(name)
            if name not in links:
                self._status.pop(name, None)
                if old and old[1] == "up":
                    self.publish("link-down", interface=name, status="deleted")
                changed = True
                continue
            new = self._link_status(name, links[name])
            if new == old:
                continue
            changed = True
            self._status[name] = new
            if old is None and new[0] != "up":
                continue
            if new[0] == "administratively down":
                self.syslog(f"%LINK-5-CHANGED: Interface {name}, changed state to administratively down")
            else:
                self.syslog(f"%LINK-3-UPDOWN: Interface {name}, changed state to {new[0]}")
            if (old or ("", ""))[1] != new[1]:
                self.syslog(f"%LINEPROTO-5-UPDOWN: Line protocol on Interface {name}, changed state to {new[1]}")
                self.publish("link-up" if new[1] == "up" else "link-down", interface=name, status=new[0])
        return changed

    def tick(self) -> None:
        links = self._links()
        appeared = [n for n in links if n != "lo" and n not in self._status]
        for name in appeared:
            if name not in UNMANAGED:
                self._apply_interface(name)          # a link that appeared after boot gets its config
        if appeared:
            links = self._links()
        if self._check_links(links) or self._routes_pending:
            self._sync_routes()
        self._update_rates(links)
        super().tick()                                 # RADIUS client: return-timeout

    def _update_rates(self, links: dict[str, Link]) -> None:
        """5-minute exponentially decayed rates, as IOS's default load-interval."""
        now = time.time()
        for name, l in links.items():
            prev = self._rates.get(name)
            rates = {"in_bits": 0.0, "out_bits": 0.0, "in_pkts": 0.0, "out_pkts": 0.0}
            if prev is not None:
                t0, s0, rates = prev
                dt = max(now - t0, 1e-3)
                w = 1 - math.exp(-dt / 300)
                inst = {"in_bits": (l.stats.get("rx_bytes", 0) - s0.get("rx_bytes", 0)) * 8 / dt,
                        "out_bits": (l.stats.get("tx_bytes", 0) - s0.get("tx_bytes", 0)) * 8 / dt,
                        "in_pkts": (l.stats.get("rx_packets", 0) - s0.get("rx_packets", 0)) / dt,
                        "out_pkts": (l.stats.get("tx_packets", 0) - s0.get("tx_packets", 0)) / dt}
                rates = {k: rates[k] + (max(inst[k], 0.0) - rates[k]) * w for k in rates}
            self._rates[name] = (now, dict(l.stats), rates)

    def shutdown_backend(self) -> None:
        super().shutdown_backend()                     # RADIUS client: listener, load generator
        self.net.close()

    # ------------------------------------------------------------------ config commands
    @command("config", "interface <name:interface>", help={"name": "Interface name"})
    def cmd_interface(self, ctx: Context, name: str) -> None:
        if name in UNMANAGED:           # only reachable from a stored config (lenient parsing)
            ctx.print(f"% Interface {name} is managed by the lab and cannot be configured")
            return
        self.interfaces.setdefault(name, IfConfig())
        ctx.enter("config-if", interface=name)

    @command("config", "ip routing", help={"routing": "Enable IP routing"})
    @command("config", "no ip routing", no=True)
    def cmd_ip_routing(self, ctx: Context, no: bool = False) -> None:
        self.ip_routing = not no
        try:
            self.net.set_forwarding(self.ip_routing)
        except OSError as exc:
            ctx.print(f"% Cannot change IP routing: {exc.strerror}")

    @command("config", "ip route <prefix:ipv4> <mask:mask> <nexthop:ipv4>",
             help={"route": "Establish static routes", "prefix": "Destination prefix",
                   "mask": "Destination prefix mask", "nexthop": "Forwarding router's address"})
    def cmd_ip_route(self, ctx: Context, prefix: ipaddress.IPv4Address, mask: ipaddress.IPv4Address,
                     nexthop: ipaddress.IPv4Address) -> None:
        plen = mask_prefixlen(mask)
        if plen is None or int(prefix) & ~int(mask) & 0xFFFFFFFF:
            ctx.print("%Inconsistent address and mask")
            return
        if nexthop.is_unspecified or nexthop.is_multicast or nexthop.is_loopback or str(nexthop) == "255.255.255.255":
            ctx.print("%Invalid next hop address")
            return
        self.static_routes.add((str(prefix), str(mask), str(nexthop)))
        self._sync_routes_after(ctx)

    @command("config", "no ip route <prefix:ipv4> <mask:mask> [<nexthop:ipv4>]")
    def cmd_no_ip_route(self, ctx: Context, prefix: ipaddress.IPv4Address, mask: ipaddress.IPv4Address,
                        nexthop: ipaddress.IPv4Address | None = None) -> None:
        match = {r for r in self.static_routes
                 if r[0] == str(prefix) and r[1] == str(mask) and (nexthop is None or r[2] == str(nexthop))}
        if not match:
            ctx.print("%No matching route to delete")
            return
        self.static_routes -= match
        self._sync_routes_after(ctx)

    # ------------------------------------------------------------------ interface commands
    def _if(self, ctx: Context) -> tuple[str, IfConfig]:
        name = ctx.vars["interface"]
        return name, self.interfaces.setdefault(name, IfConfig())

    @command("config-if", "ip address <addr:ipv4> <mask:mask>",
             help={"ip": "Interface Internet Protocol config commands", "address": "Set the IP address of an interface",
                   "addr": "IP address", "mask": "IP subnet mask"})
    def cmd_ip_address(self, ctx: Context, addr: ipaddress.IPv4Address, mask: ipaddress.IPv4Address) -> None:
        ip = addr
        name, cfg = self._if(ctx)
        plen = mask_prefixlen(mask)
        if plen is None:
            ctx.print(f"Bad mask 0x{int(mask):X} for address {ip}")
            return
        iface = ipaddress.IPv4Interface(f"{ip}/{plen}")
        if plen == 0 or (plen < 31 and ip in (iface.network.network_address, iface.network.broadcast_address)) \
                or ip.is_multicast or ip.is_loopback or ip.is_unspecified:
            ctx.print(f"Bad mask /{plen} for address {ip}")
            return
        for other, net in self._other_networks(name):
            if net.overlaps(iface.network):
                ctx.print(f"% {iface.network.network_address} overlaps with {other}")
                return
        cfg.address = (str(ip), str(mask))
        cfg.method = "manual" if ctx.source == "cli" else "NVRAM"
        self._apply_if_present(name)

    def _other_networks(self, name: str) -> list[tuple[str, ipaddress.IPv4Network]]:
        out = []
        for other, cfg in self.interfaces.items():
            if other != name and cfg.prefix:
                out.append((other, ipaddress.IPv4Interface("%s/%d" % cfg.prefix).network))
        try:
            for other, addrs in self.net.addresses().items():
                if other in UNMANAGED and other != "lo" and other != name:
                    out += [(other, ipaddress.IPv4Interface(f"{ip}/{plen}").network) for ip, plen in addrs]
        except OSError:
            pass
        return out

    def _apply_if_present(self, name: str) -> None:
        if name in self._links():
            self._apply_interface(name)
            self._check_links()
        self._sync_routes()

    @command("config-if", "no ip address [<addr:ipv4> <mask:mask>]")
    def cmd_no_ip_address(self, ctx: Context, addr: Any = None, mask: Any = None) -> None:
        name, cfg = self._if(ctx)
        cfg.address = None
        cfg.method = "unset"
        self._apply_if_present(name)

    @command("config-if", "shutdown", help={"shutdown": "Shutdown the selected interface"})
    @command("config-if", "no shutdown", no=True)
    def cmd_shutdown(self, ctx: Context, no: bool = False) -> None:
        name, cfg = self._if(ctx)
        cfg.shutdown = not no
        self._apply_if_present(name)

    @command("config-if", "mac-address <mac:word>",
             help={"mac-address": "Manually set interface MAC address", "mac": "MAC address (H.H.H)"})
    @command("config-if", "no mac-address [<mac:word>]", no=True)
    def cmd_mac_address(self, ctx: Context, mac: str = "", no: bool = False) -> None:
        name, cfg = self._if(ctx)
        if no:
            cfg.mac = None
        else:
            parsed = parse_mac(mac)
            if parsed is None:
                ctx.print(f"% Invalid input: {mac!r} is not a MAC address (H.H.H or xx:xx:xx:xx:xx:xx)")
                return
            if int(parsed.split(":")[0], 16) & 1:
                ctx.print(f"% {mac} is a multicast address and cannot be an interface address")
                return
            cfg.mac = parsed
        self._apply_if_present(name)

    @command("config-if", "description <text:line>",
             help={"description": "Interface specific description", "text": "Up to 240 characters describing this interface"})
    @command("config-if", "no description [<text:line>]", no=True)
    def cmd_description(self, ctx: Context, text: str = "", no: bool = False) -> None:
        _, cfg = self._if(ctx)
        cfg.description = None if no else text[:240]

    # ------------------------------------------------------------------ show commands
    @command("exec", "show running-config interface <name:interface:show>", priv=15,
             help={"interface": "Show interface configuration", "name": "Interface name"})
    def cmd_show_run_interface(self, ctx: Context, name: str) -> None:
        if name in UNMANAGED:
            body = f"!\ninterface {name}\n ip address dhcp\nend\n"
        else:
            body = "!\n" + "\n".join(self._interface_block(name)) + "\nend\n"
        ctx.print(f"Building configuration...\n\nCurrent configuration : {len(body)} bytes")
        ctx.print(body.rstrip("\n"))

    @command("exec", "show ip interface brief", priv=1,
             help={"ip": "IP information", "interface": "IP interface status and configuration",
                   "brief": "Brief summary of IP status and configuration"})
    def cmd_show_ip_int_brief(self, ctx: Context) -> None:
        links = self._links()
        addrs = self.net.addresses()
        ctx.print("Interface              IP-Address      OK? Method Status                Protocol")
        for name in sorted((n for n in links if n != "lo"), key=natural_key):
            status, proto = self._link_status(name, links[name])
            a = addrs.get(name)
            ip = a[0][0] if a else "unassigned"
            if name in UNMANAGED:
                method = "other" if a else "unset"
            else:
                cfg = self.interfaces.get(name)
                method = cfg.method if cfg and cfg.address else "unset"
            ctx.print(f"{name:<22} {ip:<15} YES {method:<6} {status:<21} {proto:<8}".rstrip())

    @command("exec", "show interfaces [<name:interface:show>]", priv=1,
             help={"interfaces": "Interface status and configuration", "name": "Interface name"})
    def cmd_show_interfaces(self, ctx: Context, name: str | None = None) -> None:
        links = self._links()
        addrs = self.net.addresses()
        names = [name] if name else sorted((n for n in links if n != "lo"), key=natural_key)
        for n in names:
            if n in links:
                self._print_interface(ctx, n, links[n], addrs.get(n, []))

    def _print_interface(self, ctx: Context, name: str, link: Link, addrs: list[tuple[str, int]]) -> None:
        status, proto = self._link_status(name, link)
        cfg = self.interfaces.get(name)
        st = link.stats
        mac = cisco_mac(link.mac)
        bia = cisco_mac(self.burned_in().get(name, link.mac))
        rates = self._rates.get(name, (0, {}, {}))[2]
        p = ctx.print
        p(f"{name} is {status}, line protocol is {proto} ")
        p(f"  Hardware is {link.kind}, address is {mac} (bia {bia})")
        if cfg is not None and cfg.description:
            p(f"  Description: {cfg.description}")
        if addrs:
            p(f"  Internet address is {addrs[0][0]}/{addrs[0][1]}")
        p(f"  MTU {link.mtu} bytes, BW 10000000 Kbit/sec, DLY 10 usec, ")
        p("     reliability 255/255, txload 1/255, rxload 1/255")
        p("  Encapsulation ARPA, loopback not set")
        p("  Keepalive set (10 sec)")
        p("  Full Duplex, 10Gbps, media type is Virtual")
        p("  output flow-control is unsupported, input flow-control is unsupported")
        p("  ARP type: ARPA, ARP Timeout 04:00:00")
        p("  Last input never, output never, output hang never")
        p('  Last clearing of "show interface" counters never')
        p(f"  Input queue: 0/75/0/0 (size/max/drops/flushes); Total output drops: {st.get('tx_dropped', 0)}")
        p("  Queueing strategy: fifo")
        p("  Output queue: 0/40 (size/max)")
        p(f"  5 minute input rate {int(rates.get('in_bits', 0))} bits/sec, {int(rates.get('in_pkts', 0))} packets/sec")
        p(f"  5 minute output rate {int(rates.get('out_bits', 0))} bits/sec, {int(rates.get('out_pkts', 0))} packets/sec")
        p(f"     {st.get('rx_packets', 0)} packets input, {st.get('rx_bytes', 0)} bytes, 0 no buffer")
        p(f"     Received 0 broadcasts ({st.get('multicast', 0)} IP multicasts)")
        p("     0 runts, 0 giants, 0 throttles ")
        p(f"     {st.get('rx_errors', 0)} input errors, {st.get('rx_crc_errors', 0)} CRC, "
          f"{st.get('rx_frame_errors', 0)} frame, {st.get('rx_over_errors', 0)} overrun, 0 ignored")
        p(f"     0 watchdog, {st.get('multicast', 0)} multicast, 0 pause input")
        p(f"     {st.get('tx_packets', 0)} packets output, {st.get('tx_bytes', 0)} bytes, 0 underruns")
        p(f"     {st.get('tx_errors', 0)} output errors, {st.get('collisions', 0)} collisions, 0 interface resets")
        p("     0 unknown protocol drops")
        p("     0 babbles, 0 late collision, 0 deferred")
        p("     0 lost carrier, 0 no carrier, 0 pause output")
        p("     0 output buffer failures, 0 output buffers swapped out")

    @command("exec", "show ip route", priv=1, help={"route": "IP routing table"})
    def cmd_show_ip_route(self, ctx: Context) -> None:
        for line in self.route_table_lines():
            ctx.print(line)

    def route_table_lines(self) -> list[str]:
        """`show ip route` from the kernel: connected (C), local (L), static (S, S* for default),
        grouped under their classful networks as IOS does."""
        entries: list[tuple[ipaddress.IPv4Network, str, str]] = []
        gateway = None
        for r in self.net.routes():
            if r.table == LOCAL_TABLE:
                if r.type == 2 and r.dev and r.dev != "lo" and not r.dst.startswith("127."):
                    entries.append((ipaddress.IPv4Network(f"{r.dst}/32"), "L",
                                    f"is directly connected, {r.dev}"))
                continue
            if r.table != MAIN_TABLE or r.type != 1:
                continue
            net = ipaddress.IPv4Network(f"{r.dst}/{r.plen}", strict=False)
            if r.gateway:
                code = "S*" if r.plen == 0 else "S"
                if r.plen == 0 and gateway is None:
                    gateway = r.gateway
                entries.append((net, code, f"[1/0] via {r.gateway}"))
            elif r.dev:
                entries.append((net, "C" if r.proto != RTPROT_STATIC else "S", f"is directly connected, {r.dev}"))
        lines = CODES.splitlines() + [""]
        lines.append(f"Gateway of last resort is {gateway} to network 0.0.0.0" if gateway
                     else "Gateway of last resort is not set")
        lines.append("")
        groups: dict[ipaddress.IPv4Network, list[tuple[ipaddress.IPv4Network, str, str]]] = {}
        top: list[tuple[ipaddress.IPv4Network, str, str]] = []
        for e in entries:
            major = classful(e[0])
            if major is not None and e[0].prefixlen > major.prefixlen:
                groups.setdefault(major, []).append(e)
            else:
                top.append(e)
        items: list[tuple[tuple[int, int, int], list[str]]] = []
        for e in top:
            items.append(((int(e[0].network_address), e[0].prefixlen, 0), [f"{e[1]:<6}{e[0]} {e[2]}"]))
        for major, subs in groups.items():
            subs.sort(key=lambda e: (int(e[0].network_address), e[0].prefixlen))
            masks = {e[0].prefixlen for e in subs}
            nsub = len(subs)
            if len(masks) == 1:
                head = f"      {major.network_address}/{next(iter(masks))} is subnetted, {nsub} subnet{'s' if nsub != 1 else ''}"
            else:
                head = (f"      {major} is variably subnetted, {nsub} subnet{'s' if nsub != 1 else ''}, "
                        f"{len(masks)} masks")
            body = [f"{e[1]:<9}{e[0]} {e[2]}" for e in subs]
            items.append(((int(major.network_address), major.prefixlen, 1), [head] + body))
        for _, block in sorted(items, key=lambda i: i[0]):
            lines += block
        return lines


def classful(net: ipaddress.IPv4Network) -> ipaddress.IPv4Network | None:
    first = int(net.network_address) >> 24
    plen = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else None
    if plen is None:
        return None
    return ipaddress.IPv4Network(f"{net.network_address}/{plen}", strict=False)
