"""What the cluster manager knows from the lab file (claims 8, 13): the two switches, the active
elements (one role each), the reserved pool, which customer circuits each role carries, and how
every element is cabled. The lab engine writes it as `cluster.json` into the manager's state
directory (twin/devconfig.py); elements get the part they need as `cluster-agent.json`."""
from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PLAN_FILE = "cluster.json"
AGENT_FILE = "cluster-agent.json"
DETECTION = ("heartbeats", "ports", "events")


@dataclass(frozen=True)
class ElementPorts:
    """How one element is cabled: its interface on each switch and the switch port it lands on."""

    name: str
    mgmt: str
    access_intf: str     # the element's interface towards the access (customer) switch
    access_port: str     # the access switch's port for it
    network_intf: str
    network_port: str


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    secret: str
    manager: str
    manager_ip: str
    api_socket: str
    access_switch: str
    network_switch: str
    elements: dict[str, ElementPorts]
    members: list[str]                      # the roles: the elements active at boot
    pool: list[str]                         # reserved spares, in selection order
    circuits: dict[str, list[str]]          # role -> customer ports on the access switch
    server_ports: list[str]                 # network-switch ports that are not elements'
    selection: str = "ordered"
    hb_ms: int = 100
    dead_intervals: int = 3
    config_port: int = 8080
    boot_grace_s: float = 20.0
    # what counts as a failure: missed heartbeats, the controller's port events, the element's own
    # events (failing, link down); a benchmark's VRRP-like baseline keeps heartbeats only
    detection: tuple[str, ...] = ("heartbeats", "ports", "events")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cookie(self) -> int:
        """Marks this cluster's cross-connects on the switches (0xC1 in the top byte)."""
        return (0xC1 << 56) | (zlib.crc32(self.name.encode()) & 0xFFFFFFFF)

    @property
    def dead_s(self) -> float:
        return self.hb_ms * self.dead_intervals / 1000

    def element_of_port(self, switch: str, port: str) -> str | None:
        for e in self.elements.values():
            if (switch, port) in ((self.access_switch, e.access_port), (self.network_switch, e.network_port)):
                return e.name
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClusterPlan":
        d = dict(d)
        d["elements"] = {k: ElementPorts(**v) for k, v in d["elements"].items()}
        if "detection" in d:
            d["detection"] = tuple(d["detection"])
        return cls(**d)

    @classmethod
    def load(cls, path: Path) -> "ClusterPlan":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class AgentPlan:
    """An element's side: where the manager is, the cluster's secret, its heartbeat period."""

    cluster: str
    element: str
    secret: str
    manager_ip: str
    hb_ms: int = 100

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> "AgentPlan":
        return cls(**json.loads(Path(path).read_text()))
