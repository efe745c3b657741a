"""Circuit route calculation and provisioning across servers (claims 11-13, 19-21).

Any server coordinates a request. It reads the element topology from the shared store (claim 12),
asks every server that manages elements for a summary of its domain (the cost between its border
elements and the endpoints: claim 21's sub-route calculation, with the destination in the request),
plans the domain sequence on those summaries, asks each selected server for its explicit sub-route
and consolidates them into one end-to-end route (claim 13). Provisioning (claim 20) then sends each
element's static routes to the server that manages it, which configures the element over its CLI.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import networkx as nx

from . import provisioning, routing, topology
from .peer_service import PeerError
from .store import EmsStore

log = logging.getLogger(__name__)

Ask = Callable[[int, dict[str, Any]], dict[str, Any]]


class CircuitError(Exception):
    """A circuit request that cannot be served, with the reason a person can act on."""


class CircuitService:
    def __init__(self, server_id: int, store: EmsStore, assignment: Callable[[], dict[str, int]], ask: Ask) -> None:
        self.server_id = server_id
        self.store = store
        self.assignment = assignment
        self.ask = ask

    # ------------------------------------------------------------------ shared view
    def topology(self) -> tuple[nx.Graph, list[topology.Stub]]:
        """The routing information every server reads from the data store (claim 12)."""
        owner = self.assignment()
        interfaces = [topology.Interface(r["element"], r["name"], ipaddress.IPv4Interface(r["address"]), bool(r["up"]))
                      for r in self.store.interfaces() if r["element"] in owner]
        links, stubs = topology.infer(interfaces)
        g = topology.graph(links, owner)
        return g, stubs

    def _endpoints(self, stubs: list[topology.Stub], src: str, dst: str) -> tuple[topology.Stub, topology.Stub]:
        try:
            return topology.find_endpoint(stubs, src), topology.find_endpoint(stubs, dst)
        except topology.TopologyError as exc:
            raise CircuitError(str(exc)) from None

    # ------------------------------------------------------------------ the parts a server answers
    def summary(self, targets: list[str]) -> dict[str, Any]:
        g, _ = self.topology()
        domain = {e for e, s in self.assignment().items() if s == self.server_id}
        return routing.summarize(g, domain, self.server_id, [t for t in targets if t in domain]).to_json()

    def subroute(self, entry: str, exit: str) -> list[str]:
        g, _ = self.topology()
        domain = {e for e, s in self.assignment().items() if s == self.server_id}
        return routing.subroute(g, domain, entry, exit)

    # ------------------------------------------------------------------ coordination
    def route(self, src: str, dst: str) -> dict[str, Any]:
        return self._route(src, dst)[0]

    def _route(self, src: str, dst: str) -> tuple[dict[str, Any], nx.Graph, topology.Stub, topology.Stub]:
        t0 = time.perf_counter()
        g, stubs = self.topology()
        a, b = self._endpoints(stubs, src, dst)
        owner = self.assignment()
        servers = sorted(set(owner.values()))
        targets = [a.element, b.element]
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            replies = list(pool.map(lambda s: self.ask(s, {"op": "summary", "targets": targets}), servers))
        summaries = [routing.Summary.from_json(r["summary"]) for r in replies]
        inter = routing.interdomain_links(g, owner)
        try:
            segments = routing.plan(summaries, inter, owner, a.element, b.element)
        except routing.RouteError as exc:
            raise CircuitError(f"no route from {src} to {dst}: {exc}") from None
        t1 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, len(segments))) as pool:
            subs = list(pool.map(lambda seg: self.ask(seg.server, {"op": "subroute", "entry": seg.entry,
                                                                   "exit": seg.exit, "destination": b.element}),
                                 segments))
        path = routing.stitch([s["path"] for s in subs], g)
        return ({"src": str(a.address.network), "dst": str(b.address.network), "path": path,
                "segments": [{"server": s.server, "entry": s.entry, "exit": s.exit} for s in segments],
                "servers_asked": servers, "coordinator": self.server_id,
                "plan_ms": round((t1 - t0) * 1000, 2),
                "total_ms": round((time.perf_counter() - t0) * 1000, 2)}, g, a, b)

    def provision(self, src: str, dst: str, remove: bool = False) -> dict[str, Any]:
        r, g, a, b = self._route(src, dst)
        make = provisioning.circuit_unconfig if remove else provisioning.circuit_config
        config = make(g, r["path"], a, b)
        owner = self.assignment()
        done: dict[str, list[str]] = {}
        for element, lines in config.items():
            try:
                self.ask(owner[element], {"op": "configure", "element": element, "lines": lines})
            except PeerError as exc:
                raise CircuitError(f"configuring {element} (server {owner[element]}) failed: {exc}; "
                                   f"already configured: {', '.join(done) or 'none'}") from None
            done[element] = lines
        cid = provisioning.circuit_id(a, b)
        self.store.save_circuit(cid, r["src"], r["dst"], r["path"], r["servers_asked"],
                                "removed" if remove else "provisioned", self.server_id)
        r.update(circuit=cid, config=done, state="removed" if remove else "provisioned")
        return r
