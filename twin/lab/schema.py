"""The lab file schema (pydantic), in the shape containerlab and netlab users know.

Structural rules live here (types, ranges, name formats); rules that need the whole lab (unknown
nodes in links, address clashes, interface name lengths) live in `checks.py`, so every problem is
reported at once with the path of the field that causes it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Linux limits interface names to 15 characters (IFNAMSIZ 16 with the NUL).
IFNAME_MAX = 15
# Every name the lab creates in the root namespace starts with a per-lab prefix of this length.
PREFIX_LEN = 5
NODE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
NODE_NAME_MAX = 15
IFNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class KindInfo:
    """What the lab engine needs to know about a node kind to build it."""

    name: str
    switch: bool = False      # an Open vSwitch bridge (L2), not a namespace
    forwards: bool = False    # IP forwarding on (routers and devices that route)
    emulated: bool = False    # runs a device emulator (CLI over console/SSH/telnet) that owns its config
    description: str = ""


# Later issues register their device kinds here (emulators on the shared CLI engine).
KINDS: dict[str, KindInfo] = {
    "switch": KindInfo("switch", switch=True, description="Open vSwitch bridge (userspace datapath, OpenFlow 1.3)"),
    "host": KindInfo("host", description="Linux host in its own network namespace"),
    "router": KindInfo("router", forwards=True, emulated=True, description="IP router / network access server (IOS-like CLI)"),
    "aaa": KindInfo("aaa", emulated=True, description="RADIUS AAA server that tells its clients to fail over (IOS-like CLI)"),
    "ems": KindInfo("ems", emulated=True, description="element-management server: bully election, element "
                    "assignment, circuit routing (IOS-like CLI)"),
    "rp": KindInfo("rp", forwards=True, emulated=True, description="one unit of an active/standby redundant "
                   "router pair: config sync across software images, switchover, ISSU (IOS-like CLI)"),
    "cluster-manager": KindInfo("cluster-manager", emulated=True, description="cluster manager: replaces a failed "
                                "element with a spare from the pool and rewrites both switches' cross-connects "
                                "(IOS-like CLI)"),
    "inode": KindInfo("inode", emulated=True, description="ingress/egress node of a multi-stage network: classifies "
                      "flows, assigns flow paths and routes, adds and strips flow descriptors (IOS-like CLI)"),
    "anode": KindInfo("anode", emulated=True, description="application node of a flow cluster: a packet filter, "
                      "counter, DSCP marker or recorder on real packets, hop-by-hop flow routing (IOS-like CLI)"),
    "mnode": KindInfo("mnode", emulated=True, description="management node of a multi-stage network: cluster, node "
                      "and topology IDs, failure detection, topology updates, statistics (IOS-like CLI)"),
}


def register_kind(info: KindInfo) -> None:
    KINDS[info.name] = info


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Defaults(_Strict):
    kind: str = "host"
    username: str = "admin"
    password: str = "admin"
    enable_secret: str = "enable"
    version: str | None = None


class MgmtSpec(_Strict):
    """Out-of-band management network: a standalone bridge every non-switch node has `mgmt0` on."""

    enabled: bool = True
    network: ipaddress.IPv4Network = ipaddress.IPv4Network("172.20.0.0/24")
    station: str | None = "mgmt"  # a management-station host added to the lab, or null for none


class AddressingSpec(_Strict):
    """Pools that interface addresses come from when the lab file gives none (netlab style)."""

    lan: ipaddress.IPv4Network = ipaddress.IPv4Network("10.10.0.0/16")
    lan_prefix: int = Field(24, ge=8, le=30)
    p2p: ipaddress.IPv4Network = ipaddress.IPv4Network("10.255.0.0/16")
    p2p_prefix: int = Field(30, ge=8, le=31)


class ControllerSpec(_Strict):
    apps: list[str] = Field(default_factory=lambda: ["controllers.twin_base"])
    echo_interval: float = Field(1.0, gt=0, le=60)


class InterfaceSpec(_Strict):
    ipv4: ipaddress.IPv4Interface | None = None
    description: str | None = None


class RouteSpec(_Strict):
    to: str = Field(..., description="destination prefix, or 'default'")
    via: ipaddress.IPv4Address

    @field_validator("to")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if v == "default":
            return v
        try:
            ipaddress.IPv4Network(v, strict=False)
        except ValueError:
            raise ValueError(f"expected an IPv4 prefix like 10.1.0.0/24 or 'default', got {v!r}") from None
        return v


class NodeSpec(_Strict):
    kind: str | None = None
    interfaces: dict[str, InterfaceSpec] = Field(default_factory=dict)
    gateway: str | None = Field(None, description="default gateway: a node name or an IPv4 address")
    routes: list[RouteSpec] = Field(default_factory=list)
    mgmt_ipv4: ipaddress.IPv4Address | None = None
    username: str | None = None
    password: str | None = None
    version: str | None = None
    enable_secret: str | None = None
    auto_address: bool = Field(True, description="false: no pool addresses; the node is configured by hand (its CLI)")
    config: dict[str, Any] = Field(default_factory=dict, description="kind-specific settings")
    startup_config: str | None = Field(None, alias="startup-config",
                                       description="device CLI lines applied after the generated addresses "
                                                   "and routes at first boot (emulated kinds)")


class Endpoint(BaseModel):
    node: str
    intf: str

    def __str__(self) -> str:
        return f"{self.node}:{self.intf}"


class LinkSpec(_Strict):
    endpoints: list[Endpoint] = Field(..., min_length=2, max_length=2)
    vlan: int | None = Field(None, description="access VLAN on the switch side (1-4094)")
    trunk: list[int] | None = Field(None, description="VLANs allowed on a switch-to-switch link")
    bw: float | None = Field(None, gt=0, description="bandwidth limit in Mbit/s (HTB)")

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoints(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if isinstance(item, str):
                node, sep, intf = item.partition(":")
                if not sep or not node or not intf:
                    raise ValueError(f"expected 'node:interface' like 'r1:eth1', got {item!r}")
                out.append({"node": node, "intf": intf})
            else:
                out.append(item)
        return out

    @field_validator("vlan")
    @classmethod
    def _vlan(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 4094:
            raise ValueError(f"VLAN {v} is outside 1-4094")
        return v

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, v: list[int] | None) -> list[int] | None:
        for vid in v or []:
            if not 1 <= vid <= 4094:
                raise ValueError(f"VLAN {vid} is outside 1-4094")
        return v


class GroupSpec(_Strict):
    """A named set of nodes: a cluster, a spare pool, a device group. Later issues give types meaning."""

    type: Literal["group", "cluster", "pool"] = "group"
    members: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)


class GridSpec(_Strict):
    """The connectivity grid: the switches virtual links run over, and their VLAN block."""

    switches: list[str] | None = Field(None, description="grid switches (default: every switch of the lab)")
    vlan_block: tuple[int, int] = Field((3000, 3999), description="VLAN IDs given to links that name none")
    mtu: int = Field(1500, ge=1280, le=9000, description="MTU of every grid link (nodes, switch ports, trunks); "
                     "above 1500 the grid carries jumbo frames, which flow descriptors need")

    @field_validator("vlan_block")
    @classmethod
    def _block(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not 1 <= lo <= hi <= 4094:
            raise ValueError(f"expected [low, high] within 1-4094 with low <= high, got [{lo}, {hi}]")
        return v


FLOW_FUNCTIONS = ("counter", "filter", "marker", "recorder")
FLOW_STRATEGIES = ("discard", "redirect", "backup")
FLOW_BALANCES = ("rr", "wrr", "least-flows", "load", "hash")


class FlowClusterSpec(_Strict):
    """A cluster of functionally equivalent flow nodes ([0051]); INODE clusters end flow paths."""

    members: list[str] = Field(..., min_length=1)
    function: Literal["counter", "filter", "marker", "recorder"] = "counter"
    strategy: Literal["discard", "redirect", "backup"] = Field("redirect", description="what happens to a failed "
                                                               "node's flows ([0085])")
    balance: Literal["rr", "wrr", "least-flows", "load", "hash"] = "rr"
    weights: dict[str, int] = Field(default_factory=dict, description="node -> weight (wrr, hash)")
    deny: list[str] = Field(default_factory=list, description="filter rules: 'udp dport 9', 'tcp', "
                            "'icmp', 'src 10.5.0.0/24'")
    dscp: int = Field(0, ge=0, le=63, description="marker: the DSCP written into every packet")


class FlowPolicySpec(_Strict):
    """Operator policy: flows matching src/dst/protocol/port/application take `path` ([0060])."""

    path: str
    src: ipaddress.IPv4Network | None = None
    dst: ipaddress.IPv4Network | None = None
    proto: Literal["tcp", "udp", "icmp"] | None = None
    dport: int | None = Field(None, ge=1, le=65535)
    app: str | None = Field(None, description="flow type name: HTTP, DNS, FTP, SSH, IPERF, ...")
    replicate: str | None = Field(None, description="a second path a clone of the flow takes ([0084]); it must "
                                  "end at a recorder cluster, which the egress INODE also copies the original to")


class FlowsSpec(_Strict):
    """Multi-stage flow routing over the grid (seed 003 [0056]-[0085])."""

    manager: str = Field(..., description="the MNODE")
    selection: Literal["centralized", "distributed"] = "centralized"
    secret: str | None = None
    heartbeat_ms: int = Field(100, ge=20, le=5000)
    dead_intervals: int = Field(3, ge=2, le=20)
    udp_idle_s: float = Field(30.0, gt=0, le=3600)
    tcp_idle_s: float = Field(300.0, gt=0, le=86400)
    clusters: dict[str, FlowClusterSpec] = Field(..., min_length=1)
    paths: dict[str, list[str]] = Field(..., min_length=1, description="path name -> cluster sequence, ending "
                                        "with an INODE cluster")
    policies: list[FlowPolicySpec] = Field(default_factory=list)

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, seq in v.items():
            if not seq:
                raise ValueError(f"path {name!r} is empty")
        return v


class LabSpec(_Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    message: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    mgmt: MgmtSpec = Field(default_factory=MgmtSpec)
    addressing: AddressingSpec = Field(default_factory=AddressingSpec)
    controller: ControllerSpec = Field(default_factory=ControllerSpec)
    nodes: dict[str, NodeSpec] = Field(..., min_length=1)
    links: list[LinkSpec] = Field(default_factory=list)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    grid: GridSpec | None = None
    vlinks: dict[str, dict[str, Any]] = Field(default_factory=dict, description="virtual links "
                                              "(controllers/vlink/model.py), created in this order at boot")
    flows: FlowsSpec | None = None

    @field_validator("nodes", mode="before")
    @classmethod
    def _empty_nodes(cls, v: Any) -> Any:
        # `r1:` with nothing under it is a node with all defaults (containerlab allows it too).
        if isinstance(v, dict):
            return {k: ({} if n is None else n) for k, n in v.items()}
        return v

    def has_grid(self) -> bool:
        return self.grid is not None or bool(self.vlinks)

    def kind_of(self, node: str) -> str:
        return self.nodes[node].kind or self.defaults.kind

    def is_switch(self, node: str) -> bool:
        info = KINDS.get(self.kind_of(node))
        return bool(info and info.switch)

    def switches(self) -> list[str]:
        return [n for n in self.nodes if self.is_switch(n)]

    def hosts(self) -> list[str]:
        """Every node that lives in a network namespace (hosts, routers, devices)."""
        return [n for n in self.nodes if not self.is_switch(n)]
