"""The connectivity grid's physical side: which switch port each node interface is on, and the trunks.

Virtual links are carried between switches over one spanning tree of the trunk graph (networkx),
shared by every link, so no link can loop however members are spread over the switches; the tree is
rooted at the first grid switch, which makes it the same after every controller restart.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx


@dataclass(frozen=True)
class Attachment:
    """A node interface wired to a grid switch port."""

    endpoint: str
    switch: str
    port: str
    mac: str | None = None


@dataclass(frozen=True)
class Trunk:
    a: str
    a_port: str
    b: str
    b_port: str


@dataclass
class Grid:
    switches: list[str]
    attachments: dict[str, Attachment] = field(default_factory=dict)
    trunks: list[Trunk] = field(default_factory=list)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Grid:
        """From the controller config's `vlinks` section (written by the lab engine)."""
        switches = [str(s) for s in data.get("switches", [])]
        atts = {}
        for ep, att in (data.get("attachments") or {}).items():
            atts[ep] = Attachment(ep, str(att["switch"]), str(att["port"]), att.get("mac"))
        trunks = [Trunk(str(t["a"]), str(t["a_port"]), str(t["b"]), str(t["b_port"])) for t in data.get("trunks", [])]
        return cls(switches, atts, trunks)

    def to_config(self) -> dict[str, Any]:
        return {"switches": list(self.switches),
                "attachments": {ep: {"switch": a.switch, "port": a.port, **({"mac": a.mac} if a.mac else {})}
                                for ep, a in self.attachments.items()},
                "trunks": [{"a": t.a, "a_port": t.a_port, "b": t.b, "b_port": t.b_port} for t in self.trunks]}

    # ----- lookups ---------------------------------------------------------------------------

    def attachment(self, endpoint: str) -> Attachment | None:
        return self.attachments.get(endpoint)

    def port_owner(self, switch: str, port: str) -> Attachment | None:
        return self._by_port.get((switch, port))

    @cached_property
    def _by_port(self) -> dict[tuple[str, str], Attachment]:
        return {(a.switch, a.port): a for a in self.attachments.values()}

    def trunk_ports(self, switch: str) -> list[str]:
        """Every tree trunk port of a switch (trunks off the tree carry nothing)."""
        return sorted(p for (s, p) in self._tree_ports if s == switch)

    # ----- the spanning tree -------------------------------------------------------------------

    @cached_property
    def _tree(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(self.switches)
        for t in self.trunks:
            if t.a in g and t.b in g and not g.has_edge(t.a, t.b) and t.a != t.b:
                g.add_edge(t.a, t.b, ports={t.a: t.a_port, t.b: t.b_port})
        tree = nx.Graph()
        tree.add_nodes_from(self.switches)
        for comp in nx.connected_components(g):
            root = next(s for s in self.switches if s in comp)
            for u, v in nx.bfs_edges(g, root):
                tree.add_edge(u, v, **g.edges[u, v])
        return tree

    @cached_property
    def _tree_ports(self) -> dict[tuple[str, str], str]:
        """(switch, trunk port) -> the neighbour switch on the tree."""
        out = {}
        for u, v, data in self._tree.edges(data=True):
            out[(u, data["ports"][u])] = v
            out[(v, data["ports"][v])] = u
        return out

    def neighbour(self, switch: str, port: str) -> str | None:
        return self._tree_ports.get((switch, port))

    def connected(self, switches: Iterable[str]) -> bool:
        sw = list(dict.fromkeys(switches))
        return all(nx.has_path(self._tree, sw[0], s) for s in sw[1:]) if sw else True

    def span(self, switches: Iterable[str]) -> set[str]:
        """The switches of the smallest subtree joining these switches."""
        sw = list(dict.fromkeys(switches))
        out = set(sw)
        for s in sw[1:]:
            out.update(nx.shortest_path(self._tree, sw[0], s))
        return out

    def toward(self, switch: str, targets: set[str], exclude: str | None = None) -> list[str]:
        """Trunk ports of `switch` that lead (on the tree) to any of `targets`, except `exclude`."""
        out = []
        for (s, port), nbr in sorted(self._tree_ports.items()):
            if s != switch or port == exclude:
                continue
            if self._beyond(switch, nbr) & targets:
                out.append(port)
        return out

    def _beyond(self, switch: str, nbr: str) -> frozenset[str]:
        key = (switch, nbr)
        cache = self.__dict__.setdefault("_beyond_cache", {})
        if key not in cache:
            t = self._tree.copy()
            t.remove_edge(switch, nbr)
            cache[key] = frozenset(nx.node_connected_component(t, nbr))
        return cache[key]
